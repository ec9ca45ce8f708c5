"""The ChatKit Store contract. Every test taking `store` runs on a SQLite file and on real PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import random
import re
import time
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from chatkit.store import NotFoundError
from chatkit.types import (
    Annotation,
    AssistantMessageContent,
    AssistantMessageItem,
    Attachment,
    AttachmentUploadDescriptor,
    ClientToolCallItem,
    ClosedStatus,
    CustomSummary,
    CustomTask,
    DurationSummary,
    EndOfTurnItem,
    EntitySource,
    FileAttachment,
    FileSource,
    FileTask,
    GeneratedImage,
    GeneratedImageItem,
    HiddenContextItem,
    ImageAttachment,
    ImageTask,
    InferenceOptions,
    LockedStatus,
    Page,
    SDKHiddenContextItem,
    SearchTask,
    StructuredInputAnswer,
    StructuredInputFreeform,
    StructuredInputItem,
    StructuredInputMultipleChoice,
    StructuredInputMultipleChoiceOption,
    TaskItem,
    ThoughtTask,
    Thread,
    ThreadItem,
    ThreadMetadata,
    ToolChoice,
    URLSource,
    UserMessageItem,
    UserMessageTagContent,
    UserMessageTextContent,
    WidgetItem,
    Workflow,
    WorkflowItem,
)
from pydantic import AnyUrl
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from app.core.context import RequestContext
from app.settings import Settings
from app.store.chatkit_store import ChatKitStore, ItemIdConflictError
from app.store.models import Base, ChatAttachment, ChatFeedback, ChatItem, ChatThread
from tests.support.chatkit_items import T0, make_thread, message

ALICE = RequestContext(user_id="alice")
BOB = RequestContext(user_id="bob")


@pytest.fixture
def store(session_maker: async_sessionmaker[Any]) -> ChatKitStore[RequestContext]:
    return ChatKitStore(session_maker)


def one_of_every_item(thread_id: str = "thr_1") -> list[ThreadItem]:
    """At least one of every ThreadItem variant, with every nested union exercised."""
    at = [T0 + dt.timedelta(seconds=i) for i in range(20)]
    widget_card = WidgetItem.model_validate(
        {
            "id": "wdg_card",
            "thread_id": thread_id,
            "created_at": at[4],
            "copy_text": "Buy milk",
            "widget": {
                "type": "Card",
                "size": "md",
                "children": [
                    {"type": "Text", "value": "Buy milk", "weight": "medium", "color": "secondary"},
                    {"type": "Markdown", "value": "**due** tomorrow"},
                    {
                        "type": "Button",
                        "label": "Done",
                        "onClickAction": {"type": "task.complete", "payload": {"id": 3}},
                    },
                ],
            },
        }
    )
    widget_list = WidgetItem.model_validate(
        {
            "id": "wdg_list",
            "thread_id": thread_id,
            "created_at": at[5],
            "widget": {
                "type": "ListView",
                "limit": 5,
                "children": [
                    {"type": "ListViewItem", "children": [{"type": "Text", "value": "one"}]},
                    {"type": "ListViewItem", "children": [{"type": "Text", "value": "two", "italic": True}]},
                ],
            },
        }
    )
    # A widget from a template: components outside the strict union, with extra fields.
    widget_dynamic = WidgetItem.model_validate(
        {
            "id": "wdg_dyn",
            "thread_id": thread_id,
            "created_at": at[6],
            "widget": {"type": "Basic", "children": [{"type": "Sparkle", "intensity": 3, "label": "new"}]},
        }
    )
    return [
        UserMessageItem(
            id="msg_user",
            thread_id=thread_id,
            created_at=at[0],
            content=[
                UserMessageTextContent(text="Add milk, see attached 🥛"),
                UserMessageTagContent(id="tag1", text="@groceries", data={"list": 7}, group="lists", interactive=True),
            ],
            attachments=[
                FileAttachment(
                    id="atc_file",
                    name="list.txt",
                    mime_type="text/plain",
                    thread_id=thread_id,
                    metadata={"k": "v"},
                ),
                ImageAttachment(
                    id="atc_img",
                    name="milk.png",
                    mime_type="image/png",
                    preview_url=AnyUrl("https://example.com/milk.png"),
                ),
            ],
            quoted_text="earlier text",
            inference_options=InferenceOptions(tool_choice=ToolChoice(id="add_task"), model="gpt-5-mini"),
        ),
        AssistantMessageItem(
            id="msg_assistant",
            thread_id=thread_id,
            created_at=at[1],
            content=[
                AssistantMessageContent(
                    text="Added. Sources:",
                    annotations=[
                        Annotation(
                            source=URLSource(title="Shop", url="https://shop.example", attribution="x"),
                            index=3,
                        ),
                        Annotation(source=FileSource(title="List", filename="list.txt", description="d")),
                        Annotation(
                            source=EntitySource(
                                title="Task 3", id="task_3", icon="check", data={"n": 3}, interactive=True
                            )
                        ),
                    ],
                ),
                AssistantMessageContent(text="Second part"),
            ],
        ),
        ClientToolCallItem(
            id="tc_1",
            thread_id=thread_id,
            created_at=at[2],
            status="completed",
            call_id="call_1",
            name="get_location",
            arguments={"precise": True, "nested": {"a": [1, 2.5, None]}},
            output={"city": "Lahore"},
        ),
        ClientToolCallItem(
            id="tc_2", thread_id=thread_id, created_at=at[3], call_id="call_2", name="noop", arguments={}
        ),
        widget_card,
        widget_list,
        widget_dynamic,
        GeneratedImageItem(
            id="img_1",
            thread_id=thread_id,
            created_at=at[7],
            image=GeneratedImage(id="gi_1", url="https://example.com/generated.png"),
        ),
        GeneratedImageItem(id="img_2", thread_id=thread_id, created_at=at[8]),
        StructuredInputItem(
            id="si_1",
            thread_id=thread_id,
            created_at=at[9],
            status="answered",
            inputs=[
                StructuredInputMultipleChoice(
                    id="q1",
                    question="Which list?",
                    options=[
                        StructuredInputMultipleChoiceOption(value="home"),
                        StructuredInputMultipleChoiceOption(value="work"),
                    ],
                    multiple=True,
                    answer=StructuredInputAnswer(values=["home", "work"]),
                ),
                StructuredInputFreeform(
                    id="q2",
                    question="Notes?",
                    description="optional",
                    answer=StructuredInputAnswer(skipped=True),
                ),
            ],
        ),
        WorkflowItem(
            id="wf_1",
            thread_id=thread_id,
            created_at=at[10],
            workflow=Workflow(
                type="reasoning",
                tasks=[
                    CustomTask(title="Plan", icon="sparkle", content="c", status_indicator="complete"),
                    SearchTask(
                        title="Search",
                        title_query="milk",
                        queries=["milk price"],
                        sources=[URLSource(title="A", url="https://a.example")],
                        status_indicator="loading",
                    ),
                    ThoughtTask(title="Think", content="Thinking..."),
                    FileTask(title="Files", sources=[FileSource(title="F", filename="f.pdf")]),
                    ImageTask(title="Image"),
                ],
                summary=DurationSummary(duration=12),
                expanded=True,
            ),
        ),
        WorkflowItem(
            id="wf_2",
            thread_id=thread_id,
            created_at=at[11],
            workflow=Workflow(type="custom", tasks=[], summary=CustomSummary(title="Done", icon="check")),
        ),
        TaskItem(id="tsk_1", thread_id=thread_id, created_at=at[12], task=CustomTask(title="Created task 3")),
        HiddenContextItem(
            id="hc_1",
            thread_id=thread_id,
            created_at=at[13],
            content={"tasks": [{"id": 3, "done": False}], "x": None},
        ),
        SDKHiddenContextItem(id="shcx_1", thread_id=thread_id, created_at=at[14], content="The user cancelled."),
        EndOfTurnItem(id="eot_1", thread_id=thread_id, created_at=at[15]),
    ]


def _union_members(union: Any) -> set[type]:
    args = typing.get_args(union)
    inner = args[0] if args and typing.get_origin(union) is typing.Annotated else union
    return set(typing.get_args(inner))


async def _thread_row(session_maker: async_sessionmaker[Any], user_id: str, thread_id: str) -> ChatThread:
    async with session_maker() as session:
        row = await session.get(ChatThread, (user_id, thread_id))
        assert row is not None
        return row


async def _count(session_maker: async_sessionmaker[Any], model: Any, **where: Any) -> int:
    async with session_maker() as session:
        statement = select(func.count()).select_from(model)
        for name, value in where.items():
            statement = statement.where(getattr(model, name) == value)
        return int((await session.execute(statement)).scalar_one())


# ---- ids -------------------------------------------------------------------------------------


def test_generated_ids_use_chatkit_prefixes_with_64_plus_random_bits() -> None:
    store: ChatKitStore[RequestContext] = ChatKitStore(lambda: None)  # type: ignore[arg-type,return-value]
    thread = make_thread()
    expected = {
        "message": "msg",
        "tool_call": "tc",
        "workflow": "wf",
        "task": "tsk",
        "attachment": "atc",
        "sdk_hidden_context": "shcx",
    }
    assert re.fullmatch(r"thr_[0-9a-f]{32}", store.generate_thread_id(ALICE))
    for item_type, prefix in expected.items():
        generated = store.generate_item_id(item_type, thread, ALICE)  # type: ignore[arg-type]
        assert re.fullmatch(rf"{prefix}_[0-9a-f]{{32}}", generated), generated
    assert re.fullmatch(r"atc_[0-9a-f]{32}", store.generate_attachment_id("image/png", ALICE))
    ids = [store.generate_item_id("message", thread, ALICE) for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    # time-ordered: the UUIDv7 millisecond prefix never goes backwards
    stamps = [int(i.split("_")[1][:12], 16) for i in ids]
    assert stamps == sorted(stamps)


# ---- threads ---------------------------------------------------------------------------------


async def test_thread_round_trip_and_upsert(store: ChatKitStore[RequestContext], session_maker: Any) -> None:
    thread = make_thread()
    thread.status = LockedStatus(reason="archived")
    thread.allowed_image_domains = ["example.com"]
    await store.save_thread(thread, ALICE)
    assert await store.load_thread("thr_1", ALICE) == thread
    first = await _thread_row(session_maker, "alice", "thr_1")
    await asyncio.sleep(0.01)

    renamed = thread.model_copy(update={"title": "Renamed", "status": ClosedStatus()})
    await store.save_thread(renamed, ALICE)
    await store.save_thread(renamed, ALICE)  # upsert twice
    assert await store.load_thread("thr_1", ALICE) == renamed
    second = await _thread_row(session_maker, "alice", "thr_1")
    assert await _count(session_maker, ChatThread) == 1
    assert second.created_at == first.created_at == T0
    assert second.seq == first.seq
    assert second.updated_at > first.updated_at
    assert second.title == "Renamed"


async def test_save_thread_keeps_first_created_at(store: ChatKitStore[RequestContext]) -> None:
    await store.save_thread(make_thread(), ALICE)
    await store.save_thread(make_thread(created_at=T0 + dt.timedelta(days=3), title="Later"), ALICE)
    loaded = await store.load_thread("thr_1", ALICE)
    assert loaded.title == "Later"
    assert loaded.created_at == T0


async def test_save_thread_with_items_stores_metadata_only(store: ChatKitStore[RequestContext]) -> None:
    meta = make_thread()
    full = Thread(**meta.model_dump(), items=Page(data=[message("msg_a")]))
    await store.save_thread(full, ALICE)
    loaded = await store.load_thread("thr_1", ALICE)
    assert type(loaded) is ThreadMetadata
    assert loaded == meta
    with pytest.raises(NotFoundError):
        await store.load_item("thr_1", "msg_a", ALICE)


@pytest.fixture
def local_time_in_karachi(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run with a server-local time zone that is not UTC (UTC+5, no DST), then restore it."""
    monkeypatch.setenv("TZ", "Asia/Karachi")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("local_time_in_karachi")
