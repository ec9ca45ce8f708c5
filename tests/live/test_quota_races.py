"""Issue 27 item 6: quotas and refreshes hold under races, over real HTTP.

Each test fires many requests for one user at the same moment and counts what was kept. The
PostgreSQL server runs two workers, so the requests race across processes, not only across the
tasks of one event loop; the SQLite server runs one (`taskpilot serve` refuses more on SQLite).
Losers get the documented answer (429 for a count quota, 413 for the storage quota, 409 for a
refresh of a secret another refresh already replaced), never a 500.

The quota servers come from the run's pool of shared servers (each test races as a user of its
own, and the tests of one process run one at a time, so nothing else races on them meanwhile); the
hosted ones are this module's own, pointed at its fake OpenAI's port.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from testkit.chatkit import dev_token, json_headers, threads_create

from app.settings import Settings
from app.store.db import build_db_config
from app.store.models import HostedSession
from tests.conftest import _drop_database, _postgres_database
from tests.support.fake_openai import FakeOpenAI
from tests.support.hosted import API_KEY, hosted_env
from tests.support.mcp import call, mcp_client
from tests.support.servers import LiveServer, ServerPool, start_live_server, unique_user

TASKS, THREADS, STORAGE_BYTES = 5, 3, 1000
QUOTAS = {
    "QUOTA_TASKS_PER_USER": str(TASKS),
    "QUOTA_THREADS_PER_USER": str(THREADS),
    "QUOTA_ATTACHMENT_BYTES_PER_USER": str(STORAGE_BYTES),
    "RATE_LIMIT_CHAT_PER_MINUTE": "0",
    "RATE_LIMIT_UPLOADS_PER_MINUTE": "0",
    "CHATKIT_SESSION_RATE_LIMIT_PER_MINUTE": "0",
    "CHATKIT_MAX_STREAMS": "64",
    # One user fires every request at once here: the per-user share of stream slots is not under test.
    "CHATKIT_MAX_STREAMS_PER_USER": "0",
}
RACERS = 16


def _database(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    if request.param == "postgres":
        request.getfixturevalue("postgres_url")  # skips (or fails under CI) without PostgreSQL
        url = asyncio.run(_postgres_database())
        assert url is not None
        return url, {"WORKERS": "2"}
    return f"sqlite+aiosqlite:///{tmp_path}/server.db", {"WORKERS": "1"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest, live_servers: ServerPool) -> LiveServer:
    if request.param == "postgres":
        request.getfixturevalue("postgres_url")  # skips (or fails under CI) without PostgreSQL
    workers = "2" if request.param == "postgres" else "1"
    return live_servers.get({"WORKERS": workers, **QUOTAS}, database=request.param)


def user() -> str:
    return unique_user("u")


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {dev_token(name)}"}


async def _race(server: LiveServer, send: Any, count: int = RACERS) -> list[httpx.Response]:
    """`count` requests made by `send(http)` at once, each on its own connection (so the two
    workers both take some)."""
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60, limits=limits) as http:
        return list(await asyncio.gather(*(send(http) for _ in range(count))))


def _statuses(responses: list[httpx.Response]) -> Counter[int]:
    return Counter(response.status_code for response in responses)


def _assert_problems(responses: list[httpx.Response], status: int, quota: str) -> None:
    for response in responses:
        if response.status_code == status:
            assert response.headers["content-type"].startswith("application/problem+json"), response.text
            assert quota in response.text, response.text


def _chatkit(http: httpx.AsyncClient, name: str, body: dict[str, Any]) -> Any:
    return http.post("/chatkit", content=json.dumps(body).encode(), headers=json_headers(dev_token(name)))


async def test_concurrent_task_creates_never_pass_the_task_quota(server: LiveServer) -> None:
    name = user()
    responses = await _race(server, lambda http: http.post("/api/tasks", json={"title": "race"}, headers=bearer(name)))
    assert _statuses(responses) == {201: TASKS, 429: RACERS - TASKS}, [r.text for r in responses]
    _assert_problems(responses, 429, "QUOTA_TASKS_PER_USER")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        listed = (await http.get("/api/tasks", headers=bearer(name))).json()
    assert listed["total"] == TASKS
    assert sorted(task["number"] for task in listed["items"]) == list(range(1, TASKS + 1))


async def test_concurrent_mcp_add_task_never_passes_the_task_quota(server: LiveServer) -> None:
    name = user()

    async def add(index: int) -> tuple[bool, dict[str, Any]]:
        async with mcp_client(server.base_url, name) as client:
            return await call(client, "add_task", {"title": f"mcp {index}"})

    outcomes = await asyncio.gather(*(add(index) for index in range(RACERS)))
    refused = [result for is_error, result in outcomes if is_error]
    assert len(outcomes) - len(refused) == TASKS, outcomes
    assert all(f"limit of {TASKS} tasks" in result["error"] for result in refused), refused
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        assert (await http.get("/api/tasks", headers=bearer(name))).json()["total"] == TASKS


async def test_concurrent_thread_creates_never_pass_the_thread_quota(server: LiveServer) -> None:
    name = user()
    racers = 8
    responses = await _race(server, lambda http: _chatkit(http, name, threads_create("race")), racers)
    assert _statuses(responses) == {200: THREADS, 429: racers - THREADS}, [r.text[:300] for r in responses]
    _assert_problems(responses, 429, "QUOTA_THREADS_PER_USER")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        listed = await _chatkit(http, name, {"type": "threads.list", "params": {"limit": 100}})
    assert len(listed.json()["data"]) == THREADS


async def test_concurrent_uploads_never_pass_the_storage_quota(server: LiveServer) -> None:
    name, size, racers = user(), 400, 6
    urls: list[str] = []
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        for _ in range(racers):
            body = {"type": "attachments.create", "params": {"name": "a.txt", "size": size, "mime_type": "text/plain"}}
            created = await _chatkit(http, name, body)
            assert created.status_code == 200, created.text  # nothing stored yet: each one fits alone
            urls.append(created.json()["upload_descriptor"]["url"])
    pending = iter(urls)
    responses = await _race(server, lambda http: http.put(next(pending), content=b"a" * size), racers)
    fit = STORAGE_BYTES // size
    assert _statuses(responses) == {200: fit, 413: racers - fit}, [r.text for r in responses]
    _assert_problems(responses, 413, "QUOTA_ATTACHMENT_BYTES_PER_USER")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        # The quota is full: even a one-byte file is refused now.
        body = {
            "type": "attachments.create",
            "params": {"name": "b.txt", "size": 1000 - fit * size + 1, "mime_type": "text/plain"},
        }
        assert (await _chatkit(http, name, body)).status_code == 413


# ---- hosted session refresh ------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_openai_module() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(API_KEY)
    yield fake
    fake.stop()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def hosted_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, fake_openai_module: FakeOpenAI
) -> Iterator[LiveServer]:
    tmp_path: Path = tmp_path_factory.mktemp(f"refresh-{request.param}")
    url, workers = _database(request, tmp_path)
    env = hosted_env(fake_openai_module, DATABASE_URL=url, **workers, **QUOTAS)
    live = start_live_server(tmp_path, env, ready_seconds=60)
    yield live
    live.stop()
    if request.param == "postgres":
        asyncio.run(_drop_database(url))


async def _hosted_rows(database_url: str, user_id: str) -> list[HostedSession]:
    engine = build_db_config(Settings.from_env({"DATABASE_URL": database_url})).get_engine()
    try:
        async with engine.connect() as connection:
            result = await connection.execute(select(HostedSession).where(HostedSession.user_id == user_id))
            return list(result.all())  # type: ignore[arg-type]
    finally:
        await engine.dispose()


@pytest.mark.parametrize("named_by", ["current_client_secret", "session_id"])
async def test_concurrent_refreshes_of_one_secret_mint_exactly_one_session(
    hosted_server: LiveServer, fake_openai_module: FakeOpenAI, named_by: str
) -> None:
    name, racers = user(), 4
    async with httpx.AsyncClient(base_url=hosted_server.base_url, timeout=30) as http:
        minted = (await http.post("/api/chatkit/sessions", headers=bearer(name))).json()
    named = minted["client_secret"] if named_by == "current_client_secret" else minted["session_id"]
    # Every upstream create answers late, so the refreshes overlap whatever the scheduling.
    fake_openai_module.delay(0.5, times=racers)
    responses = await _race(
        hosted_server,
        lambda http: http.post("/api/chatkit/sessions/refresh", headers=bearer(name), json={named_by: named}),
        racers,
    )
    assert _statuses(responses) == {200: 1, 409: racers - 1}, [r.text for r in responses]
    for response in responses:
        if response.status_code == 409:
            assert response.headers["content-type"].startswith("application/problem+json")
            assert "already refreshed" in response.json()["detail"]
    (winner,) = [response.json() for response in responses if response.status_code == 200]
    rows = {row.session_id: row for row in await _hosted_rows(hosted_server.env["DATABASE_URL"], name)}
    assert {session_id for session_id, row in rows.items() if row.status == "active"} == {winner["session_id"]}
    assert rows[minted["session_id"]].status == "refreshed"
    assert rows[minted["session_id"]].replaced_by == winner["session_id"]
    live_upstream = [
        session_id
        for session_id, upstream in fake_openai_module.sessions.items()
        if upstream["status"] == "active" and upstream.get("user") == name
    ]
    assert live_upstream == [winner["session_id"]]

    # Refreshing the replaced secret later is the same 409; the new one refreshes normally.
    async with httpx.AsyncClient(base_url=hosted_server.base_url, timeout=30) as http:
        again = await http.post("/api/chatkit/sessions/refresh", headers=bearer(name), json={named_by: named})
        assert again.status_code == 409, again.text
        newer = winner["client_secret"] if named_by == "current_client_secret" else winner["session_id"]
        onwards = await http.post("/api/chatkit/sessions/refresh", headers=bearer(name), json={named_by: newer})
        assert onwards.status_code == 200, onwards.text
