"""`taskpilot db distribute` (the Citus step) on plain PostgreSQL and SQLite does nothing and says
so: the real command in its own process.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.postgres
def test_distribute_on_plain_postgresql_and_sqlite_does_nothing_and_says_so(postgres_url: str, tmp_path: Path) -> None:
    from tests.support.servers import run_cli

    plain = run_cli(["db", "distribute"], {"DATABASE_URL": postgres_url})
    assert "citus extension is not installed" in plain.stdout and "nothing distributed" in plain.stdout
    lite = run_cli(["db", "distribute"], {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/d.db"})
    assert "sqlite: nothing to distribute" in lite.stdout
