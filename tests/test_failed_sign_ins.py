"""Failed sign-ins are counted wherever a credential is checked, by one rule (`RATE_LIMIT_ANONYMOUS_PER_MINUTE`
per client address): bearer tokens on REST and ChatKit, bearer tokens on `/mcp`, and the signed `?token=` of
attachment URLs. Each path is driven over real HTTP against a granian process with a small limit.
"""

from __future__ import annotations

from typing import Any

import httpx

LIMIT = 3
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Authorization": "Bearer not.a.jwt"}
ATTACHMENT = "/api/chatkit/attachments/atc_0123456789abcdef"


def _server(live_server_factory: Any) -> Any:
    return live_server_factory({"RATE_LIMIT_ANONYMOUS_PER_MINUTE": str(LIMIT)})


def assert_too_many_sign_ins(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == 429
    assert "failed sign-in" in body["detail"]
    # 3 per minute: one more attempt every 20 s once the burst is spent.
    assert 1 <= int(response.headers["retry-after"]) <= 20


def test_failed_mcp_sign_ins_are_limited(live_server_factory: Any) -> None:
    server = _server(live_server_factory)
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        statuses = [http.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS).status_code for _ in range(LIMIT)]
        assert statuses == [401] * LIMIT
        refused = http.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS)
        assert_too_many_sign_ins(refused)
        assert refused.json()["instance"] == "/mcp"


def test_failed_signed_url_tokens_are_limited(live_server_factory: Any) -> None:
    server = _server(live_server_factory)
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        attempts = [
            http.get(ATTACHMENT, params={"token": "forged.token"}),
            http.put(f"{ATTACHMENT}/upload", params={"token": "forged.token"}, content=b"hello"),
            http.get(ATTACHMENT, params={"token": "bm90LWEtdG9rZW4.AAAA"}),
        ]
        assert [r.status_code for r in attempts] == [401] * LIMIT, [r.text for r in attempts]
        assert_too_many_sign_ins(http.get(ATTACHMENT, params={"token": "forged.token"}))
        assert_too_many_sign_ins(http.put(f"{ATTACHMENT}/upload", params={"token": "forged"}, content=b"x"))


def test_wrong_metrics_tokens_are_limited(live_server_factory: Any) -> None:
    server = live_server_factory(
        {"RATE_LIMIT_ANONYMOUS_PER_MINUTE": str(LIMIT), "METRICS_TOKEN": "scrape-secret-0123456789"}
    )
    wrong = {"Authorization": "Bearer guess"}
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        assert [http.get("/metrics", headers=wrong).status_code for _ in range(LIMIT)] == [401] * LIMIT
        assert_too_many_sign_ins(http.get("/metrics", headers=wrong))


def test_failed_sign_ins_share_one_budget_across_rest_mcp_and_signed_urls(live_server_factory: Any) -> None:
    server = _server(live_server_factory)
    bad = {"Authorization": "Bearer not-a-token"}
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        assert http.get("/api/tasks", headers=bad).status_code == 401
        assert http.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS).status_code == 401
        assert http.get(ATTACHMENT, params={"token": "forged.token"}).status_code == 401
        # The budget is spent, whichever door the next guess knocks on.
        assert_too_many_sign_ins(http.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS))
        assert_too_many_sign_ins(http.get(ATTACHMENT, params={"token": "forged.token"}))
        assert_too_many_sign_ins(http.get("/api/tasks", headers=bad))
        refusals = [
            line
            for line in http.get("/metrics").text.splitlines()
            if line.startswith('taskpilot_rate_limited_total{limit="failed_sign_ins"}')
        ]
        assert refusals == ['taskpilot_rate_limited_total{limit="failed_sign_ins"} 3.0']
