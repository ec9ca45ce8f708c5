"""Failed sign-ins are counted wherever a credential is checked, by one rule (`RATE_LIMIT_ANONYMOUS_PER_MINUTE`
per client address): bearer tokens on REST and ChatKit, bearer tokens on `/mcp`, and the signed `?token=` of
attachment URLs. Each path is driven over real HTTP against a granian process with a small limit.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import httpx
import pytest
from testkit.processes import free_port

from app.http.proxies import forwarded_client
from app.settings import Settings, SettingsError
from tests.load.test_load_balancer import _haproxy, _start_haproxy

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


def _from(address: str, base_url: str) -> httpx.Client:
    """A client whose connections come from `address` (any 127.x.y.z is this machine's loopback)."""
    return httpx.Client(base_url=base_url, timeout=10, transport=httpx.HTTPTransport(local_address=address))


@pytest.mark.timeout(120)
def test_behind_haproxy_each_client_address_has_its_own_failed_sign_in_budget(
    live_server_factory: Any, tmp_path: Path
) -> None:
    """HAProxy (deploy/haproxy.cfg) connects from 127.0.0.1, which TRUSTED_PROXIES names: the budget is
    keyed on the client address it forwards, and X-Forwarded-For from anyone else is ignored."""
    binary = _haproxy()
    server = live_server_factory({"RATE_LIMIT_ANONYMOUS_PER_MINUTE": str(LIMIT), "TRUSTED_PROXIES": "127.0.0.1"})
    port = free_port()
    haproxy = _start_haproxy(binary, port, server, server, tmp_path / "haproxy.log")
    bad = {"Authorization": "Bearer not-a-token"}
    balancer = f"http://127.0.0.1:{port}"
    try:
        with _from("127.0.0.2", balancer) as first, _from("127.0.0.3", balancer) as second:
            # The first client spends its budget, each guess claiming to come from somewhere else:
            # HAProxy appends the address it saw, and that is the one counted.
            for n in range(LIMIT):
                spoofed = {**bad, "X-Forwarded-For": f"10.0.0.{n}"}
                assert first.get("/api/tasks", headers=spoofed).status_code == 401
            assert_too_many_sign_ins(first.get("/api/tasks", headers={**bad, "X-Forwarded-For": "10.0.0.99"}))
            assert_too_many_sign_ins(first.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS))
            # Another client behind the same HAProxy has a budget of its own.
            assert second.get("/api/tasks", headers=bad).status_code == 401
            assert second.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS).status_code == 401
        # Straight to the server from a peer that is not a trusted proxy: the header is not believed.
        with _from("127.0.0.4", server.base_url) as direct:
            for n in range(LIMIT):
                assert direct.get("/api/tasks", headers={**bad, "X-Forwarded-For": f"10.1.0.{n}"}).status_code == 401
            assert_too_many_sign_ins(direct.get("/api/tasks", headers={**bad, "X-Forwarded-For": "10.1.0.99"}))
    finally:
        haproxy.terminate()
        haproxy.wait(timeout=10)


def test_the_forwarded_client_is_the_rightmost_hop_that_is_not_a_trusted_proxy() -> None:
    proxies = [ipaddress.ip_network("10.0.0.0/24"), ipaddress.ip_network("::1/128")]
    assert forwarded_client("10.0.0.5", ["203.0.113.7"], proxies) == "203.0.113.7"
    # What the client wrote itself (left of the hop the proxy appended) is never believed.
    assert forwarded_client("10.0.0.5", ["1.2.3.4, 203.0.113.7"], proxies) == "203.0.113.7"
    assert forwarded_client("10.0.0.5", ["1.2.3.4", "203.0.113.7"], proxies) == "203.0.113.7"
    # A chain of trusted proxies is skipped.
    assert forwarded_client("::1", ["203.0.113.7, 10.0.0.9"], proxies) == "203.0.113.7"
    # From an untrusted peer, or when the hop a proxy added is not an address: the peer counts.
    assert forwarded_client("192.0.2.1", ["203.0.113.7"], proxies) is None
    assert forwarded_client("10.0.0.5", ["203.0.113.7, garbage"], proxies) is None
    assert forwarded_client("10.0.0.5", [",".join(["203.0.113.7"] * 17)], proxies) is None


def test_trusted_proxies_must_be_addresses_or_networks() -> None:
    assert Settings.from_env({"TRUSTED_PROXIES": "10.0.0.5, 10.1.0.0/16,::1"}).trusted_proxies == (
        "10.0.0.5/32",
        "10.1.0.0/16",
        "::1/128",
    )
    assert Settings.from_env({}).trusted_proxies == ()
    with pytest.raises(SettingsError, match="TRUSTED_PROXIES contains 'haproxy'"):
        Settings.from_env({"TRUSTED_PROXIES": "10.0.0.5,haproxy"})
