"""Attachments against a real granian process over real HTTP (SQLite file and PostgreSQL):
the URLs a browser is given work as given, uploads stream, and deletion reaches the disk."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from tests.support.chatkit_client import ChatKitClient
from tests.support.payloads import NOTES, PNG
from tests.support.servers import run_cli

LIMIT = 64 * 1024


def _token(server: Any, user: str) -> str:
    return run_cli(["token", "--user", user], server.env).stdout.strip()


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


async def test_browser_style_upload_send_reload_preview_and_delete(
    live_server_factory: Any, server_database_url: str, tmp_path: Path
) -> None:
    blobs = tmp_path / "blobs"
    server = live_server_factory(
        {
            "DATABASE_URL": server_database_url,
            "ATTACHMENT_STORAGE_URL": str(blobs),
            "ATTACHMENT_MAX_BYTES": str(LIMIT),
        }
    )
    token = _token(server, "alice")
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
        assert _blob(blobs, "alice", image["id"]).read_bytes() == PNG
        assert _blob(blobs, "alice", notes["id"]).read_bytes() == NOTES

        alice = ChatKitClient(http, token)
        sent = await alice.create_thread("add a task to buy milk", attachments=[image["id"], notes["id"]])
        assert sent.status == 200 and not sent.of_type("error")
        text = sent.assistant_text()
        assert text.startswith(f"I received dot.png ({len(PNG)} bytes) and groceries.md ({len(NOTES)} bytes).")
        assert "Added #1 “Buy milk”" in text

        reloaded = await alice.get_thread(sent.thread_id)
        message = next(i for i in reloaded.body["items"]["data"] if i["type"] == "user_message")
        assert [a["name"] for a in message["attachments"]] == ["dot.png", "groceries.md"]
        async with httpx.AsyncClient(timeout=30) as browser:  # an <img src=preview_url>
            preview = await browser.get(message["attachments"][0]["preview_url"])
        assert preview.status_code == 200 and preview.content == PNG
        assert preview.headers["content-type"] == "image/png"
        assert preview.headers["content-length"] == str(len(PNG))

        deleted = await alice.request("threads.delete", {"thread_id": sent.thread_id})
        assert deleted.status == 200
        assert not _blob(blobs, "alice", image["id"]).exists()
        assert not _blob(blobs, "alice", notes["id"]).exists()


async def test_an_oversized_stream_is_cut_off_with_413_and_leaves_nothing(
    live_server_factory: Any, tmp_path: Path
) -> None:
    blobs = tmp_path / "blobs"
    server = live_server_factory({"ATTACHMENT_STORAGE_URL": str(blobs), "ATTACHMENT_MAX_BYTES": str(LIMIT)})
    token = _token(server, "alice")
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
        assert not _blob(blobs, "alice", created["id"]).exists()

        # The attachment is still pending and takes a body within the limit.
        retried = await http.put(url, content=b"a" * LIMIT)
        assert retried.status_code == 200 and retried.json()["size"] == LIMIT
        assert _blob(blobs, "alice", created["id"]).stat().st_size == LIMIT
