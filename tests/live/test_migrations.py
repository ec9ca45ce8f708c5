"""Migrations produce the schema on empty SQLite and PostgreSQL databases, and agree with the models."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.schema import TABLES, table_names
from tests.support.servers import run_cli


def _upgrade_check_downgrade(url: str) -> None:
    env = {"DATABASE_URL": url}
    run_cli(["db", "upgrade"], env)
    tables = asyncio.run(table_names(url))
    assert tables >= TABLES
    assert "alembic_version" in tables
    check = run_cli(["db", "check"], env, check=False)
    assert check.returncode == 0, check.stderr + check.stdout
    run_cli(["db", "downgrade", "base", "--yes"], env)
    assert asyncio.run(table_names(url)) & TABLES == set()
    run_cli(["db", "upgrade"], env)


def test_upgrade_on_empty_sqlite_file(tmp_path) -> None:
    _upgrade_check_downgrade(f"sqlite+aiosqlite:///{tmp_path}/fresh.db")


@pytest.mark.postgres
def test_upgrade_on_empty_postgres(fresh_postgres_url: str) -> None:
    _upgrade_check_downgrade(fresh_postgres_url)
