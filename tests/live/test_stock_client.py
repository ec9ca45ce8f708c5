"""A stock ChatKit client through a whole session (issue 26, items 1 and 3).

The client here plays ChatKit's web component with default options pointed at `/chatkit`: it
sends `Authorization` and `Content-Type` and nothing of TaskPilot's (no `Time-Zone`, no
`ChatKit-Client-Tools`), the bodies the component sends (`inference_options: {}`, `attachments: []`),
registers no client-tool handler, and sends widget actions with exactly the payloads the widgets
carry (a form's values merged into its submit action's payload, as the component does). Nothing
it does may end in a pending `client_tool_call`: such a client would be stuck.

One real server (granian over real HTTP) per database, on SQLite and PostgreSQL, started with a
`DEFAULT_TIME_ZONE` whose date differs from UTC's right now, so "tomorrow" proves which zone it is
(from the run's pool of shared servers: any other test wanting such a server gets the same one).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from chatkit.types import ThreadStreamEvent
from pydantic import TypeAdapter
from testkit.chatkit import dev_token

from tests.support.chatkit_client import parse_sse
from tests.support.servers import LiveServer, ServerPool, unique_user
from tests.support.time_zones import zone_on_another_date
from tests.support.widgets import find

EVENTS: TypeAdapter[ThreadStreamEvent] = TypeAdapter(ThreadStreamEvent)
ZONE, LOCAL_TODAY = zone_on_another_date()
TOMORROW = (LOCAL_TODAY + dt.timedelta(days=1)).isoformat()
NOTES = b"milk, eggs, bread\n"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest, live_servers: ServerPool) -> LiveServer:
    if request.param == "postgres":
        request.getfixturevalue("postgres_url")  # skips (or fails under CI) without PostgreSQL
    return live_servers.get({"DEFAULT_TIME_ZONE": ZONE}, database=request.param)


@dataclass
class Answer:
    status: int
    events: list[dict[str, Any]] = field(default_factory=list)
    body: Any = None

    def done(self, kind: str) -> list[dict[str, Any]]:
        return [e["item"] for e in self.events if e["type"] == "thread.item.done" and e["item"]["type"] == kind]

    def text(self) -> str:
        return "\n".join(part["text"] for item in self.done("assistant_message") for part in item["content"])

    def widget(self) -> dict[str, Any]:
        """The widget item this answer drew: a new one, the one an action replaced, or the one a
        synchronous action answered with."""
        if isinstance(self.body, dict) and self.body.get("updated_item"):
            return dict(self.body["updated_item"])
        replaced = [e["item"] for e in self.events if e["type"] == "thread.item.replaced"]
        (item,) = replaced or self.done("widget")
        return dict(item)


@dataclass
class StockClient:
    """ChatKit's web component with default options, as far as the wire can tell."""

    http: httpx.Client
    token: str
    seen: list[Answer] = field(default_factory=list)

    def post(self, kind: str, params: dict[str, Any]) -> Answer:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        response = self.http.post("/chatkit", content=json.dumps({"type": kind, "params": params}), headers=headers)
        answer = Answer(status=response.status_code)
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            frames, _ = parse_sse(response.text)
            for frame in frames:
                EVENTS.validate_json(frame)  # every frame is an event the ChatKit library defines
                answer.events.append(json.loads(frame))
            assert not [e for e in answer.events if e["type"] == "error"], answer.events
        else:
            answer.body = response.json() if response.content else None
        assert answer.status == 200, (kind, answer.status, answer.body)
        self.seen.append(answer)
        return answer

    @staticmethod
    def message(text: str, attachments: list[str] | None = None) -> dict[str, Any]:
        content = [{"type": "input_text", "text": text}]
        return {"content": content, "attachments": attachments or [], "inference_options": {}}

    def create(self, text: str) -> tuple[str, Answer]:
        answer = self.post("threads.create", {"input": self.message(text)})
        created = [e for e in answer.events if e["type"] == "thread.created"]
        return str(created[0]["thread"]["id"]), answer

    def say(self, thread: str, text: str, attachments: list[str] | None = None) -> Answer:
        return self.post("threads.add_user_message", {"thread_id": thread, "input": self.message(text, attachments)})

    def act(self, thread: str, item: dict[str, Any], action: dict[str, Any], **form: Any) -> Answer:
        """A widget's action as the component sends it: the action the widget carries, from that
        widget's item, with a form's values merged into the payload; synchronously (no stream) when
        the action says `streaming: false`."""
        sent = {"type": action["type"], "payload": {**action.get("payload", {}), **form}}
        kind = "threads.sync_custom_action" if action.get("streaming") is False else "threads.custom_action"
        return self.post(kind, {"thread_id": thread, "item_id": item["id"], "action": sent})


def button(widget: dict[str, Any], title: str, label: str) -> dict[str, Any]:
    """The action of the button labelled `label` on the list row of the task titled `title`."""
    (row,) = [row for row in find(widget["widget"], "ListViewItem") if title in json.dumps(row)]
    (action,) = [b["onClickAction"] for b in find(row, "Button") if b.get("label") == label]
    return dict(action)


