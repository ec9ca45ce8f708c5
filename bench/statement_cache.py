"""What `DATABASE_STATEMENT_CACHE=false` costs, and what PgBouncer in transaction mode adds.

    python -m bench.statement_cache [--turns N]

Chat turns (`threads.create` with "add a task to buy milk tomorrow": the offline model calls
add_task and streams its answer) run in this process through the app's own `ChatKitServer`, as
`bench.turns` captures them, on a scratch database, in three set-ups, alternating round by round
so background load hits all alike:

- direct, cache on      PostgreSQL directly, asyncpg's and SQLAlchemy's statement caches (default)
- direct, cache off     PostgreSQL directly, DATABASE_STATEMENT_CACHE=false
- pgbouncer, cache off  Debian's PgBouncer (deploy/pgbouncer.ini, transaction mode, 5 server
                        connections) in front of the same PostgreSQL, DATABASE_STATEMENT_CACHE=false

Per set-up: statements per turn (SQLAlchemy's and the Store's asyncpg lane), wall time per turn
one at a time (p50), and turns/s with 16 at once, with the CPU of this process per turn; then one
statement alone, 500 times on each lane (a thread's page of items on the Store's asyncpg lane,
outside a transaction; a task list through a SQLAlchemy session, one transaction each): p50 in µs.
Nothing asserts on time: this prints figures (and writes bench/results/statement_cache.json).
"""

from __future__ import annotations

import argparse
import asyncio
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

    from app.asgi import build_attachments, build_chatkit_server
    from app.settings import Settings
    from app.store import driver
    from app.store.db import build_db_config

    settings = Settings.from_env(
        {"DATABASE_URL": database_url, "DATABASE_STATEMENT_CACHE": "true" if statement_cache else "false"}
    )
    db_config = build_db_config(settings)
    session_maker = db_config.create_session_maker()
    server = build_chatkit_server(settings, session_maker, build_attachments(settings, session_maker))
    engine = db_config.get_engine()
    count = [0]

    def on_statement(*_: Any) -> None:
        count[0] += 1

    event.listen(engine.sync_engine, "before_cursor_execute", on_statement)
    driver.statement_listeners.append(on_statement)
    try:
        yield server, lambda: count[0]
    finally:
        driver.statement_listeners.remove(on_statement)
        await engine.dispose()


async def one_turn(server: Any, user: str) -> None:
    from app.core.context import RequestContext

    result = await server.process(loadgen.threads_create(MESSAGE), RequestContext(user_id=user, time_zone="UTC"))
    async for _frame in result.json_events:
        pass


async def measure(server: Any, statements: Callable[[], int], turns: int) -> dict[str, float]:
    await one_turn(server, f"warm-{uuid.uuid4().hex[:6]}")
    before = statements()
    walls: list[float] = []
    for _ in range(turns):
        started = time.perf_counter()
        await one_turn(server, f"seq-{uuid.uuid4().hex[:8]}")
        walls.append(time.perf_counter() - started)
    per_turn = (statements() - before) / turns
    cpu = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(one_turn(server, f"par-{uuid.uuid4().hex[:8]}") for _ in range(16 * 4)))
    elapsed = time.perf_counter() - started
    return {
        "statements_per_turn": per_turn,
        "sequential_ms_p50": statistics.median(walls) * 1000,
        "concurrent16_turns_per_s": 64 / elapsed,
        "cpu_ms_per_turn": (time.process_time() - cpu) / 64 * 1000,
    }


PAGE_SQL = (
    "SELECT id, data FROM chat_items WHERE user_id = $1 AND thread_id = $2 ORDER BY created_at DESC, seq DESC LIMIT 20"
)


async def statements_alone(database_url: str, statement_cache: bool, n: int = 500) -> dict[str, float]:
    from sqlalchemy import select

    from app.settings import Settings
    from app.store.db import build_db_config
    from app.store.models import TaskRow

    settings = Settings.from_env(
        {"DATABASE_URL": database_url, "DATABASE_STATEMENT_CACHE": "true" if statement_cache else "false"}
    )
    config = build_db_config(settings)
    engine = config.get_engine()
    session_maker = config.create_session_maker()
    lane: list[float] = []
    orm: list[float] = []
    try:
        async with engine.connect() as connection:
            driver = (await connection.get_raw_connection()).driver_connection
            assert driver is not None
            for _ in range(n):
                started = time.perf_counter()
                await driver.fetch(PAGE_SQL, "bench-user", "thr_none")
                lane.append(time.perf_counter() - started)
        for _ in range(n):
            started = time.perf_counter()
            async with session_maker() as session:
                await session.execute(select(TaskRow).where(TaskRow.user_id == "bench-user").limit(20))
                await session.commit()
            orm.append(time.perf_counter() - started)
    finally:
        await engine.dispose()
    return {
        "store_lane_statement_us_p50": statistics.median(lane[50:]) * 1e6,
        "session_transaction_us_p50": statistics.median(orm[50:]) * 1e6,
    }


async def run(turns: int, rounds: int) -> dict[str, Any]:
    from sqlalchemy.ext.asyncio import create_async_engine

    from app.store.models import Base

    name = f"taskpilot_bench_stmt_{uuid.uuid4().hex[:6]}"
    url = await postgres.create_database(ADMIN_URL, name)
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    await engine.dispose()
    samples: dict[str, list[dict[str, float]]] = {}
    try:
        with running_pgbouncer(url, pool_size=5) as bouncer:
            setups = {
                "direct, cache on": (url, True),
                "direct, cache off": (url, False),
                "pgbouncer, cache off": (bouncer.url(url), False),
            }
            for _ in range(rounds):
                for label, (database_url, cache) in setups.items():
                    async with chat_server(database_url, cache) as (server, statements):
                        figures = await measure(server, statements, turns)
                    figures.update(await statements_alone(database_url, cache))
                    samples.setdefault(label, []).append(figures)
    finally:
        await postgres.drop_database(ADMIN_URL, name)
    return {
        label: {key: round(statistics.median(s[key] for s in runs), 2) for key in runs[0]}
        for label, runs in samples.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--turns", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    figures = asyncio.run(run(args.turns, args.rounds))
    print(json.dumps(figures, indent=2))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
