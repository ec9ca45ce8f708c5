"""What the live benchmarks share: scratch databases, granian processes, a lean HTTP client,
process CPU/RSS accounting, py-spy profiles, percentiles and the machine description.

The load generator is a small HTTP/1.1 client on asyncio streams (with uvloop) rather than
httpx: it runs on the same two cores as the server, so every microsecond it spends is taken
from the thing being measured, and it must cost the same for TaskPilot and for the floor.
It records when each chunk of a response arrives (granian sends each SSE frame as one chunk),
which is what the time-to-first-byte, time-to-last-byte and event-gap figures are made of.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import psutil
from sqlalchemy.engine import make_url

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = Path(__file__).resolve().parent / "results"
ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")


def quick_mode(argv: list[str] | None = None) -> bool:
    """`--quick` or BENCH_QUICK=1: a smoke run that finishes in well under a minute."""
    argv = sys.argv[1:] if argv is None else argv
    return "--quick" in argv or os.environ.get("BENCH_QUICK", "") not in ("", "0", "false")


def install_uvloop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's soft open-file limit towards `wanted` (never above the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ---- machine -------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """What the figures came from: CPUs, memory, load average right now, versions."""
    import granian

    load1, load5, load15 = os.getloadavg()
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "hostname": platform.node(),
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average": [round(load1, 2), round(load5, 2), round(load15, 2)],
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "granian": granian.__version__,
    }


def describe_machine(info: dict[str, Any]) -> str:
    return (
        f"{info['cpus']} CPUs ({info['cpu_model'] or 'unknown CPU'}), {info['memory_gib']} GiB, "
        f"Python {info['python']}, granian {info['granian']}, "
        f"load average {info['load_average'][0]:.2f} / {info['load_average'][1]:.2f} / "
        f"{info['load_average'][2]:.2f} at start"
    )


def write_results(name: str, payload: dict[str, Any]) -> Path:
    path = RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), **payload}
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


# ---- statistics ----------------------------------------------------------------------------------


def percentiles(samples: list[float], scale: float = 1000.0) -> dict[str, float | None]:
    """p50/p95/p99/max of `samples` (seconds), in milliseconds by default."""
    if not samples:
        return {"p50": None, "p95": None, "p99": None, "max": None, "n": 0}
    if len(samples) == 1:
        value = round(samples[0] * scale, 3)
        return {"p50": value, "p95": value, "p99": value, "max": value, "n": 1}
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return {
        "p50": round(q[49] * scale, 3),
        "p95": round(q[94] * scale, 3),
        "p99": round(q[98] * scale, 3),
        "max": round(max(samples) * scale, 3),
        "n": len(samples),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 2)


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


# ---- PostgreSQL ----------------------------------------------------------------------------------


def dsn(url: str) -> str:
    """A SQLAlchemy asyncpg URL as a plain libpq DSN for asyncpg."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def create_database(name: str) -> str:
    """Drop and create `name` on the BENCH_POSTGRES_URL server; its SQLAlchemy URL."""
    connection = await asyncpg.connect(dsn(ADMIN_URL))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


async def drop_database(name: str) -> None:
    connection = await asyncpg.connect(dsn(ADMIN_URL))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


async def postgres_info() -> dict[str, Any]:
    connection = await asyncpg.connect(dsn(ADMIN_URL))
    try:
        return {
            "version": await connection.fetchval("SHOW server_version"),
            "max_connections": int(await connection.fetchval("SHOW max_connections")),
            "connections_in_use": int(await connection.fetchval("SELECT count(*) FROM pg_stat_activity")),
        }
    finally:
        await connection.close()


async def commit_latency_ms(url: str, count: int = 100) -> float:
    """p50 of a one-row autocommit INSERT in `url`'s database: what one durable write costs right
    now (the WAL flush varies a lot with other people's disk activity on a shared machine)."""
    connection = await asyncpg.connect(dsn(url))
    try:
        await connection.execute("CREATE TABLE IF NOT EXISTS bench_commit_probe (id serial PRIMARY KEY, v text)")
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            await connection.execute("INSERT INTO bench_commit_probe (v) VALUES ($1)", "x" * 100)
            samples.append(time.perf_counter() - started)
        await connection.execute("DROP TABLE bench_commit_probe")
    finally:
        await connection.close()
    return round(statistics.median(samples) * 1000, 3)


