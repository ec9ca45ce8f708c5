"""The thread title's model call runs beside the answer (`TurnRunner.respond`): a turn that ends
early, however it ends, must not leave it running (a model call nobody reads, billed after the
turn's tokens were counted)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from chatkit.types import ClientEffectEvent, InferenceOptions, ThreadMetadata, UserMessageItem, UserMessageTextContent

from app.agents.chatkit import notices
from app.agents.chatkit import turn as turn_module
from app.agents.chatkit.composer import NO_CHOICE
from app.agents.chatkit.turn import TurnRunner
from app.services.quotas import UserLimits


class _SilentTitleAssistant:
    """An assistant whose title call never answers, recording whether it was cancelled."""

    model_name = "m"
    title_with_model = True

    def __init__(self) -> None:
        self.title_started = asyncio.Event()
        self.title_cancelled = False
        self.title_notices: object = "unset"

    async def title(self, *_: Any, **__: Any) -> str:
        # Whom the model transport would tell of this call's retries.
        self.title_notices = notices.current.get()
        self.title_started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.title_cancelled = True
            raise
        return "never"

    async def run(self, *_: Any, **__: Any) -> Any:
        return SimpleNamespace(context_wrapper=SimpleNamespace(usage=None))


async def _answer_that_changed_a_task(turn: Any, _result: Any) -> AsyncIterator[Any]:
    turn.changed_task_ids.add("task_1")  # the turn ends with a `tasks.changed` client effect
    return
    yield


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> tuple[TurnRunner, _SilentTitleAssistant]:
    monkeypatch.setattr(turn_module, "stream_agent_response", _answer_that_changed_a_task)
    assistant = _SilentTitleAssistant()
    runner = TurnRunner(
        store=SimpleNamespace(),  # type: ignore[arg-type]
        assistant=assistant,  # type: ignore[arg-type]
        session_maker=None,
        limits=UserLimits(),
        composer=SimpleNamespace(choose=lambda _options: NO_CHOICE),  # type: ignore[arg-type]
        now=lambda: dt.datetime(2026, 12, 7, tzinfo=dt.UTC),
        generate_message_id=lambda _thread, _context: "msg_1",
    )
    return runner, assistant


AT = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)


def _first_turn(turn_runner: TurnRunner, thread: ThreadMetadata | None = None) -> AsyncIterator[Any]:
    at = AT
    thread = thread or ThreadMetadata(id="thr_1", created_at=at)
    message = UserMessageItem(
        id="msg_u",
        thread_id=thread.id,
        created_at=at,
        content=[UserMessageTextContent(text="add a task to buy milk")],
        inference_options=InferenceOptions(),
    )
    context = SimpleNamespace(user_id="alice", time_zone="UTC", client_tools=())
    return turn_runner.respond(thread, message, context)


async def test_a_client_gone_at_the_tasks_changed_effect_cancels_the_title(
    runner: tuple[TurnRunner, _SilentTitleAssistant],
) -> None:
    turn_runner, assistant = runner
    events = _first_turn(turn_runner)
    first = await events.__anext__()
    assert isinstance(first, ClientEffectEvent) and first.name == "tasks.changed"
    await asyncio.wait_for(assistant.title_started.wait(), 5)  # the title's call is in flight
    await events.aclose()  # the client went away while the effect was being sent
    for _ in range(3):
        await asyncio.sleep(0)
    assert assistant.title_cancelled


async def test_the_titles_retries_are_not_announced_in_the_answers_stream(
    runner: tuple[TurnRunner, _SilentTitleAssistant],
) -> None:
    """The transport tells `notices.current` of each retry: a retried title call would show a
    "retrying" notice about a request the user never made, and count as the answer's retry."""
    turn_runner, assistant = runner
    events = _first_turn(turn_runner)
    await events.__anext__()
    await asyncio.wait_for(assistant.title_started.wait(), 5)
    await events.aclose()
    assert assistant.title_notices is None


async def test_a_turn_that_ends_well_takes_its_title_from_the_call(
    runner: tuple[TurnRunner, _SilentTitleAssistant], monkeypatch: pytest.MonkeyPatch
) -> None:
    turn_runner, assistant = runner

    async def title(*_: Any, **__: Any) -> str:
        await asyncio.sleep(0)
        return "Buy milk"

    monkeypatch.setattr(assistant, "title", title)
    thread = ThreadMetadata(id="thr_1", created_at=AT)
    events = _first_turn(turn_runner, thread)
    assert [type(event).__name__ async for event in events] == ["ClientEffectEvent"]
    assert thread.title == "Buy milk"
