"""Real server processes on loopback ports: start one, share one, and migrate databases once.

- `start_live_server` starts `granian` (or `taskpilot serve`) exactly as production does and waits
  for `/health`.
- `MIGRATED` runs `taskpilot db upgrade` once per test process and hands out copies: a SQLite file
  copied from a migrated one, a PostgreSQL database created from a migrated template
  (`CREATE DATABASE … TEMPLATE`). A server start costs a granian start, not a migration too.
- `ServerPool` (the session fixture `live_servers`) keeps one server per distinct environment for
  the whole test process: tests that only need "a server like this" share it and keep apart by
  signing in as users of their own (`unique_user`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from sqlalchemy.engine import make_url
from testkit.postgres import create_database, drop_database, fetch, scratch_name
from testkit.processes import PROJECT_ROOT, answers_ok, child_environment, free_port

from app.ops.serving import granian_argv
from app.settings import Settings
from tests.support.server_template import TEMPLATE, TemplateChild


@dataclass
class LiveServer:
    # A fresh process, or a child of the server template (tests/support/server_template.py).
    process: subprocess.Popen[bytes] | TemplateChild
    base_url: str
    env: dict[str, str]
    log_path: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        self.signal_stop(sig)
        return self.finish_stop(timeout)

    def signal_stop(self, sig: int = signal.SIGTERM) -> None:
        """Ask the server to stop (`finish_stop` waits): several servers then stop side by side."""
        if self.process.poll() is None:
            self.process.send_signal(sig)

    def finish_stop(self, timeout: float = 15) -> int:
        """Wait for a server asked to stop; killed after `timeout` seconds. Its exit status."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        # A worker granian respawned after a test killed one can outlive its main process (seen as
        # an orphan after tests/load/test_worker_death.py): end whatever is left of the server's group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        return cast(int, self.process.returncode)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def all_workers_started(self, seconds: float) -> bool:
        """Wait until granian says each of WORKERS workers started (its `[INFO] Started worker-N`).

        One worker answering /health says nothing of the others. A SIGTERM that reaches granian
        while a worker is still starting leaves it waiting on that worker forever (seen with 2
        workers: worker-1 stopped, then "Started worker-2", then nothing), and a test reading
        what every worker wrote reads too early. Below LOG_LEVEL=info granian does not say it:
        nothing to wait for."""
        workers = int(self.env.get("WORKERS", "1"))
        if workers < 2 or self.env.get("LOG_LEVEL", "info").lower() not in {"info", "debug"}:
            return True
        expected = [f"Started worker-{n}" for n in range(1, workers + 1)]
        deadline = time.monotonic() + seconds
        while self.process.poll() is None:
            log = self.log()
            if all(line in log for line in expected):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return False


def stop_all(servers: Iterable[LiveServer]) -> None:
    """Stop `servers` side by side: all are asked, then each is waited for. One after another, a
    test process's session pool took seconds per server at its end."""
    servers = list(servers)
    for server in servers:
        server.signal_stop()
    for server in servers:
        server.finish_stop()


