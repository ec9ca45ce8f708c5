"""A /chatkit body is parsed once: the controller routes on the object the server then handles, and
the unstorable-text check decodes the body again only when it may hold such text (to name the field).
The items a stream sends carry the timestamps the Store keeps (one normalisation, `app.core.clock.to_utc`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from testkit.chatkit import user_input

from app.agents.chatkit import requests
from app.asgi import create_app
from app.http.auth import mint_dev_token
from tests.conftest import create_schema, make_settings
from tests.support.chatkit_client import ChatKitClient


class CountingAdapter:
    def __init__(self, adapter: Any) -> None:
        self.adapter = adapter
        self.parses = 0

    def validate_json(self, body: Any) -> Any:
        self.parses += 1
        return self.adapter.validate_json(body)


@pytest.fixture
async def counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[ChatKitClient, Any, list[Any]]]:
    adapter = CountingAdapter(requests.REQUEST_ADAPTER)
    monkeypatch.setattr(requests, "REQUEST_ADAPTER", adapter)
    decoded: list[Any] = []
    first_unstorable = requests.first_unstorable

    def counting(value: Any) -> str | None:
        decoded.append(value)
        return first_unstorable(value)

    monkeypatch.setattr(requests, "first_unstorable", counting)
    settings = make_settings(tmp_path)
    await create_schema(settings.database_url)
    async with AsyncTestClient(create_app(settings)) as client:
        yield ChatKitClient(client, mint_dev_token(settings, "alice"), time_zone="UTC"), adapter, decoded


async def test_a_new_thread_is_parsed_once_and_streams_the_stored_timestamps(
    counted: tuple[ChatKitClient, Any, list[Any]],
) -> None:
    chat, adapter, decoded = counted
    created = await chat.create_thread("add a task to buy milk")
    assert created.status == 200
    assert adapter.parses == 1 and decoded == []
    streamed = {event.item.id: event.item.created_at for event in created.of_type("thread.item.done")}
    assert streamed and all(at.utcoffset() == dt.timedelta(0) for at in streamed.values())
    adapter.parses = 0
    stored = await chat.items(created.thread_id)
    assert adapter.parses == 1
    assert {item["id"]: dt.datetime.fromisoformat(item["created_at"]) for item in stored.body["data"]} == streamed


async def test_text_that_cannot_be_stored_is_decoded_again_only_to_name_its_field(
    counted: tuple[ChatKitClient, Any, list[Any]],
) -> None:
    chat, adapter, decoded = counted
    response = await chat.raw({"type": "threads.create", "params": {"input": user_input("a\u0000b")}})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "params.input.content.0.text"
    assert adapter.parses == 1 and len(decoded) == 1
