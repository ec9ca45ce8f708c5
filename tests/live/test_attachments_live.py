"""Attachments against a real granian process over real HTTP (SQLite file and PostgreSQL):
the URLs a browser is given work as given, uploads stream, and deletion reaches the disk."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.settings import Settings
from tests.support.auth import server_token
from tests.support.chatkit_client import ChatKitClient
from tests.support.payloads import NOTES, PNG
from tests.support.servers import LiveServer, ServerPool, unique_user

LIMIT = 64 * 1024


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest) -> str:
    """The shared server's database kind: SQLite, then PostgreSQL."""
    if request.param == "postgres":
        request.getfixturevalue("postgres_url")  # skips (or fails under CI) without PostgreSQL
    return str(request.param)


def _server(live_servers: ServerPool, database: str = "sqlite") -> tuple[LiveServer, Path]:
    """The run's shared server with a small attachment limit, and its attachment directory (one
    per test process, so the env and the server are the same for every test here). Tests look
    only at their own user's blobs in it."""
    blobs = live_servers.root / "attachments"
    env = {"ATTACHMENT_STORAGE_URL": str(blobs), "ATTACHMENT_MAX_BYTES": str(LIMIT)}
    return live_servers.get(env, database=database), blobs


def _token(server: LiveServer, user: str) -> str:
    return server_token(server.env, user)


def _blob(root: Path, user: str, attachment_id: str) -> Path:
    return root / hashlib.sha256(user.encode()).hexdigest()[:32] / attachment_id


async def _create(http: httpx.AsyncClient, token: str, name: str, mime_type: str, size: int) -> dict[str, Any]:
    response = await http.post(
        "/chatkit",
        json={"type": "attachments.create", "params": {"name": name, "size": size, "mime_type": mime_type}},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_browser_style_upload_send_reload_preview_and_delete(live_servers: ServerPool, database: str) -> None:
    server, blobs = _server(live_servers, database)
    alice = unique_user("alice")
    token = _token(server, alice)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        image = await _create(http, token, "dot.png", "image/png", len(PNG))
        notes = await _create(http, token, "groceries.md", "text/markdown", len(NOTES))
        descriptor = image["upload_descriptor"]
        assert descriptor["url"].startswith(f"{server.base_url}/api/chatkit/attachments/{image['id']}/upload?token=")

        # A browser's fetch: the descriptor's absolute URL, method and headers, no Authorization header.
        async with httpx.AsyncClient(timeout=30) as browser:
            put = await browser.request(
                descriptor["method"], descriptor["url"], content=PNG, headers={**descriptor["headers"]}
            )
            assert put.status_code == 200, put.text
            form = await browser.request(
                notes["upload_descriptor"]["method"],
                notes["upload_descriptor"]["url"],
                files={"file": ("groceries.md", NOTES, "text/markdown")},
            )
            assert form.status_code == 200, form.text
        assert _blob(blobs, alice, image["id"]).read_bytes() == PNG
        assert _blob(blobs, alice, notes["id"]).read_bytes() == NOTES

        chat = ChatKitClient(http, token)
        sent = await chat.create_thread("add a task to buy milk", attachments=[image["id"], notes["id"]])
        assert sent.status == 200 and not sent.of_type("error")
        text = sent.assistant_text()
        assert text.startswith(f"I received dot.png ({len(PNG)} bytes) and groceries.md ({len(NOTES)} bytes).")
        assert "Added #1 “Buy milk”" in text

        reloaded = await chat.get_thread(sent.thread_id)
        message = next(i for i in reloaded.body["items"]["data"] if i["type"] == "user_message")
        assert [a["name"] for a in message["attachments"]] == ["dot.png", "groceries.md"]
        async with httpx.AsyncClient(timeout=30) as browser:  # an <img src=preview_url>
            preview = await browser.get(message["attachments"][0]["preview_url"])
        assert preview.status_code == 200 and preview.content == PNG
        assert preview.headers["content-type"] == "image/png"
        assert preview.headers["content-length"] == str(len(PNG))

        deleted = await chat.request("threads.delete", {"thread_id": sent.thread_id})
        assert deleted.status == 200
        assert not _blob(blobs, alice, image["id"]).exists()
        assert not _blob(blobs, alice, notes["id"]).exists()


# Timing-sensitive: the server answers 413 and closes while the client is still sending, and a busy
# client can meet the connection reset before it reads the answer (seen once with other tests beside it).
@pytest.mark.alone
async def test_an_oversized_stream_is_cut_off_with_413_and_leaves_nothing(
    live_servers: ServerPool,
) -> None:
    server, blobs = _server(live_servers)
    alice = unique_user("alice")
    token = _token(server, alice)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        created = await _create(http, token, "big.txt", "text/plain", LIMIT)
        url = created["upload_descriptor"]["url"]

        async def body() -> AsyncIterator[bytes]:  # chunked: no Content-Length to refuse it up front
            for _ in range(4):
                yield b"a" * (LIMIT // 2)

        response = await http.put(url, content=body())
        assert response.status_code == 413, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        # The rest of the body was never read: the server must not keep this connection.
        assert response.headers.get("connection") == "close"
        assert not _blob(blobs, alice, created["id"]).exists()

        # The attachment is still pending and takes a body within the limit.
        retried = await http.put(url, content=b"a" * LIMIT)
        assert retried.status_code == 200 and retried.json()["size"] == LIMIT
        assert _blob(blobs, alice, created["id"]).stat().st_size == LIMIT


async def test_health_offers_the_attachment_limits_attachments_create_enforces(live_servers: ServerPool) -> None:
    """`self_hosted.attachments` of the health document (the front ends' `composer.attachments`
    `maxSize` and `accept`) is what `attachments.create` enforces: every type and extension it
    offers is admitted, a byte more than `max_bytes` is 413, and a type it leaves out is 415."""
    server, _ = _server(live_servers)
    token = _token(server, unique_user("alice"))
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        health = (await http.get("/api/chatkit/health")).json()
        offered = health["self_hosted"]["attachments"]
        assert offered["max_bytes"] == LIMIT
        settings = Settings.from_env(server.env)
        assert list(offered["accept"]) == list(settings.attachment_allowed_types)
        assert "application/json" not in offered["accept"]  # the default leaves JSON out
        for mime, extensions in offered["accept"].items():
            assert (await _create(http, token, f"file{extensions[0]}", mime, LIMIT))["mime_type"] == mime
            for extension in extensions:  # a browser that cannot type the file sends a generic type
                created = await _create(http, token, f"file{extension.upper()}", "application/octet-stream", 1)
                assert created["mime_type"] == mime, extension

        async def refused(name: str, mime_type: str, size: int) -> int:
            response = await http.post(
                "/chatkit",
                json={"type": "attachments.create", "params": {"name": name, "size": size, "mime_type": mime_type}},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert response.headers["content-type"].startswith("application/problem+json"), response.text
            return response.status_code

        assert await refused("big.png", "image/png", LIMIT + 1) == 413
        assert await refused("data.json", "application/json", 10) == 415
        assert await refused("data.json", "application/octet-stream", 10) == 415
