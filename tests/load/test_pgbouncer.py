"""TaskPilot behind PgBouncer 1.18 (Debian 12) in `pool_mode = transaction` (deploy/pgbouncer.ini).

PgBouncer before 1.21 lends a server connection per transaction and carries no prepared
statement between them; asyncpg prepares every statement by name. With
`DATABASE_STATEMENT_CACHE=false` every statement is sent unnamed and lives within one exchange:
migrations, chat turns, the tasks API, MCP and hosted sessions run through few server connections shared by many
clients of two workers, and no prepared statement is left behind on any server connection. With
the default (`true`) the failure is a clear line naming the setting, never a bare 500.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg
import httpx
import pytest
from testkit.pgbouncer import pgbouncer_binary, running_pgbouncer
from testkit.postgres import asyncpg_dsn

from tests.support.chatkit_client import ChatKitClient
from tests.support.fake_openai import FakeOpenAI
from tests.support.hosted import hosted_env
from tests.support.mcp import call, mcp_client
from tests.support.production import db_fetch, token
from tests.support.servers import run_cli

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.skipif(pgbouncer_binary() is None, reason="pgbouncer is not installed (apt-get install pgbouncer)"),
]

SERVER_CONNECTIONS = 3
USERS = 8


async def _one_user(base_url: str, user: str) -> tuple[str, list[str]]:
    rest = {"Authorization": f"Bearer {token(user)}"}
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        created = await http.post("/api/tasks", json={"title": "Over REST"}, headers=rest)
        assert created.status_code == 201, created.text
        task_id = created.json()["id"]
        patched = await http.patch(f"/api/tasks/{task_id}", json={"completed": True}, headers=rest)
        assert patched.status_code == 200, patched.text
        chat = ChatKitClient(http, token(user))
        turn = await chat.create_thread("add a task to buy milk")
        assert turn.status == 200 and not turn.of_type("error"), turn.of_type("error")
        again = await chat.send(turn.thread_id, "show my tasks")
        assert again.status == 200 and not again.of_type("error"), again.of_type("error")
        assert "Buy milk" in again.assistant_text()
        listed = await chat.request("threads.list", {"limit": 5})
        assert listed.status == 200
        page = await chat.items(turn.thread_id)
        assert page.status == 200
        tasks = await http.get("/api/tasks", headers=rest)
        assert tasks.status_code == 200, tasks.text
        # Hosted mode: mint, refresh and cancel a ChatKit session (its rows go through PgBouncer too).
        minted = await http.post("/api/chatkit/sessions", headers=rest)
        assert minted.status_code in (200, 201), minted.text
        refreshed = await http.post(
            "/api/chatkit/sessions/refresh",
            headers=rest,
            json={"current_client_secret": minted.json()["client_secret"]},
        )
        assert refreshed.status_code in (200, 201), refreshed.text
        cancelled = await http.delete(f"/api/chatkit/sessions/{refreshed.json()['session_id']}", headers=rest)
        assert cancelled.status_code == 204, cancelled.text
    async with mcp_client(base_url, user) as client:
        error, added = await call(client, "add_task", {"title": "Over MCP"})
        assert not error, added
        error, _ = await call(client, "list_tasks", {})
        assert not error
    return turn.thread_id, [t["title"] for t in tasks.json()["items"]]


async def test_everything_runs_through_pgbouncer_in_transaction_mode_without_the_statement_cache(
    live_server_factory, fresh_postgres_url: str, fake_openai: FakeOpenAI
) -> None:
    with running_pgbouncer(fresh_postgres_url, pool_size=SERVER_CONNECTIONS) as bouncer:
        pooled = bouncer.url(fresh_postgres_url)
        env = {
            "DATABASE_URL": pooled,
            "DATABASE_STATEMENT_CACHE": "false",
            "LOG_LEVEL": "warning",
            **hosted_env(fake_openai, LOG_LEVEL="warning"),
        }
        # `taskpilot db upgrade` through PgBouncer (the step that failed first without the setting).
        run_cli(["db", "upgrade"], env)
        server = live_server_factory({**env, "WORKERS": "2"}, migrate=False)
        users = [f"pgb-{uuid.uuid4().hex[:8]}-{n}" for n in range(USERS)]
        results = await asyncio.gather(*(_one_user(server.base_url, user) for user in users))

        # No prepared statement stays behind on any server connection: ask each of them (as many
        # concurrent clients as PgBouncer has server connections, each in a transaction of its own).
        async def statements_left() -> int:
            connection = await asyncpg.connect(asyncpg_dsn(pooled), statement_cache_size=0)
            try:
                async with connection.transaction():
                    await asyncio.sleep(0.3)  # hold this server connection while the others ask theirs
                    return int(await connection.fetchval("SELECT count(*) FROM pg_prepared_statements"))
            finally:
                await connection.close()

        assert await asyncio.gather(*(statements_left() for _ in range(SERVER_CONNECTIONS))) == [0] * SERVER_CONNECTIONS
        log = server.log()
        assert "prepared statement" not in log and "Traceback" not in log, log[-3000:]

    for user, (thread_id, titles) in zip(users, results, strict=True):
        assert titles == ["Over REST", "Buy milk"]
        rows = await db_fetch(fresh_postgres_url, "SELECT title FROM tasks WHERE user_id = $1 ORDER BY number", user)
        assert [r["title"] for r in rows] == ["Over REST", "Buy milk", "Over MCP"]
        items = await db_fetch(
            fresh_postgres_url,
            "SELECT count(*) AS n FROM chat_items WHERE user_id = $1 AND thread_id = $2",
            user,
            thread_id,
        )
        assert items[0]["n"] >= 4  # two messages, two answers (and the tool calls)
        sessions = await db_fetch(
            fresh_postgres_url, "SELECT status FROM hosted_sessions WHERE user_id = $1 ORDER BY created_at", user
        )
        assert len(sessions) == 2, (user, sessions)  # minted, then refreshed (and cancelled)
        # Both turns counted, on the usage lane (its own transaction, through PgBouncer): a failure
        # there is only a warning in the log, never an error the turn shows.
        usage = await db_fetch(fresh_postgres_url, "SELECT sum(turns) AS turns FROM usage WHERE user_id = $1", user)
        assert usage[0]["turns"] == 2, (user, usage)


async def test_with_the_statement_cache_on_a_transaction_pooler_fails_naming_the_setting(
    live_server_factory, fresh_postgres_url: str
) -> None:
    with running_pgbouncer(fresh_postgres_url, pool_size=2) as bouncer:
        env = {"DATABASE_URL": bouncer.url(fresh_postgres_url), "LOG_LEVEL": "warning"}
        # `taskpilot db upgrade`: a later run meets the statements an earlier one left on PgBouncer's
        # server connections (DuplicatePreparedStatementError) and says what to set.
        upgrades = [run_cli(["db", "upgrade"], env, check=False) for _ in range(2)]
        refused = [result for result in upgrades if result.returncode != 0]
        assert refused, [result.stderr for result in upgrades]
        for result in refused:
            assert "set DATABASE_STATEMENT_CACHE=false" in result.stderr and "Traceback" not in result.stderr, (
                result.stderr
            )
        # The setting off, among the statements the cached runs left behind: unnamed ones never collide.
        run_cli(["db", "upgrade"], {**env, "DATABASE_STATEMENT_CACHE": "false"})
        server = live_server_factory(env, migrate=False)
        answers: list[httpx.Response] = []
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:

            async def requests(user: str) -> None:
                rest = {"Authorization": f"Bearer {token(user)}"}
                for n in range(2):
                    answers.append(await http.post("/api/tasks", json={"title": f"t{n}"}, headers=rest))
                    answers.append(await http.get("/api/tasks", headers=rest))

            await asyncio.gather(*(requests(f"cache-on-{n}") for n in range(12)))
        failed = [a for a in answers if a.status_code >= 300]
        assert failed, "transaction pooling with the statement cache on did not fail here"
        assert {a.status_code for a in failed} == {503}, [(a.status_code, a.text) for a in failed]
        assert all(a.headers["content-type"].startswith("application/problem+json") for a in failed)
        assert "pooler" in failed[0].json()["detail"]
        lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
        assert any("DATABASE_STATEMENT_CACHE=false" in json.dumps(line) for line in lines), server.log()[-3000:]
