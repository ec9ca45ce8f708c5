"""Behind a real load balancer: HAProxy (deploy/haproxy.cfg, round-robin) before two `taskpilot
serve` instances (2 workers each, one PostgreSQL, one Redis, PROMETHEUS_MULTIPROC_DIR).

100 users x 3 turns go through HAProxy while instance two gets SIGTERM a third of the way in:
every turn must answer 200 without an error event (HAProxy stops routing to the draining
instance on its /ready check, and sends again what a draining instance refused; a turn the
instance left refuses at capacity, 503 + Retry-After before any byte, is sent again after
the wait, as a ChatKit user would), and every stored row must be one a user was shown. A
burst of 5 messages by one user, spread over both instances, must get exactly the limit of 3
through (one Redis budget). Hosted sessions are
minted, refreshed and cancelled through HAProxy; attachments are created on one instance,
uploaded (signed URL) on the other, and their signed preview URL minted on that one is fetched
from the first.

HAProxy comes from Debian's packages (`.ci/run` installs it); without it this test is skipped
locally and fails under CI. It prints the figures docs/production.md quotes.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from redis.asyncio import Redis
from testkit.chatkit import add_user_message as message_body
from testkit.chatkit import threads_create as create_body
from testkit.processes import free_port

from app.ops.admission import REFUSAL_DETAIL
from tests.conftest import create_schema
from tests.support.chatkit_client import parse_sse
from tests.support.fake_openai import FakeOpenAI
from tests.support.haproxy import haproxy_binary as _haproxy
from tests.support.haproxy import start_haproxy as _start_haproxy
from tests.support.hosted import API_KEY, WORKFLOW_ID
from tests.support.payloads import PNG
from tests.support.production import db_fetch, headers_for, post_as_a_browser, stored_rows
from tests.support.servers import LiveServer

USERS = 100
TURNS = ["add a task to buy milk", "show my tasks", "mark 1 done"]
LIMIT = len(TURNS)  # chat messages per user per minute: a user's 3 turns pass, a burst of 5 gets 3
LIMIT_USERS = 10
MAX_REFUSALS = 2_000  # over the whole load: a bound on the loop, far beyond what a run meets
HOSTED_USERS = 10
ATTACHMENT_USERS = 5


@dataclass
class UserRun:
    user: str
    thread_id: str = ""
    errors: list[str] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


@dataclass
class Tally:
    turns: int = 0
    cut: int = 0  # streams that ended with an error event or broke (each is resent once)
    resumed: int = 0
    transport_resent: int = 0  # requests met by a closed connection, sent again once
    refused: int = 0  # 503 + Retry-After at the door (a worker at its admission limit), sent again after the wait


async def _turn(http: httpx.AsyncClient, run: UserRun, body: dict[str, Any], tally: Tally) -> None:
    headers = headers_for(run.user)
    attempt = 0
    while attempt < 2:
        try:
            response, resent = await post_as_a_browser(http, "/chatkit", json=body, headers=headers)
        except httpx.HTTPError as exc:
            run.errors.append(f"{type(exc).__name__}: {exc!r} {exc.__cause__!r}")
            return
        tally.transport_resent += resent
        if (
            response.status_code == 503
            and "retry-after" in response.headers
            and response.json().get("detail") == REFUSAL_DETAIL  # at capacity, not draining
            and tally.refused < MAX_REFUSALS
        ):
            # Refused before any byte by the one instance left while the other drains (all its
            # workers at their admission limit; HAProxy's retries met the same): nothing was
            # stored, and a ChatKit user sends it again after the wait.
            tally.refused += 1
            await asyncio.sleep(float(response.headers["retry-after"]))
            continue
        attempt += 1  # a stream that answered: the first, or the one resend after a cut
        if response.status_code != 200:
            run.errors.append(f"HTTP {response.status_code}: {response.text[:200]}")
            return
        events = [json.loads(frame) for frame in parse_sse(response.text)[0]]
        if any(event["type"] == "error" for event in events):
            # A stream cut by a drain ends with an error event saying to resend: resend once.
            tally.cut += 1
            if attempt == 1:
                tally.resumed += 1
                continue
            run.errors.append(f"error event after a resend: {[e for e in events if e['type'] == 'error']}")
            return
        if body["type"] == "threads.create":
            run.thread_id = events[0]["thread"]["id"]
        for event in events:
            if event["type"] == "thread.item.done":
                run.done.append(event["item"]["id"])
            elif event["type"] == "thread.item.removed":
                run.removed.append(event["item_id"])
        tally.turns += 1
        return


async def _chat(http: httpx.AsyncClient, run: UserRun, tally: Tally) -> None:
    for turn, text in enumerate(TURNS):
        body = create_body(text) if turn == 0 else message_body(run.thread_id, text)
        await _turn(http, run, body, tally)
        if run.errors:
            return


async def _probe_limit(http: httpx.AsyncClient, user: str) -> list[int]:
    """LIMIT + 2 new threads at once through HAProxy (so spread over both instances and all
    workers): exactly LIMIT may pass. Per-process counters would let up to 4 x LIMIT through."""
    responses = await asyncio.gather(
        *(http.post("/chatkit", json=create_body("hello"), headers=headers_for(user)) for _ in range(LIMIT + 2))
    )
    return sorted(response.status_code for response in responses)


async def _hosted(http: httpx.AsyncClient, user: str) -> list[str]:
    headers = headers_for(user)
    minted = await http.post("/api/chatkit/sessions", headers=headers)
    assert minted.status_code in (200, 201), minted.text
    refreshed = await http.post(
        "/api/chatkit/sessions/refresh", headers=headers, json={"current_client_secret": minted.json()["client_secret"]}
    )
    assert refreshed.status_code in (200, 201), refreshed.text
    cancelled = await http.delete(f"/api/chatkit/sessions/{refreshed.json()['session_id']}", headers=headers)
    assert cancelled.status_code == 204, cancelled.text
    return [minted.json()["session_id"], refreshed.json()["session_id"]]


async def _attachment_across(one: httpx.AsyncClient, two: httpx.AsyncClient, user: str) -> str:
    """Created on one, uploaded on two with the signed URL one minted; previewed on one with two's URL."""
    headers = headers_for(user)
    created = await one.post(
        "/chatkit",
        json={"type": "attachments.create", "params": {"name": "dot.png", "size": len(PNG), "mime_type": "image/png"}},
        headers=headers,
    )
    assert created.status_code == 200, created.text
    attachment = created.json()
    url = urlsplit(attachment["upload_descriptor"]["url"])
    uploaded = await two.put(
        f"{url.path}?{url.query}",
        content=PNG,
        headers={**attachment["upload_descriptor"]["headers"], "Content-Type": "image/png"},
    )
    assert uploaded.status_code == 200, uploaded.text
    sent = await two.post(
        "/chatkit",
        json={
            **create_body("what is this?"),
            "params": {"input": {**create_body("what is this?")["params"]["input"], "attachments": [attachment["id"]]}},
        },
        headers=headers,
    )
    assert sent.status_code == 200, sent.text
    thread_id = json.loads(parse_sse(sent.text)[0][0])["thread"]["id"]
    loaded = await two.post(
        "/chatkit", json={"type": "threads.get_by_id", "params": {"thread_id": thread_id}}, headers=headers
    )
    message = next(i for i in loaded.json()["items"]["data"] if i["type"] == "user_message")
    preview = urlsplit(message["attachments"][0]["preview_url"])
    fetched = await one.get(f"{preview.path}?{preview.query}")  # signed: no bearer token
    assert fetched.status_code == 200 and fetched.content == PNG, fetched.text
    return str(attachment["id"])


