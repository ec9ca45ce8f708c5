"""The `usage` table and the daily token budget, in process against the real databases (issue 32):
the upsert adds concurrent turns up, the budget refuses once spent and is back the next UTC day
(injected clock), and `usage export` pages, filters, hashes users and keeps cells formula-free.
(tests/live/test_token_usage.py drives the same over real HTTP with the fake model servers.)
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import uuid
from typing import Any

import pytest

from app.core.errors import BudgetExceeded
from app.services.usage import (
    Tokens,
    TranscriptionUsage,
    TurnTokens,
    UsageBook,
    UsageExport,
    export_usage,
    hashed_user,
)
from app.store.usage import tokens_spent


class Clock:
    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def __call__(self) -> dt.datetime:
        return self.at


def turn(model: str, input: int, output: int, *, cached: int = 0, reasoning: int = 0) -> TurnTokens:
    tokens = TurnTokens(model=model)
    tokens.by_model[model] = Tokens(input=input, cached_input=cached, output=output, reasoning=reasoning)
    return tokens


def user() -> str:
    return f"usage-{uuid.uuid4().hex[:10]}"


async def test_concurrent_turns_add_up_in_one_row_per_model(session_maker: Any) -> None:
    book = UsageBook(session_maker, now=Clock(dt.datetime(2026, 12, 7, 12, tzinfo=dt.UTC)))
    alice = user()
    await asyncio.gather(*(book.record(alice, turn("m1", 100, 10, cached=5, reasoning=2)) for _ in range(8)))
    titled = turn("m1", 1, 1)
    titled.add("m-title", None)  # a title by another model, reporting nothing: no turn of its own
    titled.by_model["m-title"].input = 7
    await book.record(alice, titled)
    out = io.StringIO()
    await export_usage(session_maker, out, UsageExport(format="jsonl", include_user=True, since=dt.date(2026, 12, 7)))
    rows = {r["model"]: r for r in map(json.loads, out.getvalue().splitlines()) if r["user"] == alice}
    assert rows["m1"] == {
        "day": "2026-12-07",
        "user": alice,
        "model": "m1",
        "input_tokens": 801,
        "cached_input_tokens": 40,
        "output_tokens": 81,
        "reasoning_tokens": 16,
        "turns": 9,
        "transcription_seconds": 0,
    }
    assert (rows["m-title"]["input_tokens"], rows["m-title"]["turns"]) == (7, 0)
    async with session_maker() as session:
        assert await tokens_spent(session, user_id=alice, day=dt.date(2026, 12, 7)) == 801 + 81 + 7


async def test_concurrent_dictations_add_their_audio_and_tokens_exactly(session_maker: Any) -> None:
    """Seconds are kept as whole milliseconds: 0.1 s added ten times is exactly 1 s, on both databases
    (a float column would drift), into the row of the transcription model, with no turn."""
    book = UsageBook(session_maker, tokens_per_day=1000, now=Clock(dt.datetime(2026, 12, 7, 12, tzinfo=dt.UTC)))
    carol = user()
    whisper = TranscriptionUsage.of({"type": "duration", "seconds": 0.1})
    await asyncio.gather(*(book.record_transcription(carol, "whisper-1", whisper) for _ in range(10)))
    tokens = TranscriptionUsage.of(
        {"type": "tokens", "input_tokens": 57, "output_tokens": 11, "input_token_details": {"audio_tokens": 52}}
    )
    await book.record_transcription(carol, "gpt-4o-transcribe", tokens)
    await book.record_transcription(carol, "gpt-4o-transcribe", TranscriptionUsage.of(None))  # nothing reported
    await book.record(carol, turn("gpt-4o-transcribe", 3, 1))  # a turn on the same row adds to it
    out = io.StringIO()
    await export_usage(session_maker, out, UsageExport(format="jsonl", include_user=True, since=dt.date(2026, 12, 7)))
    rows = {r["model"]: r for r in map(json.loads, out.getvalue().splitlines()) if r["user"] == carol}
    assert rows["whisper-1"]["transcription_seconds"] == 1.0
    assert (rows["whisper-1"]["input_tokens"], rows["whisper-1"]["turns"]) == (0, 0)
    transcribe = rows["gpt-4o-transcribe"]
    assert (transcribe["input_tokens"], transcribe["output_tokens"], transcribe["turns"]) == (60, 12, 1)
    assert transcribe["transcription_seconds"] == 0
    async with session_maker() as session:
        assert await tokens_spent(session, user_id=carol, day=dt.date(2026, 12, 7)) == 72  # the budget counts them


async def test_the_budget_refuses_once_spent_and_is_back_the_next_utc_day(session_maker: Any) -> None:
    clock = Clock(dt.datetime(2026, 12, 7, 23, 0, tzinfo=dt.UTC))
    book = UsageBook(session_maker, tokens_per_day=1000, now=clock)
    bob = user()
    assert await UsageBook(session_maker, now=clock).check(bob) is None  # no budget: nothing read
    first = await book.check(bob)
    assert first is not None and (first.spent, first.near) == (0, False)
    await book.record(bob, turn("m", 700, 100))
    near = await book.check(bob)
    assert near is not None and (near.spent, near.near) == (800, True)
    assert near.resets_at == dt.datetime(2026, 12, 8, tzinfo=dt.UTC)
    await book.record(bob, turn("m", 150, 50))
    with pytest.raises(BudgetExceeded) as refused:
        await book.check(bob)
    assert refused.value.retry_after == 3600
    assert refused.value.quota == "QUOTA_TOKENS_PER_USER_PER_DAY"
    assert "1,000-token daily budget" in refused.value.detail and "2026-12-08 00:00 UTC" in refused.value.detail
    # Another user's spending is not bob's.
    assert (await book.check(user())).spent == 0  # type: ignore[union-attr]

    clock.at = dt.datetime(2026, 12, 8, 0, 0, 1, tzinfo=dt.UTC)
    again = await book.check(bob)
    assert again is not None and again.spent == 0
    assert again.resets_at == dt.datetime(2026, 12, 9, tzinfo=dt.UTC)


async def test_the_export_pages_hashes_users_and_keeps_csv_cells_from_running(session_maker: Any) -> None:
    """A user id comes from the identity provider and a model name from MODEL_CHOICES: in a CSV
    opened by a spreadsheet neither may start a formula (the feedback export's rule, reused)."""
    day = dt.date(2031, 1, 2)  # a day no other test writes: the export's `since` keeps to this test's rows
    book = UsageBook(session_maker, now=Clock(dt.datetime(2031, 1, 2, 9, tzinfo=dt.UTC)))
    run = uuid.uuid4().hex[:8]
    users = [f'=HYPERLINK("x")-{run}', f"+1-{run}", f"plain-{run}"]
    for name in users:
        await book.record(name, turn("@evil", 10, 1))
        await book.record(name, turn("gpt-5-mini", 20, 2))
    mine = {hashed_user(name) for name in users}

    paged = io.StringIO()
    count = await export_usage(session_maker, paged, UsageExport(format="jsonl", since=day, batch_size=1))
    rows = [json.loads(line) for line in paged.getvalue().splitlines()]
    ours = [r for r in rows if r["user"] in mine]
    assert len(ours) == 6 and count == len(rows)
    keys = [(r["day"], r["user"], r["model"]) for r in rows]
    assert len(set(keys)) == len(keys)  # pages of one row: each row exactly once
    assert not any(run in line for line in paged.getvalue().splitlines())  # hashed unless asked

    table = io.StringIO()
    await export_usage(session_maker, table, UsageExport(format="csv", include_user=True, since=day))
    cells = [r for r in csv.DictReader(io.StringIO(table.getvalue())) if run in r["user"]]
    assert len(cells) == 6
    assert {r["user"] for r in cells} == {f'\'=HYPERLINK("x")-{run}', f"'+1-{run}", f"plain-{run}"}
    assert {r["model"] for r in cells} == {"'@evil", "gpt-5-mini"}
    assert all(not r[field].startswith(("=", "+", "-", "@")) for r in cells for field in r)

    later = io.StringIO()
    await export_usage(session_maker, later, UsageExport(format="jsonl", since=day + dt.timedelta(days=1)))
    assert not any(json.loads(line)["user"] in mine for line in later.getvalue().splitlines())


async def test_the_ledger_writes_on_the_driver_lane_on_postgres_and_through_a_session_on_sqlite(
    session_maker: Any,
) -> None:
    """Every turn records its usage and a budgeted turn reads it first: on PostgreSQL over asyncpg
    both go to the Store's driver lane (no session, no ORM), a turn's upserts in one transaction;
    on SQLite (no lane) through a session. Same rows either way."""
    from sqlalchemy import event

    from app.store import driver

    engine = session_maker.kw["bind"].sync_engine
    through_sqlalchemy: list[str] = []
    through_driver: list[str] = []

    def on_sqlalchemy(conn: Any, cursor: Any, sql: str, *_: Any) -> None:
        if " usage" in sql:
            through_sqlalchemy.append(sql.split(None, 1)[0])

    def on_driver(sql: str, arguments: Any) -> None:
        if " usage" in sql or sql in ("BEGIN", "COMMIT", "ROLLBACK"):
            through_driver.append(sql.split(None, 1)[0])

    book = UsageBook(session_maker, tokens_per_day=10_000, now=Clock(dt.datetime(2026, 12, 7, 12, tzinfo=dt.UTC)))
    dave = user()
    titled = turn("m1", 5, 1)
    titled.add("m-title", None)
    titled.by_model["m-title"].output = 3
    event.listen(engine, "before_cursor_execute", on_sqlalchemy)
    driver.statement_listeners.append(on_driver)
    try:
        await book.record(dave, turn("m1", 100, 10))
        await book.record(dave, titled)
        use = await book.check(dave)
    finally:
        event.remove(engine, "before_cursor_execute", on_sqlalchemy)
        driver.statement_listeners.remove(on_driver)
    assert use is not None and use.spent == 100 + 10 + 5 + 1 + 3
    if engine.dialect.name == "postgresql":
        assert through_sqlalchemy == []
        assert through_driver == ["BEGIN", "INSERT", "COMMIT", "BEGIN", "INSERT", "INSERT", "COMMIT", "SELECT"]
    else:
        assert through_driver == []
        assert through_sqlalchemy == ["INSERT", "INSERT", "INSERT", "SELECT"]
    out = io.StringIO()
    await export_usage(session_maker, out, UsageExport(format="jsonl", include_user=True, since=dt.date(2026, 12, 7)))
    rows = {r["model"]: r for r in map(json.loads, out.getvalue().splitlines()) if r["user"] == dave}
    assert (rows["m1"]["input_tokens"], rows["m1"]["output_tokens"], rows["m1"]["turns"]) == (105, 11, 2)
    assert (rows["m-title"]["output_tokens"], rows["m-title"]["turns"]) == (3, 0)


# PostgreSQL only (the asyncpg lane's retry; SQLite has no lane): not run on SQLite, rather than skipped there.
@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
async def test_a_dead_pooled_connection_neither_loses_nor_doubles_a_turns_usage(
    session_maker: Any, postgres_url: str
) -> None:
    """After a restart (every backend terminated), the first usage write meets a dead pooled
    connection: it runs again on a fresh one, and the turn is counted once; so is the budget's read."""
    from testkit import postgres

    assert session_maker.kw["bind"].dialect.name == "postgresql"
    book = UsageBook(session_maker, tokens_per_day=10_000, now=Clock(dt.datetime(2026, 12, 7, 12, tzinfo=dt.UTC)))
    erin = user()
    await book.record(erin, turn("m1", 100, 10))  # a pooled connection
    for step in ("record", "check"):
        await postgres.terminate_other_connections(postgres_url)
        if step == "record":
            await book.record(erin, turn("m1", 100, 10))
        else:
            use = await book.check(erin)
            assert use is not None and use.spent == 220
