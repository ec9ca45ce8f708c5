"""Shims over what openai-chatkit and the Agents SDK do that TaskPilot cannot keep as it is.

- Timestamps: the library stamps threads and items with naive `datetime.now()` and does arithmetic
  with it; TaskPilot keeps UTC. `LibraryClockStore` shows the library stored items in its own naive
  local time, `with_utc_timestamps` shows the client streamed ones in UTC: both through the one
  normalisation in `app.core.clock` (`to_library_time`, `to_utc`), which the Store applies too.
- A read the turn already made: `stream_agent_response` loads the thread's two newest items right
  after the assistant loaded the newest page for its history; `LibraryClockStore` answers it from
  that page (one query and one pool checkout fewer per turn).
- Message ids: Chat Completions providers stream every assistant message as `__fake_id__`;
  `MessageIds` gives each a store-generated id.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from chatkit.store import Store
from chatkit.types import (
    AssistantMessageItem,
    Page,
    ThreadItem,
    ThreadItemAddedEvent,
    ThreadItemDoneEvent,
    ThreadItemUpdatedEvent,
    ThreadStreamEvent,
)

from app.core.clock import to_library_time, to_utc

FAKE_ID = "__fake_id__"


def as_library_time(item: ThreadItem) -> ThreadItem:
    """The item with `created_at` as naive local time, like the library's `datetime.now()`."""
    if item.created_at.tzinfo is None:
        return item
    return item.model_copy(update={"created_at": to_library_time(item.created_at)})


class LibraryClockStore:
    """The store as openai-chatkit's agent helpers see it during one turn: items with naive local
    timestamps, and the newest items read once.

    `stream_agent_response` resumes a workflow from the last stored items and later subtracts its
    naive `datetime.now()` from that item's `created_at` (`end_workflow`); the store returns UTC-
    aware times, and naive minus aware is a TypeError. Naive local time is the same instant (the
    store reads naive values as local time), so saving such an item back changes nothing.

    The turn's first read of a thread's newest page (no cursor, newest first) is kept until the
    next read of that thread's newest items, which it answers when it holds them: the assistant's
    history read followed by `stream_agent_response`'s read of the two newest items, with nothing
    stored between them (the library stores a turn's items only as it streams them, after that
    read, and not through this store). Reads of older pages of the thread keep it; any other call
    through this store forgets it; once asked for, answered or not, no page is kept again.
    """

    def __init__(self, store: Store[Any]) -> None:
        self._store = store
        self._newest: tuple[str, Page[ThreadItem]] | None = None
        self._kept = False  # a newest page was kept and has been asked for: none is kept again

    def __getattr__(self, name: str) -> Any:
        self._newest = None  # a write (or any other call) may change what the page holds
        return getattr(self._store, name)

    async def load_thread_items(
        self, thread_id: str, after: str | None, limit: int, order: str, context: Any
    ) -> Page[ThreadItem]:
        first = after is None and order == "desc"
        newest = self._newest if self._newest is not None and self._newest[0] == thread_id else None
        self._newest = None
        if first and newest is not None:
            # Once, answered or not: the turn's own items are stored from here on.
            self._kept = True
            held = _head(newest[1], limit)
            if held is not None:
                return held
        page = await self._store.load_thread_items(thread_id, after, limit, order, context)
        page = page.model_copy(update={"data": [as_library_time(item) for item in page.data]})
        if first and not self._kept:
            self._newest = (thread_id, page)
        elif not first:
            self._newest = newest  # older pages of the same thread (the rest of the history) keep it
        return page

    async def load_item(self, thread_id: str, item_id: str, context: Any) -> ThreadItem:
        return as_library_time(await self._store.load_item(thread_id, item_id, context))


def _head(page: Page[ThreadItem], limit: int) -> Page[ThreadItem] | None:
    """The page the store returns for `limit` items from the start of `page` (a first page), or None
    when `page` does not hold them all."""
    limit = max(1, limit)  # the store reads a limit below 1 as 1
    if limit > len(page.data) and page.has_more:
        return None
    data = page.data[:limit]
    has_more = len(page.data) > limit or page.has_more
    return Page(data=data, has_more=has_more, after=data[-1].id if has_more and data else None)


def with_utc_timestamps(event: ThreadStreamEvent) -> ThreadStreamEvent:
    """The event with its item's or thread's naive `created_at` as UTC (a copy: the library keeps
    using the originals, and compares them with its own naive `datetime.now()`)."""
    if type(event) is ThreadItemUpdatedEvent:
        return event  # the text deltas, most of a stream: no timestamp (and pydantic's getattr misses are slow)
    for name in ("item", "thread"):
        holder = getattr(event, name, None)
        created_at = getattr(holder, "created_at", None)
        if holder is not None and isinstance(created_at, datetime) and created_at.tzinfo is None:
            fixed = holder.model_copy(update={"created_at": to_utc(created_at)})
            return event.model_copy(update={name: fixed})
    return event


class MessageIds:
    """Gives every assistant message a store-generated id.

    Chat Completions providers stream every message as `__fake_id__`; kept as is, two replies
    in one thread would overwrite each other. Events arrive in order (added, updates, done),
    so the model's id maps to one fresh id until that message is done.
    """

    def __init__(self, generate: Callable[[], str]) -> None:
        self._generate = generate
        self._current: dict[str, str] = {}

    def _map(self, model_id: str, *, done: bool = False) -> str:
        if model_id != FAKE_ID:
            return model_id
        mapped = self._current.get(model_id)
        if mapped is None:
            mapped = self._generate()
            self._current[model_id] = mapped
        if done:
            self._current.pop(model_id, None)
        return mapped

    def remap(self, event: ThreadStreamEvent) -> ThreadStreamEvent:
        if isinstance(event, ThreadItemAddedEvent | ThreadItemDoneEvent) and isinstance(
            event.item, AssistantMessageItem
        ):
            new_id = self._map(event.item.id, done=isinstance(event, ThreadItemDoneEvent))
            if new_id != event.item.id:
                return type(event)(item=event.item.model_copy(update={"id": new_id}))
        elif isinstance(event, ThreadItemUpdatedEvent) and event.item_id == FAKE_ID:
            return event.model_copy(update={"item_id": self._map(event.item_id)})
        return event
