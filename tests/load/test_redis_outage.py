"""Redis going away must not switch the rate limits off: a real granian process, its limits in a
redis-server of this test's own (never the shared one), killed and restarted under it.

While Redis is unreachable every limit falls back to per-instance memory, `/ready` stays 200 but
says so, and `taskpilot_rate_limits_degraded` is 1; when Redis returns the counters move back.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from testkit.processes import free_port

from app.http.auth import mint_dev_token
from app.settings import Settings
from tests.support.chatkit_client import ChatKitClient

DEGRADED = "degraded (in-memory, Redis unreachable)"
SIGN_IN_LIMIT = 3


class RedisProcess:
    """A throwaway redis-server on a loopback port; `stop()` and `start()` again on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with redis.Redis.from_url(self.url, socket_timeout=0.5, socket_connect_timeout=0.5) as client:
                    client.ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        raise AssertionError("redis-server did not answer in 10 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def keys(self, pattern: str) -> list[bytes]:
        with redis.Redis.from_url(self.url, socket_timeout=1) as client:
            return list(client.scan_iter(match=pattern))


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = RedisProcess()
    server.start()
    yield server
    server.stop()


def _ready(http: httpx.Client) -> dict[str, Any]:
    response = http.get("/ready")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _degraded_gauge(http: httpx.Client) -> float:
    for line in http.get("/metrics").text.splitlines():
        if line.startswith("taskpilot_rate_limits_degraded "):
            return float(line.split()[1])
    raise AssertionError("taskpilot_rate_limits_degraded is not exported")


def _sign_in_budget_is_enforced(http: httpx.Client) -> None:
    bad = {"Authorization": "Bearer not-a-token"}
    statuses = [http.get("/api/tasks", headers=bad).status_code for _ in range(SIGN_IN_LIMIT + 1)]
    assert statuses == [401] * SIGN_IN_LIMIT + [429]


def _wait_for_ready_state(http: httpx.Client, state: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while True:
        body = _ready(http)
        if body["rate_limits"] == state or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


async def test_limits_stay_on_in_memory_while_redis_is_down_and_return_to_redis(
    live_server_factory: Any, own_redis: RedisProcess
) -> None:
    server = live_server_factory(
        {
            "REDIS_URL": own_redis.url,
            "RATE_LIMIT_ANONYMOUS_PER_MINUTE": str(SIGN_IN_LIMIT),
            "RATE_LIMIT_CHAT_PER_MINUTE": "1",
        }
    )
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        assert _ready(http)["rate_limits"] == "ok"
        assert _degraded_gauge(http) == 0
        _sign_in_budget_is_enforced(http)
        assert own_redis.keys("taskpilot:rl:anonymous:*"), "the counters should live in Redis while it is up"

        own_redis.stop()
        body = _ready(http)
        assert body["status"] == "ready"  # the service still works
        assert body["rate_limits"] == DEGRADED
        assert _degraded_gauge(http) == 1
        # Every limit is still enforced, from this instance's memory.
        _sign_in_budget_is_enforced(http)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as chat_http:
            alice = ChatKitClient(chat_http, mint_dev_token(Settings.from_env({}), "alice"))
            first = await alice.create_thread("add a task to buy milk")
            assert first.status == 200
            refused = await alice.raw(
                {
                    "type": "threads.add_user_message",
                    "params": {
                        "thread_id": first.thread_id,
                        "input": {
                            "content": [{"type": "input_text", "text": "show my tasks"}],
                            "attachments": [],
                            "inference_options": {},
                        },
                    },
                }
            )
            assert refused.status_code == 429, refused.text
            assert int(refused.headers["retry-after"]) >= 1

        own_redis.start()  # same port, empty: the counters start again in Redis
        assert _wait_for_ready_state(http, "ok")["rate_limits"] == "ok"
        assert _degraded_gauge(http) == 0
        _sign_in_budget_is_enforced(http)
        assert own_redis.keys("taskpilot:rl:anonymous:*"), "the counters should be back in Redis"
