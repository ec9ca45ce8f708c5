"""Scratch PostgreSQL databases, made and dropped on an admin connection, and direct reads."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url


def asyncpg_dsn(url: str) -> str:
    """A SQLAlchemy (`postgresql+asyncpg://`) URL as a plain libpq DSN for asyncpg."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def scratch_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


async def create_database(admin_url: str, name: str, *, timeout: float = 10, template: str | None = None) -> str:
    """(Re)create database `name` on `admin_url`'s server, empty or a copy of database `template`;
    its SQLAlchemy URL."""
    connection = await asyncpg.connect(asyncpg_dsn(admin_url), timeout=timeout)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        copy_of = f' TEMPLATE "{template}"' if template else ""
        await connection.execute(f'CREATE DATABASE "{name}"{copy_of}')
    finally:
        await connection.close()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


async def drop_database(admin_url: str, name: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(admin_url), timeout=10)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


async def fetch(url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    """Rows of `query` read directly (not through the server under test)."""
    connection = await asyncpg.connect(asyncpg_dsn(url), timeout=10)
    try:
        return list(await connection.fetch(query, *args))
    finally:
        await connection.close()


async def terminate_other_connections(url: str) -> int:
    """End every other connection to `url`'s database (`pg_terminate_backend`), as a restart or an
    idle-connection reaper would; how many were ended."""
    rows = await fetch(
        url,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    killed: int = rows[0][0]
    return killed
