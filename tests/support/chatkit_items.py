"""ChatKit threads and items built in memory, for tests that save them through the store."""

from __future__ import annotations

import datetime as dt

from chatkit.types import InferenceOptions, ThreadMetadata, UserMessageItem, UserMessageTextContent

T0 = dt.datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)


def make_thread(
    thread_id: str = "thr_1", *, created_at: dt.datetime = T0, title: str | None = "Groceries"
) -> ThreadMetadata:
    return ThreadMetadata(id=thread_id, title=title, created_at=created_at, metadata={"source": "test", "n": [1, 2]})


def message(item_id: str, thread_id: str = "thr_1", *, text: str = "hi", at: dt.datetime = T0) -> UserMessageItem:
    return UserMessageItem(
        id=item_id,
        thread_id=thread_id,
        created_at=at,
        content=[UserMessageTextContent(text=text)],
        inference_options=InferenceOptions(),
    )