def tasks(http: httpx.Client, token: str) -> dict[str, dict[str, Any]]:
    response = http.get("/api/tasks", params={"status": "all"}, headers={"Authorization": f"Bearer {token}"})
    response.raise_for_status()
    return {task["title"]: task for task in response.json()["items"]}


def test_a_stock_chatkit_client_through_a_whole_session(server: LiveServer) -> None:
    token = dev_token(unique_user("stock"))
    with httpx.Client(base_url=server.base_url, timeout=60) as http:
        stock = StockClient(http, token)

        # docs/getting-started.md's quick start: the task is added, due tomorrow in DEFAULT_TIME_ZONE, and the
        # reply says which zone that "tomorrow" was in.
        thread, added = stock.create("add a task to buy milk tomorrow")
        assert tasks(http, token)["Buy milk"]["due_date"] == TOMORROW
        assert TOMORROW in added.text() and ZONE in added.text(), added.text()

        # Follow-ups in plain words (no @-tags: this client has no entity search).
        assert "Call the plumber" in stock.say(thread, "add a task to call the plumber").text()
        due = stock.say(thread, "what is due tomorrow?")
        assert "Buy milk" in json.dumps(due.events) and "Call the plumber" not in json.dumps(due.events)

        # The task list widget, and its actions with the payloads its buttons carry.
        listed = stock.say(thread, "show my tasks").widget()
        assert listed["widget"]["type"] == "ListView" and len(find(listed["widget"], "ListViewItem")) == 2
        done = stock.act(thread, listed, button(listed, "Buy milk", "Done"))
        assert done.body is not None and not done.events  # synchronous: JSON, no stream
        assert tasks(http, token)["Buy milk"]["completed"] is True
        listed = done.widget()

        form = stock.act(thread, listed, button(listed, "Call the plumber", "Edit")).widget()
        (submit,) = find(form["widget"], "Form")
        stock.act(thread, form, submit["onSubmitAction"], title="Call the electrician", priority="high")
        assert tasks(http, token)["Call the electrician"]["priority"] == "high"

        # Delete asks on a card; only the card's own confirm deletes.
        listed = stock.say(thread, "show all my tasks").widget()
        card = stock.act(thread, listed, button(listed, "Call the electrician", "Delete")).widget()
        assert card["widget"]["type"] == "Card" and "Call the electrician" in tasks(http, token)
        confirmed = stock.act(thread, card, card["widget"]["confirm"]["action"])
        assert "Call the electrician" not in tasks(http, token)
        assert [e["name"] for e in confirmed.events if e["type"] == "client_effect"] == ["tasks.changed"]

        # An attachment, uploaded the way ChatKit's two-phase strategy does (no Authorization on the PUT).
        created = stock.post("attachments.create", {"name": "notes.txt", "size": len(NOTES), "mime_type": "text/plain"})
        upload = created.body["upload_descriptor"]
        with httpx.Client(timeout=60) as browser:
            put = browser.request(upload["method"], upload["url"], content=NOTES, headers=upload.get("headers") or {})
            assert put.status_code == 200, put.text
        sent = stock.say(thread, "add a task to review the notes", attachments=[created.body["id"]])
        assert "notes.txt" in sent.text() and "Review the notes" in tasks(http, token)

        # Retry the last answer, then rate it.
        asked = stock.say(thread, "how many tasks do I have?")
        (question,) = [e["item"] for e in asked.events if e["type"] == "thread.item.done"][:1]
        retried = stock.post("threads.retry_after_item", {"thread_id": thread, "item_id": question["id"]})
        (reply,) = retried.done("assistant_message")
        assert retried.text() and reply["id"] != asked.done("assistant_message")[0]["id"]
        feedback = stock.post("items.feedback", {"thread_id": thread, "item_ids": [reply["id"]], "kind": "positive"})
        assert feedback.body == {}

        # Nothing in the thread ever waited on a client tool.
        items = stock.post("items.list", {"thread_id": thread, "limit": 100, "order": "asc"}).body["data"]
        assert "client_tool_call" not in {item["type"] for item in items}
        assert not [e for answer in stock.seen for e in answer.events if "client_tool_call" in json.dumps(e)]

        # The history panel: list, rename, delete.
        listed_threads = stock.post("threads.list", {"limit": 20, "order": "desc"}).body["data"]
        assert [t["id"] for t in listed_threads] == [thread]
        renamed = stock.post("threads.update", {"thread_id": thread, "title": "Groceries"}).body
        assert renamed["id"] == thread and renamed["title"] == "Groceries"
        assert stock.post("threads.list", {"limit": 20}).body["data"][0]["title"] == "Groceries"
        stock.post("threads.delete", {"thread_id": thread})
        assert stock.post("threads.list", {"limit": 20}).body["data"] == []
