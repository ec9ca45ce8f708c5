"""The official `mcp` client against a live server: a session as one user, and a tool call's result."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.support.auth import token

TOOLS = {"add_task", "list_tasks", "get_task", "update_task", "complete_task", "delete_task", "task_summary"}


@asynccontextmanager
async def mcp_client(base_url: str, user: str) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token(user)}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(f"{base_url}/mcp", http_client=http)) as client,
    ):
        yield client


async def call(client: Client, name: str, arguments: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """(is_error, the JSON result)."""
    result = await client.call_tool(name, arguments)
    if result.is_error:
        text = result.content[0].text  # type: ignore[union-attr]
        return True, json.loads(text[text.index("{") :])
    assert result.structured_content is not None
    return False, result.structured_content
