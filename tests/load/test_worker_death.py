"""A worker's death is not the instance's: `taskpilot serve` with two workers on PostgreSQL.

A worker is SIGKILLed (what the OOM killer does) while it carries a ChatKit stream and a load loop
runs: the instance keeps answering on the other worker, granian starts a replacement, the cut
stream ends in a way the client can tell from a finished one, and the user's message of that
stream is stored (it is saved before the model runs).

The test starts its own server process: it kills that server's workers, which no shared server
may suffer.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import httpx
import psutil
import pytest
from testkit.chatkit import threads_create as create_body

from tests.conftest import create_schema
from tests.support.chatkit_client import EVENT_ADAPTER
from tests.support.production import headers_for, stored_items, token
from tests.support.production import listening_workers as _workers
from tests.support.servers import LiveServer

# Upper bound on the load loop, so it ends even if the test's own stop signal never comes.
LOAD_REQUESTS = 2000


@dataclass
class Load:
    """Requests of the load loop, each on its own connection: (started, ended, outcome)."""

    outcomes: list[tuple[float, float, str]] = field(default_factory=list)
    kills: list[tuple[float, float]] = field(default_factory=list)  # (signal sent, process gone)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def kill(self, pid: int) -> None:
        sent = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        with suppress(psutil.NoSuchProcess):
            psutil.Process(pid).wait(timeout=10)
        self.kills.append((sent, time.monotonic()))

    def failed_outside_a_kill(self) -> list[str]:
        """Failures of requests that were not in flight while a worker died."""
        return [
            f"{outcome} at {started:.3f}-{ended:.3f}"
            for started, ended, outcome in self.outcomes
            if outcome != "200" and not any(started <= gone and ended >= sent for sent, gone in self.kills)
        ]

    def answered_after(self, instant: float) -> int:
        return sum(1 for started, _, outcome in self.outcomes if started > instant and outcome == "200")


async def _load_loop(base_url: str, path: str, headers: dict[str, str], load: Load) -> None:
    # No keep-alive: a request that starts after the kill must not reuse a connection the dead
    # worker had accepted (that one is cut with it, which is the point of the stream below).
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as http:
        for _ in range(LOAD_REQUESTS):
            if load.stop.is_set():
                return
            started = time.monotonic()
            try:
                outcome = str((await http.get(path, headers=headers)).status_code)
            except httpx.HTTPError as exc:
                outcome = type(exc).__name__
            load.outcomes.append((started, time.monotonic(), outcome))


def _worker_serving(workers: set[int], client_port: int) -> int:
    """The worker that holds the server side of the connection from `client_port`."""
    for pid in workers:
        for connection in psutil.Process(pid).net_connections(kind="tcp"):
            if connection.raddr and connection.raddr.port == client_port:
                return pid
    raise AssertionError(f"no worker of {workers} holds the connection from port {client_port}")


@pytest.mark.timeout(240)
async def test_a_killed_worker_is_respawned_and_the_instance_keeps_answering(
    live_server_factory: Any, fresh_postgres_url: str
) -> None:
    await create_schema(fresh_postgres_url)
    server: LiveServer = live_server_factory(
        {
            "DATABASE_URL": fresh_postgres_url,
            "WORKERS": "2",
            # Slow deltas hold the stream open while its worker is killed.
            "OFFLINE_MODEL_DELAY_MS": "300",
            # granian says "Started worker-N" at info: the test waits for both replacements.
            "LOG_LEVEL": "info",
        },
        migrate=False,
        via_cli=True,
        ready_seconds=120,
    )
    port = int(server.base_url.rsplit(":", 1)[1])
    deadline = time.monotonic() + 120
    while len(workers := _workers(server, port)) < 2:
        assert time.monotonic() < deadline, f"two workers never listened: {workers}"
        await asyncio.sleep(0.2)
    user = f"worker-death-{uuid.uuid4().hex[:8]}"
    rest = {"Authorization": f"Bearer {token(user)}"}
    load = Load()
    loops = [
        asyncio.create_task(_load_loop(server.base_url, path, headers, load))
        for path, headers in (("/health", {}), ("/api/tasks", rest), ("/ready", {}))
    ]
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            events: list[Any] = []
            broken: BaseException | None = None
            async with http.stream("POST", "/chatkit", json=create_body("help"), headers=headers_for(user)) as response:
                assert response.status_code == 200
                client_port = response.extensions["network_stream"].get_extra_info("client_addr")[1]
                victim = _worker_serving(workers, client_port)
                killed_at = 0.0
                try:
                    async for line in response.aiter_lines():
                        if not line.startswith("data: "):
                            continue
                        events.append(EVENT_ADAPTER.validate_json(line[len("data: ") :]))
                        if killed_at == 0.0 and events[-1].type == "thread.item.updated":
                            # The answer is streaming: the user's message is already stored.
                            load.kill(victim)
                            killed_at = time.monotonic()
                except httpx.HTTPError as exc:
                    broken = exc
            assert killed_at, "the stream ended before its worker could be killed"

            # ---- the client can tell the stream was cut ----
            # The chunked body stops without its last chunk: httpx (like a browser's fetch) reports
            # an incomplete body, not an end; and no ChatKit event said the turn was over.
            assert isinstance(broken, httpx.RemoteProtocolError), repr(broken)
            kinds = [e.type for e in events]
            assert "error" not in kinds
            assert not [e for e in events if e.type == "thread.item.done" and e.item.type == "assistant_message"]
            thread_id = events[0].thread.id

            # ---- the instance still answers, on the other worker ----
            assert server.process.poll() is None, server.log()[-3000:]
            assert (await http.get("/health")).status_code == 200
            listed = await http.get("/api/tasks", headers=rest)
            assert listed.status_code == 200, listed.text

            # ---- granian replaces the dead worker ----
            while len(respawned := _workers(server, port) - workers) < 1:
                assert time.monotonic() < deadline + 60, f"no replacement worker: {_workers(server, port)}"
                assert server.process.poll() is None, server.log()[-3000:]
                await asyncio.sleep(0.2)
            (survivor,) = workers - {victim}
            # With the original survivor gone too, only replacements can answer from here on.
            load.kill(survivor)
            # Until a replacement has imported the app, connections wait in the listen backlog.
            assert (await http.get("/health", timeout=120)).status_code == 200
            ready = await http.get("/ready")
            assert ready.status_code == 200, ready.text
            assert server.process.poll() is None, server.log()[-3000:]
            assert respawned <= _workers(server, port)

            # ---- the user's message of the cut stream is stored; the thread goes on ----
            stored = await stored_items(fresh_postgres_url, user, thread_id)
            assert [i["content"][0]["text"] for i in stored if i["type"] == "user_message"] == ["help"]
            loaded = await http.post(
                "/chatkit",
                json={"type": "threads.get_by_id", "params": {"thread_id": thread_id}},
                headers=headers_for(user),
            )
            assert loaded.status_code == 200, loaded.text

            # Both replacements up before the stop: a SIGTERM reaching one still starting would
            # be lost, and the stop would end only by granian's kill (app.ops.serving).
            while server.log().count("Started worker-") < 4:
                assert time.monotonic() < deadline + 120, server.log()[-3000:]
                await asyncio.sleep(0.2)
    finally:
        load.stop.set()
        await asyncio.gather(*loops)

    # Only a request in flight while a worker died may have failed; every other one was answered.
    assert load.answered_after(killed_at) > 0
    assert load.failed_outside_a_kill() == [], load.failed_outside_a_kill()[:10]
    failed = [outcome for _, _, outcome in load.outcomes if outcome != "200"]
    print(f"\nworker death: {len(load.outcomes)} load requests, {len(failed)} cut by a kill: {sorted(set(failed))}")
