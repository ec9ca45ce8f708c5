"""The assistant: history trimming, the Urdu handoff as stored, and titles."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    ClientToolCallItem,
    InferenceOptions,
    ThreadMetadata,
    UserMessageItem,
    UserMessageTextContent,
)
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from app.agents.assistant import Assistant, TurnContext, summarize_title
from app.agents.history import estimate_tokens
from app.agents.providers import OfflineModelProvider
from app.core.context import RequestContext
from app.store.chatkit_store import ChatKitStore
from app.store.models import Base
from tests.support.chatkit_client import ChatKitClient

ALICE = RequestContext(user_id="alice")


async def _store(tmp_path: Path) -> tuple[ChatKitStore[Any], Any]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/assistant.db")
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    session_maker = async_sessionmaker(engine, expire_on_commit=False)
    return ChatKitStore(session_maker), engine


def _at(n: int) -> dt.datetime:
    return dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC) + dt.timedelta(seconds=n)


async def _thread_with_history(store: ChatKitStore[Any], turns: int) -> ThreadMetadata:
    thread = ThreadMetadata(id="thr_history", created_at=_at(0))
    await store.save_thread(thread, ALICE)
    n = 0
    for turn in range(turns):
        n += 1
        await store.add_thread_item(
            thread.id,
            UserMessageItem(
                id=f"msg_u{turn:03d}",
                thread_id=thread.id,
                created_at=_at(n),
                content=[UserMessageTextContent(text=f"question {turn} " + "words " * 40)],
                inference_options=InferenceOptions(),
            ),
            ALICE,
        )
        n += 1
        await store.add_thread_item(
            thread.id,
            ClientToolCallItem(
                id=f"tc_{turn:03d}",
                thread_id=thread.id,
                created_at=_at(n),
                name="lookup",
                arguments={"turn": turn},
                call_id=f"call_{turn:03d}",
                status="completed",
                output={"result": "x" * 200},
            ),
            ALICE,
        )
        n += 1
        await store.add_thread_item(
            thread.id,
            AssistantMessageItem(
                id=f"msg_a{turn:03d}",
                thread_id=thread.id,
                created_at=_at(n),
                content=[AssistantMessageContent(text=f"answer {turn} " + "more " * 40)],
            ),
            ALICE,
        )
    return thread


@pytest.mark.parametrize("budget", [300, 1_000, 2_500])
async def test_history_is_trimmed_newest_first_and_keeps_tool_pairs(tmp_path: Path, budget: int) -> None:
    store, engine = await _store(tmp_path)
    try:
        thread = await _thread_with_history(store, turns=30)
        assistant = Assistant(provider=OfflineModelProvider(), model_name="offline", context_tokens=budget)
        turn = TurnContext(thread=thread, store=store, request_context=ALICE, user_id="alice", session_maker=None)
        history = await assistant.history(thread, turn)
        assert estimate_tokens(history) <= budget
        # Newest first: the last answer is always there, and what is kept is a contiguous tail.
        texts = [str(item) for item in history]
        assert "answer 29" in texts[-1]
        kept_turns = sorted({int(t.split("answer ")[1].split(" ")[0]) for t in texts if "answer " in t})
        assert kept_turns == list(range(kept_turns[0], 30))
        # Never a call without its output, nor an output without its call.
        calls = [item["call_id"] for item in history if isinstance(item, dict) and item.get("type") == "function_call"]
        outputs = [
            item["call_id"] for item in history if isinstance(item, dict) and item.get("type") == "function_call_output"
        ]
        assert calls == outputs
        bigger = Assistant(provider=OfflineModelProvider(), model_name="offline", context_tokens=budget * 4)
        assert len(await bigger.history(thread, turn)) > len(history)
    finally:
        await engine.dispose()


async def test_a_turn_answers_its_own_message_not_one_stored_after_it(tmp_path: Path) -> None:
    store, engine = await _store(tmp_path)
    try:
        thread = await _thread_with_history(store, turns=5)
        assistant = Assistant(provider=OfflineModelProvider(), model_name="offline", context_tokens=100_000)
        turn = TurnContext(thread=thread, store=store, request_context=ALICE, user_id="alice", session_maker=None)
        texts = [str(item) for item in await assistant.history(thread, turn, up_to="msg_u002")]
        assert "question 2" in texts[-1]  # the model's input ends at the turn's own message
        assert not any("question 3" in t or "answer 2" in t for t in texts)
        assert "answer 1" in " ".join(texts)
        # A message no longer in the thread cuts nothing (the newest items, as without one).
        everything = await assistant.history(thread, turn)
        assert await assistant.history(thread, turn, up_to="msg_gone") == everything
        assert "answer 4" in str(everything[-1])
    finally:
        await engine.dispose()


async def test_urdu_message_reaches_the_specialist(tmp_path: Path) -> None:
    from litestar.testing import AsyncTestClient

    from app.asgi import create_app
    from app.http.auth import mint_dev_token
    from tests.conftest import create_schema, make_settings

    settings = make_settings(tmp_path)
    await create_schema(settings.database_url)
    async with AsyncTestClient(create_app(settings)) as http:
        alice = ChatKitClient(http, mint_dev_token(settings, "alice"))
        result = await alice.create_thread("دودھ خریدنے کا کام شامل کریں")
        assert result.status == 200
        stored = (await alice.items(result.thread_id, order="asc", limit=50)).body["data"]
        workflow = next(item for item in stored if item["type"] == "workflow")
        titles = [task["title"] for task in workflow["workflow"]["tasks"]]
        # an Urdu conversation: its progress lines are Urdu too (app.agents.messages)
        assert titles[0] == "اردو ماہر کے حوالے کیا گیا"
        assert titles[1] == "شامل کیا گیا: #1 دودھ خریدنا"
        reply = next(item for item in stored if item["type"] == "assistant_message")
        assert "کام شامل کر دیا گیا" in reply["content"][0]["text"]


def test_deterministic_titles() -> None:
    assert summarize_title("add a task to buy milk tomorrow. And more.") == "Add a task to buy milk tomorrow"
    long = summarize_title("please " + "remember " * 20)
    assert len(long) <= 61
    assert long.endswith("…")
    assert summarize_title("   ") == "New chat"
    assert summarize_title("میرے کام دکھائیں۔ شکریہ") == "میرے کام دکھائیں"
