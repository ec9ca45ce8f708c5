"""Database wiring: one Advanced Alchemy config for SQLite (file) or PostgreSQL (asyncpg, pooled)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from advanced_alchemy.extensions.litestar import (
    AlembicAsyncConfig,
    AsyncSessionConfig,
    EngineConfig,
    SQLAlchemyAsyncConfig,
)
from sqlalchemy import event
from sqlalchemy.engine.url import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app.settings import PROJECT_ROOT, Settings
from app.store.models import Base

MIGRATIONS_DIR = PROJECT_ROOT / "db" / "migrations"


def sqlite_path(database_url: str) -> Path | None:
    """The file a SQLite URL points at, or None for other databases."""
    url = make_url(database_url)
    if not url.drivername.startswith("sqlite") or not url.database:
        return None
    return Path(url.database)


def build_db_config(settings: Settings) -> SQLAlchemyAsyncConfig:
    """The SQLAlchemy config the Litestar plugin, the ChatKit Store and the CLI all share."""
    engine: dict[str, Any] = {"echo": settings.database_echo}
    if settings.is_sqlite:
        path = sqlite_path(settings.database_url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        # aiosqlite runs every connection on its own thread; a generous busy timeout lets
        # concurrent writers queue instead of failing with "database is locked".
        engine["connect_args"] = {"timeout": 30}
    else:
        engine.update(
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
            # No pre-ping: it costs a round trip (~0.3 ms) on every checkout. A connection that died
            # with the server fails once, SQLAlchemy then invalidates the pool, and the caller gets
            # a 503 to retry (see app.errors).
            pool_pre_ping=False,
            pool_recycle=1800,
            pool_timeout=10,
        )
    config = SQLAlchemyAsyncConfig(
        connection_string=settings.database_url,
        engine_config=EngineConfig(**engine),
        session_config=AsyncSessionConfig(expire_on_commit=False),
        metadata=Base.metadata,
        before_send_handler="autocommit",
        alembic_config=AlembicAsyncConfig(
            script_location=str(MIGRATIONS_DIR),
            version_table_name="alembic_version",
            render_as_batch=True,
            compare_type=True,
        ),
    )
    if settings.is_sqlite:
        _enable_sqlite_pragmas(config.get_engine())
    return config


def _enable_sqlite_pragmas(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # Foreign keys make ON DELETE CASCADE work; WAL lets readers run beside one writer.
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
