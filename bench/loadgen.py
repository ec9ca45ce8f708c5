"""The load generator's HTTP/1.1 client, on asyncio streams (with uvloop) rather than httpx.

It runs on the same two cores as the server, so every microsecond it spends is taken from the thing
being measured, and it must cost the same for TaskPilot and for the floor. It records when each
chunk of a response arrives (granian sends each SSE frame as one chunk), which is what the
time-to-first-byte, time-to-last-byte and event-gap figures are made of."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from testkit import chatkit
from testkit.chatkit import event_type, sse_frames


class HttpError(Exception):
    pass


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    started: float  # perf_counter when the request was written
    first_byte: float  # when the first byte of the body arrived (the first SSE event)
    last_byte: float  # when the last byte arrived
    chunks: list[tuple[float, bytes]] = field(default_factory=list)  # only when kept

    @property
    def ttfb(self) -> float:
        return self.first_byte - self.started

    @property
    def ttlb(self) -> float:
        return self.last_byte - self.started


class HttpConnection:
    """One keep-alive HTTP/1.1 connection: request, then read a chunked or sized body."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=1 << 22)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        *,
        keep_chunks: bool = False,
        on_chunk: Callable[[float, bytes], None] | None = None,
    ) -> Response:
        if self.writer is None:
            await self.connect()
        assert self.reader is not None
        assert self.writer is not None
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        head += [f"{name}: {value}" for name, value in (headers or {}).items()]
        started = time.perf_counter()
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        reader = self.reader
        try:
            raw_head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            await self.close()
            raise HttpError(f"connection closed before a response: {exc!r}") from None
        lines = raw_head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        response_headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                response_headers[name.strip().lower()] = value.strip()
        first_byte = last_byte = 0.0
        parts: list[bytes] = []
        chunks: list[tuple[float, bytes]] = []
        if response_headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";", 1)[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                data = (await reader.readexactly(size + 2))[:-2]
                now = time.perf_counter()
                if not first_byte:
                    first_byte = now
                last_byte = now
                parts.append(data)
                if keep_chunks:
                    chunks.append((now, data))
                if on_chunk is not None:
                    on_chunk(now, data)
        else:
            length = int(response_headers.get("content-length", "0"))
            data = await reader.readexactly(length) if length else b""
            first_byte = last_byte = time.perf_counter()
            parts.append(data)
        if response_headers.get("connection", "").lower() == "close":
            await self.close()
        return Response(status, response_headers, b"".join(parts), started, first_byte, last_byte, chunks)


def event_types(body: bytes) -> Counter[str]:
    return Counter(event_type(frame) for frame in sse_frames(body))


# ---- threads.create ------------------------------------------------------------------------------


def threads_create(text: str) -> bytes:
    return json.dumps(chatkit.threads_create(text)).encode()


def dev_tokens(prefix: str, count: int) -> list[str]:
    """Development-mode bearer tokens for users `prefix0000`..; valid for two hours."""
    return [chatkit.dev_token(f"{prefix}{n:04d}", ttl_seconds=7200) for n in range(count)]


def auth_headers(token: str) -> dict[str, str]:
    return chatkit.json_headers(token)
