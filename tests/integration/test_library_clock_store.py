"""`LibraryClockStore` (app.agents.chatkit.library), the store a turn's agent helpers read through,
over the real Store on both databases: the newest page a turn read for its history answers the
library's next read of the newest items once, exactly as the Store would have answered it."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from chatkit.types import AssistantMessageContent, AssistantMessageItem, Page, ThreadItem, ThreadMetadata

from app.agents.chatkit.library import LibraryClockStore, as_library_time
from app.core.context import RequestContext
from app.store.chatkit_store import ChatKitStore

ALICE = RequestContext(user_id="alice")


class Counting:
    """The Store, counting its `load_thread_items` calls."""

    def __init__(self, store: ChatKitStore[RequestContext]) -> None:
        self.store = store
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def load_thread_items(self, *args: Any) -> Page[ThreadItem]:
        self.reads += 1
        return await self.store.load_thread_items(*args)


def _reply(n: int, thread_id: str) -> AssistantMessageItem:
    return AssistantMessageItem(
        id=f"msg_{thread_id}_{n:02}",
        thread_id=thread_id,
        created_at=dt.datetime(2026, 12, 7, 12, tzinfo=dt.UTC) + dt.timedelta(seconds=n // 2),  # ties
        content=[AssistantMessageContent(text=f"reply {n}")],
    )


async def _thread(store: ChatKitStore[RequestContext], thread_id: str, items: int) -> None:
    await store.save_thread(ThreadMetadata(id=thread_id, created_at=dt.datetime.now(dt.UTC)), ALICE)
    for n in range(items):
        await store.add_thread_item(thread_id, _reply(n, thread_id), ALICE)


def _library_page(page: Page[ThreadItem]) -> Page[ThreadItem]:
    return page.model_copy(update={"data": [as_library_time(item) for item in page.data]})


@pytest.mark.parametrize(
    ("items", "first", "then", "answered"),
    [
        (5, 50, 2, True),  # the turn's case: the whole thread in the history's page
        (5, 5, 5, True),  # exactly what it holds, nothing after it
        (5, 3, 3, True),  # the page's size, more after it
        (5, 3, 4, False),  # more than it holds, more after it: asked of the store
        (2, 50, 5, True),  # more than it holds, nothing after it: all of it
        (0, 50, 2, True),  # an empty thread
        (5, 3, 0, True),  # a limit below 1 is read as 1
    ],
)
async def test_the_newest_page_answers_the_next_read_of_the_newest_items_as_the_store_would(
    session_maker: Any, items: int, first: int, then: int, answered: bool
) -> None:
    store: ChatKitStore[RequestContext] = ChatKitStore(session_maker)
    await _thread(store, "thr_a", items)
    counting = Counting(store)
    library = LibraryClockStore(counting)  # type: ignore[arg-type]
    await library.load_thread_items("thr_a", None, first, "desc", ALICE)
    got = await library.load_thread_items("thr_a", None, then, "desc", ALICE)
    assert counting.reads == (1 if answered else 2)
    assert got == _library_page(await store.load_thread_items("thr_a", None, then, "desc", ALICE))
    assert all(item.created_at.tzinfo is None for item in got.data)  # the library's naive local time
    # Once: the turn's items are stored after that read, so every later one asks the store.
    await library.load_thread_items("thr_a", None, then, "desc", ALICE)
    await library.load_thread_items("thr_a", None, then, "desc", ALICE)
    assert counting.reads == (3 if answered else 4)


async def test_other_reads_of_the_thread_keep_the_newest_page_until_it_is_asked_for(session_maker: Any) -> None:
    store: ChatKitStore[RequestContext] = ChatKitStore(session_maker)
    await _thread(store, "thr_a", 6)
    await _thread(store, "thr_b", 2)
    counting = Counting(store)
    library = LibraryClockStore(counting)  # type: ignore[arg-type]

    # A history of two pages (and any other read of the thread), then the library's read:
    # answered from the first page.
    page = await library.load_thread_items("thr_a", None, 4, "desc", ALICE)
    await library.load_thread_items("thr_a", page.after, 4, "desc", ALICE)
    await library.load_thread_items("thr_a", None, 2, "asc", ALICE)
    await library.load_thread_items("thr_a", None, 2, "desc", ALICE)
    assert counting.reads == 3

    # Once asked for, no page is kept again: the turn's own items are stored from then on.
    await library.load_thread_items("thr_a", None, 4, "desc", ALICE)
    await library.load_thread_items("thr_a", None, 2, "desc", ALICE)
    assert counting.reads == 5


@pytest.mark.parametrize("between", ["another thread", "a write"])
async def test_another_read_or_any_other_call_forgets_the_newest_page(session_maker: Any, between: str) -> None:
    store: ChatKitStore[RequestContext] = ChatKitStore(session_maker)
    await _thread(store, "thr_a", 6)
    await _thread(store, "thr_b", 2)
    counting = Counting(store)
    library = LibraryClockStore(counting)  # type: ignore[arg-type]
    await library.load_thread_items("thr_a", None, 4, "desc", ALICE)
    if between == "another thread":
        await library.load_thread_items("thr_b", None, 2, "desc", ALICE)
    else:  # a write through this store (or any other call) may change the newest items
        await library.add_thread_item("thr_a", _reply(99, "thr_a"), ALICE)
    reads = counting.reads
    got = await library.load_thread_items("thr_a", None, 2, "desc", ALICE)
    assert counting.reads == reads + 1
    assert got == _library_page(await store.load_thread_items("thr_a", None, 2, "desc", ALICE))
