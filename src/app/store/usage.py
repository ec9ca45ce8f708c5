"""Model tokens (and dictated audio) per user per UTC day (`usage`): added to after each turn and
each dictation, read by the daily budget and by `taskpilot usage export`.

One upsert adds a turn's tokens to its row (`INSERT ... ON CONFLICT (user_id, day, model) DO UPDATE
SET x = usage.x + excluded.x`): PostgreSQL and SQLite share the syntax, so concurrent turns of one
user, on any worker, add up without a lock or a lost update.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Date, bindparam, func, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import utcnow
from app.store.distribution import scan_hint
from app.store.models import UsageRow

USAGE = UsageRow.__table__
TOKEN_COLUMNS = ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens")
ADDED_COLUMNS = (*TOKEN_COLUMNS, "turns", "transcription_ms")  # what the upsert adds to an existing row
UsageKey = tuple[dt.date, str, str]  # (day, user_id, model): the export's keyset


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One row of `usage`."""

    day: dt.date
    user_id: str
    model: str
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    turns: int
    transcription_ms: int

    @property
    def key(self) -> UsageKey:
        return (self.day, self.user_id, self.model)


async def add_usage(
    session: AsyncSession,
    *,
    user_id: str,
    day: dt.date,
    model: str,
    tokens: dict[str, int],
    turns: int,
    transcription_ms: int = 0,
) -> None:
    """Add `tokens` (the four `TOKEN_COLUMNS`), `turns` and `transcription_ms` to the user's row of
    `day` and `model`."""
    values: dict[str, Any] = {
        "user_id": user_id,
        "day": day,
        "model": model,
        "turns": turns,
        "transcription_ms": transcription_ms,
        "updated_at": utcnow(),
        **{name: int(tokens.get(name, 0)) for name in TOKEN_COLUMNS},
    }
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(UsageRow).values(**values)
    added = {name: USAGE.c[name] + statement.excluded[name] for name in ADDED_COLUMNS}
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[USAGE.c.user_id, USAGE.c.day, USAGE.c.model],
            set_={**added, "updated_at": statement.excluded.updated_at},
        )
    )


async def tokens_spent(session: AsyncSession, *, user_id: str, day: dt.date) -> int:
    """The input and output tokens the user spent on `day`, every model together (what the budget counts)."""
    statement = select(func.coalesce(func.sum(USAGE.c.input_tokens + USAGE.c.output_tokens), 0)).where(
        USAGE.c.user_id == user_id, USAGE.c.day == day
    )
    return int((await session.execute(statement)).scalar_one())


async def scan_usage(
    session: AsyncSession, *, after: UsageKey | None, limit: int, since: dt.date | None = None
) -> list[UsageRecord]:
    """Up to `limit` rows of every user, by (day, user_id, model), strictly after the keyset `after`
    (`taskpilot usage export`): a marked cross-user read that locks nothing."""
    key = (USAGE.c.day, USAGE.c.user_id, USAGE.c.model)
    statement = (
        select(*key, *(USAGE.c[name] for name in TOKEN_COLUMNS), USAGE.c.turns, USAGE.c.transcription_ms)
        .prefix_with(scan_hint("usage.export"))
        .order_by(*key)
        .limit(bindparam("limit"))
    )
    params: dict[str, Any] = {"limit": limit}
    if since is not None:
        statement = statement.where(USAGE.c.day >= bindparam("since", type_=Date()))
        params["since"] = since
    if after is not None:
        statement = statement.where(
            tuple_(*key)
            > tuple_(bindparam("after_day", type_=Date()), bindparam("after_user"), bindparam("after_model"))
        )
        params.update(after_day=after[0], after_user=after[1], after_model=after[2])
    result = await session.execute(statement, params)
    return [UsageRecord(*row) for row in result]
