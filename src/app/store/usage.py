"""Model tokens (and dictated audio) per user per UTC day (`usage`): added to after each turn and
each dictation, read by the daily budget and by `taskpilot usage export`.

One upsert adds a turn's tokens to its row (`INSERT ... ON CONFLICT (user_id, day, model) DO UPDATE
SET x = usage.x + excluded.x`): PostgreSQL and SQLite share the syntax, so concurrent turns of one
user, on any worker, add up without a lock or a lost update.

Every turn writes here, and a turn with a budget reads here first: `UsageLedger` sends both
statements compiled once (`app.store.chat_sql.CompiledOnce`: SQLAlchemy never caches an upsert's
compilation), on PostgreSQL over asyncpg through the Store's driver lane (`app.store.driver`)
without a session, elsewhere (SQLite) on a short session.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, Date, Integer, String, Table, bindparam, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import utcnow
from app.store.chat_sql import CompiledOnce, SessionRunner, StatementRunner, dialect_insert
from app.store.connections import connection_died
from app.store.db import SessionMaker
from app.store.distribution import scan_hint
from app.store.driver import DriverLane
from app.store.models import UsageRow

USAGE = cast("Table", UsageRow.__table__)
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


@dataclass(frozen=True, slots=True)
class UsageAddition:
    """What one turn or dictation adds to the user's row of one model: the four `TOKEN_COLUMNS`,
    `turns` and `transcription_ms`."""

    model: str
    tokens: dict[str, int]
    turns: int
    transcription_ms: int = 0

    def values(self, user_id: str, day: dt.date, now: dt.datetime) -> dict[str, Any]:
        return {
            "user_id": user_id,
            "day": day,
            "model": self.model,
            "turns": self.turns,
            "transcription_ms": self.transcription_ms,
            "updated_at": now,
            **{name: int(self.tokens.get(name, 0)) for name in TOKEN_COLUMNS},
        }


def _usage_upsert(dialect_name: str) -> Any:
    """Add a turn's (or a dictation's) counts to the user's row of the day and model."""
    statement = dialect_insert(USAGE, dialect_name).values(
        user_id=bindparam("user_id", type_=String),
        day=bindparam("day", type_=Date),
        model=bindparam("model", type_=String),
        turns=bindparam("turns", type_=Integer),
        transcription_ms=bindparam("transcription_ms", type_=BigInteger),
        updated_at=bindparam("updated_at", type_=DateTimeUTC(timezone=True)),
        **{name: bindparam(name, type_=BigInteger) for name in TOKEN_COLUMNS},
    )
    added = {name: USAGE.c[name] + statement.excluded[name] for name in ADDED_COLUMNS}
    return statement.on_conflict_do_update(
        index_elements=[USAGE.c.user_id, USAGE.c.day, USAGE.c.model],
        set_={**added, "updated_at": statement.excluded.updated_at},
    )


USAGE_UPSERT = CompiledOnce(_usage_upsert)
TOKENS_SPENT = select(func.coalesce(func.sum(USAGE.c.input_tokens + USAGE.c.output_tokens), 0)).where(
    USAGE.c.user_id == bindparam("user_id"), USAGE.c.day == bindparam("day", type_=Date)
)


async def _add(runner: StatementRunner, user_id: str, day: dt.date, additions: Sequence[UsageAddition]) -> None:
    now = utcnow()
    for addition in additions:
        await runner.execute(USAGE_UPSERT, addition.values(user_id, day, now))


async def _spent(runner: StatementRunner, user_id: str, day: dt.date) -> int:
    ((spent,),) = await runner.fetch(TOKENS_SPENT, {"user_id": user_id, "day": day})
    return int(spent)


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
    `day` and `model`, in `session`'s transaction."""
    await _add(SessionRunner(session), user_id, day, [UsageAddition(model, tokens, turns, transcription_ms)])


async def tokens_spent(session: AsyncSession, *, user_id: str, day: dt.date) -> int:
    """The input and output tokens the user spent on `day`, every model together (what the budget counts)."""
    return await _spent(SessionRunner(session), user_id, day)


class UsageLedger:
    """The hot statements of `usage` (a turn's upsert, the budget's sum), for `session_maker`'s
    database: on PostgreSQL over asyncpg sent on the driver lane, else on a short session."""

    def __init__(self, session_maker: SessionMaker) -> None:
        self._session_maker = session_maker
        self._lane = DriverLane.for_session_maker(session_maker)

    async def add(self, *, user_id: str, day: dt.date, additions: Sequence[UsageAddition]) -> None:
        """Add each of `additions` (distinct models) to the user's rows of `day`, all or none.

        On the lane, in one transaction that runs again, once, on a fresh connection when its pooled
        one turns out to be dead before COMMIT was sent (what `ReconnectingSession` does for the
        session path): nothing was added then, so nothing is added twice. A death during COMMIT is
        raised (the tokens may be counted)."""
        if not additions:
            return
        if self._lane is None:
            async with self._session_maker() as session:
                await _add(SessionRunner(session), user_id, day, additions)
                await session.commit()
            return
        committing = False
        for attempt in range(2):
            try:
                async with self._lane.connection() as connection, connection.transaction():
                    await _add(connection, user_id, day, additions)
                    committing = True
                return
            except Exception as exc:
                if attempt or committing or not connection_died(exc):
                    raise

    async def spent(self, *, user_id: str, day: dt.date) -> int:
        """`tokens_spent`: the user's input and output tokens of `day` (read again, once, on a fresh
        connection when the pooled one was dead)."""
        if self._lane is None:
            async with self._session_maker() as session:
                return await _spent(SessionRunner(session), user_id, day)
        for attempt in range(2):
            try:
                async with self._lane.connection() as connection:
                    return await _spent(connection, user_id, day)
            except Exception as exc:
                if attempt or not connection_died(exc):
                    raise
        raise AssertionError("unreachable")  # the loop returns or raises


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
