"""The tables TaskPilot's migrations make, the tables a database holds (read directly), and an
empty SQLite schema to copy."""

from __future__ import annotations

import atexit
import contextlib
import functools
import shutil
import sqlite3
import tempfile
from pathlib import Path

from sqlalchemy import create_engine, inspect
from sqlalchemy.ext.asyncio import create_async_engine

TABLES = {"chat_threads", "chat_items", "chat_attachments", "chat_feedback", "hosted_sessions", "tasks"}


async def table_names(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


@functools.cache
def _empty_sqlite_file() -> Path:
    """A SQLite file with every model's table and nothing in them, made once per test process."""
    from app.store.models import Base

    path = Path(tempfile.mkdtemp(prefix="taskpilot-sqlite-schema-")) / "schema.db"
    engine = create_engine(f"sqlite:///{path}")
    try:
        Base.metadata.create_all(engine)
    finally:
        engine.dispose()
    with contextlib.closing(sqlite3.connect(path)) as connection:  # one file to copy: no WAL beside it
        connection.execute("PRAGMA journal_mode=DELETE")
    atexit.register(shutil.rmtree, path.parent, ignore_errors=True)
    return path


def copy_empty_sqlite_schema(database_url: str) -> bool:
    """When `database_url` is a SQLite file that does not exist yet, make it a copy of an empty
    schema and say so (True): creating the schema in each test's file cost ~60 ms of DDL a test."""
    from app.store.db import sqlite_path

    path = sqlite_path(database_url)
    if path is None or str(path) == ":memory:" or path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_empty_sqlite_file(), path)
    return True
