"""Child processes on loopback: free ports, the environment a server gets, process trees."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Protocol

import httpx

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Variables of the parent that must never leak into a server under test or benchmark.
_SCRUBBED_PREFIXES = ("OPENAI_", "CHATKIT_", "MODEL", "WORKERS")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_environment() -> dict[str, str]:
    """The caller's environment minus anything OpenAI, model or worker related; the repository on
    PYTHONPATH (benchmarks serve their own ASGI apps, such as `bench.floor_app`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    return env


def child_pids(pid: int) -> list[int]:
    """Direct and indirect children of `pid` (granian's workers), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may contain spaces; the fields after its closing parenthesis do not.
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: list[int] = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Process(Protocol):
    """What `answers_ok` needs of a process: `subprocess.Popen`, or a server forked by the tests'
    server template."""

    def poll(self) -> int | None: ...


def answers_ok(url: str, process: subprocess.Popen[bytes] | Process, seconds: float) -> bool:
    """Poll `url` until it answers 200 (True), `process` exits or `seconds` pass (False)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False
