"""Urdu over real HTTP (a granian process, the offline model): requests as Urdu speakers write them
become the tasks they ask for, read back through the REST API.

The full table of requests is tests/unit/test_urdu_grammar.py (the grammar alone, "today" fixed);
here a handful of its rows go through the whole server, dates relative to the server's today (UTC).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from app.agents.assistant import URDU_INSTRUCTIONS
from app.agents.messages import urdu_date
from app.agents.offline.intents import resolve_date
from app.agents.offline.planner import Reply, ToolCall
from tests.support.auth import server_token
from tests.support.chatkit_client import ChatKitClient
from tests.support.fake_model_server import FakeModelServer
from tests.support.servers import LiveServer, ServerPool, unique_user
from tests.support.widgets import find, replaced, widgets

Due = Callable[[dt.date], dt.date | None]


def days(n: int) -> Due:
    return lambda today: today + dt.timedelta(days=n)


def said(phrase: str) -> Due:
    return lambda today: resolve_date(phrase, today)


def no_date(today: dt.date) -> None:
    return None


ROWS: list[tuple[str, str, Due, str]] = [
    ("دودھ خریدنے کا کام شامل کریں", "دودھ خریدنا", no_date, "medium"),
    ("ڈاکٹر کو فون کرنے کا کام شامل کریں", "ڈاکٹر کو فون کرنا", no_date, "medium"),
    ("مجھے کل امی کو فون کرنا ہے", "امی کو فون کرنا", days(1), "medium"),
    ("پرسوں بجلی کا بل جمع کرانا ہے", "بجلی کا بل جمع کرانا", days(2), "medium"),
    ("اگلے جمعہ تک رپورٹ بھیجنی ہے، ضروری ہے", "رپورٹ بھیجنا", said("next friday"), "high"),
    ("3 دن بعد کتاب واپس کرنی ہے", "کتاب واپس کرنا", days(3), "medium"),
    ("کم ترجیح: الماری ٹھیک کرنے کا کام شامل کریں", "الماری ٹھیک کرنا", no_date, "low"),
    ("kal doodh lena hai", "Doodh lena", days(1), "medium"),
    ("agle jumma tak report bhejni hai, zaroori hai", "Report bhejna", said("next friday"), "high"),
]


@pytest.fixture
def server(live_servers: ServerPool) -> LiveServer:
    return live_servers.get()


@pytest.fixture
async def http(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        yield client


@pytest.mark.parametrize(("request_text", "title", "due", "priority"), ROWS, ids=[row[0] for row in ROWS])
async def test_an_urdu_request_over_http_adds_the_task_it_asks_for(
    server: LiveServer, http: httpx.AsyncClient, request_text: str, title: str, due: Due, priority: str
) -> None:
    token = server_token(server.env, unique_user("amna"))
    chat = ChatKitClient(http, token, time_zone="UTC")
    today = dt.datetime.now(dt.UTC).date()
    result = await chat.create_thread(request_text)
    assert result.status == 200 and not result.of_type("error"), result.body
    tasks = (await http.get("/api/tasks", headers={"Authorization": f"Bearer {token}"})).json()["items"]
    expected = due(today)
    assert [(t["title"], t["due_date"], t["priority"]) for t in tasks] == [
        (title, expected.isoformat() if expected else None, priority)
    ]


# ---- an Urdu thread's fixed strings: widget labels, the confirm card, progress, the reply's date ----


def _tree(widget: Any) -> dict[str, Any]:
    return dict(widget.model_dump(mode="json", by_alias=True, exclude_none=True))


async def test_an_urdu_thread_draws_its_widgets_and_progress_in_urdu(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    token = server_token(server.env, unique_user("bilal"))
    chat = ChatKitClient(http, token, time_zone="UTC")
    added = await chat.create_thread("کل دودھ خریدنا ہے")
    thread = added.thread_id
    tomorrow = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
    # the reply's date is written for an Urdu reader, never an ISO date inside Urdu text
    assert urdu_date(tomorrow) in added.assistant_text() and tomorrow.isoformat() not in added.assistant_text()
    steps = [
        task.title
        for e in added.of_type("thread.item.done")
        if e.item.type == "workflow"
        for task in e.item.workflow.tasks
    ]
    assert steps == ["اردو ماہر کے حوالے کیا گیا", "شامل کیا گیا: #1 دودھ خریدنا"]

    listed = await chat.send(thread, "میرے کام دکھائیں")
    (widget,) = widgets(listed)
    root = _tree(widget.widget)
    assert root["status"]["text"] == "آپ کے کام · 1"
    assert {b["label"] for b in find(root, "Button")} == {"مکمل", "ترمیم", "حذف کریں"}
    assert find(root, "Caption")[0]["value"] == f"آخری تاریخ {urdu_date(tomorrow)}"
    assert find(root, "Badge")[0]["label"] == "درمیانی"

    # An action carries no message: the thread remembers its language (its metadata) for the card.
    task_id = root["children"][0]["key"].removeprefix("task:")
    asked = await chat.request(
        "threads.custom_action",
        {"thread_id": thread, "item_id": widget.id, "action": {"type": "task.delete", "payload": {"id": task_id}}},
    )
    card = replaced(asked)
    assert card["confirm"]["label"] == "حذف کریں" and card["cancel"]["label"] == "منسوخ"
    assert find(card, "Title")[0]["value"] == "یہ کام حذف کریں؟"


async def test_the_thread_language_follows_the_users_messages(server: LiveServer, http: httpx.AsyncClient) -> None:
    token = server_token(server.env, unique_user("sara"))
    chat = ChatKitClient(http, token, time_zone="UTC")
    await http.post("/api/tasks", json={"title": "Buy milk"}, headers={"Authorization": f"Bearer {token}"})
    english = await chat.create_thread("show my tasks")
    assert {b["label"] for b in find(_tree(widgets(english)[0].widget), "Button")} == {"Done", "Edit", "Delete"}
    urdu = await chat.send(english.thread_id, "میرے کام دکھائیں")
    assert {b["label"] for b in find(_tree(widgets(urdu)[0].widget), "Button")} == {"مکمل", "ترمیم", "حذف کریں"}
    # "ok" says nothing about the language: the thread stays Urdu, and so does the edit form an
    # action draws after it (an action carries no message: the thread's metadata remembers)
    await chat.send(english.thread_id, "ok")
    listed = widgets(urdu)[0]
    task_id = _tree(listed.widget)["children"][0]["key"].removeprefix("task:")
    edit = await chat.request(
        "threads.custom_action",
        {
            "thread_id": english.thread_id,
            "item_id": listed.id,
            "action": {"type": "task.edit", "payload": {"id": task_id}},
        },
    )
    form = replaced(edit)
    assert [label["value"] for label in find(form, "Label")] == ["عنوان", "آخری تاریخ", "ترجیح"]
    assert {b["label"] for b in find(form, "Button")} == {"منسوخ", "محفوظ کریں"}


# ---- the real-model path, against a scripted model: the instructions and the handoff ----------------


async def test_a_real_model_hands_urdu_to_the_specialist_whose_instructions_ask_for_urdu_titles(
    live_server_factory: Callable[..., LiveServer], fake_model: Callable[..., FakeModelServer]
) -> None:
    tomorrow = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)).isoformat()
    reply = "کام شامل کر دیا گیا: #1 دودھ خریدنا"
    fake = fake_model(
        [
            ToolCall("transfer_to_urdu_specialist", {}),
            ToolCall("add_task", {"title": "دودھ خریدنا", "due_date": tomorrow, "priority": "high"}),
            Reply(reply),
        ]
    )
    server = live_server_factory(
        {
            "MODEL_PROVIDER": "openai-compatible",
            "OPENAI_BASE_URL": fake.base_url,
            "MODEL_API_KEY": fake.api_key,
            "MODEL": "mimo-v2-flash",
        }
    )
    token = server_token(server.env, unique_user("amna"))
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        result = await ChatKitClient(http, token, time_zone="UTC").create_thread("کل ضروری دودھ خریدنا ہے")
        assert result.status == 200 and not result.of_type("error"), result.of_type("error")
        tasks = (await http.get("/api/tasks", headers={"Authorization": f"Bearer {token}"})).json()["items"]
    assert [(t["title"], t["due_date"], t["priority"]) for t in tasks] == [("دودھ خریدنا", tomorrow, "high")]
    assert reply in result.assistant_text()
    steps = [
        t.title for e in result.of_type("thread.item.done") if e.item.type == "workflow" for t in e.item.workflow.tasks
    ]
    assert steps == ["اردو ماہر کے حوالے کیا گیا", "شامل کیا گیا: #1 دودھ خریدنا"]

    def system(request: dict[str, Any]) -> str:
        return " ".join(str(m.get("content")) for m in request["messages"] if m.get("role") == "system")

    conversation = [r for r in fake.requests if "thread title" not in json.dumps(r)]
    # The orchestrator is offered the handoff and told when to use it (Roman Urdu too) ...
    first = conversation[0]
    assert "transfer_to_urdu_specialist" in {t["function"]["name"] for t in first["tools"]}
    assert "hand off to the Urdu specialist" in system(first) and "kal doodh lena hai" in system(first)
    # ... and after the handoff the specialist's instructions ask for Urdu titles, replies and dates.
    specialist = system(conversation[1])
    assert URDU_INSTRUCTIONS.split("\n", 1)[0] in specialist
    for asked in ("Always answer in Urdu", "دودھ خریدنا", "ڈاکٹر کو فون کرنا", "دودھ خریدنے", "7 دسمبر 2026"):
        assert asked in specialist, asked
    assert "add_task" in {t["function"]["name"] for t in conversation[1]["tools"]}