async def test_naive_datetimes_are_local_time_stored_as_utc(
    store: ChatKitStore[RequestContext], session_maker: Any
) -> None:
    naive = dt.datetime(2025, 1, 2, 3, 4, 5, 678901)  # what chatkit's datetime.now() produces
    expected = dt.datetime(2025, 1, 1, 22, 4, 5, 678901, tzinfo=dt.UTC)  # 03:04 in UTC+5
    assert naive.astimezone(dt.UTC) == expected
    await store.save_thread(make_thread(created_at=naive), ALICE)
    await store.add_thread_item("thr_1", message("msg_a", at=naive), ALICE)
    karachi = dt.timezone(dt.timedelta(hours=5))
    await store.add_thread_item("thr_1", message("msg_b", at=T0.astimezone(karachi)), ALICE)

    thread = await store.load_thread("thr_1", ALICE)
    item = await store.load_item("thr_1", "msg_a", ALICE)
    other = await store.load_item("thr_1", "msg_b", ALICE)
    for value in (thread.created_at, item.created_at, other.created_at):
        assert value.utcoffset() == dt.timedelta(0)
    assert thread.created_at == expected
    assert item.created_at == expected
    assert other.created_at == T0
    async with session_maker() as session:
        row = await session.get(ChatItem, ("alice", "msg_a"))
        assert row is not None
        assert row.created_at == expected

    # Saving what was loaded changes nothing.
    await store.save_item("thr_1", item, ALICE)
    await store.save_thread(thread, ALICE)
    assert await store.load_item("thr_1", "msg_a", ALICE) == item
    assert await store.load_thread("thr_1", ALICE) == thread


