"""The whole benchmark suite: `python -m bench [--quick]` (what `make bench` runs).

1. bench.turns    the cost of a turn against its floor (1, 16, 64, 256), and on the provider path
2. bench.streams  1,000 open streams at one delta per 100 ms: event gaps, memory per stream
3. bench.overload the provider path offered 3x what admission control admits: refusals, no damage
4. bench.mint     hosted session minting against calling the openai SDK directly
5. bench.store    the ChatKit Store's calls against the same SQL sent raw through asyncpg
6. bench.peer     TaskPilot against OpenAI's own ChatKit sample backend, alternated in one run
                  (needs `--peer-dir PATH` or BENCH_PEER_DIR: a checkout of the sample backends;
                  skipped without it)

Only when asked for (`--only tracing`): bench.tracing, the same turns with OpenTelemetry tracing
off and on (exporting to a local OTLP receiver), alternating, in one run.

Each prints its table and writes bench/results/<name>.json; this prints a summary of the
targets at the end and writes bench/results/summary.json. `--quick` (or BENCH_QUICK=1) is a
smoke run of all three in about a minute; the full run takes about five minutes on two cores.
`--only turns,mint` runs a subset (`make bench-store` is `--only store`).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

from bench import mint, overload, peer, report, servers, store, streams, tracing, turns

SUITE = {
    "turns": turns.run,
    "streams": streams.run,
    "overload": overload.run,
    "mint": mint.run,
    "store": store.run,
    "peer": peer.run,
}
# Run only when named with --only (not part of `make bench`'s five-minute run).
OPT_IN = {"tracing": tracing.run}


def _selected(argv: list[str]) -> list[str]:
    for n, arg in enumerate(argv):
        if arg == "--only" and n + 1 < len(argv):
            return [name.strip() for name in argv[n + 1].split(",") if name.strip() in SUITE | OPT_IN]
        if arg.startswith("--only="):
            return [name.strip() for name in arg.split("=", 1)[1].split(",") if name.strip() in SUITE | OPT_IN]
    return list(SUITE)


async def run_all(quick: bool, names: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    started = time.perf_counter()
    for name in names:
        print(f"\n===== bench.{name} =====", flush=True)
        results[name] = await (SUITE | OPT_IN)[name](quick)
    load = os.getloadavg()
    summary: dict[str, Any] = {
        "quick": quick,
        "seconds": round(time.perf_counter() - started, 1),
        "load_average_at_end": [round(x, 2) for x in load],
        "machine": report.machine(),
        "targets": {},
    }
    if "turns" in results:
        for target in results["turns"]["target"]["targets"]:
            summary["targets"][target["target"]] = target
    if "streams" in results:
        s = results["streams"]
        summary["targets"][f"{s['streams']} open streams, p99 event gap < 150 ms"] = {
            "met": s["targets"]["gap_p99_under_150ms"],
            "figure": f"{s['gap_ms_hold']['p99']} ms (hold), {s['gap_ms_whole_run']['p99']} ms (whole run), "
            f"all open together: {s['all_open_together']}",
            "gap_ms_hold": s["gap_ms_hold"],
            "gap_ms_whole_run": s["gap_ms_whole_run"],
        }
        summary["targets"]["under 100 KB per open stream"] = {
            "met": s["targets"]["under_100kb_per_stream"],
            "figure": f"{s['kb_per_stream']} KB",
        }
        summary["targets"][f"streams: <= {streams.TARGET_CPU_MS_PER_DELTA} ms CPU per delta"] = {
            "met": s["targets"]["cpu_per_delta"],
            "figure": f"{s['server_cpu_ms_per_delta']} ms during the hold"
            + ("" if s["all_open_together"] else f" (none; {s['server_cpu_ms_per_delta_whole_run']} ms over the run)"),
        }
        summary["targets"]["every stream completes"] = {
            "met": s["targets"]["all_completed"],
            "figure": f"{s['completed']} of {s['streams']}",
        }
    if "overload" in results:
        o = results["overload"]
        summary["targets"]["offered 3x the admission limit: 0 failed or cut after accept"] = {
            "met": o["rules"]["none_failed_or_cut_after_accept"] and o["rules"]["refusals_503_with_retry_after"],
            "figure": f"{o['outcome']}",
            "outcome": o["outcome"],
        }
        summary["targets"]["at the admission limit, p99 gap < 150 ms"] = {
            "met": o["targets"]["gap_p99_under_150ms_at_limit"],
            "figure": f"{o['gap_ms_hold']['p99']} ms",
            "gap_ms_hold": o["gap_ms_hold"],
        }
        summary["targets"]["provider path: <= 0.25 ms CPU per delta"] = {
            "met": o["targets"]["cpu_per_delta_at_most_0_25ms"],
            "figure": f"{o['server_cpu_ms_per_delta']} ms",
            "server_cpu_ms_per_delta": o["server_cpu_ms_per_delta"],
        }
    if "mint" in results:
        m = results["mint"]
        summary["targets"][f"minting p50 <= {m['target']['overhead_under']:g}x the direct SDK call's"] = {
            "met": m["target"]["met"],
            "figure": f"{m['overhead']['latency_p50']}x at p50",
            "overhead": m["overhead"],
        }
    if "peer" in results and not results["peer"].get("skipped"):
        for target in results["peer"]["targets"]:
            summary["targets"][target["target"]] = target
    if "store" in results:
        t = results["store"]["targets"]
        summary["targets"][f"store calls p50 <= {store.TARGET_RATIO:g}x raw asyncpg"] = t["ratio"]
        summary["targets"][f"store calls p95 < {store.TARGET_P95_MS:g} ms on a 10,000-item thread"] = t["p95"]
    print(f"\n===== summary ({summary['seconds']} s, load average now {summary['load_average_at_end']}) =====")
    for target, verdict in summary["targets"].items():
        print(f"  {'MET   ' if verdict.get('met') else 'MISSED'} {target}: {verdict.get('figure', '')}")
    path = report.write_results("summary", summary)
    print(f"wrote {path}")
    return summary


def main() -> int:
    servers.install_uvloop()
    asyncio.run(run_all(report.quick_mode(), _selected(sys.argv[1:])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
