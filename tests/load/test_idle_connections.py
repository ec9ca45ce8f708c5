"""Idle and slow connections are closed by the server, over raw sockets against a granian process.

A connection that sends nothing, stops half-way through its headers, sits idle between keep-alive
requests, or stalls in the middle of a body would otherwise hold a socket and memory forever. The
timeouts here are small (`HTTP_HEADER_READ_TIMEOUT_SECONDS`, `HTTP_BODY_READ_TIMEOUT_SECONDS`);
every wait is bounded. A legitimate SSE stream that lasts longer than both must not be cut.
"""

from __future__ import annotations

import socket
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from app.http.auth import mint_dev_token
from app.settings import Settings
from tests.support.chatkit_client import ChatKitClient

TIMEOUT = 2
# Generous against a loaded machine, far below "forever".
CLOSE_WITHIN = TIMEOUT + 6


def _server(live_server_factory: Any, **extra: str) -> Any:
    return live_server_factory(
        {
            "HTTP_HEADER_READ_TIMEOUT_SECONDS": str(TIMEOUT),
            "HTTP_BODY_READ_TIMEOUT_SECONDS": str(TIMEOUT),
            **extra,
        }
    )


def _connect(server: Any) -> socket.socket:
    parts = urlsplit(server.base_url)
    return socket.create_connection((parts.hostname, parts.port), timeout=5)


def _read_until_closed(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took.

    Fails when the connection is still open after `limit` seconds.
    """
    started = time.monotonic()
    received = b""
    while True:
        remaining = limit - (time.monotonic() - started)
        if remaining <= 0:
            raise AssertionError(f"still open after {limit} s; received {received[:200]!r}")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return received, time.monotonic() - started
        received += chunk


def _token() -> str:
    return mint_dev_token(Settings.from_env({}), "alice")


def test_a_silent_socket_is_closed(live_server_factory: Any) -> None:
    server = _server(live_server_factory)
    with _connect(server) as sock:
        received, _ = _read_until_closed(sock, CLOSE_WITHIN)
    assert received == b""


def test_headers_that_stop_half_way_are_closed(live_server_factory: Any) -> None:
    server = _server(live_server_factory)
    with _connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        _read_until_closed(sock, CLOSE_WITHIN)


def test_an_idle_keep_alive_connection_is_closed(live_server_factory: Any) -> None:
    server = _server(live_server_factory)
    with _connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        received, _ = _read_until_closed(sock, CLOSE_WITHIN)
    assert received.startswith(b"HTTP/1.1 200")


def test_a_stalled_body_is_answered_408_and_closed(live_server_factory: Any) -> None:
    server = _server(live_server_factory)
    for path in ("/api/tasks", "/chatkit", "/mcp"):
        with _connect(server) as sock:
            sock.sendall(
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {_token()}\r\n"
                "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
                "Content-Length: 100\r\n\r\n".encode()
                + b'{"title": "stal'
            )
            received, _ = _read_until_closed(sock, CLOSE_WITHIN)
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), (path, received[:300])
        assert b"application/problem+json" in head.lower()
        assert b"connection: close" in head.lower()
        assert b"HTTP_BODY_READ_TIMEOUT_SECONDS" not in body  # the caller is told what to do, not our settings
        assert b'"status":408' in body


async def test_a_stalled_upload_is_answered_408_and_closed(live_server_factory: Any) -> None:
    server = _server(live_server_factory)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        created = await http.post(
            "/chatkit",
            json={
                "type": "attachments.create",
                "params": {"name": "notes.txt", "size": 100, "mime_type": "text/plain"},
            },
            headers={"Authorization": f"Bearer {_token()}"},
        )
    assert created.status_code == 200, created.text
    upload = urlsplit(created.json()["upload_descriptor"]["url"])
    with _connect(server) as sock:
        sock.sendall(
            f"PUT {upload.path}?{upload.query} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
            "Content-Length: 100\r\n\r\n".encode()
            + b"the first line of a file that never finishes"
        )
        received, _ = _read_until_closed(sock, CLOSE_WITHIN)
    assert received.startswith(b"HTTP/1.1 408"), received[:300]
    assert b"connection: close" in received.lower()


async def test_a_stream_longer_than_every_timeout_is_not_cut(live_server_factory: Any) -> None:
    # ~20 deltas 200 ms apart: the stream lasts well beyond both 2 s timeouts.
    server = _server(live_server_factory, OFFLINE_MODEL_DELAY_MS="200", STREAM_KEEPALIVE_SECONDS="1")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
        alice = ChatKitClient(http, _token())
        started = time.monotonic()
        result = await alice.create_thread("help")
        elapsed = time.monotonic() - started
    assert result.status == 200
    assert not result.of_type("error")
    assert result.of_type("thread.item.done")
    assert elapsed > 2 * TIMEOUT, f"the stream lasted only {elapsed:.1f} s; the test proves nothing"
