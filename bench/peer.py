"""TaskPilot against OpenAI's own ChatKit sample backend, side by side in one run.

    python -m bench --only peer --peer-dir PATH      (or BENCH_PEER_DIR=PATH make bench)

PATH is a checkout of `openai/openai-chatkit-advanced-samples` (or its
`examples/cat-lounge/backend` directly). None of its code is in this repository: at bench time
its `pyproject.toml`'s dependencies are installed into a virtual environment of its own
(`var/bench-peer/<hash of that pyproject>`, made once and reused), and its FastAPI app is served
the way its README serves it (one uvicorn process), minus `--reload`.

Both servers answer `threads.create` turns streamed by the same local Responses stand-in
(`bench/fake_upstream.py`, 20 text deltas; the title request answered too). TaskPilot runs as
production runs it: granian with `taskpilot serve`'s flags and its event loop, bearer-token
auth, PostgreSQL, the title on, `MODEL_PROVIDER=openai`. The sample keeps its threads in memory
and checks no token; its Agents SDK tracing export is switched off (`OPENAI_AGENTS_DISABLE_TRACING`)
since OpenAI is not reachable from here and a failing exporter would only add noise.

At each concurrency (1, 16, 64; closed loop, one keep-alive connection and one user per client)
the two are measured alternately, REPS times, the order swapped every rep so drifting background
load falls on both alike. Reported per server: turns/s, time to last byte, server CPU per turn
(the process tree, from psutil); then TaskPilot/sample ratios as the median of the per-rep
ratios. Targets (issue 30): at 16, turns/s >= 2.0x the sample's and CPU per turn <= 0.45x.
Results go to bench/results/peer.json. Nothing asserts on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from testkit.processes import PROJECT_ROOT, child_environment, free_port

from bench import database, loadgen, report, servers
from bench.servers import ProcessTree, Server
from bench.turns import DbCpu, Plan, run_level

DATABASE = os.environ.get("BENCH_PEER_DATABASE", "taskpilot_bench_peer")
KEY = "sk-bench-peer"
MESSAGE = "what should I do first today?"
WORKERS = int(os.environ.get("BENCH_WORKERS", "1"))
REPS = int(os.environ.get("BENCH_PEER_REPS", "3"))
SAMPLE_SUBDIR = Path("examples/cat-lounge/backend")
TARGET_THROUGHPUT = 2.0  # TaskPilot turns/s over the sample's, at 16
TARGET_CPU = 0.45  # TaskPilot server CPU per turn over the sample's, at 16

FULL = Plan(concurrency=[1, 16, 64], warmup_s=2.0, measure_s=12.0, profile_s=0.0, in_process_turns=0)
QUICK = Plan(concurrency=[1, 16], warmup_s=0.5, measure_s=2.0, profile_s=0.0, in_process_turns=0)


def peer_dir(argv: list[str]) -> Path | None:
    """`--peer-dir PATH` / `--peer-dir=PATH` on the command line, else BENCH_PEER_DIR."""
    for n, arg in enumerate(argv):
        if arg == "--peer-dir" and n + 1 < len(argv):
            return Path(argv[n + 1])
        if arg.startswith("--peer-dir="):
            return Path(arg.split("=", 1)[1])
    value = os.environ.get("BENCH_PEER_DIR")
    return Path(value) if value else None


def sample_backend(path: Path) -> Path:
    """The cat-lounge backend inside a checkout (or `path` itself when it is that backend)."""
    for candidate in (path / SAMPLE_SUBDIR, path):
        if (candidate / "pyproject.toml").is_file() and (candidate / "app" / "main.py").is_file():
            return candidate.resolve()
    raise SystemExit(
        f"--peer-dir {path}: no {SAMPLE_SUBDIR}/pyproject.toml with app/main.py there; give a checkout of "
        "openai/openai-chatkit-advanced-samples"
    )


def sample_venv(backend: Path) -> Path:
    """A virtual environment holding the sample's declared dependencies, made once per pyproject."""
    pyproject = (backend / "pyproject.toml").read_bytes()
    venv = PROJECT_ROOT / "var" / "bench-peer" / hashlib.sha256(pyproject).hexdigest()[:12]
    python = venv / "bin" / "python"
    if (venv / ".installed").is_file():
        return python
    shutil.rmtree(venv, ignore_errors=True)
    dependencies = tomllib.loads(pyproject.decode())["project"]["dependencies"]
    print(f"installing the sample's dependencies into {venv}: {', '.join(dependencies)}", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *dependencies], check=True)
    (venv / ".installed").write_text("\n".join(dependencies) + "\n")
    return python


