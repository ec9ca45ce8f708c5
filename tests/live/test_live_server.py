"""A real granian process on a loopback port: health, readiness, auth, errors over real HTTP."""

from __future__ import annotations

import httpx


def test_health_ready_and_auth_over_real_http(live_server_factory) -> None:
    server = live_server_factory()
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        health = client.get("/health")
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
        assert health.headers["x-request-id"]

        ready = client.get("/ready")
        assert ready.status_code == 200
        assert ready.json() == {
            "status": "ready",
            "database": "ok",
            "rate_limits": "ok",
            "streams": {"open": 0, "limit": 50, "waiting": 0},
        }

        status = client.get("/api/chatkit/health").json()
        assert status["self_hosted"]["model_provider"] == "offline"
        assert status["hosted"]["missing"] == ["OPENAI_API_KEY", "CHATKIT_WORKFLOW_ID"]

        unauthenticated = client.get("/api/tasks")
        assert unauthenticated.status_code == 401
        assert unauthenticated.headers["content-type"].startswith("application/problem+json")
        body = unauthenticated.json()
        assert body["status"] == 401
        assert "Authorization: Bearer" in body["detail"]
        assert unauthenticated.headers["www-authenticate"].startswith("Bearer")

        forged = client.get("/api/tasks", headers={"Authorization": "Bearer not.a.jwt"})
        assert forged.status_code == 401

        missing = client.get("/no/such/route", headers={"X-Request-ID": "trace-123"})
        assert missing.status_code == 404
        assert missing.json()["request_id"] == "trace-123"


def test_ready_reports_unreachable_database(live_server_factory) -> None:
    server = live_server_factory(
        {"DATABASE_URL": "postgresql+asyncpg://nobody:secretpw@127.0.0.1:1/none"}, migrate=False
    )
    response = httpx.get(f"{server.base_url}/ready", timeout=20)
    assert response.status_code == 503
    body = response.json()
    assert body["database"] == "unreachable"
    assert "secretpw" not in response.text
    assert "secretpw" not in server.log()


def test_dev_token_from_cli_is_accepted(live_server_factory, tmp_path) -> None:
    from tests.support.servers import run_cli

    server = live_server_factory()
    token = run_cli(["token", "--user", "alice"], server.env).stdout.strip()
    assert token.count(".") == 2
    # The CLI and the server share the development secret, so the server accepts it.
    response = httpx.get(f"{server.base_url}/api/tasks", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code != 401
