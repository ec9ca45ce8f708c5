"""What `taskpilot serve` says before it serves, and the metrics directory its workers share.

One JSON line (`logger: taskpilot.startup`) names what this start runs with: the database (host
and name, or the SQLite file's absolute path; never a password), the model provider and model, the
auth mode and where its keys come from, the workers, where rate limits are counted, and whether
hosted mode is on. Without it a default that follows the working directory (the SQLite file) or a
forgotten variable only shows later, as missing data or a wrong answer.

With several workers each process keeps its own Prometheus counters, and a scrape reads whichever
worker answers it; prometheus-client sums them only through a directory the workers share
(`PROMETHEUS_MULTIPROC_DIR`). Set, it is created and emptied of an earlier run's files (as
prometheus-client asks); unset with `WORKERS` > 1, `taskpilot serve` makes a private one and
removes it when the server has exited.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from app import __version__
from app.ops.logging import JsonFormatter
from app.settings import Settings

LOGGER_NAME = "taskpilot.startup"
PRIVATE_METRICS_PREFIX = "taskpilot-metrics-"


def describe_database(database_url: str) -> dict[str, Any]:
    """The database without its credentials: a SQLite file's absolute path, or PostgreSQL's host and name.

    Read with urlsplit, not SQLAlchemy: this runs in `taskpilot serve` just before granian replaces
    it, and importing SQLAlchemy there would only delay the start."""
    parts = urlsplit(database_url)
    if parts.scheme.startswith("sqlite"):
        # sqlite:///relative/path or sqlite:////absolute/path; relative to the working directory,
        # as aiosqlite opens it.
        return {"engine": "sqlite", "path": str(Path(parts.path[1:]).resolve())}
    host = parts.hostname or "localhost"
    return {
        "engine": "postgresql",
        "host": f"{f'[{host}]' if ':' in host else host}:{parts.port or 5432}",
        "name": parts.path.lstrip("/"),
    }


def describe_redis(redis_url: str | None) -> str:
    if not redis_url:
        return "in-memory (this instance only)"
    parts = urlsplit(redis_url)
    if parts.scheme == "unix":
        return f"redis unix:{parts.path}"
    host = parts.hostname or "localhost"
    return f"redis {parts.scheme}://{host}:{parts.port or 6379}{parts.path or '/0'}"


def describe_auth(settings: Settings) -> dict[str, Any]:
    if settings.auth_mode == "dev":
        return {"mode": "dev", "keys": "development secret (taskpilot token)"}
    keys = []
    if settings.auth_jwks_url:
        keys.append(f"JWKS {settings.auth_jwks_url}")
    if settings.auth_jwt_secret:
        keys.append("shared secret (HS256)")
    return {
        "mode": "jwt",
        "keys": " + ".join(keys),
        "issuer": settings.auth_issuer,
        "audience": settings.auth_audience,
    }


def startup_fields(
    settings: Settings, *, host: str, port: int, workers: int, metrics_dir: str | None, private_metrics: bool
) -> dict[str, Any]:
    """The start-up line's fields: no secret, no password."""
    model: dict[str, Any] = {"provider": settings.model_provider, "name": settings.model}
    if settings.model_provider != "offline" and settings.openai_base_url:
        parts = urlsplit(settings.openai_base_url)
        model["base_url"] = f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"
    if workers > 1 or metrics_dir:
        metrics = f"{'private ' if private_metrics else ''}multiprocess directory {metrics_dir}"
    else:
        metrics = "this process"
    return {
        "event": "startup",
        "version": __version__,
        "app_env": settings.app_env,
        "listen": f"{host}:{port}",
        "database": describe_database(settings.database_url),
        "model": model,
        "auth": describe_auth(settings),
        "workers": workers,
        "metrics": metrics,
        "rate_limits": describe_redis(settings.redis_url.get() if settings.redis_url else None),
        "hosted_mode": "off" if settings.hosted_sessions_missing else "on",
    }


def startup_message(fields: dict[str, Any]) -> str:
    database = fields["database"]
    if database["engine"] == "sqlite":
        where = f"SQLite {database['path']}"
    else:
        where = f"PostgreSQL {database['name']} on {database['host']}"
    workers = fields["workers"]
    return (
        f"TaskPilot {fields['version']} ({fields['app_env']}) on {fields['listen']}: {where}, "
        f"model {fields['model']['provider']}/{fields['model']['name']}, auth {fields['auth']['mode']}, "
        f"{workers} worker{'s' if workers != 1 else ''}, rate limits {fields['rate_limits']}, "
        f"hosted mode {fields['hosted_mode']}"
    )


def log_startup(fields: dict[str, Any]) -> None:
    """Write the start-up line as JSON on stderr, as the workers' logs are (the process has no
    logging configured yet: it is about to become granian)."""
    logger = logging.getLogger(LOGGER_NAME)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        logger.info(startup_message(fields), extra={"fields": fields})
    finally:
        logger.removeHandler(handler)


def metrics_dir_for(settings: Settings, workers: int) -> tuple[str | None, bool]:
    """(PROMETHEUS_MULTIPROC_DIR for this run, whether it is private): the configured directory,
    prepared; a new private one when several workers have none; None for one worker without one.
    Raises OSError when the configured directory cannot be created or emptied."""
    if settings.prometheus_multiproc_dir:
        prepare_metrics_dir(settings.prometheus_multiproc_dir)
        return settings.prometheus_multiproc_dir, False
    if workers > 1:
        return tempfile.mkdtemp(prefix=PRIVATE_METRICS_PREFIX), True
    return None, False


def prepare_metrics_dir(path: str) -> None:
    """Create the shared directory, or empty it of an earlier run's files (prometheus-client's rule:
    files left by dead processes would be summed into this run's counters)."""
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)


def remove_when_server_exits(directory: str) -> None:
    """Remove `directory` once the server that this process is about to become has ended.

    `taskpilot serve` execs granian, so granian keeps this process id (signals, process groups and
    supervisors see what they always saw). A watcher forked here, in a session of its own (a signal
    to the server's process group does not reach it), blocks reading a pipe whose write end this
    process leaves open across exec, so granian and each worker it forks hold it: end of file
    means every one of them has exited, however it ended (SIGTERM, a crash, SIGKILL).
    """
    read_end, write_end = os.pipe()
    first = os.fork()
    if first == 0:
        try:
            os.setsid()
            if os.fork() == 0:  # the watcher: a grandchild, adopted by init, no child of the server
                null = os.open(os.devnull, os.O_RDWR)
                for stdio in (0, 1, 2):
                    os.dup2(null, stdio)
                os.closerange(3, read_end)
                os.closerange(read_end + 1, 65536)
                while os.read(read_end, 1):
                    pass
                shutil.rmtree(directory, ignore_errors=True)
        finally:
            os._exit(0)
    os.close(read_end)
    os.waitpid(first, 0)
    os.set_inheritable(write_end, True)
