"""Database wiring: one Advanced Alchemy config for SQLite (file) or PostgreSQL (asyncpg, pooled)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, overload

from advanced_alchemy.config import AlembicAsyncConfig, AsyncSessionConfig, EngineConfig, SQLAlchemyAsyncConfig
from sqlalchemy import event
from sqlalchemy.engine.url import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.settings import Settings
from app.store.connections import ReconnectingSession
from app.store.models import Base

SessionMaker = Callable[[], AsyncSession]
"""Opens a fresh session; code outside a request (streams, tools, MCP, jobs) writes through one."""
ConfigT = TypeVar("ConfigT", bound=SQLAlchemyAsyncConfig)


UNCACHED_STATEMENTS: dict[str, Any] = {
    # asyncpg's own cache: `fetch`/`execute` (the Store's lane, app.store.driver) send each
    # statement unnamed, parsed, described, bound and executed before the Sync that ends it.
    "statement_cache_size": 0,
    # SQLAlchemy's asyncpg adapter prepares every statement explicitly, by name (its cache keeps
    # them per connection): no cache, and the unnamed statement too. A named one per statement
    # would leak on the server connection it was parsed on (asyncpg closes it later, through
    # whichever server PgBouncer then lends); the unnamed one is replaced by the next.
    "prepared_statement_cache_size": 0,
    "prepared_statement_name_func": lambda: "",
}
"""`DATABASE_STATEMENT_CACHE=false`: no statement outlives its transaction on the server connection,
so a pooler that lends server connections per transaction (PgBouncer 1.18 in transaction mode)
never sees a name it does not know or one it already has."""


async def commit_before_response(session: AsyncSession) -> None:
    """Commit a request's session while its response can still change (a dependency's cleanup).

    Advanced Alchemy's `autocommit` before-send handler commits as the response starts and, when
    the COMMIT fails, logs it at debug level and sends the 2xx anyway: a client was told `201`
    for a task that was never stored (seen when the primary died mid-commit,
    tests/load/test_primary_failover.py). Committed here, a failed COMMIT raises into the central
    error mapping (a 503 when the database is gone); the handler then finds nothing to commit.
    """
    await session.commit()


def migrations_dir() -> Path:
    """The Alembic scripts: `db/migrations/` in the repository, shipped as `app.migrations` in the wheel.

    Found through the import system, not the working directory or the source tree, so an
    installed (non-editable) TaskPilot migrates from anywhere.
    """
    import app.migrations

    return Path(app.migrations.__file__).resolve().parent


def sqlite_path(database_url: str) -> Path | None:
    """The file a SQLite URL points at, or None for other databases."""
    url = make_url(database_url)
    if not url.drivername.startswith("sqlite") or not url.database:
        return None
    return Path(url.database)


@overload
def build_db_config(settings: Settings) -> SQLAlchemyAsyncConfig: ...


@overload
def build_db_config(settings: Settings, config_class: type[ConfigT], **framework_options: Any) -> ConfigT: ...


def build_db_config(
    settings: Settings,
    config_class: type[SQLAlchemyAsyncConfig] = SQLAlchemyAsyncConfig,
    **framework_options: Any,
) -> SQLAlchemyAsyncConfig:
    """The one SQLAlchemy config of a process: engine, sessions and migrations from settings.

    The web app passes Advanced Alchemy's Litestar config class (and its options) so the plugin,
    the ChatKit Store and the services share one engine; the CLI and jobs use the plain class.
    """
    # Without hide_parameters every database error's message (and so every logged traceback)
    # carries the statement's bound values: a user's message, a whole assistant reply, a task.
    engine: dict[str, Any] = {"echo": settings.database_echo, "hide_parameters": not settings.log_content}
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
            # with the server fails once and SQLAlchemy then invalidates the pool; a session runs
            # that first statement again (ReconnectingSession), the Store retries its calls.
            pool_pre_ping=False,
            pool_recycle=1800,
            pool_timeout=settings.database_pool_timeout_seconds,
        )
        if not settings.database_statement_cache:
            engine["connect_args"] = UNCACHED_STATEMENTS
    config = config_class(
        connection_string=settings.database_url,
        engine_config=EngineConfig(**engine),
        session_config=AsyncSessionConfig(expire_on_commit=False, class_=ReconnectingSession),
        metadata=Base.metadata,
        alembic_config=AlembicAsyncConfig(
            script_location=str(migrations_dir()),
            version_table_name="alembic_version",
            render_as_batch=True,
            compare_type=True,
        ),
        **framework_options,
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
