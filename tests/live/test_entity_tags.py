"""Entities: @-tagging a task in the composer, and entity annotations on replies, over real HTTP.

A tag (`input_tag`) names a task by its id; the server looks that id up among the signed-in user's
own tasks every turn, so "mark @Buy milk done" completes exactly the tagged task (even when two
share the title), and a tag carrying another user's task id neither acts on that task nor tells
anything about it. Replies that name the user's tasks carry `EntitySource` annotations. The
composer's tag search is `GET /api/tasks?q=`, confined to the user like every task route.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from app.agents.offline.planner import Reply
from app.http.auth import mint_dev_token
from app.settings import Settings
from tests.support.chatkit_client import ChatKitClient, StreamResult
from tests.support.fake_model_server import TITLE_MARKER, FakeModelServer
from tests.support.servers import LiveServer


def token(user: str) -> str:
    return mint_dev_token(Settings.from_env({}), user)


def bearer(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user)}", "Time-Zone": "UTC"}


def tag(task: dict[str, Any], text: str | None = None) -> dict[str, Any]:
    """An `input_tag` as the page's composer sends it for an entity from `entities.onTagSearch`."""
    return {
        "type": "input_tag",
        "id": task["id"],
        "text": text if text is not None else task["title"],
        "data": {"type": "task", "task_id": task["id"], "number": str(task.get("number", ""))},
        "interactive": True,
    }


def tagged_input(*parts: str | dict[str, Any]) -> dict[str, Any]:
    content = [{"type": "input_text", "text": part} if isinstance(part, str) else part for part in parts]
    return {"content": content, "attachments": [], "inference_options": {}}


def reply_items(result: StreamResult) -> list[Any]:
    return [
        e.item
        for e in result.events
        if e.type == "thread.item.done" and getattr(e.item, "type", "") == "assistant_message"
    ]


def entity_ids(items: list[Any]) -> list[str]:
    return [a.source.id for item in items for part in item.content for a in part.annotations]


async def add(http: httpx.AsyncClient, user: str, title: str) -> dict[str, Any]:
    response = await http.post("/api/tasks", json={"title": title}, headers=bearer(user))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def task_of(http: httpx.AsyncClient, user: str, task_id: str) -> dict[str, Any]:
    response = await http.get(f"/api/tasks/{task_id}", headers=bearer(user))
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def test_a_tagged_message_completes_exactly_the_tagged_task_among_same_titled_ones(
    live_server_factory: Callable[..., LiveServer], server_database_url: str
) -> None:
    server = live_server_factory({"DATABASE_URL": server_database_url})
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        first = await add(http, "alice", "Buy milk")
        second = await add(http, "alice", "Buy milk")
        chat = ChatKitClient(http, token("alice"), time_zone="UTC")
        result = await chat.request("threads.create", {"input": tagged_input("mark ", tag(second), " done")})
        assert result.status == 200 and not result.of_type("error"), result.of_type("error")

        assert (await task_of(http, "alice", second["id"]))["completed"] is True
        assert (await task_of(http, "alice", first["id"]))["completed"] is False  # same title, untouched
        reply = result.assistant_text()
        assert f"#{second['number']}" in reply and f"#{first['number']}" not in reply, reply

        # The reply links the task it names: an entity annotation whose source is that task.
        (item,) = reply_items(result)
        (annotation,) = [a for part in item.content for a in part.annotations]
        source = annotation.source
        assert (source.type, source.id, source.interactive) == ("entity", second["id"], True)
        assert source.data == {"type": "task", "task_id": second["id"], "number": str(second["number"])}
        assert source.title == f"#{second['number']} Buy milk"
        assert annotation.index is not None and item.content[0].text[: annotation.index].endswith("“Buy milk”")

        # Saved as streamed: a reload shows the same annotation.
        stored = (await chat.items(result.thread_id, order="desc", limit=1)).body["data"][0]
        assert stored["type"] == "assistant_message"
        assert [a["source"]["id"] for a in stored["content"][0]["annotations"]] == [second["id"]]
        assert result.of_type("client_effect")[0].data == {"ids": [second["id"]]}


async def test_two_tags_of_the_same_title_in_one_message_act_on_both_and_only_them(
    live_server_factory: Callable[..., LiveServer],
) -> None:
    server = live_server_factory()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        one, two, three = [await add(http, "alice", "Water the plants") for _ in range(3)]
        chat = ChatKitClient(http, token("alice"), time_zone="UTC")
        result = await chat.request(
            "threads.create", {"input": tagged_input("mark ", tag(one), " and ", tag(three), " done")}
        )
        assert not result.of_type("error"), result.of_type("error")
        states = [(await task_of(http, "alice", t["id"]))["completed"] for t in (one, two, three)]
        assert states == [True, False, True]
        assert sorted(entity_ids(reply_items(result))) == sorted([one["id"], three["id"]])


