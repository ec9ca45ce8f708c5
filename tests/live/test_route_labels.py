"""Logs and metrics name each request by its full route template, so dashboards can tell routes apart."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.support.servers import LiveServer


def _access_lines(server: LiveServer) -> list[dict[str, Any]]:
    lines = []
    for raw in server.log().splitlines():
        if raw.startswith("{") and '"logger": "app.access"' in raw:
            lines.append(json.loads(raw))
    return lines


def test_requests_are_labelled_by_their_full_route_template(live_server_factory: Any) -> None:
    server: LiveServer = live_server_factory({})
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        token = http.post("/api/dev/token", json={"user_id": "lea"}).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        http.get("/")
        http.get("/api/tasks", headers=auth)
        task = http.post("/api/tasks", json={"title": "Label me"}, headers=auth).json()
        http.get(f"/api/tasks/{task['id']}", headers=auth)
        http.put("/api/chatkit/attachments/atc_missing/upload", content=b"x", headers=auth)
        http.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers=auth)
        metrics = http.get("/metrics").text

    routes = {(line["method"], line["path"]): line["route"] for line in _access_lines(server)}
    assert routes[("GET", "/")] == "/"
    assert routes[("GET", "/api/tasks")] == "/api/tasks"
    assert routes[("POST", "/api/tasks")] == "/api/tasks"
    assert routes[("GET", f"/api/tasks/{task['id']}")] == "/api/tasks/{task_id}"
    assert (
        routes[("PUT", "/api/chatkit/attachments/atc_missing/upload")]
        == "/api/chatkit/attachments/{attachment_id}/upload"
    )
    assert routes[("POST", "/mcp")] == "/mcp"
    assert 'route="/api/tasks/{task_id}"' in metrics
    assert 'route="/mcp"' in metrics