def migrate(database_url: str) -> None:
    """`taskpilot db upgrade` against `database_url` (the migrations, not create_all)."""
    env = {**clean_env(), "DATABASE_URL": database_url}
    subprocess.run(
        [sys.executable, "-m", "app", "db", "upgrade"],
        env=env,
        cwd=PROJECT_ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )


# ---- server processes ----------------------------------------------------------------------------


def clean_env() -> dict[str, str]:
    """The environment for a child server: the caller's, minus anything OpenAI or model related."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CHATKIT_", "MODEL", "WORKERS"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    return env


# Limits high enough never to trip under load, but still on: their cost is part of a turn's cost.
UNTRIPPED_LIMITS = {
    "RATE_LIMIT_CHAT_PER_MINUTE": "100000",
    "RATE_LIMIT_UPLOADS_PER_MINUTE": "100000",
    "RATE_LIMIT_ANONYMOUS_PER_MINUTE": "100000",
    "CHATKIT_SESSION_RATE_LIMIT_PER_MINUTE": "100000",
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ProcessTree:
    """CPU time and resident memory of a process and all its children (granian's workers)."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)

    def processes(self) -> list[psutil.Process]:
        try:
            return [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def workers(self) -> list[psutil.Process]:
        try:
            return self.root.children(recursive=True) or [self.root]
        except psutil.NoSuchProcess:
            return []

    def cpu_seconds(self) -> float:
        total = 0.0
        for process in self.processes():
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
        return total

    def rss_bytes(self) -> int:
        total = 0
        for process in self.processes():
            with contextlib.suppress(psutil.Error):
                total += process.memory_info().rss
        return total


class RssSampler:
    """Samples a process tree's RSS every `interval` seconds in the background; keeps the peak."""

    def __init__(self, tree: ProcessTree, interval: float = 0.05) -> None:
        self.tree = tree
        self.interval = interval
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, await asyncio.to_thread(self.tree.rss_bytes))
            await asyncio.sleep(self.interval)

    def __enter__(self) -> RssSampler:
        self.peak = self.tree.rss_bytes()
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
        self.peak = max(self.peak, self.tree.rss_bytes())


@dataclass
class Server:
    """A granian process serving an ASGI factory on a loopback port."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    tree: ProcessTree

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_server(
    name: str,
    target: str,
    env: dict[str, str],
    *,
    workers: int = 1,
    log_dir: Path,
    health_path: str = "/health",
    backlog: int = 2048,
) -> Server:
    """Start `granian --interface asgi --factory TARGET` (the flags `taskpilot serve` uses)."""
    port = free_port()
    full_env = {**clean_env(), **env, "HOST": "127.0.0.1", "PORT": str(port), "WORKERS": str(workers)}
    log_path = log_dir / f"{name}-{port}.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "granian",
            "--interface",
            "asgi",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--backlog",
            str(backlog),
            "--log-level",
            "warning",
            "--no-access-log",
            target,
        ],
        env=full_env,
        cwd=PROJECT_ROOT,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    server = Server(name=name, process=process, port=port, log_path=log_path, tree=ProcessTree(process.pid))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{server.log_tail()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(f"GET {health_path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
            # every worker must have started too
            if sock.recv(64).startswith(b"HTTP/1.1 200") and len(server.tree.workers()) >= workers:
                return server
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{name} did not become healthy in 60 s:\n{server.log_tail()}")


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# ---- HTTP client ---------------------------------------------------------------------------------


class HttpError(Exception):
    pass


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    started: float  # perf_counter when the request was written
    first_byte: float  # when the first byte of the body arrived (the first SSE event)
    last_byte: float  # when the last byte arrived
    chunks: list[tuple[float, bytes]] = field(default_factory=list)  # only when kept

    @property
    def ttfb(self) -> float:
        return self.first_byte - self.started

    @property
    def ttlb(self) -> float:
        return self.last_byte - self.started


class HttpConnection:
    """One keep-alive HTTP/1.1 connection: request, then read a chunked or sized body."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=1 << 22)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        *,
        keep_chunks: bool = False,
        on_chunk: Callable[[float, bytes], None] | None = None,
    ) -> Response:
        if self.writer is None:
            await self.connect()
        assert self.reader is not None
        assert self.writer is not None
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        head += [f"{name}: {value}" for name, value in (headers or {}).items()]
        started = time.perf_counter()
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        reader = self.reader
        try:
            raw_head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            await self.close()
            raise HttpError(f"connection closed before a response: {exc!r}") from None
        lines = raw_head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        response_headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                response_headers[name.strip().lower()] = value.strip()
        first_byte = last_byte = 0.0
        parts: list[bytes] = []
        chunks: list[tuple[float, bytes]] = []
        if response_headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";", 1)[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                data = (await reader.readexactly(size + 2))[:-2]
                now = time.perf_counter()
                if not first_byte:
                    first_byte = now
                last_byte = now
                parts.append(data)
                if keep_chunks:
                    chunks.append((now, data))
                if on_chunk is not None:
                    on_chunk(now, data)
        else:
            length = int(response_headers.get("content-length", "0"))
            data = await reader.readexactly(length) if length else b""
            first_byte = last_byte = time.perf_counter()
            parts.append(data)
        if response_headers.get("connection", "").lower() == "close":
            await self.close()
        return Response(status, response_headers, b"".join(parts), started, first_byte, last_byte, chunks)


def sse_frames(body: bytes) -> list[bytes]:
    """The frames of an SSE body, each with its trailing blank line (as they were sent)."""
    return [frame + b"\n\n" for frame in body.split(b"\n\n") if frame.strip()]


def event_type(frame: bytes) -> str:
    """The ChatKit event type of a `data: {...}` frame ("keepalive" for comments)."""
    if frame.startswith(b":"):
        return "keepalive"
    try:
        event = json.loads(frame.removeprefix(b"data: "))
    except ValueError:
        return "?"
    kind = str(event.get("type", "?"))
    update = event.get("update")
    if isinstance(update, dict) and update.get("type"):
        kind += ":" + str(update["type"])
    return kind


def event_types(body: bytes) -> Counter[str]:
    return Counter(event_type(frame) for frame in sse_frames(body))


# ---- threads.create ------------------------------------------------------------------------------


def threads_create(text: str) -> bytes:
    return json.dumps(
        {
            "type": "threads.create",
            "params": {
                "input": {
                    "content": [{"type": "input_text", "text": text}],
                    "attachments": [],
                    "inference_options": {},
                }
            },
        }
    ).encode()


def dev_tokens(prefix: str, count: int) -> list[str]:
    """Development-mode bearer tokens for users `prefix0000`..; valid for two hours."""
    from app.auth import mint_dev_token
    from app.settings import Settings

    settings = Settings.from_env({})
    return [mint_dev_token(settings, f"{prefix}{n:04d}", ttl_seconds=7200) for n in range(count)]


def auth_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


# ---- profiling -----------------------------------------------------------------------------------


def py_spy_available() -> str | None:
    candidate = Path(sys.executable).with_name("py-spy")
    if candidate.exists():
        return str(candidate)
    return shutil.which("py-spy")


class PySpy:
    """`py-spy record --format raw` of a server's workers while a load runs; summarised by stage."""

    def __init__(
        self, pids: list[int], output_dir: Path, name: str, *, rate: int = 100, nonblocking: bool = False
    ) -> None:
        self.pids = pids
        self.nonblocking = nonblocking
        self.output_dir = output_dir
        self.name = name
        self.rate = rate
        self.processes: list[tuple[subprocess.Popen[bytes], Path]] = []
        self.error: str | None = None

    def start(self, duration: float) -> None:
        binary = py_spy_available()
        if binary is None:
            self.error = "py-spy not installed (pip install py-spy)"
            return
        for pid in self.pids:
            out = self.output_dir / f"{self.name}-{pid}.txt"
            process = subprocess.Popen(
                [
                    binary,
                    "record",
                    "--pid",
                    str(pid),
                    "--duration",
                    str(max(1, round(duration))),
                    "--rate",
                    str(self.rate),
                    "--format",
                    "raw",
                    *(["--nonblocking"] if self.nonblocking else []),
                    "--output",
                    str(out),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            self.processes.append((process, out))

    def stop(self) -> list[str]:
        """Wait for the recorders; the collapsed stacks they wrote (one `stack count` per line)."""
        lines: list[str] = []
        for process, out in self.processes:
            try:
                _, stderr = process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                _, stderr = process.communicate()
            if out.exists():
                lines += out.read_text(errors="replace").splitlines()
            elif self.error is None:
                self.error = (stderr or b"").decode(errors="replace").strip()[-300:] or "py-spy wrote nothing"
        if lines:
            # The raw collapsed stacks, for digging further (flamegraph.pl, speedscope, grep).
            RESULTS_DIR.mkdir(parents=True, exist_ok=True)
            (RESULTS_DIR / f"profile-{self.name}.json").write_text(json.dumps({"py_spy_raw": lines}))
        return lines


# Where server CPU goes, by the outermost frame of a known kind on each sampled stack
# (outermost first, so "agents" means the Agents SDK's runner and everything under it that is
# not itself a more specific stage). Order matters: the first match from the leaf upward wins
# for "self" time; for "stage" time the rules below are applied to the whole stack.
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("db driver (asyncpg)", ("asyncpg/",)),
    ("sqlalchemy + advanced_alchemy", ("sqlalchemy/", "advanced_alchemy/")),
    ("pydantic (validate/serialise)", ("pydantic/", "pydantic_core/")),
    ("openai types", ("openai/",)),
    ("agents SDK", ("agents/",)),
    ("chatkit library", ("chatkit/",)),
    ("litestar (routing, DI, responses)", ("litestar/",)),
    ("auth (pyjwt, cryptography)", ("jwt/", "cryptography/")),
    ("logging / json", ("logging/", "json/")),
    ("asyncio event loop", ("asyncio/", "uvloop/")),
    ("app code (src/app)", ("/app/",)),
]


def _frame_file(frame: str) -> str:
    # raw format frames look like "function (path/to/file.py:123)"
    start = frame.rfind("(")
    return frame[start + 1 :] if start >= 0 else frame


def _classify(frame: str) -> str | None:
    where = _frame_file(frame)
    for stage, needles in STAGES:
        if any(needle in where for needle in needles):
            if stage == "app code (src/app)" and "/src/app/" not in where and "site-packages" in where:
                continue
            return stage
    return None


def summarise_profile(lines: list[str], top: int = 15) -> dict[str, Any]:
    """Self time by library and the hottest functions, from py-spy raw (collapsed) stacks.

    Idle samples (the event loop waiting in select/epoll, granian's threads parked) are counted
    apart: the shares below are of the samples where Python was running.
    """
    by_stage: Counter[str] = Counter()
    by_function: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    busy = idle = 0
    for line in lines:
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        leaf = frames[-1]
        if any(
            marker in leaf
            for marker in ("select (selectors.py", "_run_once (asyncio", "run_forever", "poll (", "epoll")
        ) or leaf.startswith(("select ", "wait ", "_wait_for_tstate_lock", "sleep ")):
            idle += count
            continue
        busy += count
        stage = None
        for frame in reversed(frames):
            stage = _classify(frame)
            if stage is not None:
                break
        by_stage[stage or "other (stdlib, C extensions)"] += count
        by_function[leaf] += count
        for seen in {s for s in (_classify(f) for f in frames) if s is not None}:
            inclusive[seen] += count
    if busy == 0:
        return {"samples_busy": 0, "samples_idle": idle, "self_by_stage": {}, "inclusive_by_stage": {}, "top": []}
    return {
        "samples_busy": busy,
        "samples_idle": idle,
        "self_by_stage": {k: round(100 * v / busy, 1) for k, v in by_stage.most_common()},
        "inclusive_by_stage": {k: round(100 * v / busy, 1) for k, v in inclusive.most_common()},
        "top": [{"function": k, "self_pct": round(100 * v / busy, 1)} for k, v in by_function.most_common(top)],
    }


def print_profile(title: str, summary: dict[str, Any], *, top: int = 10) -> None:
    if not summary.get("samples_busy"):
        print(f"\n{title}: no busy samples")
        return
    print(f"\n{title} ({summary['samples_busy']} busy samples, {summary['samples_idle']} idle)")
    print(f"  {'stage':40} {'self %':>7} {'incl %':>7}")
    for stage, share in summary["self_by_stage"].items():
        print(f"  {stage:40} {share:7.1f} {summary['inclusive_by_stage'].get(stage, 0.0):7.1f}")
    print("  hottest functions (self %):")
    for entry in summary["top"][:top]:
        print(f"    {entry['self_pct']:5.1f}  {entry['function'][:110]}")
