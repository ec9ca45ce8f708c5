"""ChatKit Store latency on PostgreSQL, against the same SQL sent raw through asyncpg.

    python -m bench.store            (or `make bench-store`)

Creates a scratch database (BENCH_DATABASE, default taskpilot_bench_store) on the server at
BENCH_POSTGRES_URL (default postgresql+asyncpg://postgres@127.0.0.1:5432/postgres), fills it
with 100 users x 100 threads (10 items each) plus one 10,000-item thread, then times, one
call at a time:

- load_threads            a user's first page of 20 threads, newest first (the history list)
- load_thread_items       20 items of the 10,000-item thread, newest first: the first page,
                          a middle page and the last page (cursor = an existing item id)
- add_thread_item         one new assistant message into a random user's random thread

Each Store call goes through the app's own database config (`build_db_config`: its pool, and
the Store's asyncpg lane, app.store.driver), and again through the same Store forced onto
SQLAlchemy sessions, for comparison. The floor is the identical SQL text (compiled by
SQLAlchemy for asyncpg) sent through one raw asyncpg connection, prepared once. The figures
also show `EXPLAIN ANALYZE` for every page query as PostgreSQL runs it (the generic plan of the
prepared statement; each must be an index scan).

Targets (issue 16): every operation's p50 at most 1.5x the raw query's, p95 under 5 ms. `make
bench` runs this as one of its parts (`--quick`: 300 calls each); results go to
bench/results/store.json. Nothing asserts on time: this prints figures.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
from chatkit.types import AssistantMessageContent, AssistantMessageItem, ThreadMetadata
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from testkit import postgres

from app.core.context import RequestContext
from app.settings import Settings
from app.store import chat_sql as repo
from app.store.chatkit_store import ITEM_ADAPTER, ChatKitStore
from app.store.db import build_db_config
from app.store.models import Base
from bench import report
from bench.database import ADMIN_URL

DATABASE = os.environ.get("BENCH_DATABASE", "taskpilot_bench_store")
ITERATIONS = int(os.environ.get("BENCH_ITERATIONS", "1000"))
WARMUP = 100
USERS = 100
THREADS_PER_USER = 100
ITEMS_PER_THREAD = 10
BIG_THREAD_ITEMS = 10_000
PAGE = 20
RESULTS = Path(__file__).resolve().parent / "results" / "store.json"
T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)

BIG_USER = "user000"
BIG_THREAD = "thr_big"


def _user(n: int) -> str:
    return f"user{n:03d}"


def _thread_json(thread_id: str, created_at: dt.datetime, title: str) -> str:
    return json.dumps(
        {
            "title": title,
            "id": thread_id,
            "created_at": created_at.isoformat(),
            "status": {"type": "active"},
            "allowed_image_domains": None,
            "metadata": {},
        }
    )


def _item_json(item_id: str, thread_id: str, created_at: dt.datetime, n: int) -> tuple[str, str]:
    if n % 2 == 0:
        data: dict[str, Any] = {
            "id": item_id,
            "thread_id": thread_id,
            "created_at": created_at.isoformat(),
            "type": "user_message",
            "content": [{"type": "input_text", "text": f"Add a task number {n}: buy milk and bread tomorrow"}],
            "attachments": [],
            "quoted_text": None,
            "inference_options": {"tool_choice": None, "model": None},
        }
    else:
        data = {
            "id": item_id,
            "thread_id": thread_id,
            "created_at": created_at.isoformat(),
            "type": "assistant_message",
            "content": [
                {
                    "type": "output_text",
                    "text": f"Done: task {n} 'buy milk and bread' is due tomorrow. " * 3,
                    "annotations": [],
                }
            ],
        }
    return data["type"], json.dumps(data)


async def create_database() -> str:
    return await postgres.create_database(ADMIN_URL, DATABASE)


async def drop_database() -> None:
    await postgres.drop_database(ADMIN_URL, DATABASE)


async def fill(url: str) -> dict[str, int]:
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    await engine.dispose()

    seq = 0
    threads: list[tuple[Any, ...]] = []
    items: list[tuple[Any, ...]] = []
    for u in range(USERS):
        user = _user(u)
        for t in range(THREADS_PER_USER):
            thread_id = f"thr_{u:03d}_{t:03d}"
            created = T0 + dt.timedelta(minutes=t)
            seq += 1
            threads.append(
                (user, thread_id, seq, f"Thread {t}", created, created, _thread_json(thread_id, created, "x"))
            )
            for i in range(ITEMS_PER_THREAD):
                seq += 1
                item_id = f"msg_{u:03d}_{t:03d}_{i:02d}"
                kind, data = _item_json(item_id, thread_id, created + dt.timedelta(seconds=i), i)
                items.append((user, item_id, thread_id, kind, seq, created + dt.timedelta(seconds=i), data))
    seq += 1
    threads.append((BIG_USER, BIG_THREAD, seq, "Big", T0, T0, _thread_json(BIG_THREAD, T0, "Big")))
    for i in range(BIG_THREAD_ITEMS):
        seq += 1
        at = T0 + dt.timedelta(seconds=i // 3)  # timestamps tie in threes, as they do in real turns
        kind, data = _item_json(f"msg_big_{i:05d}", BIG_THREAD, at, i)
        items.append((BIG_USER, f"msg_big_{i:05d}", BIG_THREAD, kind, seq, at, data))

    connection = await asyncpg.connect(postgres.asyncpg_dsn(url))
    try:
        await connection.copy_records_to_table(
            "chat_threads",
            records=threads,
            columns=["user_id", "id", "seq", "title", "created_at", "updated_at", "data"],
        )
        await connection.copy_records_to_table(
            "chat_items",
            records=items,
            columns=["user_id", "id", "thread_id", "type", "seq", "created_at", "data"],
        )
        await connection.execute("VACUUM ANALYZE")
    finally:
        await connection.close()
    return {"threads": len(threads), "items": len(items), "big_thread_items": BIG_THREAD_ITEMS}


def _summary(samples: list[float]) -> dict[str, float]:
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return {
        "p50_ms": round(q[49] * 1000, 3),
        "p95_ms": round(q[94] * 1000, 3),
        "p99_ms": round(q[98] * 1000, 3),
        "mean_ms": round(statistics.fmean(samples) * 1000, 3),
    }


async def _time(call: Callable[[int], Awaitable[Any]], iterations: int) -> list[float]:
    for n in range(WARMUP):
        await call(-1 - n)
    samples = []
    for n in range(iterations):
        started = time.perf_counter()
        await call(n)
        samples.append(time.perf_counter() - started)
    return samples


def _compiled(statement: Any, dialect: Any, params: dict[str, Any]) -> tuple[str, list[Any]]:
    """The SQL text and positional arguments SQLAlchemy sends to asyncpg for `statement`."""
    compiled = statement.compile(dialect=dialect)
    processors = compiled._bind_processors
    args = []
    for name in compiled.positiontup:
        value = params[name]
        processor = processors.get(name)
        args.append(processor(value) if processor else value)
    return str(compiled), args


def _literal(value: Any) -> str:
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


class Scenario:
    """One benchmarked operation: a Store call and the same SQL sent raw."""

    def __init__(
        self,
        name: str,
        store_call: Callable[[ChatKitStore[RequestContext], int], Awaitable[Any]],
        raw_sql: tuple[Any, Callable[[int], dict[str, Any]]],
        explain: bool,
        parse: Callable[[Any], Any] | None = None,
    ) -> None:
        self.name = name
        self.store_call = store_call
        self.statement, self.params = raw_sql
        self.explain = explain
        self.parse = parse


def build_scenarios(rng: random.Random, iterations: int = ITERATIONS) -> list[Scenario]:
    users = [_user(n) for n in range(USERS)]
    picks = [rng.randrange(USERS) for _ in range(iterations + WARMUP)]
    thread_picks = [(rng.randrange(USERS), rng.randrange(THREADS_PER_USER)) for _ in range(iterations + WARMUP)]
    middle = f"msg_big_{BIG_THREAD_ITEMS // 2:05d}"
    last_cursor = f"msg_big_{PAGE:05d}"  # desc: the page after it holds the 20 oldest items

    def parse_item(row: Any) -> Any:
        return ITEM_ADAPTER.validate_json(row[0])

    def ctx(user: str) -> RequestContext:
        return RequestContext(user_id=user)

    def new_item(n: int) -> tuple[str, str, AssistantMessageItem]:
        u, t = thread_picks[n % len(thread_picks)]
        thread_id = f"thr_{u:03d}_{t:03d}"
        item = AssistantMessageItem(
            id=f"msg_new_{n + WARMUP:06d}_{rng.getrandbits(32):08x}",
            thread_id=thread_id,
            created_at=dt.datetime.now(),
            content=[AssistantMessageContent(text="Done: task 'buy milk and bread' is due tomorrow. " * 3)],
        )
        return _user(u), thread_id, item

    new_items: dict[int, tuple[str, str, AssistantMessageItem]] = {}

    def item_for(n: int) -> tuple[str, str, AssistantMessageItem]:
        if n not in new_items:
            new_items[n] = new_item(n)
        return new_items[n]

    raw_items: dict[int, tuple[str, str, AssistantMessageItem]] = {}

    def raw_item_for(n: int) -> tuple[str, str, AssistantMessageItem]:
        if n not in raw_items:
            user, thread_id, item = new_item(n)
            raw_items[n] = (
                user,
                thread_id,
                item.model_copy(update={"id": item.id.replace("msg_new", "msg_raw")}),
            )
        return raw_items[n]

    def add_params(n: int) -> dict[str, Any]:
        user, thread_id, item = raw_item_for(n)
        created = item.created_at.astimezone(dt.UTC)
        return {
            "b_user_id": user,
            "b_thread_id": thread_id,
            "b_now": dt.datetime.now(dt.UTC),
            "p_id": item.id,
            "p_type": item.type,
            "p_seq": time.time_ns(),
            "p_created_at": created,
            "p_data": item.model_copy(update={"created_at": created}).model_dump_json(),
        }

    async def add(store: ChatKitStore[RequestContext], n: int) -> None:
        user, thread_id, item = item_for(n)
        await store.add_thread_item(thread_id, item, ctx(user))

    return [
        Scenario(
            "load_threads (page 20)",
            lambda store, n: store.load_threads(PAGE, None, "desc", ctx(users[picks[n % len(picks)]])),
            (
                repo.thread_page_statement("desc", False),
                lambda n: {"user_id": users[picks[n % len(picks)]], "limit": PAGE + 1},
            ),
            explain=True,
            parse=lambda row: ThreadMetadata.model_validate_json(row[2]),
        ),
        Scenario(
            "load_thread_items first page",
            lambda store, n: store.load_thread_items(BIG_THREAD, None, PAGE, "desc", ctx(BIG_USER)),
            (
                repo.item_page_statement("desc", False),
                lambda n: {"user_id": BIG_USER, "thread_id": BIG_THREAD, "limit": PAGE + 1},
            ),
            explain=True,
            parse=parse_item,
        ),
        Scenario(
            "load_thread_items middle page",
            lambda store, n: store.load_thread_items(BIG_THREAD, middle, PAGE, "desc", ctx(BIG_USER)),
            (
                repo.item_page_statement("desc", True),
                lambda n: {"user_id": BIG_USER, "thread_id": BIG_THREAD, "after": middle, "limit": PAGE + 1},
            ),
            explain=True,
            parse=parse_item,
        ),
        Scenario(
            "load_thread_items last page",
            lambda store, n: store.load_thread_items(BIG_THREAD, last_cursor, PAGE, "desc", ctx(BIG_USER)),
            (
                repo.item_page_statement("desc", True),
                lambda n: {
                    "user_id": BIG_USER,
                    "thread_id": BIG_THREAD,
                    "after": last_cursor,
                    "limit": PAGE + 1,
                },
            ),
            explain=True,
            parse=parse_item,
        ),
        Scenario("add_thread_item", add, (repo.ITEM_ADD_POSTGRESQL.statement("postgresql"), add_params), explain=False),
    ]


async def run_raw(
    url: str, scenario: Scenario, dialect: Any, iterations: int = ITERATIONS
) -> tuple[list[float], list[float] | None, str | None]:
    connection = await asyncpg.connect(postgres.asyncpg_dsn(url))
    try:
        sql, _ = _compiled(scenario.statement, dialect, scenario.params(-1))
        prepared = await connection.prepare(sql)
        # Arguments are prepared before timing, so the floor is the database round trip alone.
        arguments = {
            n: _compiled(scenario.statement, dialect, scenario.params(n))[1] for n in range(-WARMUP, iterations)
        }

        async def call(n: int) -> None:
            await prepared.fetch(*arguments[n])

        samples = await _time(call, iterations)
        parsed_samples = None
        if scenario.parse is not None:
            parse = scenario.parse

            async def call_and_parse(n: int) -> None:
                for row in await prepared.fetch(*arguments[n]):
                    parse(row)

            parsed_samples = await _time(call_and_parse, iterations)
        plan = None
        if scenario.explain:
            # The plan that runs: a prepared statement switches to PostgreSQL's generic plan
            # from its sixth execution, so show that one, not the custom plan EXPLAIN would pick.
            await connection.execute("SET plan_cache_mode = force_generic_plan")
            await connection.execute(f"PREPARE bench_query AS {sql}")
            literals = ", ".join(_literal(value) for value in arguments[0])
            rows = await connection.fetch(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE bench_query({literals})")
            plan = "\n".join(row[0] for row in rows)
        return samples, parsed_samples, plan
    finally:
        await connection.close()


TARGET_RATIO = 1.5
TARGET_P95_MS = 5.0


async def run(quick: bool = False) -> dict[str, Any]:
    """Measure, print the table and the targets, write bench/results/store.json; return the figures."""
    iterations = min(ITERATIONS, 300) if quick else ITERATIONS
    rng = random.Random(20250301)
    print(f"bench.store: creating {DATABASE} on {make_url(ADMIN_URL).render_as_string()}", flush=True)
    url = await create_database()
    try:
        started = time.perf_counter()
        dataset = await fill(url)
        print(f"filled {dataset} in {time.perf_counter() - started:.1f} s", flush=True)

        settings = Settings.from_env({"DATABASE_URL": url})
        config = build_db_config(settings)
        app_store: ChatKitStore[RequestContext] = ChatKitStore(config)
        # The same Store forced onto the session path (a plain callable hides the engine from
        # it): what every call cost before the asyncpg lane, for comparison.
        session_engine = create_async_engine(url, pool_size=10)
        session_store: ChatKitStore[RequestContext] = ChatKitStore(
            lambda: AsyncSession(session_engine, expire_on_commit=False)
        )
        dialect = config.get_engine().dialect

        version_connection = await asyncpg.connect(postgres.asyncpg_dsn(url))
        server_version = await version_connection.fetchval("SHOW server_version")
        await version_connection.close()

        results: dict[str, Any] = {}
        plans: dict[str, str] = {}
        for scenario in build_scenarios(rng, iterations):
            store_samples = await _time(lambda n, s=scenario: s.store_call(app_store, n), iterations)
            session_samples = await _time(
                lambda n, s=scenario: s.store_call(session_store, n + 10 * iterations), iterations
            )
            raw_samples, parsed_samples, plan = await run_raw(url, scenario, dialect, iterations)
            store, session, raw = _summary(store_samples), _summary(session_samples), _summary(raw_samples)
            results[scenario.name] = {
                "store": store,
                "store_session_path": session,
                "raw_asyncpg": raw,
                # the same fetch plus pydantic parsing of the rows: what any Python store must pay
                "raw_asyncpg_plus_parse": _summary(parsed_samples) if parsed_samples else None,
                "ratio_p50": round(store["p50_ms"] / raw["p50_ms"], 2),
                "ratio_p50_session_path": round(session["p50_ms"] / raw["p50_ms"], 2),
            }
            if plan is not None:
                plans[scenario.name] = plan
            print(f"  measured {scenario.name}", flush=True)
        await config.get_engine().dispose()
        await session_engine.dispose()
    finally:
        await drop_database()

    header = (
        f"{'operation':32} {'store p50/p95/p99':>24} {'session path p50/p95/p99':>26} "
        f"{'raw p50/p95/p99':>24} {'raw+parse p50':>14} {'x raw':>6} {'(session)':>9}"
    )
    print()
    print(
        f"ChatKit Store on PostgreSQL {server_version}, {os.cpu_count()} CPUs, {iterations} sequential calls each (ms)"
    )
    print(header)
    print("-" * len(header))
    for name, row in results.items():

        def fmt(s: dict[str, float]) -> str:
            return f"{s['p50_ms']:.2f} / {s['p95_ms']:.2f} / {s['p99_ms']:.2f}"

        parsed = row["raw_asyncpg_plus_parse"]
        parsed_p50 = f"{parsed['p50_ms']:.2f}" if parsed else "-"
        print(
            f"{name:32} {fmt(row['store']):>24} {fmt(row['store_session_path']):>26} "
            f"{fmt(row['raw_asyncpg']):>24} {parsed_p50:>14} "
            f"{row['ratio_p50']:>6.2f} {row['ratio_p50_session_path']:>9.2f}"
        )
    print(
        "\nx raw: the Store's p50 (the app's config: the asyncpg lane) / raw asyncpg p50 of the same SQL;"
        " (session): the same Store through SQLAlchemy sessions. raw+parse: the raw fetch plus pydantic"
        " parsing of the rows."
    )
    print("\nEXPLAIN ANALYZE of each page query:")
    for name, plan in plans.items():
        print(f"\n-- {name}\n{plan}")
    scans = {name: ("Seq Scan" not in plan and "Index" in plan) for name, plan in plans.items()}
    print(f"\nevery page query an index scan: {all(scans.values())} {scans}")

    worst = max(results.items(), key=lambda kv: kv[1]["ratio_p50"])
    slowest = max(results.items(), key=lambda kv: kv[1]["store"]["p95_ms"])
    targets = {
        "ratio": {
            "met": worst[1]["ratio_p50"] <= TARGET_RATIO,
            "figure": ", ".join(f"{name} {row['ratio_p50']}x" for name, row in results.items()),
            "worst": worst[0],
        },
        "p95": {
            "met": slowest[1]["store"]["p95_ms"] < TARGET_P95_MS,
            "figure": f"worst p95 {slowest[1]['store']['p95_ms']} ms ({slowest[0]})",
        },
        "index_scans": {"met": all(scans.values()), "figure": str(scans)},
    }
    for key, verdict in targets.items():
        print(f"  {'MET   ' if verdict['met'] else 'MISSED'} {key}: {verdict['figure']}")

    out = {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "postgres": server_version,
        },
        "dataset": dataset,
        "iterations": iterations,
        "page_size": PAGE,
        "results": results,
        "plans": plans,
        "index_scans": scans,
        "targets": targets,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {RESULTS}")
    return out


async def main() -> int:
    await run(report.quick_mode())
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