def start_sample(python: Path, backend: Path, upstream_port: int, log_dir: Path) -> Server:
    """The sample's FastAPI app on one uvicorn process (its README's command, without --reload)."""
    port = free_port()
    env = {k: v for k, v in child_environment().items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(
        OPENAI_API_KEY=KEY,
        OPENAI_BASE_URL=f"http://127.0.0.1:{upstream_port}/v1",
        OPENAI_AGENTS_DISABLE_TRACING="1",
    )
    log_path = log_dir / f"sample-{port}.log"
    process = subprocess.Popen(
        [
            *(str(python), "-m", "uvicorn", "app.main:app", "--app-dir", str(backend)),
            *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"),
        ],
        env=env,
        cwd=backend,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    server = Server(name="sample", process=process, port=port, log_path=log_path, tree=ProcessTree(process.pid))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the sample exited with {process.returncode}:\n{server.log_tail()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"GET /docs HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            if sock.recv(64).startswith(b"HTTP/1.1 200"):
                return server
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"the sample did not answer in 60 s:\n{server.log_tail()}")


async def _one_turn(server: Server, token: str) -> bytes:
    connection = loadgen.HttpConnection(server.host, server.port)
    try:
        response = await connection.request(
            "POST", "/chatkit", loadgen.threads_create(MESSAGE), loadgen.auth_headers(token)
        )
    finally:
        await connection.close()
    types = loadgen.event_types(response.body)
    if response.status != 200 or not types.get("thread.item.done"):
        raise RuntimeError(f"{server.name} answered {response.status}: {response.body[:400]!r}")
    return response.body


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 2) if present else None


def _row(name: str, concurrency: int, s: dict[str, Any]) -> str:
    return (
        f"{name:10} {concurrency:>5} {s['turns_per_s'] or 0:>8.1f} {report.fmt(s['ttlb_ms']['p50'])!s:>8} "
        f"{report.fmt(s['ttlb_ms']['p99'])!s:>8} {s['server_cpu_ms_per_turn']:>8.2f} "
        f"{s['server_cpu_utilisation'] or 0:>6.2f} {s['peak_rss_mib']:>8.1f} {s['errors']:>5}"
    )


async def run(quick: bool, path: Path | None = None) -> dict[str, Any]:
    path = path or peer_dir(sys.argv[1:])
    if path is None:
        print("bench.peer: skipped (give --peer-dir PATH or BENCH_PEER_DIR: a checkout of the sample backends)")
        return {"skipped": True}
    plan = QUICK if quick else FULL
    reps = 1 if quick else REPS
    backend = sample_backend(path)
    python = await asyncio.to_thread(sample_venv, backend)
    info = report.machine()
    print(f"bench.peer{' (quick)' if quick else ''}: {report.describe_machine(info)}", flush=True)
    print(f"the sample: {backend} ({python.parent.parent.name})", flush=True)
    servers.raise_fd_limit(4096)
    url = await database.create_database(DATABASE)
    started: list[Server] = []
    levels: list[dict[str, Any]] = []
    try:
        database.migrate(url)
        with servers.scratch_dir("taskpilot-bench-peer-") as scratch:
            fake = servers.start_server(
                "fake-openai",
                "bench.fake_upstream:create_app",
                {"FAKE_OPENAI_KEY": KEY, "FAKE_RESPONSES_DELTAS": "20"},
                log_dir=scratch,
            )
            started.append(fake)
            env = {
                "DATABASE_URL": url,
                "MODEL_PROVIDER": "openai",
                "MODEL_TRANSPORT": os.environ.get("BENCH_MODEL_TRANSPORT", "lean"),  # `openai`: the stock client
                "OPENAI_API_KEY": KEY,
                "OPENAI_BASE_URL": f"http://127.0.0.1:{fake.port}/v1",
                # Admission must let every client in: this compares turn cost, not refusals.
                "CHATKIT_MAX_STREAMS": str(max(plan.concurrency)),
                "CHATKIT_MIN_STREAMS": str(max(plan.concurrency)),  # the adaptive floor: admitted from the start
                # Each client is one user making a thread a turn, several thousand in a run: far past
                # the default 1,000 threads a user may keep (still checked, at a count never reached).
                "QUOTA_THREADS_PER_USER": "10000000",
                **servers.UNTRIPPED_LIMITS,
            }
            taskpilot = servers.start_server(
                "taskpilot", "app.worker:create_app", env, workers=WORKERS, log_dir=scratch
            )
            started.append(taskpilot)
            sample = start_sample(python, backend, fake.port, scratch)
            started.append(sample)
            tokens = loadgen.dev_tokens("peer", max(plan.concurrency) + 1)
            expected = {
                "taskpilot": len(await _one_turn(taskpilot, tokens[-1])),
                "sample": len(await _one_turn(sample, tokens[-1])),
            }
            db_cpu = DbCpu(DATABASE)
            print(
                f"\n{'server':10} {'conc':>5} {'turns/s':>8} {'ttlb50':>8} {'ttlb99':>8} {'cpu ms':>8} "
                f"{'cores':>6} {'RSS MiB':>8} {'errs':>5}",
                flush=True,
            )
            for concurrency in plan.concurrency:
                runs: dict[str, list[dict[str, Any]]] = {"taskpilot": [], "sample": []}
                for rep in range(reps):
                    order = [("taskpilot", taskpilot), ("sample", sample)]
                    for name, server in order if rep % 2 == 0 else order[::-1]:
                        level = await run_level(server, tokens, concurrency, plan, expected[name], db_cpu)
                        summary = level.summary()
                        runs[name].append(summary)
                        print(_row(name, concurrency, summary), flush=True)
                throughput = [
                    report.ratio(tp["turns_per_s"], peer["turns_per_s"])
                    for tp, peer in zip(runs["taskpilot"], runs["sample"], strict=True)
                ]
                cpu = [
                    report.ratio(tp["server_cpu_ms_per_turn"], peer["server_cpu_ms_per_turn"])
                    for tp, peer in zip(runs["taskpilot"], runs["sample"], strict=True)
                ]
                levels.append(
                    {
                        "concurrency": concurrency,
                        "runs": runs,
                        "median": {
                            name: {
                                "turns_per_s": _median([r["turns_per_s"] for r in rs]),
                                "server_cpu_ms_per_turn": _median([r["server_cpu_ms_per_turn"] for r in rs]),
                                "errors": sum(r["errors"] for r in rs),
                            }
                            for name, rs in runs.items()
                        },
                        "ratio": {"turns_per_s": _median(throughput), "server_cpu_per_turn": _median(cpu)},
                    }
                )
            logs = {server.name: server.log_tail(5) for server in started}
    finally:
        for server in reversed(started):
            server.stop()
        await database.drop_database(DATABASE)

    print("\nTaskPilot / sample (median of the per-rep ratios)")
    print(f"{'conc':>5} {'turns/s':>8} {'cpu/turn':>9}   medians: TaskPilot vs sample turns/s, CPU ms/turn")
    for level in levels:
        r, m = level["ratio"], level["median"]
        print(
            f"{level['concurrency']:>5} {report.fmt(r['turns_per_s'], 2):>8} "
            f"{report.fmt(r['server_cpu_per_turn'], 2):>9}"
            f"   {m['taskpilot']['turns_per_s']} vs {m['sample']['turns_per_s']}, "
            f"{m['taskpilot']['server_cpu_ms_per_turn']} vs {m['sample']['server_cpu_ms_per_turn']}"
        )
    targets = peer_targets(levels)
    print()
    for target in targets:
        print(f"target: {'MET   ' if target['met'] else 'MISSED'} {target['target']}: {target['figure']}")
    result = {
        "machine": info,
        "quick": quick,
        "reps": reps,
        "workers": WORKERS,
        "sample": str(backend),
        "sample_dependencies": (python.parent.parent / ".installed").read_text().split(),
        "levels": levels,
        "targets": targets,
        "server_log_tail": logs,
    }
    out = report.write_results("peer", result)
    print(f"\nwrote {out}")
    return result


def peer_targets(levels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    at16 = next((level for level in levels if level["concurrency"] == 16), None)
    if at16 is None:
        return []
    r, m = at16["ratio"], at16["median"]
    clean = m["taskpilot"]["errors"] == 0
    return [
        {
            "target": f"turns/s >= {TARGET_THROUGHPUT:g}x OpenAI's sample at 16, 0 errors",
            "figure": f"{report.fmt(r['turns_per_s'], 2)}x ({m['taskpilot']['turns_per_s']} vs "
            f"{m['sample']['turns_per_s']} turns/s), {m['taskpilot']['errors']} errors",
            "met": r["turns_per_s"] is not None and r["turns_per_s"] >= TARGET_THROUGHPUT and clean,
        },
        {
            "target": f"server CPU per turn <= {TARGET_CPU:g}x OpenAI's sample at 16",
            "figure": f"{report.fmt(r['server_cpu_per_turn'], 2)}x ({m['taskpilot']['server_cpu_ms_per_turn']} vs "
            f"{m['sample']['server_cpu_ms_per_turn']} ms)",
            "met": r["server_cpu_per_turn"] is not None and r["server_cpu_per_turn"] <= TARGET_CPU,
        },
    ]


def main() -> int:
    servers.install_uvloop()
    asyncio.run(run(report.quick_mode()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