def run_cli(args: list[str], env: dict[str, str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`python -m app <args>` (the `taskpilot` command) with this process's environment plus `env`."""
    full_env = {**os.environ, **env}
    # `-m` runs from the working directory (the repository) either way; the template was imported with it here.
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "app", *args]
    if SERVER_TEMPLATE_ON and TEMPLATE.can_serve(full_env, template_environment()):
        # Forked from the template, which has imported the app already: a fresh `python -m app`
        # spent ~2.5 s of CPU importing it, ~16 times a `make test-fast`.
        result = _run_forked_cli(command, full_env)
    else:
        result = subprocess.run(
            command, env=full_env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120, check=False
        )
    if check and result.returncode != 0:
        raise AssertionError(f"taskpilot {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


# What starts coverage in a Python subprocess (coverage's .pth file reads them).
UNMEASURED = ("COVERAGE_PROCESS_CONFIG", "COVERAGE_PROCESS_START")


# TEST_SERVER_TEMPLATE=0 starts every server as a fresh process (to compare, or to rule the template out).
SERVER_TEMPLATE_ON = os.environ.get("TEST_SERVER_TEMPLATE", "1") != "0"


def template_environment() -> dict[str, str]:
    """What the server template imports the app with: a server's environment before a test adds to
    it, unmeasured (coverage starts in each forked server that asks for it)."""
    env = child_environment()
    env.update({"APP_ENV": "development", "LOG_LEVEL": "info"})
    for name in UNMEASURED:
        env.pop(name, None)
    return env


def _run_forked_cli(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`command` (`python -m app ...`) run by a child of the server template, as `subprocess.run`
    with `capture_output=True, text=True, timeout=120` would run it."""
    with tempfile.TemporaryDirectory(prefix="taskpilot-cli-") as outputs:
        out, err = Path(outputs) / "stdout", Path(outputs) / "stderr"
        child = TEMPLATE.start(command[3:], env, PROJECT_ROOT, out, program="app", errors_path=err)
        try:
            code = child.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
            raise
        return subprocess.CompletedProcess(command, code, out.read_text(), err.read_text())


def start_live_server(
    tmp_path: Path,
    env: dict[str, str],
    *,
    migrate: bool = True,
    via_cli: bool = False,
    ready_seconds: float = 90,
    measured: bool = True,
) -> LiveServer:
    """Migrate (optionally) and start `granian --interface asgi` on a free port; wait for /health
    (`ready_seconds`: several workers importing the app on a busy machine take longer; waiting
    longer costs nothing when the server is quick).

    `via_cli` starts it the way `make run` does, with `taskpilot serve` (which execs granian with
    the arguments it builds from the settings), instead of calling granian directly.

    `measured=False` leaves the server out of `make test`'s coverage (coverage hands its
    configuration to subprocesses in COVERAGE_PROCESS_CONFIG): for load tests whose code paths the
    live layer already covers, where branch tracing would slow every turn of the load."""
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
    if not measured:
        for name in UNMEASURED:
            full_env.pop(name, None)
    if migrate:
        MIGRATED.migrate(full_env)
    log_path = tmp_path / f"server-{port}.log"
    settings = Settings.from_env(full_env)
    command = (
        [sys.executable, "-m", "app", "serve"]
        if via_cli
        else granian_argv(
            host="127.0.0.1",
            port=port,
            workers=int(server_env.get("WORKERS", "1")),
            header_read_timeout_seconds=settings.http_header_read_timeout_seconds,
            shutdown_grace_seconds=settings.shutdown_grace_seconds,
        )
    )
    process: subprocess.Popen[bytes] | TemplateChild
    if not via_cli and SERVER_TEMPLATE_ON and TEMPLATE.can_serve(full_env, template_environment()):
        # The same granian command line, forked from a process that has imported the app already:
        # the workers skip the import (most of a server start; tests/support/server_template.py).
        process = TEMPLATE.start(command[3:], full_env, PROJECT_ROOT, log_path)
    else:
        # `taskpilot serve` is itself under test (it execs granian), or the environment changes
        # what importing the app does: a fresh process.
        with log_path.open("wb") as log_file:
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
    if answers_ok(f"{base_url}/health", process, ready_seconds) and server.all_workers_started(ready_seconds):
        return server
    if process.poll() is not None:
        raise AssertionError(f"server exited with {process.returncode}:\n{server.log()}")
    server.stop()
    raise AssertionError(f"server did not become healthy in {ready_seconds:.0f} s:\n{server.log()}")


# ---- migrate once, copy many times -----------------------------------------------------------------

POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")


class MigratedDatabases:
    """`taskpilot db upgrade` once per test process and database kind; every other migration is a copy.

    A database a test hands over already holding tables (or a SQLite file that exists) is migrated
    the slow way, with the real command, so a test of upgrades keeps testing upgrades.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._workdir: Path | None = None
        self._sqlite: Path | None = None
        self._postgres: str | None = None  # the template database's name

    def _dir(self) -> Path:
        if self._workdir is None:
            import tempfile

            self._workdir = Path(tempfile.mkdtemp(prefix="taskpilot-migrated-"))
        return self._workdir

    def migrate(self, env: dict[str, str]) -> None:
        url = make_url(env["DATABASE_URL"])
        if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self._sqlite_template(env), url.database)
        elif url.get_backend_name() == "postgresql" and url.database and _is_empty(env["DATABASE_URL"]):
            _run(create_database(POSTGRES_ADMIN_URL, url.database, template=self._postgres_template(env)))
        else:
            run_cli(["db", "upgrade"], env)

    def _sqlite_template(self, env: dict[str, str]) -> Path:
        with self._lock:
            if self._sqlite is None:
                path = self._dir() / "migrated.db"
                run_cli(["db", "upgrade"], {**env, "DATABASE_URL": f"sqlite+aiosqlite:///{path}"})
                self._sqlite = path
            return self._sqlite

    def _postgres_template(self, env: dict[str, str]) -> str:
        with self._lock:
            if self._postgres is None:
                name = scratch_name("taskpilot_migrated")
                url = _run(create_database(POSTGRES_ADMIN_URL, name))
                run_cli(["db", "upgrade"], {**env, "DATABASE_URL": url})
                self._postgres = name
            return self._postgres

    def close(self) -> None:
        if self._postgres is not None:
            _run(drop_database(POSTGRES_ADMIN_URL, self._postgres))
            self._postgres = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = self._sqlite = None


MIGRATED = MigratedDatabases()


def _run(coroutine: Any) -> Any:
    """Run a coroutine from synchronous test code, even inside a running loop's thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    result: list[Any] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coroutine))
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


def _is_empty(database_url: str) -> bool:
    rows = _run(fetch(database_url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"))
    return int(rows[0][0]) == 0


# ---- servers shared by the tests of one process ----------------------------------------------------


def unique_user(prefix: str = "u") -> str:
    """A user id nobody else in the run has: how tests on a shared server keep their data apart."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@dataclass
class ServerPool:
    """One live server per distinct (database kind, environment), started on first use and stopped
    when the test process ends. A test that kills, restarts or reads the whole log of its server
    starts its own with `live_server_factory` instead."""

    root: Path
    servers: dict[tuple[str, frozenset[tuple[str, str]]], LiveServer] = field(default_factory=dict)
    databases: list[str] = field(default_factory=list)

    def get(self, env: Mapping[str, str] | None = None, *, database: str = "sqlite") -> LiveServer:
        settings = dict(env or {})
        # Every test reaches a shared server from 127.0.0.1: the failed sign-ins some provoke on
        # purpose must not add up to a 429 for the next test (tests of that limit set their own).
        settings.setdefault("RATE_LIMIT_ANONYMOUS_PER_MINUTE", "100000")
        key = (database, frozenset(settings.items()))
        server = self.servers.get(key)
        if server is not None and server.process.poll() is None:
            return server
        home = self.root / f"server-{len(self.servers)}"
        home.mkdir(parents=True, exist_ok=True)
        # Uploads land in the server's own folder, not in the repository's ./var.
        settings.setdefault("ATTACHMENT_STORAGE_URL", str(home / "attachments"))
        if database == "postgres":
            name = scratch_name("taskpilot_shared")
            self.databases.append(name)
            url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
            _run(create_database(POSTGRES_ADMIN_URL, name))
            settings.setdefault("DATABASE_URL", url)
        server = start_live_server(home, settings)
        self.servers[key] = server
        return server

    def close(self) -> None:
        stop_all(self.servers.values())
        self.servers.clear()
        for name in self.databases:
            _run(drop_database(POSTGRES_ADMIN_URL, name))
        self.databases.clear()
