"""Entity tags as the page's composer sends them, and the task calls the tag tests make around them
(tests/live/test_entity_tags.py, tests/live/test_tag_and_choice_attacks.py)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.support import auth
from tests.support.fake_model_server import TITLE_MARKER, FakeModelServer


def bearer(user: str) -> dict[str, str]:
    """The headers the tag tests send: `user`'s token and the page's `Time-Zone: UTC`."""
    return auth.bearer(user, time_zone="UTC")


def tag(task: dict[str, Any], text: str | None = None) -> dict[str, Any]:
    """An `input_tag` as the page's composer sends it for an entity from `entities.onTagSearch`."""
    return {
        "type": "input_tag",
        "id": task["id"],
        "text": text if text is not None else task["title"],
        "data": {"type": "task", "task_id": task["id"], "number": str(task.get("number", ""))},
        "interactive": True,
    }


def tagged_input(*parts: str | dict[str, Any]) -> dict[str, Any]:
    content = [{"type": "input_text", "text": part} if isinstance(part, str) else part for part in parts]
    return {"content": content, "attachments": [], "inference_options": {}}


async def add(http: httpx.AsyncClient, user: str, title: str) -> dict[str, Any]:
    response = await http.post("/api/tasks", json={"title": title}, headers=bearer(user))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def task_of(http: httpx.AsyncClient, user: str, task_id: str) -> dict[str, Any]:
    response = await http.get(f"/api/tasks/{task_id}", headers=bearer(user))
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def turn_input(fake: FakeModelServer) -> str:
    """What the last turn (not the thread-title request) sent the model."""
    turns = [r for r in fake.requests if TITLE_MARKER not in json.dumps(r.get("instructions") or "")]
    return json.dumps(turns[-1]["input"], ensure_ascii=False)
