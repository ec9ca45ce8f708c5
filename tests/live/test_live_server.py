"""A real granian process on a loopback port: health, readiness, auth, errors over real HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Any

import httpx
from testkit.processes import child_pids

from tests.support.servers import LiveServer, ServerPool, run_cli, unique_user


def _ready_when_idle(client: httpx.Client) -> httpx.Response:
    """/ready once no stream is open: the server is shared, and a stream an earlier test let go of
    may still be winding down."""
    deadline = time.monotonic() + 15
    while True:
        ready = client.get("/ready")
        streams = ready.json().get("streams", {})
        if (streams.get("open"), streams.get("waiting")) == (0, 0) or time.monotonic() > deadline:
            return ready
        time.sleep(0.2)


def test_health_ready_and_auth_over_real_http(live_servers: ServerPool) -> None:
    server = live_servers.get()
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        health = client.get("/health")
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
        assert health.headers["x-request-id"]

        ready = _ready_when_idle(client)
        assert ready.status_code == 200
        body = ready.json()
        # The adaptive limit starts at CHATKIT_MIN_STREAMS (50) and may have grown while earlier
        # tests used this shared server; it stays under CHATKIT_MAX_STREAMS (1000).
        limit = body["streams"].pop("limit")
        assert 50 <= limit <= 1000, limit
        assert body == {
            "status": "ready",
            "database": "ok",
            "rate_limits": "ok",
            "streams": {"open": 0, "waiting": 0},
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
    # A server of its own: the pool migrates every database it starts on, and this one cannot be reached.
    server: LiveServer = live_server_factory(
        {"DATABASE_URL": "postgresql+asyncpg://nobody:secretpw@127.0.0.1:1/none"}, migrate=False
    )
    response = httpx.get(f"{server.base_url}/ready", timeout=20)
    assert response.status_code == 503
    body = response.json()
    assert body["database"] == "unreachable"
    assert "secretpw" not in response.text
    assert "secretpw" not in server.log()


def test_dev_token_from_cli_is_accepted(live_servers: ServerPool) -> None:
    server = live_servers.get()
    token = run_cli(["token", "--user", unique_user("alice")], server.env).stdout.strip()
    assert token.count(".") == 2
    # The CLI and the server share the development secret, so the server accepts it.
    response = httpx.get(f"{server.base_url}/api/tasks", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code != 401


def test_a_worker_that_does_not_stop_is_killed_and_the_instance_stops(live_server_factory: Any) -> None:
    """A SIGTERM that reaches a worker still starting is lost (granian's respawn after a crash, or
    the instance's start), and granian then waited on that worker until an orchestrator's SIGKILL.
    A stopped worker is the same worker, without the race: the instance must still stop, by
    granian's kill after SHUTDOWN_GRACE_SECONDS and the margin (app.ops.serving)."""
    server: LiveServer = live_server_factory({"WORKERS": "2", "SHUTDOWN_GRACE_SECONDS": "0", "LOG_LEVEL": "info"})
    assert server.all_workers_started(60), server.log()[-2000:]
    stuck = sorted(child_pids(server.process.pid))[0]
    os.kill(stuck, signal.SIGSTOP)
    server.signal_stop()
    try:
        # Bounded, not timed: without the kill timeout granian waits forever (the stop's default
        # 15 s would then kill it, and the status says so).
        status = server.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"granian did not stop: {server.log()[-2000:]}") from None
    finally:
        server.stop()
    assert status == 0, server.log()[-2000:]
    assert "refused to gracefully stop" in server.log()
