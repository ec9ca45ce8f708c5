"""Hosted session minting: TaskPilot's POST /api/chatkit/sessions against calling the SDK directly.

    python -m bench.mint [--quick]           (`make bench` runs it with the other benchmarks)

Both sides mint against the same local fake of OpenAI's ChatKit sessions API
(`bench/fake_upstream.py`, a bare ASGI app in its own granian process, so the fake's cost is small
and the same for both). "Direct" is `AsyncOpenAI(...).beta.chatkit.sessions.create(**params)`
in this process with the very parameters TaskPilot sends (`HostedChatKit.create_params`).
"TaskPilot" is the whole endpoint over real HTTP: auth, the per-user rate limiter (limits set
high enough never to trip), the same SDK call, the `hosted_sessions` row in PostgreSQL, the
response.

Reported: latency one mint at a time (p50/p95/p99), mints/s with 16 concurrent callers, and
CPU per mint (TaskPilot's server process tree; this process for the direct calls), then the
overhead TaskPilot / direct. In the full run a py-spy profile of TaskPilot under load says where
its extra time goes. Figures go to bench/results/mint.json.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bench import database, loadgen, profiling, report, servers

DATABASE = os.environ.get("BENCH_MINT_DATABASE", "taskpilot_bench_mint")
API_KEY = "sk-bench-0123456789abcdef"
WORKFLOW = "wf_bench_0123456789"
TARGET_OVERHEAD = 2.0  # issue 16: minting at most 2x the direct SDK call, the audit row kept durable


@dataclass
class Plan:
    sequential: int
    concurrency: int
    concurrent_s: float
    profile_s: float


FULL = Plan(sequential=400, concurrency=16, concurrent_s=6.0, profile_s=5.0)
QUICK = Plan(sequential=40, concurrency=16, concurrent_s=1.5, profile_s=0.0)


async def sequential(call: Callable[[int], Awaitable[None]], count: int) -> list[float]:
    for n in range(20):  # warm: connections, imports, prepared statements
        await call(-1 - n)
    samples = []
    for n in range(count):
        started = time.perf_counter()
        await call(n)
        samples.append(time.perf_counter() - started)
    return samples


async def concurrent(
    make_call: Callable[[int], Callable[[int], Awaitable[None]]], concurrency: int, seconds: float
) -> tuple[int, float, list[float]]:
    """Closed loop: `concurrency` callers for `seconds`; (completed, elapsed, latencies)."""
    stop = time.perf_counter() + seconds
    latencies: list[float] = []

    async def caller(worker: int) -> None:
        call = make_call(worker)
        n = 0
        while time.perf_counter() < stop:
            started = time.perf_counter()
            await call(n)
            latencies.append(time.perf_counter() - started)
            n += 1

    started = time.perf_counter()
    await asyncio.gather(*(caller(w) for w in range(concurrency)))
    return len(latencies), time.perf_counter() - started, latencies


async def run(quick: bool) -> dict[str, Any]:
    from openai import AsyncOpenAI

    from app.services.openai_sessions import MAX_RETRIES, HostedChatKit
    from app.settings import Settings

    plan = QUICK if quick else FULL
    info = report.machine()
    print(f"bench.mint{' (quick)' if quick else ''}: {report.describe_machine(info)}", flush=True)
    url = await database.create_database(DATABASE)
    fake: servers.Server | None = None
    tp: servers.Server | None = None
    try:
        database.migrate(url)
        commit_ms = await database.commit_latency_ms(url)
        print(f"one autocommit INSERT (a durable write) takes {commit_ms} ms right now", flush=True)
        with servers.scratch_dir("taskpilot-bench-mint-") as scratch:
            fake = servers.start_server(
                "fake-openai", "bench.fake_upstream:create_app", {"FAKE_OPENAI_KEY": API_KEY}, log_dir=scratch
            )
            base_url = f"http://127.0.0.1:{fake.port}/v1"
            env = {
                "DATABASE_URL": url,
                "OPENAI_API_KEY": API_KEY,
                "OPENAI_BASE_URL": base_url,
                "CHATKIT_WORKFLOW_ID": WORKFLOW,
                "MODEL_PROVIDER": "offline",
                **servers.UNTRIPPED_LIMITS,
            }
            tp = servers.start_server("taskpilot", "app.worker:create_app", env, log_dir=scratch)
            settings = Settings.from_env(env)
            hosted = HostedChatKit(settings)
            # The client TaskPilot builds, with the same options (timeout, retries, base URL).
            client = AsyncOpenAI(
                api_key=API_KEY, base_url=base_url, timeout=settings.openai_timeout_seconds, max_retries=MAX_RETRIES
            )
            tokens = loadgen.dev_tokens("mint", plan.concurrency + 1)

            def direct_call(worker: int) -> Callable[[int], Awaitable[None]]:
                async def call(n: int) -> None:
                    session = await client.beta.chatkit.sessions.create(**hosted.create_params(f"mint{worker:04d}"))
                    assert session.client_secret

                return call

            connections: dict[int, loadgen.HttpConnection] = {}

            def taskpilot_call(worker: int) -> Callable[[int], Awaitable[None]]:
                connection = connections.setdefault(worker, loadgen.HttpConnection(tp.host, tp.port))
                headers = loadgen.auth_headers(tokens[worker])

                async def call(n: int) -> None:
                    response = await connection.request("POST", "/api/chatkit/sessions", b"", headers)
                    if response.status != 200:
                        raise RuntimeError(f"mint answered {response.status}: {response.body[:300]!r}")

                return call

            results: dict[str, Any] = {}
            for name, make in (("direct_sdk", direct_call), ("taskpilot", taskpilot_call)):
                server_tree = tp.tree if name == "taskpilot" else None
                cpu0 = server_tree.cpu_seconds() if server_tree else time.process_time()
                fake0 = fake.tree.cpu_seconds()
                seq = await sequential(make(plan.concurrency), plan.sequential)
                cpu_seq = (server_tree.cpu_seconds() if server_tree else time.process_time()) - cpu0
                fake_seq = fake.tree.cpu_seconds() - fake0
                cpu0 = server_tree.cpu_seconds() if server_tree else time.process_time()
                done, elapsed, latencies = await concurrent(make, plan.concurrency, plan.concurrent_s)
                cpu_conc = (server_tree.cpu_seconds() if server_tree else time.process_time()) - cpu0
                results[name] = {
                    "sequential_ms": report.percentiles(seq),
                    "sequential_cpu_ms_per_mint": round(1000 * cpu_seq / (plan.sequential + 20), 3),
                    "fake_cpu_ms_per_mint": round(1000 * fake_seq / (plan.sequential + 20), 3),
                    "concurrent": plan.concurrency,
                    "mints_per_s": round(done / elapsed, 1),
                    "concurrent_ms": report.percentiles(latencies),
                    "concurrent_cpu_ms_per_mint": round(1000 * cpu_conc / max(done, 1), 3),
                }
                print(f"  measured {name}", flush=True)
            profile = None
            if plan.profile_s:
                spy = profiling.PySpy([p.pid for p in tp.tree.workers()], scratch, "mint-profile")
                spy.start(plan.profile_s)
                await concurrent(taskpilot_call, plan.concurrency, plan.profile_s + 0.5)
                profile = profiling.summarise_profile(await asyncio.to_thread(spy.stop), top=20)
                profile["error"] = spy.error
            for connection in connections.values():
                await connection.close()
            await client.close()
    finally:
        for server in (tp, fake):
            if server is not None:
                server.stop()
        await database.drop_database(DATABASE)

    d, t = results["direct_sdk"], results["taskpilot"]
    overhead = {
        "latency_p50": report.ratio(t["sequential_ms"]["p50"], d["sequential_ms"]["p50"]),
        "latency_p99": report.ratio(t["sequential_ms"]["p99"], d["sequential_ms"]["p99"]),
        "throughput": report.ratio(d["mints_per_s"], t["mints_per_s"]),
        "cpu_per_mint": report.ratio(t["concurrent_cpu_ms_per_mint"], d["concurrent_cpu_ms_per_mint"]),
    }
    print()
    print(
        f"{'':12} {'seq p50':>8} {'seq p95':>8} {'seq p99':>8} {'mints/s@' + str(plan.concurrency):>12} "
        f"{'conc p50':>9} {'conc p99':>9} {'cpu ms/mint':>12}"
    )
    for name, r in (("direct SDK", d), ("TaskPilot", t)):
        print(
            f"{name:12} {report.fmt(r['sequential_ms']['p50'], 2):>8} {report.fmt(r['sequential_ms']['p95'], 2):>8} "
            f"{report.fmt(r['sequential_ms']['p99'], 2):>8} {r['mints_per_s']:>12.1f} "
            f"{report.fmt(r['concurrent_ms']['p50'], 2):>9} {report.fmt(r['concurrent_ms']['p99'], 2):>9} "
            f"{r['concurrent_cpu_ms_per_mint']:>12.2f}"
        )
    print(
        f"fake upstream CPU per mint: {d['fake_cpu_ms_per_mint']:.2f} ms (direct), {t['fake_cpu_ms_per_mint']:.2f} ms "
        "(TaskPilot)"
    )
    print(f"TaskPilot / direct: {overhead}")
    met = overhead["latency_p50"] is not None and overhead["latency_p50"] <= TARGET_OVERHEAD
    print(
        f"\ntarget: minting at most {TARGET_OVERHEAD}x the direct SDK call (p50 latency, one at a time): "
        f"{'MET' if met else 'MISSED'} ({overhead['latency_p50']}x; throughput {overhead['throughput']}x)"
    )
    if profile is not None:
        profiling.print_profile("where TaskPilot's server CPU goes while minting (py-spy)", profile)
    result = {
        "machine": info,
        "quick": quick,
        "fake": "bench/fake_upstream.py (bare ASGI on granian, own process)",
        "commit_latency_ms_p50": commit_ms,
        "results": results,
        "overhead": overhead,
        "target": {"overhead_under": TARGET_OVERHEAD, "met": met},
        "profile": profile,
    }
    path = report.write_results("mint", result)
    print(f"\nwrote {path}")
    return result


def main() -> int:
    servers.install_uvloop()
    asyncio.run(run(report.quick_mode()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
