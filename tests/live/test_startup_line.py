"""`taskpilot serve` says what it runs before it serves: one JSON line naming the database (host and
name, or the SQLite file's absolute path; never a password), the model provider and model, the auth
mode, the workers, where rate limits are counted and whether hosted mode is on. APP_ENV=production
refuses SQLite unless ALLOW_SQLITE_IN_PRODUCTION=true, in one line naming that setting. Several
workers without PROMETHEUS_MULTIPROC_DIR get a private directory, so /metrics sums every worker,
removed when the server exits.

Most of these run `taskpilot serve` in-process up to the point where it would exec granian; one
starts a real server (two workers need PostgreSQL)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.__main__ import main
from app.settings import Settings
from tests.support.servers import LiveServer, run_cli

SECRETS = {
    "postgres password": "pg-hunter2-secret",
    "redis password": "redis-hunter2-secret",
    "jwt secret": "jwt-shared-secret-0123456789abcdef-0123456789",
    "openai key": "sk-test-startup-line-secret",
    "workflow id": "wf_startup_line_secret",
}


class Exec(Exception):
    """Raised instead of exec'ing granian."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv


def serve_in_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], cwd: Path, env: dict[str, str]
) -> tuple[dict[str, Any], list[str]]:
    """Run `taskpilot serve` with exactly `env` (in `cwd`) up to its exec; the start-up line's JSON
    and the granian command line it would have run."""
    for field in fields(Settings):
        monkeypatch.delenv(field.name.upper(), raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(cwd)

    def execv(_path: str, argv: list[str]) -> None:
        raise Exec(argv)

    monkeypatch.setattr(os, "execv", execv)
    with pytest.raises(Exec) as ran:
        main(["serve"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return json.loads(lines[0]), ran.value.argv


def assert_no_secret(line: dict[str, Any]) -> None:
    text = json.dumps(line)
    for what, secret in SECRETS.items():
        assert secret not in text, f"the start-up line shows the {what}"


def test_sqlite_line_names_the_files_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The default URL is relative: which file it is depends on where the server starts.
    line, argv = serve_in_process(monkeypatch, capsys, tmp_path, {"LOG_LEVEL": "info"})
    assert line["logger"] == "taskpilot.startup" and line["level"] == "info" and line["event"] == "startup"
    assert line["database"] == {"engine": "sqlite", "path": str(tmp_path / "var" / "taskpilot.db")}
    assert line["app_env"] == "development"
    assert line["model"] == {"provider": "offline", "name": "gpt-5-mini"}
    assert line["auth"]["mode"] == "dev"
    assert line["workers"] == 1 and line["metrics"] == "this process"
    assert line["rate_limits"] == "in-memory (this instance only)"
    assert line["hosted_mode"] == "off"
    assert line["listen"] == "127.0.0.1:8000"
    assert f"SQLite {tmp_path}/var/taskpilot.db" in line["msg"]
    assert argv[1:3] == ["-m", "granian"] and "PROMETHEUS_MULTIPROC_DIR" not in os.environ


def test_postgresql_line_names_host_and_database_never_a_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    (metrics / "counter_4242.db").write_bytes(b"a dead worker's counters")
    (metrics / "notes.txt").write_text("not prometheus-client's")
    env = {
        "DATABASE_URL": f"postgresql+asyncpg://taskpilot:{SECRETS['postgres password']}@db.internal:6543/tasks",
        "REDIS_URL": f"redis://:{SECRETS['redis password']}@cache.internal:6380/2",
        "WORKERS": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics),
    }
    line, argv = serve_in_process(monkeypatch, capsys, tmp_path, env)
    assert line["database"] == {"engine": "postgresql", "host": "db.internal:6543", "name": "tasks"}
    assert line["rate_limits"] == "redis redis://cache.internal:6380/2"
    assert line["workers"] == 2 and argv[argv.index("--workers") + 1] == "2"
    assert line["metrics"] == f"multiprocess directory {metrics}"
    assert_no_secret(line)
    # An earlier run's files would be summed into this run's counters: emptied, the rest kept.
    assert sorted(p.name for p in metrics.iterdir()) == ["notes.txt"]
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(metrics)


def test_production_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    env = {
        "APP_ENV": "production",
        "HOST": "0.0.0.0",
        "DATABASE_URL": f"postgresql://taskpilot:{SECRETS['postgres password']}@db.internal/tasks",
        "REDIS_URL": "redis://cache.internal:6379/0",
        "AUTH_JWT_SECRET": SECRETS["jwt secret"],
        "AUTH_ISSUER": "https://app.example.com",
        "OPENAI_API_KEY": SECRETS["openai key"],
        "CHATKIT_WORKFLOW_ID": SECRETS["workflow id"],
        "MODEL": "gpt-5",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "made-for-it"),
        "WORKERS": "2",
    }
    line, _argv = serve_in_process(monkeypatch, capsys, tmp_path, env)
    assert line["app_env"] == "production" and line["listen"] == "0.0.0.0:8000"
    assert line["database"] == {"engine": "postgresql", "host": "db.internal:5432", "name": "tasks"}
    assert line["model"] == {"provider": "openai", "name": "gpt-5"}
    assert line["auth"] == {
        "mode": "jwt",
        "keys": "shared secret (HS256)",
        "issuer": "https://app.example.com",
        "audience": None,
    }
    assert line["hosted_mode"] == "on"
    assert (tmp_path / "made-for-it").is_dir()
    assert_no_secret(line)


def test_production_refuses_sqlite_in_one_line_naming_the_setting(tmp_path: Path) -> None:
    env = {
        "APP_ENV": "production",
        "AUTH_JWT_SECRET": SECRETS["jwt secret"],
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/p.db",
    }
    refused = run_cli(["serve"], env, check=False)
    assert refused.returncode == 2
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("taskpilot: configuration error: ALLOW_SQLITE_IN_PRODUCTION"), lines
    assert "postgresql+asyncpg://" in lines[0]
    assert not (tmp_path / "p.db").exists()
    allowed = Settings.from_env({**env, "ALLOW_SQLITE_IN_PRODUCTION": "true"})
    assert allowed.is_production and allowed.is_sqlite
    assert Settings.from_env({"DATABASE_URL": env["DATABASE_URL"]}).allow_sqlite_in_production is False


@pytest.mark.postgres
@pytest.mark.timeout(240)
def test_several_workers_without_a_metrics_dir_get_a_private_one_removed_at_exit(
    live_server_factory: Any, fresh_postgres_url: str
) -> None:
    server: LiveServer = live_server_factory(
        # LOG_LEVEL info (the default): granian says when each worker started, which the server's
        # start waits for (`LiveServer.all_workers_started`) before the metrics files are read.
        {"DATABASE_URL": fresh_postgres_url, "WORKERS": "2"},
        via_cli=True,
        ready_seconds=120,
    )
    (line,) = [json.loads(text) for text in server.log().splitlines() if '"taskpilot.startup"' in text]
    prefix = "private multiprocess directory "
    assert line["metrics"].startswith(prefix), line
    directory = Path(line["metrics"].removeprefix(prefix))
    assert directory.is_dir()
    # Every worker writes into the one directory, so a scrape sums them all, whichever answers it.
    workers = {path.stem.rsplit("_", 1)[1] for path in directory.glob("*.db")}
    assert len(workers) == 2, sorted(path.name for path in directory.iterdir())
    before = health_requests(server.base_url)
    requests = 12
    for _ in range(requests):
        assert httpx.get(f"{server.base_url}/health", timeout=10).status_code == 200
    assert health_requests(server.base_url) == before + requests
    assert server.stop() == 0, server.log()
    deadline = time.monotonic() + 15
    while directory.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not directory.exists(), f"{directory} outlived the server"


def health_requests(base_url: str) -> float:
    scrape = httpx.get(f"{base_url}/metrics", timeout=10).text
    key = 'taskpilot_http_requests_total{method="GET",route="/health",status="200"} '
    (value,) = [float(row.removeprefix(key)) for row in scrape.splitlines() if row.startswith(key)]
    return value
