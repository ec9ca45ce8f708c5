"""Urdu over real HTTP (a granian process, the offline model): requests as Urdu speakers write them
become the tasks they ask for, read back through the REST API.

The full table of requests is tests/unit/test_urdu_grammar.py (the grammar alone, "today" fixed);
here a handful of its rows go through the whole server, dates relative to the server's today (UTC).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from app.agents.offline.intents import resolve_date
from tests.support.auth import server_token
from tests.support.chatkit_client import ChatKitClient
from tests.support.servers import LiveServer, ServerPool, unique_user

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
