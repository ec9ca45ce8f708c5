"""The merge of a turn's two event sources, without a task and an `asyncio.wait` per event.

openai-chatkit's `stream_agent_response` reads the Agents SDK's events and the events the turn's
tools stream through `AgentContext.stream` (a queue) with its `_merge_generators`: for every event
it starts a task for the source's next `__anext__` and waits on both sources' tasks with
`asyncio.wait`. That is a task, a waiter, four done-callback changes and a callback handle per
streamed text delta, on the path that runs once per token.

`merged` keeps the library's contract exactly, and only its cost changes:
- one fetch in flight per source, started when the consumer comes back for more, as the library
  starts it (so the SDK's stream sees each event acknowledged at the same point: its run loop
  waits for that before the next model call);
- events in the order their fetches finished;
- when a source ends, the other's fetch in flight is cancelled and what it already fetched is
  still yielded (the library's `stream_agent_response` drains the tools' queue after);
- a source's exception is raised to the consumer;
- closed early (the client went away), a fetch in flight is left to finish and nothing more is
  fetched, as the library leaves its pending tasks.
Each source is read by one task that lives as long as the merge.

`install` puts it in place of the library's (`stream_agent_response` looks it up by name at
every call); tests/unit/test_chatkit_merge.py pins both that and the contract above.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, Final, TypeVar

import chatkit.agents

T1 = TypeVar("T1")
T2 = TypeVar("T2")

_ITEM: Final = 0
_END: Final = 1
_FAILED: Final = 2


async def merged(a: AsyncIterator[T1], b: AsyncIterator[T2]) -> AsyncIterator[T1 | T2]:
    """The items of `a` and `b` as they come, until either ends (see the module). (The library's
    signature, parameter names included.)"""
    loop = asyncio.get_running_loop()
    sources: tuple[AsyncIterator[Any], AsyncIterator[Any]] = (a, b)
    ready: deque[tuple[int, int, Any]] = deque()  # (source, kind, value), in the order fetched
    wake: asyncio.Future[None] | None = None  # set when `ready` gains an entry while it was empty
    # A source's next fetch may start once its grant is done (both may start at once).
    grants: list[asyncio.Future[None]] = [loop.create_future(), loop.create_future()]
    for grant in grants:
        grant.set_result(None)
    closing = asyncio.Event()  # set when the merge is ending (a source ended, or the consumer left)

    def deliver(entry: tuple[int, int, Any]) -> None:
        ready.append(entry)
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def fetch(index: int) -> None:
        source = sources[index]
        while True:
            await grants[index]
            if closing.is_set():
                return
            try:
                value = await source.__anext__()
            except StopAsyncIteration:
                deliver((index, _END, None))
                return
            except asyncio.CancelledError as exc:
                if not closing.is_set():  # not ours: the consumer sees it, as the library's `task.result()` raised it
                    deliver((index, _FAILED, exc))
                raise
            except Exception as exc:
                deliver((index, _FAILED, exc))
                return
            if closing.is_set():
                return
            grants[index] = loop.create_future()
            deliver((index, _ITEM, value))

    readers = [loop.create_task(fetch(0)), loop.create_task(fetch(1))]
    try:
        while True:
            if not ready:
                wake = loop.create_future()
                try:
                    await wake
                finally:
                    wake = None
                continue
            index, kind, value = ready.popleft()
            if kind == _ITEM:
                yield value
                grants[index].set_result(None)
            elif kind == _FAILED:
                raise value
            else:
                # One source ended: what the other already fetched is still yielded, its fetch in
                # flight cancelled.
                closing.set()
                other = readers[1 - index]
                while ready:
                    _, kind, value = ready.popleft()
                    if kind == _ITEM:
                        yield value
                    elif kind == _FAILED and not isinstance(value, asyncio.CancelledError):
                        raise value
                other.cancel()
                return
    finally:
        closing.set()
        for index, reader in enumerate(readers):
            if not grants[index].done():
                reader.cancel()  # waiting for a grant: holds nothing


def install() -> None:
    """`merged` in place of openai-chatkit's `_merge_generators` (see the module)."""
    chatkit.agents._merge_generators = merged


__all__ = ["install", "merged"]
