"""`app.agents.chatkit.merge.merged`: openai-chatkit's merge of a turn's two event sources, without
a task per event. Each test runs the same scripted sources through the library's own
`_merge_generators` (loaded fresh, as it ships) and through ours, and expects the same behaviour."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import AsyncIterator, Callable
from typing import Any

import chatkit.agents
import pytest

from app.agents.chatkit import merge


def _library_merge() -> Callable[..., AsyncIterator[Any]]:
    spec = importlib.util.find_spec("chatkit.agents")
    assert spec is not None and spec.loader is not None
    fresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fresh)
    return fresh._merge_generators  # type: ignore[no-any-return]


MERGES = {"library": _library_merge(), "ours": merge.merged}


@pytest.fixture(autouse=True)
async def no_fetch_left_behind() -> AsyncIterator[None]:
    """Cancel the fetches a test leaves pending (the library's merge leaves them by design): left
    to the garbage collector, they are destroyed during a later test of this process, logging
    "Task was destroyed but it is pending" in the middle of whatever that test runs."""
    before = asyncio.all_tasks()
    yield
    leftover = {task for task in asyncio.all_tasks() - before - {asyncio.current_task()} if not task.done()}
    for task in leftover:
        task.cancel()
    if leftover:
        # Bounded: a fetch that ignores its cancellation must not hang the run.
        await asyncio.wait(leftover, timeout=1)


class Source:
    """An async iterator over a queue, like ChatKit's queue iterator and the SDK's event stream:
    it records when each fetch starts and ends, and ends at a `None`."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.log = log
        self.fetches = 0

    def __aiter__(self) -> Source:
        return self

    async def __anext__(self) -> Any:
        self.fetches += 1
        self.log.append(f"{self.name}:fetch")
        try:
            item = await self.queue.get()
        except asyncio.CancelledError:
            self.log.append(f"{self.name}:cancelled")
            raise
        if item is None:
            raise StopAsyncIteration
        if isinstance(item, Exception):
            raise item
        return item


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def _scripted(merged: Callable[..., AsyncIterator[Any]]) -> tuple[list[Any], list[str], Source, Source]:
    """Items put into both sources while the merge runs, one event-loop step apart; the first ends."""
    log: list[str] = []
    sdk, tools = Source("sdk", log), Source("tools", log)
    received: list[Any] = []

    async def consume() -> None:
        async for item in merged(sdk, tools):
            log.append(f"got {item}")
            received.append(item)
            await asyncio.sleep(0)  # the consumer's own work between items

    consumer = asyncio.create_task(consume())
    for item, source in [("a1", sdk), ("t1", tools), ("a2", sdk), ("a3", sdk), ("t2", tools)]:
        await _settle()
        source.queue.put_nowait(item)
    await _settle()
    sdk.queue.put_nowait(None)
    await asyncio.wait_for(consumer, 5)
    return received, log, sdk, tools


@pytest.mark.parametrize("name", MERGES)
async def test_items_come_in_arrival_order_and_the_end_of_one_source_cancels_the_other(name: str) -> None:
    received, log, _, tools = await _scripted(MERGES[name])
    assert received == ["a1", "t1", "a2", "a3", "t2"]
    assert log[-1] == "tools:cancelled"
    assert tools.queue.empty()


async def test_each_fetch_starts_when_the_library_starts_it() -> None:
    """One fetch in flight per source, started after the consumer came back for more: the SDK's
    stream acknowledges an event only then (its run loop waits for that between model calls)."""
    _, library_log, _, _ = await _scripted(MERGES["library"])
    _, our_log, _, _ = await _scripted(MERGES["ours"])
    assert our_log == library_log


@pytest.mark.parametrize("name", MERGES)
async def test_items_the_other_source_already_fetched_still_come_and_the_rest_stay_queued(name: str) -> None:
    log: list[str] = []
    sdk, tools = Source("sdk", log), Source("tools", log)
    merged = MERGES[name](sdk, tools)
    # Both ready in the same step, the end of one source and an item of the other.
    tools.queue.put_nowait("t1")
    tools.queue.put_nowait("t2")
    sdk.queue.put_nowait(None)
    received = [item async for item in merged]
    assert received == ["t1"]
    assert tools.queue.qsize() == 1  # left for `stream_agent_response`'s drain after the merge


@pytest.mark.parametrize("name", MERGES)
async def test_a_source_failure_reaches_the_consumer_after_the_items_before_it(name: str) -> None:
    log: list[str] = []
    sdk, tools = Source("sdk", log), Source("tools", log)
    received: list[Any] = []
    sdk.queue.put_nowait("a1")

    async def consume() -> None:
        async for item in MERGES[name](sdk, tools):
            received.append(item)
            if item == "a1":
                sdk.queue.put_nowait(ValueError("model failed"))

    with pytest.raises(ValueError, match="model failed"):
        await consume()
    assert received == ["a1"]


def _readers(before: set[asyncio.Task[Any]]) -> list[asyncio.Task[Any]]:
    return [task for task in asyncio.all_tasks() - before if "merged.<locals>.fetch" in repr(task.get_coro())]


async def test_closed_early_a_fetch_in_flight_finishes_and_nothing_more_is_fetched() -> None:
    """The client went away: as the library's merge leaves its pending fetches, ours lets the one
    in flight finish (the tools' queue, or the SDK's stream: not cancelled under the run) and
    starts no other."""
    log: list[str] = []
    sdk, tools = Source("sdk", log), Source("tools", log)
    sdk.queue.put_nowait("a1")
    before = asyncio.all_tasks()
    merged = merge.merged(sdk, tools)
    assert await anext(merged) == "a1"
    await _settle()
    # The SDK's next fetch waits for the consumer to come back; the tools' is in flight.
    assert (sdk.fetches, tools.fetches) == (1, 1)
    readers = _readers(before)
    assert len(readers) == 2
    await merged.aclose()  # type: ignore[attr-defined]
    sdk.queue.put_nowait("a2")
    tools.queue.put_nowait("t1")
    tools.queue.put_nowait("t2")
    await _settle()
    assert (sdk.fetches, tools.fetches) == (1, 1)
    assert sdk.queue.qsize() == 1 and tools.queue.qsize() == 1  # t1 taken by the fetch in flight
    assert "tools:cancelled" not in log
    assert all(task.done() for task in readers)


async def test_a_cancelled_consumer_leaves_no_task_waiting_for_a_grant() -> None:
    log: list[str] = []
    sdk, tools = Source("sdk", log), Source("tools", log)
    sdk.queue.put_nowait("a1")
    before = asyncio.all_tasks()

    async def consume() -> None:
        async for _ in merge.merged(sdk, tools):
            await asyncio.sleep(3600)

    consumer = asyncio.create_task(consume())
    await _settle()
    readers = _readers(before)
    assert len(readers) == 2
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    await _settle()
    # The tools' fetch is still in flight (left as the library leaves it); the SDK's reader, waiting
    # for a grant that will never come, is gone.
    assert sorted(task.done() for task in readers) == [False, True]
    assert "tools:cancelled" not in log
    tools.queue.put_nowait("t1")
    await _settle()
    assert all(task.done() for task in readers)


def test_the_library_uses_ours() -> None:
    """`stream_agent_response` looks its merge up by name at every call: if openai-chatkit renames
    or inlines it, this fails instead of the saving silently going away."""
    import app.agents.chatkit.turn  # noqa: F401  (installs it)

    assert chatkit.agents._merge_generators is merge.merged
    assert "_merge_generators" in chatkit.agents.stream_agent_response.__code__.co_names
