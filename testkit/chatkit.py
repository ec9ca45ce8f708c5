"""ChatKit requests as a front end sends them, the SSE frames they answer with, and dev tokens."""

from __future__ import annotations

import json
from typing import Any


def user_input(text: str, attachments: list[str] | None = None) -> dict[str, Any]:
    return {
        "content": [{"type": "input_text", "text": text}],
        "attachments": attachments or [],
        "inference_options": {},
    }


def threads_create(text: str) -> dict[str, Any]:
    return {"type": "threads.create", "params": {"input": user_input(text)}}


def add_user_message(thread_id: str, text: str) -> dict[str, Any]:
    return {"type": "threads.add_user_message", "params": {"thread_id": thread_id, "input": user_input(text)}}


def sse_frames(body: bytes) -> list[bytes]:
    """The frames of an SSE body, each with its trailing blank line (as they were sent)."""
    return [frame + b"\n\n" for frame in body.split(b"\n\n") if frame.strip()]


def event_type(frame: bytes) -> str:
    """The ChatKit event type of a `data: {...}` frame ("keepalive" for comments)."""
    if frame.startswith(b":"):
        return "keepalive"
    try:
        event = json.loads(frame.removeprefix(b"data: "))
    except ValueError:
        return "?"
    kind = str(event.get("type", "?"))
    update = event.get("update")
    if isinstance(update, dict) and update.get("type"):
        kind += ":" + str(update["type"])
    return kind


def dev_token(user: str, *, ttl_seconds: int = 24 * 3600) -> str:
    """A development token signed with the default development secret (what test servers use)."""
    from app.http.auth import mint_dev_token
    from app.settings import Settings

    return mint_dev_token(Settings.from_env({}), user, ttl_seconds=ttl_seconds)


def json_headers(token: str, *, time_zone: str | None = "UTC") -> dict[str, str]:
    """Headers of a JSON request as a page sends them: the bearer token and the user's `Time-Zone`
    (without one, a turn that needs today's date first asks the page through a client tool)."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if time_zone is not None:
        headers["Time-Zone"] = time_zone
    return headers
