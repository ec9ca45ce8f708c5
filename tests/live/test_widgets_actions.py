"""Task widgets over real HTTP (a granian process): the ListView task list, Delete's confirmation card,
the choice shown when a delete request matches several tasks, the in-place edit Form, and isolation.

Every action goes through `threads.custom_action` (streamed) or `threads.sync_custom_action`, and what
happened to the tasks is read back through the REST API, never from the widget alone.

Every test here runs on the run's shared default server (`live_servers.get()`), as users of its own.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from chatkit.widgets import DynamicWidgetRoot

from app.agents.chatkit.widgets import Back, widget_back
from tests.support.auth import server_token
from tests.support.chatkit_client import ChatKitClient, StreamResult
from tests.support.servers import LiveServer, ServerPool, unique_user
from tests.support.widgets import find, replaced, widgets


@pytest.fixture
def server(live_servers: ServerPool) -> LiveServer:
    return live_servers.get()


@dataclass
class User:
    chat: ChatKitClient
    http: httpx.AsyncClient
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def add(self, title: str, **fields: Any) -> dict[str, Any]:
        response = await self.http.post("/api/tasks", json={"title": title, **fields}, headers=self.auth)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def task(self, task_id: str) -> httpx.Response:
        return await self.http.get(f"/api/tasks/{task_id}", headers=self.auth)

    async def titles(self) -> list[str]:
        response = await self.http.get("/api/tasks", params={"status": "all"}, headers=self.auth)
        return sorted(t["title"] for t in response.json()["items"])

    async def act(self, thread: str, item: str | None, kind: str, **payload: Any) -> StreamResult:
        result = await self.chat.request(
            "threads.custom_action",
            {"thread_id": thread, "item_id": item, "action": {"type": kind, "payload": payload}},
        )
        assert result.status == 200, result.body
        return result


@pytest.fixture
async def http(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        yield client


def _user(server: LiveServer, http: httpx.AsyncClient, name: str) -> User:
    token = server_token(server.env, unique_user(name))
    return User(chat=ChatKitClient(http, token, time_zone="UTC"), http=http, token=token)


def tree(widget: Any) -> dict[str, Any]:
    return dict(widget.model_dump(mode="json", by_alias=True, exclude_none=True))


async def _listed(user: User) -> tuple[str, Any]:
    shown = await user.chat.create_thread("show my tasks")
    (widget,) = widgets(shown)
    return shown.thread_id, widget


async def test_the_task_list_is_a_list_view_with_one_item_per_task(server: LiveServer, http: httpx.AsyncClient) -> None:
    ann = _user(server, http, "ann")
    milk = await ann.add("Buy milk", priority="high")
    eggs = await ann.add("Buy eggs", due_date="2026-12-24")
    _, widget = await _listed(ann)
    root = tree(widget.widget)
    assert root["type"] == "ListView"
    assert root["status"]["text"] == "Your tasks · 2"
    items = root["children"]
    assert [i["type"] for i in items] == ["ListViewItem", "ListViewItem"]
    assert [i["key"] for i in items] == [f"task:{milk['id']}", f"task:{eggs['id']}"]
    for item in items:
        buttons = {b["label"]: b["onClickAction"] for b in find(item, "Button")}
        assert set(buttons) == {"Done", "Edit", "Delete"}
        assert {a["payload"]["id"] for a in buttons.values()} == {item["key"].removeprefix("task:")}
    assert "Due 2026-12-24" in json.dumps(items[1])


async def test_delete_asks_on_a_card_and_only_its_confirm_deletes(server: LiveServer, http: httpx.AsyncClient) -> None:
    bea = _user(server, http, "bea")
    milk = await bea.add("Buy milk")
    await bea.add("Buy eggs")
    thread, widget = await _listed(bea)

    asked = replaced(await bea.act(thread, widget.id, "task.delete", id=milk["id"]))
    assert asked["type"] == "Card"
    assert asked["confirm"]["label"] == "Delete" and asked["confirm"]["action"]["type"] == "task.delete.confirm"
    assert asked["cancel"]["action"]["type"] == "task.delete.cancel"
    assert asked["confirm"]["action"]["payload"]["id"] == milk["id"]
    assert "cannot be undone" in json.dumps(asked)
    assert (await bea.task(milk["id"])).status_code == 200  # asking deletes nothing

    cancelled = await bea.act(thread, widget.id, "task.delete.cancel", id=milk["id"])
    back = replaced(cancelled)
    assert back["type"] == "ListView" and len(back["children"]) == 2
    assert not cancelled.of_type("client_effect")
    assert (await bea.task(milk["id"])).status_code == 200

    replaced(await bea.act(thread, widget.id, "task.delete", id=milk["id"]))
    confirmed = await bea.act(thread, widget.id, "task.delete.confirm", id=milk["id"])
    after = replaced(confirmed)
    assert after["type"] == "ListView" and [i["key"] for i in after["children"]] != [f"task:{milk['id']}"]
    assert len(after["children"]) == 1
    assert confirmed.of_type("client_effect")[0].data == {"ids": [milk["id"]]}
    assert (await bea.task(milk["id"])).status_code == 404
    assert await bea.titles() == ["Buy eggs"]


async def test_a_confirm_action_without_its_card_deletes_nothing(server: LiveServer, http: httpx.AsyncClient) -> None:
    cat = _user(server, http, "cat")
    milk = await cat.add("Buy milk")
    thread, widget = await _listed(cat)
    # Sent from the list itself (no card asked), and from no widget at all.
    for item in (widget.id, None):
        refused = await cat.act(thread, item, "task.delete.confirm", id=milk["id"])
        errors = refused.of_type("error")
        assert errors and "Nothing was deleted" in (errors[0].message or "")
        assert (await cat.task(milk["id"])).status_code == 200
    sync = await cat.chat.request(
        "threads.sync_custom_action",
        {"thread_id": thread, "item_id": widget.id, "action": {"type": "task.delete.confirm", "payload": milk}},
    )
    assert sync.status == 400 and "Nothing was deleted" in sync.body["detail"]
    assert (await cat.task(milk["id"])).status_code == 200


async def test_delete_of_several_matches_shows_a_choice_and_deletes_exactly_the_one_picked(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    dan = _user(server, http, "dan")
    milk = await dan.add("Buy milk")
    goat = await dan.add("Milk the goat")
    await dan.add("Call mom")
    thread = (await dan.chat.create_thread("delete the milk task")).thread_id
    items = (await dan.chat.items(thread, order="asc", limit=50)).body["data"]
    assert await dan.titles() == ["Buy milk", "Call mom", "Milk the goat"]  # nothing deleted yet
    choice = next(i for i in items if i["type"] == "widget")
    assert choice["widget"]["type"] == "ListView" and choice["widget"]["key"] == "choice:delete"
    picks = choice["widget"]["children"]
    assert [(p["onClickAction"]["type"], p["onClickAction"]["payload"]) for p in picks] == [
        ("task.delete", {"id": milk["id"]}),
        ("task.delete", {"id": goat["id"]}),
    ]
    reply = next(i for i in items if i["type"] == "assistant_message")["content"][0]["text"]
    assert "Pick the one to delete" in reply and "?" not in reply

    card = replaced(await dan.act(thread, choice["id"], "task.delete", id=goat["id"]))
    assert card["confirm"]["action"]["type"] == "task.delete.confirm"
    back = {"kind": "choice", "title": "Which task should I delete?", "ids": [milk["id"], goat["id"]]}
    assert card["confirm"]["action"]["payload"] == {"id": goat["id"], "back": back}
    again = replaced(await dan.act(thread, choice["id"], "task.delete.cancel", id=goat["id"]))
    assert again["key"] == "choice:delete" and len(again["children"]) == 2  # cancel: pick again
    replaced(await dan.act(thread, choice["id"], "task.delete", id=goat["id"]))
    done = replaced(await dan.act(thread, choice["id"], "task.delete.confirm", id=goat["id"]))
    assert "Deleted #2 Milk the goat." in json.dumps(done)
    assert await dan.titles() == ["Buy milk", "Call mom"]


async def test_edit_form_saves_through_the_task_rules_and_refuses_bad_values_whole(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    eve = _user(server, http, "eve")
    milk = await eve.add("Buy milk", due_date="2026-12-24")
    thread, widget = await _listed(eve)

    form = replaced(await eve.act(thread, widget.id, "task.edit", id=milk["id"]))
    (submit,) = find(form, "Form")
    assert submit["onSubmitAction"]["type"] == "task.edit.save"
    fields = {f["name"]: f for kind in ("Input", "DatePicker", "Select") for f in find(form, kind)}
    assert fields["title"]["defaultValue"] == "Buy milk" and fields["title"]["required"] is True
    assert fields["due_date"]["defaultValue"].startswith("2026-12-24")
    assert fields["priority"]["defaultValue"] == "medium"
    assert [o["value"] for o in fields["priority"]["options"]] == ["low", "medium", "high"]

    async def save(**values: Any) -> StreamResult:
        # The client injects the form's values into the submit action's payload, keyed by name.
        return await eve.act(thread, widget.id, "task.edit.save", **submit["onSubmitAction"]["payload"], **values)

    bad: list[tuple[dict[str, Any], str]] = [
        ({"title": "Buy oat milk", "priority": "urgent"}, "priority must be one of low, medium, high"),
        ({"title": "Buy oat milk", "due_date": "2026-02-30"}, "is not a date"),
        ({"title": "   "}, "title must be 1 to 200 characters"),
        ({"title": "x" * 201}, "title must be 1 to 200 characters"),
        ({"title": "Buy oat milk", "due_date": 5}, "due_date must be text"),
    ]
    for values, message in bad:
        refused = await save(**values)
        shown = replaced(refused)
        assert "Not saved: " in json.dumps(shown) and message in json.dumps(shown), (values, shown)
        assert find(shown, "Form"), "the form stays open with the error"
        assert not refused.of_type("client_effect")
        stored = (await eve.task(milk["id"])).json()
        assert (stored["title"], stored["due_date"], stored["priority"]) == ("Buy milk", "2026-12-24", "medium")

    saved = await save(title="  Buy oat milk ", due_date="2026-12-31", priority="high")
    back = replaced(saved)
    assert back["type"] == "ListView" and "#1 Buy oat milk" in json.dumps(back)
    assert saved.of_type("client_effect")[0].data == {"ids": [milk["id"]]}
    stored = (await eve.task(milk["id"])).json()
    assert (stored["title"], stored["due_date"], stored["priority"]) == ("Buy oat milk", "2026-12-31", "high")

    # A date picker's timestamp is the day where the user is; an empty date clears it.
    replaced(await eve.act(thread, widget.id, "task.edit", id=milk["id"]))
    await save(title="Buy oat milk", due_date="2027-01-05T00:00:00+00:00", priority="high")
    assert (await eve.task(milk["id"])).json()["due_date"] == "2027-01-05"
    replaced(await eve.act(thread, widget.id, "task.edit", id=milk["id"]))
    await save(title="Buy oat milk", due_date="", priority="high")
    assert (await eve.task(milk["id"])).json().get("due_date") is None


async def test_actions_naming_another_users_task_do_not_touch_it(server: LiveServer, http: httpx.AsyncClient) -> None:
    fay, gus = _user(server, http, "fay"), _user(server, http, "gus")
    private = await fay.add("Fay's secret", priority="low")
    await gus.add("Gus's own")
    thread, widget = await _listed(gus)
    for kind, values in [
        ("task.complete", {}),
        ("task.reopen", {}),
        ("task.edit", {}),
        ("task.edit.save", {"title": "hijacked", "priority": "high"}),
        ("task.delete", {}),
        ("task.delete.confirm", {}),
    ]:
        result = await gus.act(thread, widget.id, kind, id=private["id"], **values)
        assert not result.of_type("client_effect"), kind
        shown = json.dumps([e.item.widget.model_dump(mode="json") for e in result.of_type("thread.item.replaced")])
        assert "secret" not in shown, kind
    stored = (await fay.task(private["id"])).json()
    assert (stored["title"], stored["priority"], stored["completed"]) == ("Fay's secret", "low", False)
    # Gus's widget drew only his own task all along.
    assert await gus.titles() == ["Gus's own"]


async def test_complete_reopen_and_edit_are_synchronous_and_answer_the_redrawn_widget(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    hal = _user(server, http, "hal")
    milk = await hal.add("Buy milk")
    thread, widget = await _listed(hal)
    buttons = {b["label"]: b["onClickAction"] for b in find(tree(widget.widget), "Button")}
    # What ChatKit's component reads to send threads.sync_custom_action instead of a stream.
    assert {label: action.get("streaming") for label, action in buttons.items()} == {
        "Done": False,
        "Edit": False,
        "Delete": True,  # the delete flow streams (its confirmation's tasks.changed effect)
    }

    async def sync(kind: str, **payload: Any) -> dict[str, Any]:
        answer = await hal.chat.request(
            "threads.sync_custom_action",
            {"thread_id": thread, "item_id": widget.id, "action": {"type": kind, "payload": payload}},
        )
        assert answer.status == 200, answer.body
        assert answer.headers["content-type"].startswith("application/json")
        updated = answer.body["updated_item"]
        assert updated["id"] == widget.id
        return dict(updated["widget"])

    done = await sync("task.complete", id=milk["id"])
    assert (await hal.task(milk["id"])).json()["completed"] is True
    (reopen,) = [b for b in find(done, "Button") if b["label"] == "Reopen"]
    assert {k: reopen["onClickAction"][k] for k in ("type", "payload", "streaming")} == {
        "type": "task.reopen",
        "payload": {"id": milk["id"]},
        "streaming": False,
    }
    await sync("task.reopen", id=milk["id"])
    assert (await hal.task(milk["id"])).json()["completed"] is False

    form = await sync("task.edit", id=milk["id"])
    (submit,) = find(form, "Form")
    (cancel,) = [b for b in find(form, "Button") if b.get("onClickAction")]
    assert submit["onSubmitAction"]["streaming"] is False and cancel["onClickAction"]["streaming"] is False
    refused = await sync("task.edit.save", **submit["onSubmitAction"]["payload"], title="Buy oat milk", priority="x")
    assert "Not saved: " in json.dumps(refused) and find(refused, "Form")
    saved = await sync("task.edit.save", **submit["onSubmitAction"]["payload"], title="Buy oat milk", priority="high")
    assert saved["type"] == "ListView" and "#1 Buy oat milk" in json.dumps(saved)
    stored = (await hal.task(milk["id"])).json()
    assert (stored["title"], stored["priority"]) == ("Buy oat milk", "high")

    # The redrawn widget is stored: a reload shows it.
    items = (await hal.chat.items(thread, order="asc", limit=50)).body["data"]
    (reloaded,) = [item for item in items if item["id"] == widget.id]
    assert reloaded["widget"]["type"] == "ListView" and "#1 Buy oat milk" in json.dumps(reloaded["widget"])


def test_a_task_list_stored_before_list_views_still_gives_its_title_and_tasks() -> None:
    """Threads saved before the list was a ListView hold a Card of Rows; its buttons still work."""
    old = {
        "type": "Card",
        "children": [
            {"type": "Row", "children": [{"type": "Title", "value": "Your tasks"}, {"type": "Badge", "label": "2"}]},
            {"type": "Divider"},
            {"type": "Row", "key": "task:a", "children": []},
            {"type": "Row", "key": "task:b", "children": []},
        ],
    }
    assert widget_back(DynamicWidgetRoot.model_validate(old)) == Back(kind="tasks", title="Your tasks", ids=("a", "b"))
