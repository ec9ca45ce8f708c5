"""Helpers for tests that need a real server process on a loopback port."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from testkit.processes import PROJECT_ROOT, answers_ok, child_environment, free_port

from app.ops.serving import granian_argv
from app.settings import Settings


@dataclass
class LiveServer:
    process: subprocess.Popen[bytes]
    base_url: str
    env: dict[str, str]
    log_path: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        # A worker granian respawned after a test killed one can outlive its main process (seen as
        # an orphan after tests/load/test_worker_death.py): end whatever is left of the server's group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def run_cli(args: list[str], env: dict[str, str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **env}
    result = subprocess.run(
        [sys.executable, "-m", "app", *args],
        env=full_env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"taskpilot {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def start_live_server(
    tmp_path: Path,
    env: dict[str, str],
    *,
    migrate: bool = True,
    via_cli: bool = False,
    ready_seconds: float = 30,
) -> LiveServer:
    """Migrate (optionally) and start `granian --interface asgi` on a free port; wait for /health
    (`ready_seconds`: several workers importing the app on a busy machine take longer).

    `via_cli` starts it the way `make run` does, with `taskpilot serve` (which execs granian with
    the arguments it builds from the settings), instead of calling granian directly."""
    port = free_port()
    server_env = {
        "APP_ENV": "development",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/live.db",
        "LOG_LEVEL": "info",
        **env,
        "HOST": "127.0.0.1",
        "PORT": str(port),
    }
    # The parent's OpenAI variables must never leak into a test server.
    full_env = child_environment()
    full_env.update(server_env)
    if migrate:
        run_cli(["db", "upgrade"], full_env)
    log_path = tmp_path / f"server-{port}.log"
    log_file = log_path.open("wb")
    command = (
        [sys.executable, "-m", "app", "serve"]
        if via_cli
        else granian_argv(
            host="127.0.0.1",
            port=port,
            workers=int(server_env.get("WORKERS", "1")),
            header_read_timeout_seconds=Settings.from_env(full_env).http_header_read_timeout_seconds,
        )
    )
    process = subprocess.Popen(
        command,
        env=full_env,
        cwd=PROJECT_ROOT,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so `stop` can end every worker it left
    )
    base_url = f"http://127.0.0.1:{port}"
    server = LiveServer(process=process, base_url=base_url, env=full_env, log_path=log_path)
    if answers_ok(f"{base_url}/health", process, ready_seconds):
        return server
    if process.poll() is not None:
        raise AssertionError(f"server exited with {process.returncode}:\n{server.log()}")
    server.stop()
    raise AssertionError(f"server did not become healthy in {ready_seconds:.0f} s:\n{server.log()}")
