"""The task tools over MCP: the real `mcp` client against a real server process over HTTP.

Every test here runs on the run's shared default server (`live_servers.get()`), as users of its own."""

from __future__ import annotations

import json

import httpx

from tests.support.auth import token
from tests.support.mcp import TOOLS, call, mcp_client
from tests.support.servers import ServerPool, unique_user


async def test_mcp_needs_a_valid_bearer_token(live_servers: ServerPool) -> None:
    server = live_servers.get()
    alice = unique_user("alice")
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    headers = {"Accept": "application/json, text/event-stream"}
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        for auth in ({}, {"Authorization": "Bearer not.a.jwt"}, {"Authorization": "Basic abc"}):
            response = http.post("/mcp", json=initialize, headers={**headers, **auth})
            assert response.status_code == 401, response.text
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.headers["www-authenticate"].startswith("Bearer")
            body = response.json()
            assert body["status"] == 401
            assert body["instance"] == "/mcp"
            assert body["detail"].startswith("Authentication failed")
        ok = http.post("/mcp", json=initialize, headers={**headers, "Authorization": f"Bearer {token(alice)}"})
        assert ok.status_code == 200, ok.text
        assert ok.json()["result"]["serverInfo"]["name"] == "TaskPilot"


async def test_mcp_client_lists_and_calls_the_tools_for_the_tokens_user(live_servers: ServerPool) -> None:
    server = live_servers.get()
    alice = unique_user("alice")
    async with mcp_client(server.base_url, alice) as client:
        listed = await client.list_tools()
        tools = {tool.name: tool for tool in listed.tools}
        assert set(tools) == TOOLS
        add = tools["add_task"]
        assert add.description
        assert "Create a task" in add.description
        assert add.input_schema["required"] == ["title"]
        assert add.input_schema["properties"]["due_date"]["description"].startswith("YYYY-MM-DD")
        assert "user_id" not in json.dumps([tool.input_schema for tool in listed.tools])
        assert tools["list_tasks"].annotations is not None
        assert tools["list_tasks"].annotations.read_only_hint
        assert tools["delete_task"].annotations is not None
        assert tools["delete_task"].annotations.destructive_hint

        error, created = await call(
            client, "add_task", {"title": "Write report", "due_date": "2000-01-02", "tags": ["Work"]}
        )
        assert not error
        assert created["task"]["number"] == 1
        assert created["task"]["overdue"] is True
        assert created["changed_ids"] == [created["task"]["id"]]
        await call(client, "add_task", {"title": "Buy milk", "priority": "low"})

        error, listed_tasks = await call(client, "list_tasks", {"tag": "work"})
        assert not error
        assert [t["title"] for t in listed_tasks["tasks"]] == ["Write report"]
        error, done = await call(client, "complete_task", {"task": 1})
        assert not error
        assert done["task"]["completed"] is True
        error, updated = await call(client, "update_task", {"task": "2", "priority": "high", "clear": ["tags"]})
        assert not error
        assert updated["task"]["priority"] == "high"
        error, summary = await call(client, "task_summary", {})
        assert not error
        assert (summary["summary"]["open"], summary["summary"]["completed"]) == (1, 1)

        error, failure = await call(client, "get_task", {"task": 99})
        assert error
        assert failure["ok"] is False
        assert "#99" in failure["error"]
        error, failure = await call(client, "add_task", {"title": "x", "due_date": "someday"})
        assert error
        assert failure["field"] == "due_date"

    # The same rows through REST, for the same user.
    rest = httpx.get(
        f"{server.base_url}/api/tasks", headers={"Authorization": f"Bearer {token(alice)}"}, timeout=10
    ).json()
    assert [(t["number"], t["title"], t["completed"]) for t in rest["items"]] == [
        (1, "Write report", True),
        (2, "Buy milk", False),
    ]


async def test_mcp_isolates_users(live_servers: ServerPool) -> None:
    server = live_servers.get()
    alice, bob = unique_user("alice"), unique_user("bob")
    alice_headers = {"Authorization": f"Bearer {token(alice)}"}
    secret = httpx.post(
        f"{server.base_url}/api/tasks", json={"title": "Alice's secret"}, headers=alice_headers, timeout=10
    ).json()
    async with mcp_client(server.base_url, bob) as client:
        error, listed = await call(client, "list_tasks", {"status": "all"})
        assert not error
        assert listed["tasks"] == []
        assert listed["total"] == 0
        for name, arguments in [
            ("get_task", {"task": secret["id"]}),
            ("get_task", {"task": 1}),
            ("update_task", {"task": secret["id"], "title": "hijacked"}),
            ("complete_task", {"task": secret["id"]}),
            ("delete_task", {"task": secret["id"]}),
        ]:
            error, result = await call(client, name, arguments)
            assert error, name
            assert result["ok"] is False
        error, own = await call(client, "add_task", {"title": "Bob's task"})
        assert not error
        assert own["task"]["number"] == 1
    after = httpx.get(f"{server.base_url}/api/tasks", headers=alice_headers, timeout=10).json()
    assert [(t["title"], t["completed"]) for t in after["items"]] == [("Alice's secret", False)]
    bob_rest = httpx.get(
        f"{server.base_url}/api/tasks", headers={"Authorization": f"Bearer {token(bob)}"}, timeout=10
    ).json()
    assert [t["title"] for t in bob_rest["items"]] == ["Bob's task"]


async def test_mcp_get_answers_405_instead_of_holding_an_event_stream(live_servers: ServerPool) -> None:
    server = live_servers.get()
    alice = unique_user("alice")
    headers = {"Accept": "text/event-stream", "Authorization": f"Bearer {token(alice)}"}
    # A short read timeout: before the fix GET opened an SSE stream that never ended.
    with httpx.Client(base_url=server.base_url, timeout=httpx.Timeout(5, read=3)) as http:
        for method, auth in (("GET", headers), ("GET", {"Accept": "text/event-stream"}), ("DELETE", headers)):
            response = http.request(method, "/mcp", headers=auth)
            assert response.status_code == 405, (method, response.text[:200])
            assert response.headers["allow"] == "POST"
            assert response.headers["content-type"].startswith("application/problem+json")
            body = response.json()
            assert body["status"] == 405
            assert body["instance"] == "/mcp"
            assert "POST" in body["detail"]
    # The official client still works against a server that has no GET stream.
    async with mcp_client(server.base_url, alice) as client:
        assert {tool.name for tool in (await client.list_tools()).tools} == TOOLS
