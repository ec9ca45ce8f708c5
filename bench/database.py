"""Scratch PostgreSQL databases for a run (BENCH_POSTGRES_URL), migrated as production migrates,
and what one durable commit costs right now."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from typing import Any

import asyncpg
from testkit import postgres
from testkit.processes import PROJECT_ROOT

from bench.servers import clean_env

ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")


async def create_database(name: str) -> str:
    """Drop and create `name` on the BENCH_POSTGRES_URL server; its SQLAlchemy URL."""
    return await postgres.create_database(ADMIN_URL, name)


async def drop_database(name: str) -> None:
    await postgres.drop_database(ADMIN_URL, name)


async def postgres_info() -> dict[str, Any]:
    connection = await asyncpg.connect(postgres.asyncpg_dsn(ADMIN_URL))
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
    connection = await asyncpg.connect(postgres.asyncpg_dsn(url))
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
