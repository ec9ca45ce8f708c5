"""Issue 27 item 8: `taskpilot db downgrade` never drops anything by default.

It takes an explicit target, refuses `base` (and anything that reaches it) without `--yes`,
refuses every downgrade in APP_ENV=production without `--yes`, and says what it will undo before
it does. Each test runs the real command on a migrated SQLite file and PostgreSQL database.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.support.schema import TABLES, table_names
from tests.support.servers import run_cli

HEAD = "b8024de0820c"  # db/migrations/versions/b8024de0820c_initial_schema.py, the first revision
# "-N" from the newest revision, N the number of revisions: a relative target that reaches base.
ALL_STEPS = f"-{len(list((Path(__file__).parents[2] / 'db' / 'migrations' / 'versions').glob('*.py')))}"
PRODUCTION = {
    "APP_ENV": "production",
    "AUTH_JWT_SECRET": "production-secret-0123456789abcdef-0123456789",
    "ALLOW_SQLITE_IN_PRODUCTION": "true",  # the SQLite run of these tests
}


def _migrated(url: str) -> dict[str, str]:
    env = {"DATABASE_URL": url}
    run_cli(["db", "upgrade"], env)
    assert asyncio.run(table_names(url)) >= TABLES
    return env


def test_downgrade_without_a_revision_drops_nothing_and_says_why(server_database_url: str) -> None:
    env = _migrated(server_database_url)
    result = run_cli(["db", "downgrade"], env, check=False)
    assert result.returncode != 0
    assert "revision" in result.stderr
    assert asyncio.run(table_names(server_database_url)) >= TABLES


def test_downgrade_to_base_without_yes_is_refused(server_database_url: str) -> None:
    env = _migrated(server_database_url)
    for target in ("base", ALL_STEPS):  # undoing every revision by count reaches base too
        result = run_cli(["db", "downgrade", target], env, check=False)
        assert result.returncode != 0, result.stdout
        assert "--yes" in result.stderr
        assert "chat_threads" in result.stderr + result.stdout  # what it would have dropped
    assert asyncio.run(table_names(server_database_url)) >= TABLES


def test_downgrade_in_production_without_yes_is_refused(server_database_url: str) -> None:
    env = {**_migrated(server_database_url), **PRODUCTION}
    result = run_cli(["db", "downgrade", HEAD], env, check=False)  # even one that undoes nothing
    assert result.returncode != 0, result.stdout
    assert "APP_ENV=production" in result.stderr and "--yes" in result.stderr
    assert asyncio.run(table_names(server_database_url)) >= TABLES


def test_downgrade_with_an_explicit_target_and_yes_prints_what_it_undoes(server_database_url: str) -> None:
    env = _migrated(server_database_url)
    result = run_cli(["db", "downgrade", "base", "--yes"], env)
    assert HEAD in result.stdout
    for table in sorted(TABLES):
        assert table in result.stdout
    assert asyncio.run(table_names(server_database_url)) & TABLES == set()
    again = run_cli(["db", "downgrade", "base", "--yes"], env)  # nothing left to undo: says so
    assert "nothing to undo" in again.stdout
    run_cli(["db", "upgrade"], env)
    production = run_cli(["db", "downgrade", "base", "--yes"], {**env, **PRODUCTION})
    assert HEAD in production.stdout
    assert asyncio.run(table_names(server_database_url)) & TABLES == set()


def test_downgrade_help_says_a_revision_is_required_and_what_yes_does() -> None:
    result = run_cli(["db", "downgrade", "--help"], {})
    assert "revision" in result.stdout
    assert "--yes" in result.stdout
    assert "base" in result.stdout and "production" in result.stdout