@pytest.mark.timeout(180)
async def test_two_instances_behind_haproxy_lose_nothing_through_a_sigterm(
    live_server_factory, fresh_postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    binary = _haproxy()
    await create_schema(fresh_postgres_url)
    fake = FakeOpenAI(API_KEY)
    lb_port = free_port()
    blobs = tmp_path / "blobs"  # one blob store for both instances (production: S3)
    common = {
        "DATABASE_URL": fresh_postgres_url,
        "REDIS_URL": redis_url,
        "WORKERS": "2",
        # 2 instances x 2 workers x 15 connections leaves PostgreSQL's 100 room for the rest.
        "DATABASE_POOL_SIZE": "10",
        "DATABASE_MAX_OVERFLOW": "5",
        "RATE_LIMIT_CHAT_PER_MINUTE": str(LIMIT),
        "SHUTDOWN_GRACE_SECONDS": "20",
        "LOG_LEVEL": "warning",
        "ATTACHMENT_STORAGE_URL": str(blobs),
        "ATTACHMENT_SIGNING_SECRET": "lb-test-signing-secret-0123456789abcdef",
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{lb_port}",
        # The turns use the offline model; OpenAI (the local fake) serves only hosted sessions.
        "MODEL_PROVIDER": "offline",
        "OPENAI_API_KEY": API_KEY,
        "OPENAI_BASE_URL": fake.base_url,
        "CHATKIT_WORKFLOW_ID": WORKFLOW_ID,
    }

    def start(name: str) -> LiveServer:
        metrics_dir = tmp_path / f"metrics-{name}"
        metrics_dir.mkdir()
        env = {**common, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
        server: LiveServer = live_server_factory(env, migrate=False, via_cli=True, ready_seconds=120)
        return server

    # Both at once: four workers importing the app take a while on two busy cores.
    booting = time.monotonic()
    servers = await asyncio.gather(asyncio.to_thread(start, "one"), asyncio.to_thread(start, "two"))
    ready = time.monotonic() - booting
    one, two = servers
    haproxy = _start_haproxy(binary, lb_port, one, two, tmp_path / "haproxy.log")
    prefix = f"lb-{uuid.uuid4().hex[:8]}-"
    runs = [UserRun(user=f"{prefix}{n:03d}") for n in range(USERS)]
    tally = Tally()
    redis = Redis.from_url(redis_url)
    try:
        limits = httpx.Limits(max_connections=USERS, max_keepalive_connections=USERS)
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{lb_port}", timeout=60, limits=limits) as lb,
            httpx.AsyncClient(base_url=one.base_url, timeout=30) as direct_one,
            httpx.AsyncClient(base_url=two.base_url, timeout=30) as direct_two,
        ):
            # Cross-instance pieces first, while both instances run.
            attachments = [
                await _attachment_across(direct_one, direct_two, f"{prefix}att{n}") for n in range(ATTACHMENT_USERS)
            ]
            hosted = await asyncio.gather(*(_hosted(lb, f"{prefix}hosted{n}") for n in range(HOSTED_USERS)))
            probes = await asyncio.gather(*(_probe_limit(lb, f"{prefix}limit{n}") for n in range(LIMIT_USERS)))

            started = time.monotonic()
            chats = asyncio.gather(*(_chat(lb, run, tally) for run in runs))
            # SIGTERM to instance two a third of the way in (or when the chats ended early).
            while tally.turns < USERS * len(TURNS) // 3 and not chats.done():
                await asyncio.sleep(0.01)
            terminated_at = tally.turns
            stopping = asyncio.create_task(asyncio.to_thread(two.stop, signal.SIGTERM, 60))
            await chats
            seconds = time.monotonic() - started
            await stopping
        two_exit = two.process.returncode
        print(f"\nLB: instance two got SIGTERM after {terminated_at} turns; started in {ready:.1f} s")

        errors = [f"{run.user}: {error}" for run in runs for error in run.errors]
        print(
            f"LB: {tally.turns} turns by {USERS} users in {seconds:.1f} s = {tally.turns / seconds:.1f} turns/s; "
            f"errors {len(errors)}; streams cut {tally.cut}, resumed {tally.resumed}; "
            f"resent after a closed connection {tally.transport_resent}; refused and resent after Retry-After "
            f"{tally.refused}; instance two exit {two_exit}"
        )
        balancer_log = (tmp_path / "haproxy.log").read_text(errors="replace")
        # httplog's termination state is `----` for a request that ended normally.
        abnormal = [line for line in balancer_log.splitlines() if " ---- " not in line and "/ready" not in line]
        assert not errors, f"{len(errors)} errors, first: {errors[:5]}; HAProxy's abnormal lines: {abnormal[-20:]}"
        assert tally.turns == USERS * len(TURNS)
        assert two_exit == 0, two.log()[-2000:]
        # HAProxy took the draining instance out on its /ready check (503 while draining).
        assert "instances/two is DOWN" in balancer_log, balancer_log[-2000:]
        assert "instances/one is DOWN" not in balancer_log, balancer_log[-2000:]
        # One chat budget across both instances (and all four workers): exactly LIMIT admitted.
        assert probes == [[200] * LIMIT + [429] * 2] * LIMIT_USERS, probes

        # ---- every stored row accounted for ----
        stored = await stored_rows(fresh_postgres_url, prefix)
        chat_rows = 0
        for run in runs:
            expected = set(run.done) - set(run.removed)
            assert stored.threads[run.user] == [run.thread_id], run.user
            assert stored.items[run.user] == {(run.thread_id, item) for item in expected}, run.user
            assert stored.tasks[run.user] == [("Buy milk", True)], (run.user, stored.tasks[run.user])
            chat_rows += len(expected)
        sessions = await db_fetch(
            fresh_postgres_url,
            "SELECT user_id, session_id, status FROM hosted_sessions WHERE user_id LIKE $1",
            prefix + "%",
        )
        by_id = {row["session_id"]: row["status"] for row in sessions}
        assert len(sessions) == 2 * HOSTED_USERS
        for first, second in hosted:
            assert (by_id[first], by_id[second]) == ("refreshed", "cancelled")
        uploaded = await db_fetch(
            fresh_postgres_url, "SELECT id, status FROM chat_attachments WHERE user_id LIKE $1", prefix + "%"
        )
        assert sorted((row["id"], row["status"]) for row in uploaded) == sorted((a, "uploaded") for a in attachments)
        print(
            f"LB rows: {sum(map(len, stored.threads.values()))} threads, {stored.item_count} items "
            f"({chat_rows} streamed as done), {sum(map(len, stored.tasks.values()))} tasks, "
            f"{len(sessions)} hosted sessions, {len(uploaded)} attachments: all accounted for"
        )
    finally:
        haproxy.terminate()
        haproxy.wait(timeout=10)
        fake.stop()
        keys = [f"taskpilot:rl:chat:{run.user}" for run in runs]
        await redis.delete(*keys)
        async for key in redis.scan_iter(match=f"taskpilot:rl:*{prefix}*", count=500):
            await redis.delete(key)
        await redis.aclose()
