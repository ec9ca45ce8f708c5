"""Logs and metrics name each request by its full route template, so dashboards can tell routes apart.

Runs on the run's shared default server: it reads only the access lines of its own requests (each
carries an `X-Request-ID` of this test's) and the metrics' change over its requests."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from tests.support.servers import LiveServer, ServerPool, unique_user


def _access_lines(server: LiveServer, request_ids: str) -> list[dict[str, Any]]:
    lines = []
    for raw in server.log().splitlines():
        if raw.startswith("{") and '"logger": "app.access"' in raw:
            line = json.loads(raw)
            if str(line.get("request_id", "")).startswith(request_ids):
                lines.append(line)
    return lines


def _requests_by_route(metrics: str) -> dict[str, float]:
    """`taskpilot_http_requests_total` summed over method and status, by route label."""
    counts: dict[str, float] = {}
    for line in metrics.splitlines():
        if line.startswith("taskpilot_http_requests_total{") and 'route="' in line:
            route = line.split('route="', 1)[1].split('"', 1)[0]
            counts[route] = counts.get(route, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def test_requests_are_labelled_by_their_full_route_template(live_servers: ServerPool) -> None:
    server = live_servers.get()
    mine = f"labels-{uuid.uuid4().hex[:12]}"
    numbers = iter(range(100))

    def own(headers: dict[str, str] | None = None) -> dict[str, str]:
        return {**(headers or {}), "X-Request-ID": f"{mine}-{next(numbers)}"}

    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        before = _requests_by_route(http.get("/metrics").text)
        token = http.post("/api/dev/token", json={"user_id": unique_user("lea")}, headers=own()).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        http.get("/", headers=own())
        http.get("/api/tasks", headers=own(auth))
        task = http.post("/api/tasks", json={"title": "Label me"}, headers=own(auth)).json()
        http.get(f"/api/tasks/{task['id']}", headers=own(auth))
        http.put("/api/chatkit/attachments/atc_missing/upload", content=b"x", headers=own(auth))
        http.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers=own(auth))
        metrics = http.get("/metrics").text

    routes = {(line["method"], line["path"]): line["route"] for line in _access_lines(server, mine)}
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
    after = _requests_by_route(metrics)
    for route in ("/api/tasks/{task_id}", "/mcp"):
        assert after.get(route, 0.0) - before.get(route, 0.0) == 1, (route, before, after)
