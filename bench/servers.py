"""Server processes for a run: granian started exactly as `taskpilot serve` starts it (one argument
builder, `app.ops.serving`), its CPU and memory accounted over the whole process tree."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
from testkit.processes import PROJECT_ROOT, child_environment, free_port

from app.ops.serving import granian_argv
from app.settings import Settings


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


# ---- server processes ----------------------------------------------------------------------------


def clean_env() -> dict[str, str]:
    """The environment for a child server: the caller's, minus anything OpenAI or model related."""
    return child_environment()


# Limits high enough never to trip under load, but still on: their cost is part of a turn's cost.
UNTRIPPED_LIMITS = {
    "RATE_LIMIT_CHAT_PER_MINUTE": "100000",
    "RATE_LIMIT_UPLOADS_PER_MINUTE": "100000",
    "RATE_LIMIT_ANONYMOUS_PER_MINUTE": "100000",
    "CHATKIT_SESSION_RATE_LIMIT_PER_MINUTE": "100000",
    # bench.streams holds ten streams per user at once: the per-user share is not what it measures.
    "CHATKIT_MAX_STREAMS_PER_USER": "0",
}


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
) -> Server:
    """Start granian serving the ASGI factory TARGET with exactly the flags `taskpilot serve` uses."""
    port = free_port()
    full_env = {**clean_env(), **env, "HOST": "127.0.0.1", "PORT": str(port), "WORKERS": str(workers)}
    log_path = log_dir / f"{name}-{port}.log"
    log_file = log_path.open("wb")
    settings = Settings.from_env(full_env)
    process = subprocess.Popen(
        granian_argv(
            host="127.0.0.1",
            port=port,
            workers=workers,
            log_level="warning",
            target=target,
            header_read_timeout_seconds=settings.http_header_read_timeout_seconds,
            shutdown_grace_seconds=settings.shutdown_grace_seconds,
        ),
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
