"""Request bodies are read only for a known caller, only as far as the request's type allows, and
only for so long: over raw sockets and httpx against a granian process with dictation on.

With dictation on, `/chatkit` takes bodies far larger than MAX_REQUEST_BYTES (the audio of
`input.transcribe`). Before issue 27 every request type could send that much, anonymous callers
included, and it was all read and JSON-decoded before the 401; and a body trickled one byte at a
time never met the per-chunk timeout, so it held its connection for as long as the client liked.

The raw-socket tests hold most of a declared body back: an answer that arrives while those bytes
are still unsent proves the server did not wait for (or read) them.
"""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from app.http.auth import mint_dev_token
from app.settings import Settings
from tests.support.fake_transcription import FakeTranscription
from tests.support.servers import LiveServer, start_live_server

pytestmark = pytest.mark.timeout(120)

KEY = "sk-bodies-test-0123456789abcdef"
MAX_REQUEST_BYTES = 65_536
TOTAL_SECONDS = 4
CHUNK_SECONDS = 20
# Far more than the server should ever need to answer; only a server that waits for the unsent
# bytes (or never ends the body) runs into it.
ANSWER_WITHIN = 15
AUDIO = b"\x1aE\xdf\xa3" + bytes(range(256)) * 400  # a webm (EBML) header; ~100 KB, more than MAX_REQUEST_BYTES


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeTranscription]:
    server = FakeTranscription(KEY)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, fake: FakeTranscription) -> Iterator[LiveServer]:
    # Its own process: dictation on (the large /chatkit limit) and a whole-body deadline short
    # enough to reach in a test; every test here needs both, so they share it.
    live = start_live_server(
        tmp_path_factory.mktemp("bodies"),
        {
            "TRANSCRIPTION_MODEL": "gpt-4o-mini-transcribe",
            "OPENAI_API_KEY": KEY,
            "OPENAI_BASE_URL": fake.base_url,
            "MODEL_PROVIDER": "offline",
            "MAX_REQUEST_BYTES": str(MAX_REQUEST_BYTES),
            "HTTP_BODY_READ_TIMEOUT_SECONDS": str(CHUNK_SECONDS),
            "HTTP_BODY_TOTAL_TIMEOUT_SECONDS": str(TOTAL_SECONDS),
        },
    )
    yield live
    live.stop()


def _token(user: str = "alice") -> str:
    return mint_dev_token(Settings.from_env({}), user)


def _connect(server: LiveServer) -> socket.socket:
    parts = urlsplit(server.base_url)
    return socket.create_connection((parts.hostname, parts.port), timeout=5)


def _head(length: int, *, token: str | None) -> bytes:
    lines = [
        "POST /chatkit HTTP/1.1",
        "Host: 127.0.0.1",
        "Content-Type: application/json",
        f"Content-Length: {length}",
    ]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _answer(sock: socket.socket, limit: float) -> tuple[bytes, dict[str, str], dict[str, Any]]:
    """The status line, headers and JSON body of the server's answer; waits at most `limit` s."""
    deadline = time.monotonic() + limit
    received = b""
    while b"\r\n\r\n" not in received:
        received += _recv(sock, deadline, received)
    head, _, body = received.partition(b"\r\n\r\n")
    status, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    while len(body) < int(headers.get("content-length", "0")):
        body += _recv(sock, deadline, received + body)
    return status.encode(), headers, json.loads(body) if body else {}


def _recv(sock: socket.socket, deadline: float, so_far: bytes) -> bytes:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise AssertionError(f"no complete answer yet; received {so_far[:300]!r}")
    sock.settimeout(remaining)
    try:
        chunk = sock.recv(65536)
    except TimeoutError:
        return b""
    if not chunk:
        raise AssertionError(f"closed before a complete answer; received {so_far[:300]!r}")
    return chunk


def _closed_by_server(sock: socket.socket, limit: float) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if not sock.recv(65536):
                return True
        except TimeoutError:
            continue
        except ConnectionResetError:
            return True
    return False


def _padded(kind: str, size: int) -> bytes:
    """A ChatKit request of `kind`, `type` first, padded in `metadata` to `size` bytes."""
    start = json.dumps({"type": kind, "params": {}})[:-1].encode() + b', "metadata": {"pad": "'
    end = b'"}}'
    return start + b"x" * (size - len(start) - len(end)) + end


