"""The tables TaskPilot's migrations make, and the tables a database holds (read directly)."""

from __future__ import annotations

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

TABLES = {"chat_threads", "chat_items", "chat_attachments", "chat_feedback", "hosted_sessions", "tasks"}


async def table_names(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))
    finally:
        await engine.dispose()