async def test_load_threads_pages_like_chatkit(store: ChatKitStore[RequestContext]) -> None:
    for n in (1, 2, 3):
        await store.save_thread(make_thread(f"thread{n}", created_at=T0 + dt.timedelta(seconds=n)), ALICE)
    page1 = await store.load_threads(limit=2, after=None, order="asc", context=ALICE)
    assert [t.id for t in page1.data] == ["thread1", "thread2"]
    assert page1.has_more is True
    assert page1.after == "thread2"
    page2 = await store.load_threads(limit=2, after=page1.after, order="asc", context=ALICE)
    assert [t.id for t in page2.data] == ["thread3"]
    assert page2.has_more is False
    assert page2.after is None
    desc = await store.load_threads(limit=20, after=None, order="desc", context=ALICE)
    assert [t.id for t in desc.data] == ["thread3", "thread2", "thread1"]
    assert (desc.has_more, desc.after) == (False, None)
    exact = await store.load_threads(limit=3, after=None, order="desc", context=ALICE)
    assert (len(exact.data), exact.has_more, exact.after) == (3, False, None)
    assert (await store.load_threads(limit=5, after=None, order="asc", context=BOB)).data == []


async def test_load_threads_walk_with_ties(store: ChatKitStore[RequestContext]) -> None:
    ids = [f"thr_{n:03d}" for n in range(45)]
    for n, thread_id in enumerate(ids):
        # groups of five share a timestamp; insertion order breaks the tie
        await store.save_thread(make_thread(thread_id, created_at=T0 + dt.timedelta(minutes=n // 5)), ALICE)
        await store.save_thread(make_thread(thread_id, created_at=T0), BOB)  # noise of another user
    for order, expected in (("asc", ids), ("desc", ids[::-1])):
        for size in range(1, 12):
            seen: list[str] = []
            after = None
            while True:
                page = await store.load_threads(limit=size, after=after, order=order, context=ALICE)
                seen += [t.id for t in page.data]
                if not page.has_more:
                    break
                assert page.after == page.data[-1].id
                after = page.after
            assert seen == expected, (order, size)


async def test_thread_cursor_that_no_longer_exists_gives_an_empty_page(
    store: ChatKitStore[RequestContext],
) -> None:
    for n in range(3):
        await store.save_thread(make_thread(f"thr_{n}", created_at=T0 + dt.timedelta(seconds=n)), ALICE)
    await store.save_thread(make_thread("thr_bob"), BOB)
    page = await store.load_threads(limit=1, after=None, order="asc", context=ALICE)
    await store.delete_thread(page.after or "", ALICE)
    for cursor in (page.after, "thr_never", "thr_bob"):
        result = await store.load_threads(limit=10, after=cursor, order="asc", context=ALICE)
        assert (result.data, result.has_more, result.after) == ([], False, None)


# ---- items -----------------------------------------------------------------------------------


async def test_every_item_type_round_trips_exactly(store: ChatKitStore[RequestContext]) -> None:
    items = one_of_every_item()
    covered = {type(item) for item in items}
    assert covered == _union_members(ThreadItem), "a ThreadItem variant is missing from the fixture"
    await store.save_thread(make_thread(), ALICE)
    for item in items:
        await store.add_thread_item("thr_1", item, ALICE)
    loaded = await store.load_thread_items("thr_1", None, 100, "asc", ALICE)
    assert loaded.data == items
    assert [type(i) for i in loaded.data] == [type(i) for i in items]
    for item in items:
        assert await store.load_item("thr_1", item.id, ALICE) == item
    # the attachment kept its integration metadata inside the message
    user_message = loaded.data[0]
    assert isinstance(user_message, UserMessageItem)
    assert user_message.attachments[0].metadata == {"k": "v"}


async def test_add_thread_item_and_save_item_are_idempotent_upserts(
    store: ChatKitStore[RequestContext], session_maker: Any
) -> None:
    await store.save_thread(make_thread(), ALICE)
    first = message("msg_a", text="one", at=T0)
    second = message("msg_b", text="two", at=T0)  # same timestamp: order by insertion
    await store.add_thread_item("thr_1", first, ALICE)
    await store.add_thread_item("thr_1", second, ALICE)
    await store.add_thread_item("thr_1", first, ALICE)  # the library does this (open workflows)
    await store.add_thread_item("thr_1", first, ALICE)
    edited = first.model_copy(update={"content": [UserMessageTextContent(text="one, edited")]})
    await store.save_item("thr_1", edited, ALICE)
    await store.save_item("thr_1", edited, ALICE)
    assert await _count(session_maker, ChatItem) == 2
    page = await store.load_thread_items("thr_1", None, 10, "asc", ALICE)
    assert page.data == [edited, second]  # an update keeps the item's place among equal timestamps
    # save_item of an item that is not there yet inserts it
    third = message("msg_c", at=T0 + dt.timedelta(seconds=1))
    await store.save_item("thr_1", third, ALICE)
    assert (await store.load_thread_items("thr_1", None, 10, "asc", ALICE)).data == [edited, second, third]


async def test_bulk_add_keeps_list_order_and_dedupes(store: ChatKitStore[RequestContext]) -> None:
    await store.save_thread(make_thread(), ALICE)
    items = [message(f"msg_{n}", at=T0) for n in (5, 3, 9, 1)]
    again = items[1].model_copy(update={"content": [UserMessageTextContent(text="last wins")]})
    await store.add_thread_items("thr_1", [*items, again], ALICE)
    page = await store.load_thread_items("thr_1", None, 10, "asc", ALICE)
    assert page.data == [items[0], items[2], items[3], again]


async def test_item_id_never_moves_between_threads(store: ChatKitStore[RequestContext]) -> None:
    await store.save_thread(make_thread("thr_1"), ALICE)
    await store.save_thread(make_thread("thr_2"), ALICE)
    original = message("msg_a", "thr_1", text="original")
    await store.add_thread_item("thr_1", original, ALICE)
    with pytest.raises(ItemIdConflictError):
        await store.add_thread_item("thr_2", message("msg_a", "thr_2", text="intruder"), ALICE)
    assert await store.load_item("thr_1", "msg_a", ALICE) == original
    assert (await store.load_thread_items("thr_2", None, 10, "asc", ALICE)).data == []


async def test_timestamp_ties_keep_insertion_order(store: ChatKitStore[RequestContext]) -> None:
    await store.save_thread(make_thread(), ALICE)
    ids = [f"msg_{n}" for n in range(40)]
    random.Random(7).shuffle(ids)  # ids sort differently from insertion order
    for item_id in ids:
        await store.add_thread_item("thr_1", message(item_id, at=T0), ALICE)
    asc = await store.load_thread_items("thr_1", None, 100, "asc", ALICE)
    desc = await store.load_thread_items("thr_1", None, 100, "desc", ALICE)
    assert [i.id for i in asc.data] == ids
    assert [i.id for i in desc.data] == ids[::-1]


async def test_pagination_walks_1000_items_with_every_page_size(store: ChatKitStore[RequestContext]) -> None:
    await store.save_thread(make_thread(), ALICE)
    await store.save_thread(make_thread(), BOB)
    # groups of seven share a timestamp, and ids do not sort in insertion order
    items = [message(f"msg_{(n * 7919) % 1000:04d}", at=T0 + dt.timedelta(milliseconds=n // 7)) for n in range(1000)]
    await store.add_thread_items("thr_1", items, ALICE)
    await store.add_thread_items("thr_1", items[:30], BOB)  # same ids, another user
    expected = {"asc": [i.id for i in items], "desc": [i.id for i in reversed(items)]}

    async def walk(order: str, size: int) -> None:
        seen: list[str] = []
        after: str | None = None
        pages = 0
        while True:
            page = await store.load_thread_items("thr_1", after, size, order, ALICE)
            pages += 1
            seen += [i.id for i in page.data]
            if not page.has_more:
                assert page.after is None
                break
            assert len(page.data) == size
            assert page.after == page.data[-1].id
            after = page.after
        assert seen == expected[order], (order, size)
        assert pages == math.ceil(1000 / size), (order, size)

    await asyncio.gather(*(walk(order, size) for order in ("asc", "desc") for size in range(1, 51)))


async def test_item_cursor_that_no_longer_exists_gives_an_empty_page(
    store: ChatKitStore[RequestContext],
) -> None:
    await store.save_thread(make_thread("thr_1"), ALICE)
    await store.save_thread(make_thread("thr_2"), ALICE)
    await store.add_thread_items(
        "thr_1", [message(f"msg_{n}", at=T0 + dt.timedelta(seconds=n)) for n in range(5)], ALICE
    )
    await store.add_thread_item("thr_2", message("msg_other", "thr_2"), ALICE)
    page = await store.load_thread_items("thr_1", None, 2, "asc", ALICE)
    assert page.after == "msg_1"
    await store.delete_thread_item("thr_1", "msg_1", ALICE)
    # deleted cursor, unknown id, and an item of another thread: all end the listing
    for cursor in ("msg_1", "msg_never", "msg_other"):
        for order in ("asc", "desc"):
            result = await store.load_thread_items("thr_1", cursor, 10, order, ALICE)
            assert (result.data, result.has_more, result.after) == ([], False, None)
    # a live cursor still works
    rest = await store.load_thread_items("thr_1", "msg_2", 10, "asc", ALICE)
    assert [i.id for i in rest.data] == ["msg_3", "msg_4"]


async def test_concurrent_adds_to_one_thread_lose_nothing(
    store: ChatKitStore[RequestContext], session_maker: Any
) -> None:
    await store.save_thread(make_thread(), ALICE)
    before = await _thread_row(session_maker, "alice", "thr_1")
    items = [message(f"msg_{n:02d}", text=str(n), at=T0) for n in range(50)]
    await asyncio.gather(*(store.add_thread_item("thr_1", item, ALICE) for item in items))

    asc = await store.load_thread_items("thr_1", None, 100, "asc", ALICE)
    assert sorted(i.id for i in asc.data) == [i.id for i in items]
    assert {i.id: i for i in asc.data} == {i.id: i for i in items}
    async with session_maker() as session:
        by_seq = (
            await session.execute(
                select(ChatItem.id).where(ChatItem.user_id == "alice").order_by(ChatItem.created_at, ChatItem.seq)
            )
        ).scalars()
        assert [i.id for i in asc.data] == list(by_seq)
    desc = await store.load_thread_items("thr_1", None, 100, "desc", ALICE)
    assert [i.id for i in desc.data] == [i.id for i in reversed(asc.data)]
    assert (await store.load_thread_items("thr_1", None, 100, "asc", ALICE)).data == asc.data
    # pages agree with the full listing
    paged: list[str] = []
    after = None
    while True:
        page = await store.load_thread_items("thr_1", after, 7, "asc", ALICE)
        paged += [i.id for i in page.data]
        if not page.has_more:
            break
        after = page.after
    assert paged == [i.id for i in asc.data]
    assert (await _thread_row(session_maker, "alice", "thr_1")).updated_at > before.updated_at


async def test_adding_an_item_bumps_the_thread_updated_at(
    store: ChatKitStore[RequestContext], session_maker: Any
) -> None:
    await store.save_thread(make_thread(), ALICE)
    stamps = [(await _thread_row(session_maker, "alice", "thr_1")).updated_at]
    for step in (
        store.add_thread_item("thr_1", message("msg_a"), ALICE),
        store.save_item("thr_1", message("msg_a", text="edit"), ALICE),
        store.delete_thread_item("thr_1", "msg_a", ALICE),
    ):
        await asyncio.sleep(0.005)
        await step
        stamps.append((await _thread_row(session_maker, "alice", "thr_1")).updated_at)
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == len(stamps)
    assert (await _thread_row(session_maker, "alice", "thr_1")).created_at == T0


async def test_a_threads_turn_lease_is_held_by_one_turn_until_released_or_expired(
    store: ChatKitStore[RequestContext], session_maker: Any
) -> None:
    await store.save_thread(make_thread(), ALICE)
    assert await store.claim_turn("thr_1", "turn-a", 30, ALICE)
    assert await store.claim_turn("thr_1", "turn-a", 30, ALICE)  # a retried claim is not a second turn
    assert not await store.claim_turn("thr_1", "turn-b", 30, ALICE)
    assert await store.renew_turn("thr_1", "turn-a", 30, ALICE)
    assert not await store.renew_turn("thr_1", "turn-b", 30, ALICE)
    await store.release_turn("thr_1", "turn-b", ALICE)  # not the holder: changes nothing
    assert not await store.claim_turn("thr_1", "turn-b", 30, ALICE)

    # Another user neither sees nor frees it.
    with pytest.raises(NotFoundError):
        await store.claim_turn("thr_1", "turn-b", 30, BOB)
    await store.release_turn("thr_1", "turn-a", BOB)
    assert not await store.claim_turn("thr_1", "turn-b", 30, ALICE)

    await store.release_turn("thr_1", "turn-a", ALICE)
    assert await store.claim_turn("thr_1", "turn-b", 30, ALICE)
    assert not await store.renew_turn("thr_1", "turn-a", 30, ALICE)  # turn-a lost it for good

    # A holder that stopped renewing (its worker was killed): the lease frees the thread when it expires.
    async with session_maker() as session, session.begin():
        await session.execute(
            update(ChatThread)
            .where(ChatThread.user_id == "alice", ChatThread.id == "thr_1")
            .values(turn_lease_expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
    assert await store.claim_turn("thr_1", "turn-c", 30, ALICE)
    assert not await store.renew_turn("thr_1", "turn-b", 30, ALICE)

    # Saving the thread (the library does, mid-turn) leaves the lease alone.
    await store.save_thread(make_thread(title="Renamed"), ALICE)
    assert not await store.claim_turn("thr_1", "turn-d", 30, ALICE)
    with pytest.raises(NotFoundError):
        await store.claim_turn("thr_nope", "turn-d", 30, ALICE)


@pytest.mark.parametrize("quota", [0, 5])
async def test_a_reserved_thread_can_be_saved_holding_its_first_turns_lease(
    store: ChatKitStore[RequestContext], quota: int
) -> None:
    """`reserve_thread(turn=...)` saves the new thread already holding the lease, as `claim_turn`
    would have taken it (with or without the thread quota's count): the same token claims it again,
    another does not until it is released or expires; the library's later save keeps it."""
    from app.services.quotas import UserLimits

    limits = UserLimits(threads_per_user=quota)
    admit = limits.check_thread_count if quota else None
    await store.reserve_thread(make_thread(), ALICE, admit=admit, turn=("turn-a", 30))
    assert not await store.claim_turn("thr_1", "turn-b", 30, ALICE)
    assert await store.renew_turn("thr_1", "turn-a", 30, ALICE)
    await store.save_thread(make_thread(title="Saved"), ALICE)
    assert not await store.claim_turn("thr_1", "turn-b", 30, ALICE)
    assert await store.claim_turn("thr_1", "turn-a", 30, ALICE)  # a retried claim of the holder
    await store.release_turn("thr_1", "turn-a", ALICE)
    assert await store.claim_turn("thr_1", "turn-b", 30, ALICE)
    assert (await store.load_thread("thr_1", ALICE)).title == "Saved"
    # Without `turn`: free, as before; the lease of a reservation expires like any other.
    await store.reserve_thread(make_thread("thr_2"), ALICE, admit=admit)
    assert await store.claim_turn("thr_2", "turn-c", 30, ALICE)
    await store.reserve_thread(make_thread("thr_3"), ALICE, admit=admit, turn=("turn-d", -1))
    assert await store.claim_turn("thr_3", "turn-e", 30, ALICE)
    # Another user's reservation of the same id is another thread.
    await store.reserve_thread(make_thread(), BOB, admit=admit, turn=("turn-f", 30))
    assert not await store.claim_turn("thr_1", "turn-g", 30, BOB)
    assert await store.renew_turn("thr_1", "turn-b", 30, ALICE)


async def test_delete_thread_item_removes_one_item(store: ChatKitStore[RequestContext], session_maker: Any) -> None:
    await store.save_thread(make_thread(), ALICE)
    await store.add_thread_items("thr_1", [message("msg_a"), message("msg_b"), message("msg_c")], ALICE)
    await store.save_feedback("thr_1", ["msg_b", "msg_c"], "positive", ALICE)
    await store.delete_thread_item("thr_1", "msg_b", ALICE)
    assert [i.id for i in (await store.load_thread_items("thr_1", None, 10, "asc", ALICE)).data] == [
        "msg_a",
        "msg_c",
    ]
    with pytest.raises(NotFoundError):
        await store.load_item("thr_1", "msg_b", ALICE)
    assert await store.load_feedback("thr_1", ALICE) == {"msg_c": "positive"}
    # an item that is not there (streamed, then removed before it was saved): no error
    await store.delete_thread_item("thr_1", "msg_never_saved", ALICE)
    assert await _count(session_maker, ChatItem) == 2


async def test_delete_thread_removes_items_attachments_and_feedback(
    store: ChatKitStore[RequestContext], session_maker: Any
) -> None:
    for thread_id in ("thr_1", "thr_keep"):
        await store.save_thread(make_thread(thread_id), ALICE)
        await store.add_thread_items(
            thread_id, [message(f"{thread_id}_a", thread_id), message(f"{thread_id}_b", thread_id)], ALICE
        )
        await store.save_feedback(thread_id, [f"{thread_id}_a"], "negative", ALICE)
        await store.save_attachment(
            FileAttachment(id=f"atc_{thread_id}", name="a.txt", mime_type="text/plain", thread_id=thread_id),
            ALICE,
        )
        await store.mark_attachment_uploaded(f"atc_{thread_id}", ALICE, storage_key=f"blobs/{thread_id}", size=3)
    await store.save_attachment(FileAttachment(id="atc_loose", name="b.txt", mime_type="text/plain"), ALICE)

    result = await store.purge_thread("thr_1", ALICE)
    assert (result.threads, result.items, result.attachments) == (1, 2, 1)
    assert result.storage_keys == ("blobs/thr_1",)
    with pytest.raises(NotFoundError):
        await store.load_thread("thr_1", ALICE)
    with pytest.raises(NotFoundError):
        await store.load_thread_items("thr_1", None, 10, "asc", ALICE)
    with pytest.raises(NotFoundError):
        await store.load_attachment("atc_thr_1", ALICE)
    assert await _count(session_maker, ChatItem, thread_id="thr_1") == 0
    assert await _count(session_maker, ChatFeedback, thread_id="thr_1") == 0
    # the other thread and the unattached upload are untouched
    assert len((await store.load_thread_items("thr_keep", None, 10, "asc", ALICE)).data) == 2
    assert await store.load_feedback("thr_keep", ALICE) == {"thr_keep_a": "negative"}
    await store.load_attachment("atc_thr_keep", ALICE)
    await store.load_attachment("atc_loose", ALICE)
    await store.delete_thread("thr_keep", ALICE)
    assert await _count(session_maker, ChatThread) == 0
    with pytest.raises(NotFoundError):
        await store.delete_thread("thr_keep", ALICE)


# ---- attachments -----------------------------------------------------------------------------


async def test_attachments_round_trip_both_kinds(store: ChatKitStore[RequestContext]) -> None:
    await store.save_thread(make_thread(), ALICE)
    attachments: list[Attachment] = [
        FileAttachment(id="atc_file", name="notes.txt", mime_type="text/plain", metadata={"sha": "abc", "n": 1}),
        ImageAttachment(
            id="atc_img",
            name="photo.png",
            mime_type="image/png",
            preview_url=AnyUrl("https://cdn.example/p.png?sig=1"),
            thread_id="thr_1",
            upload_descriptor=AttachmentUploadDescriptor(
                url=AnyUrl("https://upload.example/put"), method="PUT", headers={"x-sig": "1"}
            ),
            metadata={"width": 10},
        ),
    ]
    assert {type(a) for a in attachments} == _union_members(Attachment)
    for attachment in attachments:
        await store.save_attachment(attachment, ALICE)
        await store.save_attachment(attachment, ALICE)  # upsert twice
        assert await store.load_attachment(attachment.id, ALICE) == attachment
    moved = attachments[0].model_copy(update={"thread_id": "thr_1", "name": "renamed.txt"})
    await store.save_attachment(moved, ALICE)
    assert await store.load_attachment("atc_file", ALICE) == moved
    await store.delete_attachment("atc_file", ALICE)
    with pytest.raises(NotFoundError):
        await store.load_attachment("atc_file", ALICE)
    with pytest.raises(NotFoundError):
        await store.delete_attachment("atc_file", ALICE)


async def test_attachment_upload_status_only_moves_forward(store: ChatKitStore[RequestContext]) -> None:
    descriptor = AttachmentUploadDescriptor(url=AnyUrl("https://upload.example/put"), method="PUT")
    pending = FileAttachment(id="atc_1", name="a.txt", mime_type="text/plain", upload_descriptor=descriptor)
    await store.save_attachment(pending, ALICE)
    record = await store.load_attachment_record("atc_1", ALICE)
    assert (record.status, record.storage_key, record.size) == ("pending", None, None)
    await store.mark_attachment_uploaded("atc_1", ALICE, storage_key="k/1", size=42)
    # the library saves it again (with a thread id) and the descriptor still set: stays uploaded
    await store.save_thread(make_thread(), ALICE)
    await store.save_attachment(pending.model_copy(update={"thread_id": "thr_1"}), ALICE)
    record = await store.load_attachment_record("atc_1", ALICE)
    assert (record.status, record.storage_key, record.size) == ("uploaded", "k/1", 42)
    assert record.attachment.thread_id == "thr_1"
    direct = FileAttachment(id="atc_2", name="b.txt", mime_type="text/plain")
    await store.save_attachment(direct, ALICE)
    assert (await store.load_attachment_record("atc_2", ALICE)).status == "uploaded"
    with pytest.raises(NotFoundError):
        await store.mark_attachment_uploaded("atc_1", BOB, storage_key="evil")


# ---- feedback --------------------------------------------------------------------------------


async def test_feedback_is_an_upsert_per_user_and_item(store: ChatKitStore[RequestContext], session_maker: Any) -> None:
    await store.save_thread(make_thread(), ALICE)
    await store.add_thread_items("thr_1", [message("msg_a"), message("msg_b"), message("msg_c")], ALICE)
    assert await store.save_feedback("thr_1", ["msg_a", "msg_b"], "positive", ALICE) == 2
    assert await store.save_feedback("thr_1", ["msg_b", "msg_unknown"], "negative", ALICE) == 1
    assert await store.load_feedback("thr_1", ALICE) == {"msg_a": "positive", "msg_b": "negative"}
    assert await _count(session_maker, ChatFeedback) == 2
    assert await store.save_feedback("thr_1", [], "negative", ALICE) == 0
    with pytest.raises(ValueError):
        await store.save_feedback("thr_1", ["msg_a"], "meh", ALICE)  # type: ignore[arg-type]


# ---- isolation -------------------------------------------------------------------------------


async def test_another_users_data_is_not_found_and_never_modified(
    store: ChatKitStore[RequestContext], session_maker: Any
) -> None:
    await store.save_thread(make_thread("thr_alice"), ALICE)
    alice_item = message("msg_alice", "thr_alice", text="private")
    await store.add_thread_item("thr_alice", alice_item, ALICE)
    await store.save_feedback("thr_alice", ["msg_alice"], "positive", ALICE)
    attachment = FileAttachment(id="atc_alice", name="secret.txt", mime_type="text/plain", thread_id="thr_alice")
    await store.save_attachment(attachment, ALICE)
    before = await _thread_row(session_maker, "alice", "thr_alice")
    await store.save_thread(make_thread("thr_bob"), BOB)

    attempts = [
        store.load_thread("thr_alice", BOB),
        store.load_thread_items("thr_alice", None, 10, "asc", BOB),
        store.load_thread_items("thr_alice", "msg_alice", 10, "desc", BOB),
        store.load_item("thr_alice", "msg_alice", BOB),
        store.add_thread_item("thr_alice", message("msg_bob", "thr_alice"), BOB),
        store.save_item("thr_alice", message("msg_alice", "thr_alice", text="overwritten"), BOB),
        store.delete_thread_item("thr_alice", "msg_alice", BOB),
        store.delete_thread("thr_alice", BOB),
        store.load_attachment("atc_alice", BOB),
        store.delete_attachment("atc_alice", BOB),
        store.save_attachment(
            FileAttachment(id="atc_bob", name="x", mime_type="text/plain", thread_id="thr_alice"), BOB
        ),
        store.save_feedback("thr_alice", ["msg_alice"], "negative", BOB),
        store.load_feedback("thr_alice", BOB),
    ]
    for attempt in attempts:
        with pytest.raises(NotFoundError):
            await attempt

    # Bob's own ids can even coincide with Alice's: they are separate rows.
    await store.save_thread(make_thread("thr_alice", title="Bob's own"), BOB)
    await store.add_thread_item("thr_alice", message("msg_alice", "thr_alice", text="bob's"), BOB)
    await store.save_attachment(attachment.model_copy(update={"name": "bob.txt"}), BOB)

    assert await store.load_thread("thr_alice", ALICE) == make_thread("thr_alice")
    assert (await store.load_thread_items("thr_alice", None, 10, "asc", ALICE)).data == [alice_item]
    assert await store.load_attachment("atc_alice", ALICE) == attachment
    assert await store.load_feedback("thr_alice", ALICE) == {"msg_alice": "positive"}
    assert (await _thread_row(session_maker, "alice", "thr_alice")).updated_at == before.updated_at
    assert [t.id for t in (await store.load_threads(10, None, "asc", ALICE)).data] == ["thr_alice"]
    assert (await store.load_thread("thr_alice", BOB)).title == "Bob's own"
    bob_items = (await store.load_thread_items("thr_alice", None, 10, "asc", BOB)).data
    assert [i.content[0].text for i in bob_items if isinstance(i, UserMessageItem)] == ["bob's"]  # type: ignore[union-attr]


async def test_two_users_interleaving_writes(store: ChatKitStore[RequestContext]) -> None:
    users = [RequestContext(user_id=f"user{n}") for n in range(4)]

    async def converse(context: RequestContext) -> list[UserMessageItem]:
        await store.save_thread(make_thread("thr_same", title=context.user_id), context)
        written = []
        for n in range(25):
            item = message(f"msg_{n:02d}", "thr_same", text=f"{context.user_id} {n}", at=T0 + dt.timedelta(seconds=n))
            await store.add_thread_item("thr_same", item, context)
            written.append(item)
            await asyncio.sleep(0)
        return written

    written = await asyncio.gather(*(converse(user) for user in users))
    for context, items in zip(users, written, strict=True):
        assert (await store.load_thread("thr_same", context)).title == context.user_id
        assert (await store.load_thread_items("thr_same", None, 100, "asc", context)).data == items
        threads = await store.load_threads(10, None, "desc", context)
        assert [t.id for t in threads.data] == ["thr_same"]


# ---- not found -------------------------------------------------------------------------------


async def test_not_found_cases(store: ChatKitStore[RequestContext]) -> None:
    with pytest.raises(NotFoundError):
        await store.load_thread("thr_missing", ALICE)
    with pytest.raises(NotFoundError):
        await store.load_thread_items("thr_missing", None, 10, "asc", ALICE)
    with pytest.raises(NotFoundError):
        await store.add_thread_item("thr_missing", message("msg_a", "thr_missing"), ALICE)
    with pytest.raises(NotFoundError):
        await store.save_item("thr_missing", message("msg_a", "thr_missing"), ALICE)
    with pytest.raises(NotFoundError):
        await store.delete_thread("thr_missing", ALICE)
    with pytest.raises(NotFoundError):
        await store.delete_thread_item("thr_missing", "msg_a", ALICE)
    with pytest.raises(NotFoundError):
        await store.load_attachment("atc_missing", ALICE)
    with pytest.raises(NotFoundError):
        await store.delete_attachment("atc_missing", ALICE)
    with pytest.raises(NotFoundError):
        await store.save_feedback("thr_missing", ["msg_a"], "positive", ALICE)
    await store.save_thread(make_thread(), ALICE)
    with pytest.raises(NotFoundError):
        await store.load_item("thr_1", "msg_missing", ALICE)
    empty = await store.load_thread_items("thr_1", None, 10, "desc", ALICE)
    assert (empty.data, empty.has_more, empty.after) == ([], False, None)
    with pytest.raises(ValueError):
        await store.load_thread_items("thr_1", None, 10, "sideways", ALICE)


# ---- construction ----------------------------------------------------------------------------


@dataclass(frozen=True)
class OtherServersContext:
    """Some other ChatKit server's context: anything with a `user_id`."""

    user_id: str
    locale: str = "en"


async def test_store_from_an_advanced_alchemy_config_and_any_context(engine: AsyncEngine, database_url: str) -> None:
    from app.store.db import build_db_config

    config = build_db_config(Settings.from_env({"DATABASE_URL": database_url}))
    store: ChatKitStore[OtherServersContext] = ChatKitStore(config)
    context = OtherServersContext(user_id="carol")
    try:
        await store.save_thread(make_thread(), context)
        await store.add_thread_item("thr_1", message("msg_a"), context)
        assert (await store.load_thread_items("thr_1", None, 5, "asc", context)).data == [message("msg_a")]
    finally:
        await config.get_engine().dispose()


async def test_plain_sqlite_session_maker_without_foreign_keys(tmp_path: Path) -> None:
    """Usable on its own: a bare engine (no PRAGMA foreign_keys) still deletes children."""
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/plain.db")
    try:
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
        maker = async_sessionmaker(engine, expire_on_commit=False)
        store: ChatKitStore[RequestContext] = ChatKitStore(maker)
        await store.save_thread(make_thread(), ALICE)
        await store.add_thread_items("thr_1", [message("msg_a"), message("msg_b")], ALICE)
        await store.save_attachment(
            FileAttachment(id="atc_1", name="a", mime_type="text/plain", thread_id="thr_1"), ALICE
        )
        await store.save_feedback("thr_1", ["msg_a"], "positive", ALICE)
        await store.delete_thread("thr_1", ALICE)
        for model in (ChatThread, ChatItem, ChatAttachment, ChatFeedback):
            assert await _count(maker, model) == 0, model
        with pytest.raises(NotFoundError):
            await store.add_thread_item("thr_1", message("msg_c"), ALICE)
        assert await _count(maker, ChatItem) == 0
    finally:
        await engine.dispose()


async def test_retention_reads_updated_at(store: ChatKitStore[RequestContext], session_maker: Any) -> None:
    """`updated_at` is what `taskpilot cleanup` compares; an item write moves it past an old value."""
    await store.save_thread(make_thread(), ALICE)
    long_ago = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    async with session_maker() as session, session.begin():
        await session.execute(update(ChatThread).values(updated_at=long_ago))
    await store.add_thread_item("thr_1", message("msg_a"), ALICE)
    assert (await _thread_row(session_maker, "alice", "thr_1")).updated_at > long_ago + dt.timedelta(days=365)


async def test_reserved_threads_never_pass_the_thread_quota(store: ChatKitStore[RequestContext]) -> None:
    """`reserve_thread` counts and saves under the user's thread-quota lock: 10 reservations at once
    against a quota of 3 keep 3; the library's later save of a reserved id adds no row."""
    from dataclasses import replace
    from uuid import uuid4

    from app.core.errors import QuotaExceeded
    from app.services.quotas import UserLimits

    limits = UserLimits(threads_per_user=3)
    context = RequestContext(user_id=f"reserver-{uuid4().hex[:8]}")

    async def count() -> int:
        return len((await store.load_threads(100, None, "asc", context)).data)

    async def reserve() -> str | None:
        try:
            return await limits.reserve_new_thread(store, context)
        except QuotaExceeded:
            return None

    kept = [thread_id for thread_id in await asyncio.gather(*(reserve() for _ in range(10))) if thread_id]
    assert len(kept) == 3
    assert await count() == 3
    reserved = replace(context, reserved_thread_id=kept[0])
    assert store.generate_thread_id(reserved) == kept[0]
    await store.save_thread(ThreadMetadata(id=kept[0], created_at=dt.datetime.now(), title="Saved"), reserved)
    assert await count() == 3
    assert (await store.load_thread(kept[0], context)).title == "Saved"
