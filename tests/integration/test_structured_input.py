"""`threads.add_structured_input` in-process, as a stock ChatKit client sends it (Authorization and
the default body): an answer the conversation went past, an oversized answer, another user's
question. The offline model asks a new task's priority when the request asks which to use. Runs on
SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from app.asgi import create_app
from app.http.auth import mint_dev_token
from app.settings import Settings
from tests.conftest import make_settings
from tests.support.chatkit_client import ChatKitClient, StreamResult

ASK = "add a task to buy milk tomorrow, which priority should I use?"


@dataclass
class Chat:
    http: httpx.AsyncClient
    settings: Settings
    alice: ChatKitClient
    bob: ChatKitClient

    async def titles(self, user: str) -> list[str]:
        headers = {"Authorization": f"Bearer {mint_dev_token(self.settings, user)}"}
        response = await self.http.get("/api/tasks", params={"status": "all"}, headers=headers)
        return sorted(task["title"] for task in response.json()["items"])


@pytest.fixture
async def chat(tmp_path: Path, database_url: str, engine: AsyncEngine) -> AsyncIterator[Chat]:
    settings = make_settings(tmp_path, DATABASE_URL=database_url, MAX_MESSAGE_CHARS=2000)
    async with AsyncTestClient(create_app(settings)) as http:
        yield Chat(
            http=http,
            settings=settings,
            alice=ChatKitClient(http, mint_dev_token(settings, "alice")),
            bob=ChatKitClient(http, mint_dev_token(settings, "bob")),
        )


def _question(result: StreamResult) -> Any:
    assert result.status == 200 and not result.of_type("error"), result.of_type("error")
    (item,) = [e.item for e in result.events if e.type == "thread.item.done" and e.item.type == "structured_input"]
    return item


def _answer(thread: str, item: str, *values: str) -> dict[str, Any]:
    return {
        "thread_id": thread,
        "item_id": item,
        "input": {"status": "answered", "answers": {"answer": {"values": list(values)}}},
    }


async def test_an_answer_to_a_question_the_conversation_went_past_is_a_409_and_repeats_nothing(chat: Chat) -> None:
    asked = await chat.alice.create_thread(ASK)
    question = _question(asked)
    # The user ignores the question and goes on (a front end that shows no structured input does).
    went_on = await chat.alice.send(asked.thread_id, "add walk the dog")
    assert went_on.assistant_text().startswith("Added #1 “Walk the dog”")

    late = await chat.alice.request("threads.add_structured_input", _answer(asked.thread_id, question.id, "high"))
    assert late.status == 409, late.body
    assert "later message" in late.body["detail"]
    # Resuming would have answered "add walk the dog" a second time.
    assert await chat.titles("alice") == ["Walk the dog"]
    stored = (await chat.alice.items(asked.thread_id, order="asc", limit=20)).body["data"]
    assert [i.get("status") for i in stored if i["type"] == "structured_input"] == ["pending"]


async def test_an_answer_longer_than_a_message_may_be_is_refused_naming_the_field(chat: Chat) -> None:
    asked = await chat.alice.create_thread(ASK)
    question = _question(asked)
    huge = await chat.alice.request(
        "threads.add_structured_input", _answer(asked.thread_id, question.id, "high " + "x" * 2000)
    )
    assert huge.status == 400, huge.body
    assert "params.input.answers" in huge.body["detail"]
    assert await chat.titles("alice") == []
    # Nothing was recorded: the question still takes an answer of a message's size.
    answered = await chat.alice.request("threads.add_structured_input", _answer(asked.thread_id, question.id, "high"))
    assert answered.status == 200 and "high priority" in answered.assistant_text()


async def test_another_users_question_is_a_404_and_answers_nothing(chat: Chat) -> None:
    asked = await chat.alice.create_thread(ASK)
    question = _question(asked)
    # Bob names Alice's thread, or Alice's question from a thread of his own.
    bobs = (await chat.bob.create_thread("hello")).thread_id
    for thread in (asked.thread_id, bobs):
        stolen = await chat.bob.request("threads.add_structured_input", _answer(thread, question.id, "low"))
        assert stolen.status == 404, stolen.body
    assert await chat.titles("alice") == [] and await chat.titles("bob") == []
    stored = (await chat.alice.items(asked.thread_id, order="asc", limit=20)).body["data"]
    assert [i.get("status") for i in stored if i["type"] == "structured_input"] == ["pending"]


async def test_answers_to_questions_the_item_does_not_ask_are_refused_naming_the_field(
    chat: Chat, caplog: pytest.LogCaptureFixture
) -> None:
    asked = await chat.alice.create_thread(ASK)
    question = _question(asked)
    # A crafted body of many unknown ids: the library logged them all in one warning line.
    answers = {f"q{i}": {"values": []} for i in range(2000)} | {"answer": {"values": ["high"]}}
    body = {"thread_id": asked.thread_id, "item_id": question.id, "input": {"status": "answered", "answers": answers}}
    refused = await chat.alice.request("threads.add_structured_input", body)
    assert refused.status == 400, refused.body
    assert refused.body["errors"][0]["field"] == "params.input.answers"
    assert "q1999" not in caplog.text
    assert await chat.titles("alice") == []
