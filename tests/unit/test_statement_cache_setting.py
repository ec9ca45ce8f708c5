"""`DATABASE_STATEMENT_CACHE`: what it turns off, and how a transaction pooler's refusal is recognised
(tests/load/test_pgbouncer.py runs both through a real PgBouncer)."""

from __future__ import annotations

import pytest

from app.settings import Settings
from app.store.connections import statement_cache_unsupported
from app.store.db import UNCACHED_STATEMENTS, build_db_config


def test_the_statement_cache_setting_reaches_both_lanes() -> None:
    assert Settings.from_env({}).database_statement_cache is True
    settings = Settings.from_env({"DATABASE_URL": "postgresql://u@h/db", "DATABASE_STATEMENT_CACHE": "false"})
    engine = build_db_config(settings).get_engine()
    # One connect_args for the engine's pool, which the Store's asyncpg lane checks out too.
    assert engine.dialect.name == "postgresql"
    assert UNCACHED_STATEMENTS["statement_cache_size"] == 0
    assert UNCACHED_STATEMENTS["prepared_statement_cache_size"] == 0
    assert UNCACHED_STATEMENTS["prepared_statement_name_func"]() == ""
    cached = build_db_config(Settings.from_env({"DATABASE_URL": "postgresql://u@h/db"})).engine_config.connect_args
    assert not isinstance(cached, dict)  # Advanced Alchemy's Empty: asyncpg's and SQLAlchemy's defaults
    assert build_db_config(settings).engine_config.connect_args is UNCACHED_STATEMENTS
    with pytest.raises(Exception, match="DATABASE_STATEMENT_CACHE"):
        Settings.from_env({"DATABASE_STATEMENT_CACHE": "sometimes"})


def test_a_lost_or_duplicated_prepared_statement_is_recognised() -> None:
    from asyncpg.exceptions import DuplicatePreparedStatementError, InvalidSQLStatementNameError
    from sqlalchemy.exc import DBAPIError

    for driver in (DuplicatePreparedStatementError("x"), InvalidSQLStatementNameError("y")):
        wrapped = DBAPIError("SELECT 1", None, driver)
        assert statement_cache_unsupported(wrapped)
    assert not statement_cache_unsupported(DBAPIError("SELECT 1", None, ConnectionError()))
