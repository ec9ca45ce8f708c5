"""The cost of a chat turn, against its floor.

    python -m bench.turns [--quick]          (`make bench` runs it with the other benchmarks)

A live TaskPilot (granian, PostgreSQL, the offline model with no delay, so the model's own time
is near zero) is driven over real HTTP by an async load generator: every turn is one
`threads.create` whose message ("add a task to buy milk tomorrow") makes the offline model
call the add_task tool and stream its answer. Each virtual client is its own user on its own
keep-alive connection, and starts its next turn when the last one ends (closed loop), at
concurrency 1, 16, 64 and 256.

The floor is `bench/floor_app.py`: a bare ASGI app on the same granian with the same flags, that
performs as many raw asyncpg INSERTs per turn as TaskPilot issues INSERT/UPDATE statements and
streams the bytes of a captured TaskPilot response. Both run in the same process of this
benchmark, level by level, alternating, so background load hits both alike.

How TaskPilot's statements are counted: once, in this process, one turn runs through the
same `ChatKitServer` the app builds (`app.asgi.build_chatkit_server`) with SQLAlchemy event
listeners on its engine, which log every statement, transaction and pool checkout in order
with the frames the turn yields. That sequence becomes the floor's plan.

Per level and server: turns/s, time to first and to last byte of the stream (p50/p95/p99),
server CPU seconds per turn (granian's process tree, user+system, from psutil), CPU of the
PostgreSQL backends serving that database per turn, the load generator's CPU per turn (so one
can see whether the client was the limit) and the peak RSS of the server's process tree.
Then TaskPilot / floor ratios of each. A py-spy profile of TaskPilot at concurrency 16 (taken in
a separate pass, so sampling never perturbs the figures) says where the CPU goes, by stage.

Figures go to bench/results/turns.json. Nothing asserts on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import psutil
from testkit import chatkit as chatkit_bodies
from testkit import postgres

from bench import database, loadgen, profiling, report, servers
from bench.servers import Server

DATABASE = os.environ.get("BENCH_DATABASE", "taskpilot_bench_turns")
MESSAGE = "add a task to buy milk tomorrow"
WORKERS = int(os.environ.get("BENCH_WORKERS", "1"))
# TaskPilot's defaults (DATABASE_POOL_SIZE=10, DATABASE_MAX_OVERFLOW=10); the floor gets the same 20.
POOL_SIZE = int(os.environ.get("BENCH_DB_POOL_SIZE", "10"))
MAX_OVERFLOW = int(os.environ.get("BENCH_DB_MAX_OVERFLOW", "10"))
# The provider path's MODEL_TRANSPORT: lean (the default) or openai (the stock client), to compare.
MODEL_TRANSPORT = os.environ.get("BENCH_MODEL_TRANSPORT", "lean")
# Issue 16: server CPU per turn at most 15x the floor's, at concurrency 16 (checked in one run).
TARGET_CPU_VS_FLOOR = 15.0
# Issue 16: half the CPU per turn of OpenAI's ChatKit sample backend on this machine kind (27.1 ms).
PROVIDER_TARGET_CPU_MS = 13.0


@dataclass
class Plan:
    concurrency: list[int]
    warmup_s: float
    measure_s: float
    profile_s: float
    in_process_turns: int


FULL = Plan(concurrency=[1, 16, 64, 256], warmup_s=2.0, measure_s=10.0, profile_s=6.0, in_process_turns=40)
QUICK = Plan(concurrency=[1, 16], warmup_s=0.5, measure_s=1.5, profile_s=0.0, in_process_turns=5)


# ---- what one TaskPilot turn does to the database ---------------------------------------------------


async def capture_turn(database_url: str, turns: int) -> dict[str, Any]:
    """Run turns in this process through the app's own ChatKitServer; log statements and frames.

    Returns the statement counts, the ordered sequence of writes and frames of the last turn
    (the floor's plan) and the CPU one turn costs without HTTP.
    """
    from sqlalchemy import event

    from app.asgi import build_chatkit_server
    from app.core.context import RequestContext
    from app.services.attachments.service import AttachmentService
    from app.settings import Settings
    from app.store import driver
    from app.store.db import build_db_config

    settings = Settings.from_env({"DATABASE_URL": database_url})
    db_config = build_db_config(settings)
    session_maker = db_config.create_session_maker()
    server = build_chatkit_server(settings, session_maker, AttachmentService.from_settings(settings, session_maker))
    engine = db_config.get_engine()
    log: list[tuple[str, Any]] = []

    def on_statement(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        words = statement.lstrip().split(None, 1)
        verb = words[0].upper() if words else "?"
        if verb == "WITH":  # a data-modifying CTE: classify by what it modifies
            upper = statement.upper()
            verb = "UPDATE+INSERT" if "UPDATE" in upper and "INSERT" in upper else "WITH"
        size = sum(len(v) if isinstance(v, str | bytes) else 8 for v in _flat(params))
        log.append(("sql", (verb, size)))

    event.listen(engine.sync_engine, "before_cursor_execute", on_statement)

    # The Store's hot statements go straight to asyncpg (app.store.driver), past SQLAlchemy's events.
    def on_driver_statement(sql: str, args: Any) -> None:
        if sql in ("BEGIN", "COMMIT", "ROLLBACK"):  # a lane transaction (`DriverConnection.transaction`)
            log.append(("tx", sql.lower()))
            return
        on_statement(None, None, sql, args, None, False)

    driver.statement_listeners.append(on_driver_statement)
    event.listen(engine.sync_engine, "begin", lambda conn: log.append(("tx", "begin")))
    event.listen(engine.sync_engine, "commit", lambda conn: log.append(("tx", "commit")))
    event.listen(engine.sync_engine.pool, "checkout", lambda *a: log.append(("checkout", None)))

    body = loadgen.threads_create(MESSAGE)
    context = RequestContext(user_id="capture", time_zone="UTC")  # as loadgen's requests say
    cpu_samples: list[float] = []
    try:
        for n in range(turns + 1):
            log.clear()
            started = time.process_time()
            result = await server.process(body, context)
            async for frame in result.json_events:  # type: ignore[union-attr]
                log.append(("frame", frame))
            if n:  # the first turn warms caches and imports
                cpu_samples.append(time.process_time() - started)
    finally:
        driver.statement_listeners.remove(on_driver_statement)
        await engine.dispose()

    statements = Counter(verb for kind, value in log if kind == "sql" for verb in [value[0]])
    steps: list[list[Any]] = []
    frame_index = 0
    for kind, value in log:
        if kind == "sql" and value[0] in ("INSERT", "UPDATE", "UPDATE+INSERT", "DELETE"):
            steps.append(["write", value[1]])
        elif kind == "frame":
            steps.append(["frame", frame_index])
            frame_index += 1
    cpu_samples.sort()
    return {
        "statements": dict(statements),
        "writes": sum(1 for s in steps if s[0] == "write"),
        "reads": statements.get("SELECT", 0),
        "transactions": sum(1 for kind, value in log if kind == "tx" and value == "begin"),
        "pool_checkouts": sum(1 for kind, _ in log if kind == "checkout"),
        "frames": frame_index,
        "steps": steps,
        "in_process_cpu_ms": {
            "p50": round(cpu_samples[len(cpu_samples) // 2] * 1000, 2),
            "min": round(cpu_samples[0] * 1000, 2),
            "n": len(cpu_samples),
        },
    }


def _flat(params: Any) -> list[Any]:
    if isinstance(params, dict):
        return list(params.values())
    if isinstance(params, list | tuple):
        out: list[Any] = []
        for p in params:
            out += _flat(p) if isinstance(p, list | tuple | dict) else [p]
        return out
    return [params]


# ---- load ------------------------------------------------------------------------------------


@dataclass
class Sample:
    finished: float
    ttfb: float
    ttlb: float
    ok: bool


@dataclass
class LevelResult:
    concurrency: int
    turns: int = 0
    errors: int = 0
    seconds: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    server_cpu_s: float = 0.0
    db_cpu_s: float = 0.0
    loadgen_cpu_s: float = 0.0
    peak_rss: int = 0
    completed_total: int = 0  # warm-up included: every turn that answered, for the rows-stored check
    error_examples: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        ok = [s for s in self.samples if s.ok]
        turns = max(len(ok), 1)
        return {
            "concurrency": self.concurrency,
            "turns": len(ok),
            "errors": self.errors,
            "error_examples": self.error_examples[:3],
            "seconds": round(self.seconds, 2),
            "turns_per_s": round(len(ok) / self.seconds, 1) if self.seconds else None,
            "ttfb_ms": report.percentiles([s.ttfb for s in ok]),
            "ttlb_ms": report.percentiles([s.ttlb for s in ok]),
            "server_cpu_ms_per_turn": round(1000 * self.server_cpu_s / turns, 2),
            "server_cpu_utilisation": round(self.server_cpu_s / self.seconds, 2) if self.seconds else None,
            "db_cpu_ms_per_turn": round(1000 * self.db_cpu_s / turns, 2),
            "loadgen_cpu_ms_per_turn": round(1000 * self.loadgen_cpu_s / turns, 2),
            "peak_rss_mib": round(self.peak_rss / 2**20, 1),
        }


class DbCpu:
    """CPU of the PostgreSQL backends connected to one database (the server's pool)."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.processes: list[psutil.Process] = []

    async def refresh(self) -> None:
        connection = await asyncpg.connect(postgres.asyncpg_dsn(database.ADMIN_URL))
        try:
            rows = await connection.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", self.database
            )
        finally:
            await connection.close()
        self.processes = []
        for row in rows:
            with contextlib.suppress(psutil.Error):
                self.processes.append(psutil.Process(row["pid"]))

    def seconds(self) -> dict[int, float]:
        out: dict[int, float] = {}
        for process in self.processes:
            try:
                times = process.cpu_times()
                out[process.pid] = times.user + times.system
            except psutil.Error:
                pass
        return out


def _ok(response: loadgen.Response, expected_bytes: int) -> bool:
    return response.status == 200 and response.body.endswith(b"\n\n") and len(response.body) >= 0.9 * expected_bytes


async def run_level(
    server: Server,
    tokens: list[str],
    concurrency: int,
    plan: Plan,
    expected_bytes: int,
    db_cpu: DbCpu,
    body_of: Callable[[int], bytes] | None = None,
) -> LevelResult:
    """Closed-loop load at `concurrency`: warm up, then measure a fixed window of time.

    `body_of(n)` is client n's request (default: `threads.create` of MESSAGE)."""
    default_body = loadgen.threads_create(MESSAGE)
    result = LevelResult(concurrency=concurrency)
    stop = asyncio.Event()
    window: dict[str, float] = {}
    completed = 0

    async def client(n: int) -> None:
        nonlocal completed
        connection = loadgen.HttpConnection(server.host, server.port)
        headers = loadgen.auth_headers(tokens[n])
        body = body_of(n) if body_of is not None else default_body
        try:
            while not stop.is_set():
                try:
                    response = await connection.request("POST", "/chatkit", body, headers)
                except (loadgen.HttpError, OSError, asyncio.IncompleteReadError) as exc:
                    result.errors += 1
                    result.error_examples.append(repr(exc))
                    await connection.close()
                    await asyncio.sleep(0.05)
                    continue
                completed += 1
                result.completed_total += 1
                ok = _ok(response, expected_bytes)
                if not ok:
                    result.errors += 1
                    result.error_examples.append(f"{response.status} {response.body[:200]!r}")
                start = window.get("start")
                if start is not None and "end" not in window and response.last_byte >= start:
                    result.samples.append(Sample(response.last_byte, response.ttfb, response.ttlb, ok))
        finally:
            await connection.close()

    with servers.RssSampler(server.tree) as rss:
        tasks = [asyncio.create_task(client(n)) for n in range(concurrency)]
        # Warm up for warmup_s, and at least until every client has finished one turn.
        warm_until = time.perf_counter() + plan.warmup_s
        deadline = time.perf_counter() + 60
        while (time.perf_counter() < warm_until or completed < concurrency) and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        await db_cpu.refresh()
        db0 = db_cpu.seconds()
        cpu0 = server.tree.cpu_seconds()
        gen0 = time.process_time()
        window["start"] = time.perf_counter()
        await asyncio.sleep(plan.measure_s)
        window["end"] = time.perf_counter()
        result.server_cpu_s = server.tree.cpu_seconds() - cpu0
        result.loadgen_cpu_s = time.process_time() - gen0
        db1 = db_cpu.seconds()
        result.db_cpu_s = sum(db1[pid] - db0[pid] for pid in db1 if pid in db0)
        result.seconds = window["end"] - window["start"]
        stop.set()
        _, pending = await asyncio.wait(tasks, timeout=60)
        for task in pending:
            task.cancel()
        result.peak_rss = rss.peak
    return result


async def profile(
    server: Server,
    tokens: list[str],
    concurrency: int,
    seconds: float,
    scratch: Path,
    body_of: Callable[[int], bytes] | None = None,
    name: str = "turns-profile",
) -> dict[str, Any]:
    """py-spy on the server's workers while `concurrency` clients run turns for `seconds`
    (client n sends `body_of(n)`; by default the offline path's `threads.create`)."""
    body_of = body_of or (lambda n: loadgen.threads_create(MESSAGE))
    stop = asyncio.Event()
    turns = 0

    async def client(n: int) -> None:
        nonlocal turns
        connection = loadgen.HttpConnection(server.host, server.port)
        try:
            while not stop.is_set():
                await connection.request("POST", "/chatkit", body_of(n), loadgen.auth_headers(tokens[n]))
                turns += 1
        finally:
            await connection.close()

    spy = profiling.PySpy([p.pid for p in server.tree.workers()], scratch, name)
    tasks = [asyncio.create_task(client(n)) for n in range(concurrency)]
    await asyncio.sleep(1.0)
    spy.start(seconds)
    await asyncio.sleep(seconds + 0.5)
    stop.set()
    await asyncio.wait(tasks, timeout=60)
    lines = await asyncio.to_thread(spy.stop)
    summary = profiling.summarise_profile(lines, top=20)
    summary["error"] = spy.error
    summary["concurrency"] = concurrency
    return summary


# ---- main ------------------------------------------------------------------------------------


# ---- the provider path: a real model client against a local Responses stand-in ----------------------

PROVIDER_KEY = "sk-bench-turns"
PROVIDER_MESSAGE = "what should I do first today?"
PROVIDER_CONCURRENCY = 16
THREAD_ITEMS = 20  # the add_user_message turns run on threads this long


async def _count(url: str, query: str, prefix: str) -> int:
    rows = await postgres.fetch(url, query, prefix + "%")
    return int(rows[0][0])


async def provider_turns(
    url: str, plan: Plan, scratch: Path, db_cpu: DbCpu, floor_cpu_ms_at_16: float | None
) -> dict[str, Any]:
    """`MODEL_PROVIDER=openai` at `bench/fake_upstream.py` (20 deltas, the title answered): server CPU
    per turn of `threads.create` and of `threads.add_user_message` on a ~20-item thread, at 16."""
    fake = servers.start_server(
        "fake-openai",
        "bench.fake_upstream:create_app",
        {"FAKE_OPENAI_KEY": PROVIDER_KEY, "FAKE_RESPONSES_DELTAS": "20"},
        log_dir=scratch,
    )
    env = {
        "DATABASE_URL": url,
        "DATABASE_POOL_SIZE": str(POOL_SIZE),
        "DATABASE_MAX_OVERFLOW": str(MAX_OVERFLOW),
        "MODEL_PROVIDER": "openai",
        "MODEL_TRANSPORT": MODEL_TRANSPORT,
        "OPENAI_API_KEY": PROVIDER_KEY,
        "OPENAI_BASE_URL": f"http://127.0.0.1:{fake.port}/v1",
        "CHATKIT_MAX_STREAMS": str(PROVIDER_CONCURRENCY),
        **servers.UNTRIPPED_LIMITS,
    }
    tp = servers.start_server("taskpilot-openai", "app.worker:create_app", env, workers=WORKERS, log_dir=scratch)
    out: dict[str, Any] = {"concurrency": PROVIDER_CONCURRENCY, "deltas_per_answer": 20, "transport": MODEL_TRANSPORT}
    try:
        creators = loadgen.dev_tokens("ptc", PROVIDER_CONCURRENCY)
        writers = loadgen.dev_tokens("ptm", PROVIDER_CONCURRENCY)
        connection = loadgen.HttpConnection(tp.host, tp.port)
        try:
            sample = await connection.request(
                "POST", "/chatkit", loadgen.threads_create(PROVIDER_MESSAGE), loadgen.auth_headers(creators[0])
            )
            if sample.status != 200:
                raise RuntimeError(f"TaskPilot (openai) answered {sample.status}: {sample.body[:300]!r}")
            # One thread of THREAD_ITEMS items per writer: a create, then messages (two items a turn).
            threads: list[str] = []
            for token in writers:
                first = await connection.request(
                    "POST", "/chatkit", loadgen.threads_create(PROVIDER_MESSAGE), loadgen.auth_headers(token)
                )
                thread_id = json.loads(loadgen.sse_frames(first.body)[0][len(b"data: ") :])["thread"]["id"]
                for _ in range(THREAD_ITEMS // 2 - 1):
                    await connection.request("POST", "/chatkit", _add_message(thread_id), loadgen.auth_headers(token))
                threads.append(thread_id)
            message_sample = await connection.request(
                "POST", "/chatkit", _add_message(threads[0]), loadgen.auth_headers(writers[0])
            )
        finally:
            await connection.close()
        threads_before = await _count(url, "SELECT count(*) FROM chat_threads WHERE user_id LIKE $1", "ptc")
        items_before = await _count(url, "SELECT count(*) FROM chat_items WHERE user_id LIKE $1", "ptm")
        create = await run_level(
            tp,
            creators,
            PROVIDER_CONCURRENCY,
            plan,
            len(sample.body),
            db_cpu,
            body_of=lambda n: loadgen.threads_create(PROVIDER_MESSAGE),
        )
        message = await run_level(
            tp,
            writers,
            PROVIDER_CONCURRENCY,
            plan,
            len(message_sample.body),
            db_cpu,
            body_of=lambda n: _add_message(threads[n]),
        )
        threads_stored = await _count(url, "SELECT count(*) FROM chat_threads WHERE user_id LIKE $1", "ptc")
        items_stored = await _count(url, "SELECT count(*) FROM chat_items WHERE user_id LIKE $1", "ptm")
        for name, level, stored, expected in (
            ("threads.create", create, threads_stored - threads_before, create.completed_total),
            ("add_user_message", message, items_stored - items_before, 2 * message.completed_total),
        ):
            summary = level.summary()
            summary["rows_stored"] = stored
            summary["rows_expected"] = expected
            cpu = summary["server_cpu_ms_per_turn"]
            summary["cpu_vs_floor"] = report.ratio(cpu, floor_cpu_ms_at_16)
            out[name] = summary
        if plan.profile_s:
            bodies: dict[str, tuple[list[str], Callable[[int], bytes]]] = {
                "threads.create": (creators, lambda n: loadgen.threads_create(PROVIDER_MESSAGE)),
                "add_user_message": (writers, lambda n: _add_message(threads[n])),
            }
            out["profiles_c16"] = {
                kind: await profile(
                    tp, tokens, PROVIDER_CONCURRENCY, plan.profile_s, scratch, body_of=body_of, name=f"provider-{n}"
                )
                for n, (kind, (tokens, body_of)) in enumerate(bodies.items())
            }
        out["server_log_tail"] = tp.log_tail(5)
    finally:
        tp.stop()
        fake.stop()
    return out


def turn_targets(at16: dict[str, Any] | None, provider: dict[str, Any]) -> dict[str, Any]:
    """Issue 16's turn targets, each with its figure from this run: server CPU per turn at most
    15x the floor's (offline path and both provider-path turn kinds) and, on the provider path,
    at most 13 ms (half of OpenAI's sample backend on this machine kind), with no error and
    every turn's rows stored."""
    targets: list[dict[str, Any]] = []
    if at16 is not None:
        ratio = at16["ratio"]["server_cpu_per_turn"]
        targets.append(
            {
                "target": f"offline threads.create: CPU per turn <= {TARGET_CPU_VS_FLOOR:g}x the floor's at 16",
                "figure": f"{report.fmt(ratio, 1)}x ({at16['taskpilot']['server_cpu_ms_per_turn']} ms vs "
                f"{at16['floor']['server_cpu_ms_per_turn']} ms)",
                "met": ratio is not None and ratio <= TARGET_CPU_VS_FLOOR,
            }
        )
    for kind in ("threads.create", "add_user_message"):
        k = provider[kind]
        cpu, ratio = k["server_cpu_ms_per_turn"], k["cpu_vs_floor"]
        clean = k["errors"] == 0 and k["rows_stored"] == k["rows_expected"] and k["turns"] > 0
        targets.append(
            {
                "target": f"provider {kind}: CPU per turn <= {PROVIDER_TARGET_CPU_MS:g} ms, 0 errors, rows = turns",
                "figure": f"{cpu} ms, {k['errors']} errors, {k['rows_stored']}/{k['rows_expected']} rows",
                "met": cpu <= PROVIDER_TARGET_CPU_MS and clean,
            }
        )
        targets.append(
            {
                "target": f"provider {kind}: CPU per turn <= {TARGET_CPU_VS_FLOOR:g}x the floor's",
                "figure": f"{report.fmt(ratio, 1)}x",
                "met": ratio is not None and ratio <= TARGET_CPU_VS_FLOOR,
            }
        )
    return {"targets": targets, "met": all(t["met"] for t in targets) and bool(targets)}


def _add_message(thread_id: str) -> bytes:
    return json.dumps(chatkit_bodies.add_user_message(thread_id, "and after that?")).encode()


def _row(label: str, s: dict[str, Any]) -> str:
    return (
        f"{label:10} {s['concurrency']:>5} {s['turns_per_s'] or 0:>8.1f} "
        f"{report.fmt(s['ttfb_ms']['p50'])!s:>7} {report.fmt(s['ttfb_ms']['p95'])!s:>7} "
        f"{report.fmt(s['ttfb_ms']['p99'])!s:>7} "
        f"{report.fmt(s['ttlb_ms']['p50'])!s:>7} {report.fmt(s['ttlb_ms']['p95'])!s:>7} "
        f"{report.fmt(s['ttlb_ms']['p99'])!s:>7} "
        f"{s['server_cpu_ms_per_turn']:>8.2f} {s['db_cpu_ms_per_turn']:>6.2f} {s['loadgen_cpu_ms_per_turn']:>6.2f} "
        f"{s['peak_rss_mib']:>7.1f} {s['errors']:>5}"
    )


HEADER = (
    f"{'server':10} {'conc':>5} {'turns/s':>8} {'ttfb50':>7} {'ttfb95':>7} {'ttfb99':>7} "
    f"{'ttlb50':>7} {'ttlb95':>7} {'ttlb99':>7} {'cpu ms':>8} {'db ms':>6} {'gen ms':>6} {'RSS MiB':>7} "
    f"{'errs':>5}"
)


def ratios(tp: dict[str, Any], floor: dict[str, Any]) -> dict[str, Any]:
    return {
        "concurrency": tp["concurrency"],
        "throughput": report.ratio(floor["turns_per_s"], tp["turns_per_s"]),  # floor/TP: >1 = TP slower
        "ttfb_p50": report.ratio(tp["ttfb_ms"]["p50"], floor["ttfb_ms"]["p50"]),
        "ttfb_p95": report.ratio(tp["ttfb_ms"]["p95"], floor["ttfb_ms"]["p95"]),
        "ttfb_p99": report.ratio(tp["ttfb_ms"]["p99"], floor["ttfb_ms"]["p99"]),
        "ttlb_p50": report.ratio(tp["ttlb_ms"]["p50"], floor["ttlb_ms"]["p50"]),
        "ttlb_p95": report.ratio(tp["ttlb_ms"]["p95"], floor["ttlb_ms"]["p95"]),
        "ttlb_p99": report.ratio(tp["ttlb_ms"]["p99"], floor["ttlb_ms"]["p99"]),
        "server_cpu_per_turn": report.ratio(tp["server_cpu_ms_per_turn"], floor["server_cpu_ms_per_turn"]),
        "peak_rss": report.ratio(tp["peak_rss_mib"], floor["peak_rss_mib"]),
    }


async def run(quick: bool) -> dict[str, Any]:
    plan = QUICK if quick else FULL
    info = report.machine()
    pg = await database.postgres_info()
    print(f"bench.turns{' (quick)' if quick else ''}: {report.describe_machine(info)}", flush=True)
    print(f"PostgreSQL {pg['version']} (max_connections {pg['max_connections']})", flush=True)
    servers.raise_fd_limit(4096)
    url = await database.create_database(DATABASE)
    tp: Server | None = None
    floor: Server | None = None
    try:
        database.migrate(url)
        pg["commit_latency_ms_p50"] = await database.commit_latency_ms(url)
        print(f"one autocommit INSERT (a durable write) takes {pg['commit_latency_ms_p50']} ms right now", flush=True)
        capture = await capture_turn(url, plan.in_process_turns)
        print(
            f"one turn issues {capture['statements']} statements "
            f"({capture['writes']} writes, {capture['reads']} reads, "
            f"{capture['transactions']} explicit transactions, {capture['pool_checkouts']} pool checkouts) "
            f"and streams {capture['frames']} frames; in-process CPU {capture['in_process_cpu_ms']['p50']} ms/turn",
            flush=True,
        )
        tokens = loadgen.dev_tokens("turn", max(plan.concurrency) + 1)
        with servers.scratch_dir("taskpilot-bench-turns-") as scratch:
            env = {
                "DATABASE_URL": url,
                "DATABASE_POOL_SIZE": str(POOL_SIZE),
                "DATABASE_MAX_OVERFLOW": str(MAX_OVERFLOW),
                "OFFLINE_MODEL_DELAY_MS": "0",
                "MODEL_PROVIDER": "offline",
                # Turn cost at every concurrency, 256 included: admission control must admit them all,
                # from the first turn (the adaptive floor, 50 by default, refused some at 64 and 256).
                "CHATKIT_MAX_STREAMS": str(max(plan.concurrency)),
                "CHATKIT_MIN_STREAMS": str(max(plan.concurrency)),
                **servers.UNTRIPPED_LIMITS,
            }
            tp = servers.start_server("taskpilot", "app.worker:create_app", env, workers=WORKERS, log_dir=scratch)
            # One real response body, replayed by the floor.
            connection = loadgen.HttpConnection(tp.host, tp.port)
            sample = await connection.request(
                "POST", "/chatkit", loadgen.threads_create(MESSAGE), loadgen.auth_headers(tokens[-1])
            )
            await connection.close()
            if sample.status != 200:
                raise RuntimeError(f"TaskPilot answered {sample.status}: {sample.body[:500]!r}")
            frames = loadgen.sse_frames(sample.body)
            steps = capture["steps"]
            if len(frames) != capture["frames"]:
                # The live turn streamed a different number of frames: keep the writes, in order, first.
                steps = [s for s in steps if s[0] == "write"] + [["frame", i] for i in range(len(frames))]
            plan_path = scratch / "floor-plan.json"
            plan_path.write_text(json.dumps({"frames": [f.decode() for f in frames], "steps": steps}))
            floor = servers.start_server(
                "floor",
                "bench.floor_app:create_app",
                {
                    "FLOOR_PLAN": str(plan_path),
                    "FLOOR_DATABASE_DSN": postgres.asyncpg_dsn(url),
                    "FLOOR_POOL_SIZE": str(POOL_SIZE + MAX_OVERFLOW),
                },
                workers=WORKERS,
                log_dir=scratch,
            )
            db_cpu = DbCpu(DATABASE)
            levels: list[dict[str, Any]] = []
            print("\n" + HEADER, flush=True)
            for concurrency in plan.concurrency:
                row: dict[str, Any] = {"concurrency": concurrency}
                for name, server in (("taskpilot", tp), ("floor", floor)):
                    level = await run_level(server, tokens, concurrency, plan, len(sample.body), db_cpu)
                    row[name] = level.summary()
                    print(_row(name, row[name]), flush=True)
                row["ratio"] = ratios(row["taskpilot"], row["floor"])
                levels.append(row)
            at16_floor = next((row["floor"] for row in levels if row["concurrency"] == 16), None)
            provider = await provider_turns(
                url, plan, scratch, db_cpu, at16_floor["server_cpu_ms_per_turn"] if at16_floor else None
            )
            profile_summary = None
            if plan.profile_s:
                profile_summary = await profile(tp, tokens, 16, plan.profile_s, scratch)
            tp_log, floor_log = tp.log_tail(5), floor.log_tail(5)
    finally:
        for server in (tp, floor):
            if server is not None:
                server.stop()
        await database.drop_database(DATABASE)

    print("\nTaskPilot / floor (x; throughput is floor/TaskPilot, so above 1 means TaskPilot is slower)")
    print(
        f"{'conc':>5} {'thru':>6} {'ttfb50':>7} {'ttfb95':>7} {'ttfb99':>7} {'ttlb50':>7} {'ttlb95':>7} "
        f"{'ttlb99':>7} {'cpu/turn':>9} {'RSS':>6}"
    )
    for row in levels:
        r = row["ratio"]
        print(
            f"{r['concurrency']:>5} {report.fmt(r['throughput'], 2):>6} {report.fmt(r['ttfb_p50'], 2):>7} "
            f"{report.fmt(r['ttfb_p95'], 2):>7} {report.fmt(r['ttfb_p99'], 2):>7} {report.fmt(r['ttlb_p50'], 2):>7} "
            f"{report.fmt(r['ttlb_p95'], 2):>7} {report.fmt(r['ttlb_p99'], 2):>7} "
            f"{report.fmt(r['server_cpu_per_turn'], 2):>9} {report.fmt(r['peak_rss'], 2):>6}"
        )
    at16 = next((row for row in levels if row["concurrency"] == 16), None)
    print(
        f"\nprovider path (MODEL_PROVIDER=openai, MODEL_TRANSPORT={provider['transport']}, at a local Responses "
        f"stand-in, 20 deltas, title answered), concurrency {PROVIDER_CONCURRENCY}:"
    )
    for kind in ("threads.create", "add_user_message"):
        k = provider[kind]
        print(
            f"  {kind:17} {k['turns_per_s']} turns/s, {k['server_cpu_ms_per_turn']} ms server CPU per turn "
            f"({report.fmt(k['cpu_vs_floor'], 1)}x the floor's), errors {k['errors']}, "
            f"rows stored {k['rows_stored']} of {k['rows_expected']} expected"
        )
    verdict = turn_targets(at16, provider)
    print()
    for target in verdict["targets"]:
        print(f"target: {'MET   ' if target['met'] else 'MISSED'} {target['target']}: {target['figure']}")
    for kind, provider_profile in provider.get("profiles_c16", {}).items():
        profiling.print_profile(
            f"where the provider path's server CPU goes, {kind} at concurrency {PROVIDER_CONCURRENCY} (py-spy)",
            provider_profile,
        )
        per_turn = provider[kind]["server_cpu_ms_per_turn"]
        if provider_profile.get("samples_busy"):
            print(f"  CPU ms per {kind} turn by stage (self), of {per_turn} ms:")
            for stage, share in provider_profile["self_by_stage"].items():
                print(f"    {stage:40} {per_turn * share / 100:6.2f}")
    if profile_summary is not None:
        profiling.print_profile("where TaskPilot's server CPU goes at concurrency 16 (py-spy)", profile_summary)
        if profile_summary.get("error"):
            print(f"  py-spy: {profile_summary['error']}")
        if at16 is not None and profile_summary.get("samples_busy"):
            per_turn = at16["taskpilot"]["server_cpu_ms_per_turn"]
            print(f"  CPU ms per turn by stage (self), of {per_turn} ms:")
            for stage, share in profile_summary["self_by_stage"].items():
                print(f"    {stage:40} {per_turn * share / 100:6.2f}")
    result = {
        "machine": info,
        "postgres": pg,
        "quick": quick,
        "workers": WORKERS,
        "message": MESSAGE,
        "plan": plan.__dict__,
        "turn": {k: v for k, v in capture.items() if k != "steps"},
        "floor_plan": capture["steps"],
        "response_bytes": len(sample.body),
        "levels": levels,
        "target": verdict,
        "provider_path": provider,
        "profile_c16": profile_summary,
        "server_log_tail": {"taskpilot": tp_log, "floor": floor_log},
    }
    path = report.write_results("turns", result)
    print(f"\nwrote {path}")
    return result


def main() -> int:
    servers.install_uvloop()
    asyncio.run(run(report.quick_mode()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
