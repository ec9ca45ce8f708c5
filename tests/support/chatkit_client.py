"""A small ChatKit protocol client for tests: real HTTP, SSE frames parsed with `chatkit.types`.

Every request it sends and every frame and answer it receives is also checked against
openapi/openapi.json by the suite-wide contract hook on httpx (tests/support/contract.py), independently
of the library's own pydantic parsing here."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
from chatkit.types import ThreadStreamEvent
from pydantic import TypeAdapter
from testkit.chatkit import user_input

EVENT_ADAPTER: TypeAdapter[ThreadStreamEvent] = TypeAdapter(ThreadStreamEvent)


@dataclass
class StreamResult:
    status: int
    headers: httpx.Headers
    events: list[Any] = field(default_factory=list)
    raw_frames: list[str] = field(default_factory=list)
    keepalives: int = 0
    body: Any = None

    def of_type(self, kind: str) -> list[Any]:
        return [e for e in self.events if e.type == kind]

    @property
    def thread_id(self) -> str:
        created = self.of_type("thread.created")
        return str(created[0].thread.id)

    def assistant_text(self) -> str:
        done = [
            e.item
            for e in self.events
            if e.type == "thread.item.done" and getattr(e.item, "type", "") == "assistant_message"
        ]
        return "\n".join(c.text for item in done for c in item.content)


def parse_sse(text: str) -> tuple[list[str], int]:
    """Data frames and the number of comment (keepalive) frames in an SSE body."""
    frames: list[str] = []
    comments = 0
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        data_lines = []
        for line in block.split("\n"):
            if line.startswith(":"):
                comments += 1
            elif line.startswith("data: "):
                data_lines.append(line[len("data: ") :])
        if data_lines:
            frames.append("\n".join(data_lines))
    return frames, comments


class ChatKitClient:
    """Speaks ChatKit to a server over httpx (sync or async transport given by the caller)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        token: str,
        path: str = "/chatkit",
        *,
        time_zone: str | None = None,
        client_tools: str | None = None,
    ) -> None:
        self.client = client
        self.token = token
        self.path = path
        self.time_zone = time_zone  # sent as the Time-Zone header when set
        # Sent as ChatKit-Client-Tools when set: the client tools this front end answers ("get_time_zone").
        self.client_tools = client_tools

    @property
    def headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        if self.time_zone is not None:
            headers["Time-Zone"] = self.time_zone
        if self.client_tools is not None:
            headers["ChatKit-Client-Tools"] = self.client_tools
        return headers

    async def raw(self, body: Any) -> httpx.Response:
        content = body if isinstance(body, bytes | str) else json.dumps(body)
        return await self.client.post(self.path, content=content, headers=self.headers)

    async def request(self, kind: str, params: dict[str, Any] | None = None) -> StreamResult:
        body: dict[str, Any] = {"type": kind}
        if params is not None:
            body["params"] = params
        response = await self.raw(body)
        result = StreamResult(status=response.status_code, headers=response.headers)
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            frames, result.keepalives = parse_sse(response.text)
            result.raw_frames = frames
            result.events = [EVENT_ADAPTER.validate_json(frame) for frame in frames]
        else:
            result.body = response.json() if response.content else None
        return result

    async def create_thread(self, text: str, **extra: Any) -> StreamResult:
        return await self.request("threads.create", {"input": user_input(text, extra.get("attachments"))})

    async def send(self, thread_id: str, text: str, **extra: Any) -> StreamResult:
        return await self.request(
            "threads.add_user_message",
            {"thread_id": thread_id, "input": user_input(text, extra.get("attachments"))},
        )

    async def send_input(self, thread_id: str, input: dict[str, Any]) -> StreamResult:
        """A user message of any content (text and `input_tag` parts, as a composer sends them)."""
        return await self.request("threads.add_user_message", {"thread_id": thread_id, "input": input})

    async def get_thread(self, thread_id: str) -> StreamResult:
        return await self.request("threads.get_by_id", {"thread_id": thread_id})

    async def items(self, thread_id: str, **params: Any) -> StreamResult:
        return await self.request("items.list", {"thread_id": thread_id, **params})