def test_an_anonymous_body_is_refused_401_before_it_is_read(server: LiveServer) -> None:
    declared = 13_000_000  # below the /chatkit limit that dictation allows (~14 MB)
    body = _padded("threads.list", declared)
    for token in (None, "not-a-jwt"):
        with _connect(server) as sock:
            sock.sendall(_head(declared, token=token) + body[:MAX_REQUEST_BYTES])
            # 12.9 MB are still unsent: the answer comes without them.
            status, headers, problem = _answer(sock, ANSWER_WITHIN)
            assert status.startswith(b"HTTP/1.1 401"), (token, status, problem)
            assert headers["content-type"].startswith("application/problem+json")
            assert problem["status"] == 401
            # Nor does the connection wait for the rest of the body.
            assert _closed_by_server(sock, ANSWER_WITHIN), "the connection stayed open after the 401"


def test_only_input_transcribe_may_carry_more_than_max_request_bytes(
    server: LiveServer, fake: FakeTranscription
) -> None:
    declared = 5_000_000
    with _connect(server) as sock:
        # A signed-in caller's threads.list, far above MAX_REQUEST_BYTES: refused once the first
        # MAX_REQUEST_BYTES have named its type, with almost all of it still unsent.
        sock.sendall(_head(declared, token=_token()) + _padded("threads.list", declared)[: 2 * MAX_REQUEST_BYTES])
        status, headers, problem = _answer(sock, ANSWER_WITHIN)
    assert status.startswith(b"HTTP/1.1 413"), (status, problem)
    assert headers["content-type"].startswith("application/problem+json")
    assert headers.get("connection", "").lower() == "close"
    assert "MAX_REQUEST_BYTES" in problem["detail"] and "input.transcribe" in problem["detail"]

    audio = base64.b64encode(AUDIO).decode()
    auth = {"Authorization": f"Bearer {_token()}", "Content-Type": "application/json"}
    with httpx.Client(base_url=server.base_url, timeout=30, headers=auth) as http:
        # Dictation is allowed its size whichever order its keys come in.
        for body in (
            {"type": "input.transcribe", "params": {"audio_base64": audio, "mime_type": "audio/webm"}},
            {"params": {"mime_type": "audio/webm", "audio_base64": audio}, "type": "input.transcribe"},
        ):
            encoded = json.dumps(body).encode()
            assert len(encoded) > MAX_REQUEST_BYTES
            response = http.post("/chatkit", content=encoded)
            assert response.status_code == 200, response.text
            assert response.json() == {"text": fake.text}
        # A field that merely looks like dictation's buys no more room for another type.
        for body in (
            {"type": "threads.list", "params": {}, "metadata": {"audio_base64": "x" * (2 * MAX_REQUEST_BYTES)}},
            {"metadata": {"pad": "x" * (2 * MAX_REQUEST_BYTES)}, "type": "threads.list"},
        ):
            response = http.post("/chatkit", content=json.dumps(body).encode())
            assert response.status_code == 413, response.text
            assert "MAX_REQUEST_BYTES" in response.json()["detail"]


def test_a_trickled_body_is_answered_408_at_the_whole_body_deadline(server: LiveServer) -> None:
    declared = 1_000
    with _connect(server) as sock:
        sock.sendall(_head(declared, token=_token()) + b'{"type": "threads.list", "params": {}, "metadata": {"p": "')
        sent = 0
        # One byte every half second: never silent for HTTP_BODY_READ_TIMEOUT_SECONDS, and the
        # whole body would take over eight minutes.
        answer = b""
        while not answer:
            assert sent < 2 * ANSWER_WITHIN, "the trickled body is still being read"
            try:
                sock.sendall(b"x")
            except (BrokenPipeError, ConnectionResetError):
                break  # closed right after the answer, which is waiting in the socket
            sent += 1
            sock.settimeout(0.5)
            try:
                answer = sock.recv(65536, socket.MSG_PEEK)
            except TimeoutError:
                continue
        status, headers, problem = _answer(sock, ANSWER_WITHIN)
        assert status.startswith(b"HTTP/1.1 408"), (status, problem)
        assert headers["content-type"].startswith("application/problem+json")
        assert headers.get("connection", "").lower() == "close"
        assert "HTTP_BODY_TOTAL_TIMEOUT_SECONDS" not in problem["detail"]  # what to do, not our settings
        assert "in full" in problem["detail"]
        assert _closed_by_server(sock, ANSWER_WITHIN)
    # It was the whole-body deadline, not the per-chunk one: the bytes kept coming until the answer.
    assert sent > 2


def test_a_body_that_arrives_in_time_is_answered(server: LiveServer) -> None:
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        response = http.post(
            "/chatkit",
            json={"type": "threads.list", "params": {"limit": 5}},
            headers={"Authorization": f"Bearer {_token()}"},
        )
    assert response.status_code == 200, response.text
    assert response.json()["data"] == []
