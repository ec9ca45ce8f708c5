"""What OpenTelemetry tracing costs a turn: the same turns with tracing off and on, in one run.

    python -m bench.tracing [--quick]        (or `python -m bench --only tracing`)

Two live TaskPilots on one PostgreSQL database (BENCH_POSTGRES_URL), as bench.turns runs them (granian,
the offline model with no delay, `threads.create` turns that call add_task): one with tracing off
(the default), one with OTEL_EXPORTER_OTLP_ENDPOINT pointing at a local OTLP/HTTP receiver this
benchmark starts (testkit/otlp_receiver.py, decoding every export as a collector would). Each level
runs both servers, alternating off/on for `rounds` rounds, so background load hits both alike; the
figures are the sums over the rounds: turns/s, server CPU ms per turn (granian's process tree,
user+system), time to last byte p50, and spans exported per turn.

The receiver runs in this process, so its decoding is the load generator's CPU, not the server's.
Spans are exported in batches every 5 s and at shutdown, so the last round's spans are counted once
the traced server has stopped. Figures go to bench/results/tracing.json; nothing asserts on time.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from typing import Any

from testkit.otlp_receiver import OtlpReceiver

from bench import database, loadgen, report, servers, turns
from bench.servers import Server

DATABASE = "taskpilot_bench_tracing"


@dataclass
class Plan:
    rounds: int  # off/on pairs per level
    levels: turns.Plan  # concurrency and the warm-up and measuring windows of each run


FULL = Plan(
    rounds=3, levels=turns.Plan(concurrency=[1, 16], warmup_s=1.0, measure_s=8.0, profile_s=0, in_process_turns=0)
)
QUICK = Plan(
    rounds=2, levels=turns.Plan(concurrency=[1, 16], warmup_s=0.5, measure_s=2.0, profile_s=0, in_process_turns=0)
)


def _sum(levels: list[dict[str, Any]]) -> dict[str, Any]:
    turns_done = sum(level["turns"] for level in levels)
    seconds = sum(level["seconds"] for level in levels)
    cpu_ms = sum(level["server_cpu_ms_per_turn"] * max(level["turns"], 1) for level in levels)
    return {
        "turns": turns_done,
        "errors": sum(level["errors"] for level in levels),
        "seconds": round(seconds, 2),
        "turns_per_s": round(turns_done / seconds, 1) if seconds else None,
        "server_cpu_ms_per_turn": round(cpu_ms / max(turns_done, 1), 2),
        "ttlb_ms_p50_median": sorted(level["ttlb_ms"]["p50"] or 0 for level in levels)[len(levels) // 2],
    }


async def run(quick: bool) -> dict[str, Any]:
    plan = QUICK if quick else FULL
    info = report.machine()
    print(f"bench.tracing{' (quick)' if quick else ''}: {report.describe_machine(info)}", flush=True)
    servers.raise_fd_limit(4096)
    url = await database.create_database(DATABASE)
    receiver = OtlpReceiver()
    off: Server | None = None
    on: Server | None = None
    levels: list[dict[str, Any]] = []
    try:
        database.migrate(url)
        tokens = loadgen.dev_tokens("trace", max(plan.levels.concurrency) + 1)
        with servers.scratch_dir("taskpilot-bench-tracing-") as scratch:
            env = {
                "DATABASE_URL": url,
                "OFFLINE_MODEL_DELAY_MS": "0",
                "MODEL_PROVIDER": "offline",
                "CHATKIT_MAX_STREAMS": str(max(plan.levels.concurrency)),
                **servers.UNTRIPPED_LIMITS,
            }
            off = servers.start_server(
                "tracing-off", "app.worker:create_app", env, workers=turns.WORKERS, log_dir=scratch
            )
            traced_env = {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_SERVICE_NAME": "bench"}
            on = servers.start_server(
                "tracing-on", "app.worker:create_app", traced_env, workers=turns.WORKERS, log_dir=scratch
            )
            connection = loadgen.HttpConnection(off.host, off.port)
            sample = await connection.request(
                "POST", "/chatkit", loadgen.threads_create(turns.MESSAGE), loadgen.auth_headers(tokens[-1])
            )
            await connection.close()
            if sample.status != 200:
                raise RuntimeError(f"TaskPilot answered {sample.status}: {sample.body[:500]!r}")
            db_cpu = turns.DbCpu(DATABASE)
            print(f"\n{'conc':>5} {'round':>5} {'tracing':>7} {'turns/s':>8} {'cpu ms/turn':>11} {'ttlb p50':>9}")
            for concurrency in plan.levels.concurrency:
                runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
                spans_before, turns_on = receiver.count(), 0
                for n in range(plan.rounds):
                    for name, server in (("off", off), ("on", on)):
                        level = await turns.run_level(
                            server, tokens, concurrency, plan.levels, len(sample.body), db_cpu
                        )
                        summary = level.summary()
                        runs[name].append(summary)
                        if name == "on":
                            turns_on += level.completed_total
                        print(
                            f"{concurrency:>5} {n + 1:>5} {name:>7} {summary['turns_per_s'] or 0:>8.1f} "
                            f"{summary['server_cpu_ms_per_turn']:>11.2f} {report.fmt(summary['ttlb_ms']['p50'], 1):>9} "
                            f"errors {summary['errors']}",
                            flush=True,
                        )
                # Batches leave every 5 s: wait for this level's last ones before counting.
                await asyncio.sleep(6)
                spans = receiver.count() - spans_before
                levels.append(
                    {
                        "concurrency": concurrency,
                        "off": _sum(runs["off"]),
                        "on": _sum(runs["on"]),
                        "rounds": runs,
                        "spans_per_turn_on": round(spans / max(turns_on, 1), 1),
                    }
                )
    finally:
        for server in (off, on):
            if server is not None:
                server.stop()
        receiver.close()
        await database.drop_database(DATABASE)

    print("\ntracing off vs on (sums over the rounds; CPU is the server's process tree)")
    print(
        f"{'conc':>5} {'turns/s off':>12} {'on':>7} {'cpu ms/turn off':>16} {'on':>7} {'delta':>7} {'spans/turn':>11}"
    )
    for row in levels:
        delta = row["on"]["server_cpu_ms_per_turn"] - row["off"]["server_cpu_ms_per_turn"]
        row["cpu_ms_per_turn_delta"] = round(delta, 2)
        print(
            f"{row['concurrency']:>5} {row['off']['turns_per_s']:>12} {row['on']['turns_per_s']:>7} "
            f"{row['off']['server_cpu_ms_per_turn']:>16} {row['on']['server_cpu_ms_per_turn']:>7} "
            f"{delta:>+7.2f} {row['spans_per_turn_on']:>11}"
        )
    result = {
        "machine": info,
        "quick": quick,
        "workers": turns.WORKERS,
        "plan": {"rounds": plan.rounds, **plan.levels.__dict__},
        "levels": levels,
    }
    path = report.write_results("tracing", result)
    print(f"\nwrote {path}")
    return result


def main() -> int:
    servers.install_uvloop()
    asyncio.run(run(report.quick_mode()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
