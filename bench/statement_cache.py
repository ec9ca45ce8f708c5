"""What `DATABASE_STATEMENT_CACHE=false` costs, and what PgBouncer in transaction mode adds.

    python -m bench.statement_cache [--turns N]

Chat turns (`threads.create` with "add a task to buy milk tomorrow": the offline model calls
add_task and streams its answer) run in this process through the app's own `ChatKitServer`, as
`bench.turns` captures them, on a scratch database, in three set-ups:

- direct, cache on      PostgreSQL directly, asyncpg's and SQLAlchemy's statement caches (default)
- direct, cache off     PostgreSQL directly, DATABASE_STATEMENT_CACHE=false
- pgbouncer, cache off  Debian's PgBouncer (deploy/pgbouncer.ini, transaction mode, 5 server
                        connections) in front of the same PostgreSQL, DATABASE_STATEMENT_CACHE=false

First one statement alone on each lane, 1000 times (a thread's page of items on the Store's asyncpg
lane, outside a transaction; a task list through a SQLAlchemy session, one transaction each), then
whole turns one at a time: statements per turn (both lanes), wall time and this process's CPU per
turn (p50). Calls alternate between the set-ups, one each in turn, so background load hits all alike.
Nothing asserts on time: this prints figures (and writes bench/results/statement_cache.json).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from testkit import postgres
from testkit.pgbouncer import running_pgbouncer

from bench import loadgen
from bench.database import ADMIN_URL

MESSAGE = "add a task to buy milk tomorrow"
RESULTS = Path(__file__).resolve().parent / "results" / "statement_cache.json"


@asynccontextmanager
async def chat_server(database_url: str, statement_cache: bool) -> AsyncIterator[tuple[Any, Callable[[], int]]]:
    from sqlalchemy import event

    from app.asgi import build_chatkit_server
    from app.services.attachments.service import AttachmentService
    from app.settings import Settings
    from app.store import driver
    from app.store.db import build_db_config

    settings = Settings.from_env(
        {"DATABASE_URL": database_url, "DATABASE_STATEMENT_CACHE": "true" if statement_cache else "false"}
    )
    db_config = build_db_config(settings)
    session_maker = db_config.create_session_maker()
    server = build_chatkit_server(settings, session_maker, AttachmentService.from_settings(settings, session_maker))
    engine = db_config.get_engine()
    count = [0]

    def on_statement(*_: Any) -> None:
        count[0] += 1

    def on_driver_statement(*_: Any) -> None:
        # The Store lane's listeners are global: count only this engine's turns.
        if TURN_ON[0] is server:
            count[0] += 1

    event.listen(engine.sync_engine, "before_cursor_execute", on_statement)
    driver.statement_listeners.append(on_driver_statement)
    try:
        yield server, lambda: count[0]
    finally:
        driver.statement_listeners.remove(on_driver_statement)
        await engine.dispose()


TURN_ON: list[Any] = [None]  # the server running the current turn


async def one_turn(server: Any, user: str) -> None:
    from app.core.context import RequestContext

    TURN_ON[0] = server
    result = await server.process(loadgen.threads_create(MESSAGE), RequestContext(user_id=user, time_zone="UTC"))
    async for _frame in result.json_events:
        pass


async def turns_interleaved(
    servers: dict[str, tuple[Any, Callable[[], int]]], turns: int
) -> dict[str, dict[str, float]]:
    """One turn on each set-up in turn, `turns` times: background load hits every set-up alike."""
    for server, _ in servers.values():
        await one_turn(server, f"warm-{uuid.uuid4().hex[:6]}")
    before = {label: statements() for label, (_, statements) in servers.items()}
    walls: dict[str, list[float]] = {label: [] for label in servers}
    cpus: dict[str, list[float]] = {label: [] for label in servers}
    for _ in range(turns):
        for label, (server, _) in servers.items():
            cpu, started = time.process_time(), time.perf_counter()
            await one_turn(server, f"seq-{uuid.uuid4().hex[:8]}")
            walls[label].append(time.perf_counter() - started)
            cpus[label].append(time.process_time() - cpu)
    return {
        label: {
            "statements_per_turn": (statements() - before[label]) / turns,
            "turn_ms_p50": round(statistics.median(walls[label]) * 1000, 1),
            "turn_cpu_ms_p50": round(statistics.median(cpus[label]) * 1000, 1),
        }
        for label, (_, statements) in servers.items()
    }


PAGE_SQL = (
    "SELECT id, data FROM chat_items WHERE user_id = $1 AND thread_id = $2 ORDER BY created_at DESC, seq DESC LIMIT 20"
)


async def statements_interleaved(urls: dict[str, tuple[str, bool]], n: int) -> dict[str, dict[str, float]]:
    """The Store lane's page query (autocommit) and a session's one-statement transaction, one call
    on each set-up in turn, `n` times each."""
    from sqlalchemy import select

    from app.settings import Settings
    from app.store.db import build_db_config
    from app.store.models import TaskRow

    configs = {
        label: build_db_config(
            Settings.from_env({"DATABASE_URL": url, "DATABASE_STATEMENT_CACHE": "true" if cache else "false"})
        )
        for label, (url, cache) in urls.items()
    }
    lane: dict[str, list[float]] = {label: [] for label in urls}
    orm: dict[str, list[float]] = {label: [] for label in urls}
    connections = {label: await config.get_engine().connect() for label, config in configs.items()}
    makers = {label: config.create_session_maker() for label, config in configs.items()}
    try:
        drivers = {label: (await c.get_raw_connection()).driver_connection for label, c in connections.items()}
        query = select(TaskRow).where(TaskRow.user_id == "bench-user").limit(20)
        for i in range(n + 50):
            for label in urls:
                started = time.perf_counter()
                await drivers[label].fetch(PAGE_SQL, "bench-user", "thr_none")
                if i >= 50:
                    lane[label].append(time.perf_counter() - started)
                started = time.perf_counter()
                async with makers[label]() as session:
                    await session.execute(query)
                    await session.commit()
                if i >= 50:
                    orm[label].append(time.perf_counter() - started)
    finally:
        for label, connection in connections.items():
            await connection.close()
            await configs[label].get_engine().dispose()
    return {
        label: {
            "store_lane_statement_us_p50": round(statistics.median(lane[label]) * 1e6),
            "session_transaction_us_p50": round(statistics.median(orm[label]) * 1e6),
        }
        for label in urls
    }


async def run(turns: int, statements: int) -> dict[str, Any]:
    from sqlalchemy.ext.asyncio import create_async_engine

    from app.store.models import Base

    name = f"taskpilot_bench_stmt_{uuid.uuid4().hex[:6]}"
    url = await postgres.create_database(ADMIN_URL, name)
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    await engine.dispose()
    try:
        with running_pgbouncer(url, pool_size=5) as bouncer:
            setups = {
                "direct, cache on": (url, True),
                "direct, cache off": (url, False),
                "pgbouncer, cache off": (bouncer.url(url), False),
            }
            figures = await statements_interleaved(setups, statements)
            async with contextlib.AsyncExitStack() as stack:
                servers = {
                    label: await stack.enter_async_context(chat_server(database_url, cache))
                    for label, (database_url, cache) in setups.items()
                }
                for label, turn in (await turns_interleaved(servers, turns)).items():
                    figures[label].update(turn)
    finally:
        await postgres.drop_database(ADMIN_URL, name)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--turns", type=int, default=40)
    parser.add_argument("--statements", type=int, default=1000)
    args = parser.parse_args()
    figures = asyncio.run(run(args.turns, args.statements))
    print(json.dumps(figures, indent=2))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