async def test_a_tag_naming_another_users_task_is_not_acted_on_and_not_revealed(
    live_server_factory: Callable[..., LiveServer],
) -> None:
    server = live_server_factory()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        secret = await add(http, "bob", "Plan the surprise party for Carol")
        own = await add(http, "alice", "Groceries")  # alice's own task with the tag's text as title
        chat = ChatKitClient(http, token("alice"), time_zone="UTC")
        forged = {**tag(secret, text="Groceries"), "data": {"type": "task", "task_id": secret["id"]}}

        done = await chat.request("threads.create", {"input": tagged_input("mark ", forged, " done")})
        shown = await chat.send_input(done.thread_id, tagged_input("show me ", forged))
        deleted = await chat.send_input(done.thread_id, tagged_input("delete ", forged))
        for result in (done, shown, deleted):
            assert result.status == 200 and not result.of_type("error"), result.of_type("error")
            reply = result.assistant_text()
            assert "doesn't name one of your tasks" in reply, reply
            assert "surprise" not in reply.lower() and "carol" not in reply.lower(), reply
            # Alice's own message holds the id she sent; nothing the server wrote does.
            written = [f for f in map(json.loads, result.raw_frames) if f.get("item", {}).get("type") != "user_message"]
            assert secret["id"] not in json.dumps(written)
            assert not entity_ids(reply_items(result))
            assert not result.of_type("client_effect")  # no task changed

        # Bob's task is as it was, and so is alice's own task of the same title: a tag is an id.
        assert await task_of(http, "bob", secret["id"]) == secret
        assert (await task_of(http, "alice", own["id"]))["completed"] is False
        # Nothing of bob's task is in alice's conversation, nor reachable through REST as alice.
        history = (await chat.items(done.thread_id, limit=50)).body
        assert "surprise" not in json.dumps(history).lower()
        assert (await http.get(f"/api/tasks/{secret['id']}", headers=bearer("alice"))).status_code == 404


async def test_a_tag_is_looked_up_every_turn_so_a_task_deleted_since_names_nothing(
    live_server_factory: Callable[..., LiveServer],
) -> None:
    server = live_server_factory()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        milk = await add(http, "alice", "Buy milk")
        chat = ChatKitClient(http, token("alice"), time_zone="UTC")
        shown = await chat.request("threads.create", {"input": tagged_input("show ", tag(milk))})
        assert f"#{milk['number']} “Buy milk”" in shown.assistant_text()
        assert (await http.delete(f"/api/tasks/{milk['id']}", headers=bearer("alice"))).status_code == 204
        again = await chat.send_input(shown.thread_id, tagged_input("mark ", tag(milk), " done"))
        assert "doesn't name one of your tasks" in again.assistant_text(), again.assistant_text()
        assert not entity_ids(reply_items(again)) and not again.of_type("client_effect")


async def test_replies_naming_tasks_from_tool_results_carry_entity_annotations(
    live_server_factory: Callable[..., LiveServer],
) -> None:
    server = live_server_factory()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        milk = await add(http, "alice", "Buy milk")
        rent = await add(http, "alice", "Pay rent")
        await add(http, "bob", "Buy milk")
        chat = ChatKitClient(http, token("alice"), time_zone="UTC")
        listed = await chat.create_thread("show my open tasks")
        assert not listed.of_type("error"), listed.of_type("error")
        (item,) = reply_items(listed)
        annotations = [a for part in item.content for a in part.annotations]
        assert [a.source.id for a in annotations] == [milk["id"], rent["id"]]
        text = item.content[0].text
        for annotation, task in zip(annotations, (milk, rent), strict=True):
            assert text[: annotation.index].endswith(f"#{task['number']} “{task['title']}”")

        added = await chat.send(listed.thread_id, "add a task to call the plumber")
        new = [
            t
            for t in (await http.get("/api/tasks", headers=bearer("alice"))).json()["items"]
            if t["title"] == "Call the plumber"
        ]
        assert entity_ids(reply_items(added)) == [new[0]["id"]]


async def test_the_tag_search_finds_only_the_users_own_tasks(live_server_factory: Callable[..., LiveServer]) -> None:
    server = live_server_factory()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        mine = await add(http, "alice", "Buy milk")
        await add(http, "alice", "Pay rent")
        await add(http, "bob", "Buy milk and eggs")
        found = await http.get("/api/tasks", params={"q": "milk", "status": "all", "limit": 8}, headers=bearer("alice"))
        assert found.status_code == 200
        assert [t["id"] for t in found.json()["items"]] == [mine["id"]]
        assert found.json()["total"] == 1
        assert (await http.get("/api/tasks", params={"q": "milk"})).status_code == 401


def turn_input(fake: FakeModelServer) -> str:
    """What the last turn (not the thread-title request) sent the model."""
    turns = [r for r in fake.requests if TITLE_MARKER not in json.dumps(r.get("instructions") or "")]
    return json.dumps(turns[-1]["input"], ensure_ascii=False)


async def test_a_model_reads_the_tagged_task_with_its_id_and_number_and_nothing_of_anothers(
    live_server_factory: Callable[..., LiveServer], fake_model: Callable[[list[Any]], FakeModelServer]
) -> None:
    fake = fake_model([Reply("Noted."), Reply("Noted.")])
    server = live_server_factory(
        {"MODEL_PROVIDER": "openai", "OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": fake.api_key}
    )
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        await add(http, "alice", "Buy milk")
        second = await add(http, "alice", "Buy milk")
        secret = await add(http, "bob", "Plan the surprise party")
        chat = ChatKitClient(http, token("alice"), time_zone="UTC")
        result = await chat.request("threads.create", {"input": tagged_input("mark ", tag(second), " done")})
        assert not result.of_type("error"), result.of_type("error")
        sent = turn_input(fake)
        assert f"task #{second['number']} “Buy milk” (id {second['id']}, open)" in sent

        forged = await chat.send_input(result.thread_id, tagged_input("mark ", tag(secret, text="Party"), " done"))
        assert not forged.of_type("error"), forged.of_type("error")
        sent = turn_input(fake)
        assert "@Party = no task of this user" in sent
        assert "surprise" not in sent
