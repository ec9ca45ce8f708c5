"""Model tokens: counted per turn from the provider's `usage`, recorded per user per UTC day, capped
by `QUOTA_TOKENS_PER_USER_PER_DAY`, and exported for billing (`taskpilot usage export`).

Four kinds of token, as providers bill them: `input`, `cached_input` (the part of input served from
the prompt cache), `output`, and `reasoning` (the part of output spent thinking). The budget counts
input + output, every model together, and is back at UTC midnight. Each turn adds its tokens to
`taskpilot_model_tokens_total{model,kind}`, to its log line, and to the user's `usage` row of the day.

A dictation (`input.transcribe`) is a model call too: TRANSCRIPTION_MODEL's tokens (gpt-4o-transcribe
and its kin report them) go to the same metric and to the row of that model with no turn; a model
billed by the duration of the audio (whisper-1) reports seconds instead, which go to
`taskpilot_transcription_seconds_total{model}` and the row's `transcription_ms`. The budget counts a
dictation's tokens like any others, and a spent budget refuses a dictation before its upload.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO

from app.core.clock import Now, utcnow
from app.core.errors import BudgetExceeded
from app.core.limits import NEAR_LIMIT_FRACTION
from app.ops import metrics
from app.services.feedback import spreadsheet_safe
from app.store.db import SessionMaker
from app.store.usage import TOKEN_COLUMNS, UsageAddition, UsageKey, UsageLedger, UsageRecord, scan_usage

log = logging.getLogger("app.usage")

KINDS = ("input", "cached_input", "output", "reasoning")
QUOTA = "QUOTA_TOKENS_PER_USER_PER_DAY"


@dataclass(slots=True)
class Tokens:
    input: int = 0
    cached_input: int = 0
    output: int = 0
    reasoning: int = 0

    @classmethod
    def of(cls, usage: Any) -> Tokens:
        """The tokens of an Agents SDK `Usage` (what a run or a model response reports; the offline model's are 0)."""
        if usage is None:
            return cls()
        cached = getattr(getattr(usage, "input_tokens_details", None), "cached_tokens", 0)
        reasoning = getattr(getattr(usage, "output_tokens_details", None), "reasoning_tokens", 0)
        return cls(
            input=int(getattr(usage, "input_tokens", 0) or 0),
            cached_input=int(cached or 0),
            output=int(getattr(usage, "output_tokens", 0) or 0),
            reasoning=int(reasoning or 0),
        )

    def add(self, other: Tokens) -> None:
        self.input += other.input
        self.cached_input += other.cached_input
        self.output += other.output
        self.reasoning += other.reasoning

    @property
    def billed(self) -> int:
        """What the budget counts: input and output (cached and reasoning tokens are parts of them)."""
        return self.input + self.output

    def counts(self) -> dict[str, int]:
        """By kind: input, cached_input, output, reasoning."""
        return {
            "input": self.input,
            "cached_input": self.cached_input,
            "output": self.output,
            "reasoning": self.reasoning,
        }

    def columns(self) -> dict[str, int]:
        return dict(zip(TOKEN_COLUMNS, (self.input, self.cached_input, self.output, self.reasoning), strict=True))


def _reported(usage: Any, name: str) -> Any:
    # The SDK's model when the answer matched it; a dict (or nothing) when a lenient server's did not.
    return usage.get(name) if isinstance(usage, dict) else getattr(usage, name, None)


def _amount(value: Any) -> float:
    """A reported amount, or 0 for anything that is not a finite, non-negative number."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        return 0
    return value


@dataclass(frozen=True, slots=True)
class TranscriptionUsage:
    """What one transcription's `usage` reported: tokens (`"type": "tokens"`) or the seconds of audio
    (`"type": "duration"`), as whole milliseconds; all zero when a server reported nothing usable."""

    tokens: Tokens = field(default_factory=Tokens)
    audio_ms: int = 0
    reported: bool = False

    @classmethod
    def of(cls, usage: Any) -> TranscriptionUsage:
        """Read leniently: a missing or malformed `usage` is zero, never a failed dictation."""
        if usage is None:
            return cls()
        tokens = Tokens(
            input=int(_amount(_reported(usage, "input_tokens"))),
            output=int(_amount(_reported(usage, "output_tokens"))),
        )
        # (In milliseconds before it is checked: a finite number of seconds can overflow to infinity.)
        audio_ms = round(_amount(_amount(_reported(usage, "seconds")) * 1000))
        return cls(tokens=tokens, audio_ms=audio_ms, reported=bool(tokens.billed or audio_ms))

    @property
    def audio_seconds(self) -> float:
        return self.audio_ms / 1000


@dataclass(slots=True)
class TurnTokens:
    """The tokens of one turn's model calls (the answer with its tool round trips, the title), by model."""

    model: str  # the answer's: the turn counts once, on it (a title's model may differ)
    by_model: dict[str, Tokens] = field(default_factory=dict)

    def add(self, model: str, usage: Any) -> None:
        self.by_model.setdefault(model, Tokens()).add(Tokens.of(usage))

    def total(self) -> Tokens:
        total = Tokens()
        for tokens in self.by_model.values():
            total.add(tokens)
        return total


def next_utc_midnight(now: dt.datetime) -> dt.datetime:
    day = now.astimezone(dt.UTC).date() + dt.timedelta(days=1)
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class BudgetUse:
    """What the user spent of their daily token budget, before this turn."""

    spent: int
    budget: int
    resets_at: dt.datetime

    @property
    def near(self) -> bool:
        return self.budget > 0 and self.spent >= NEAR_LIMIT_FRACTION * self.budget


@dataclass
class UsageBook:
    """Records turns' tokens and keeps the daily budget. `now` is injected (tests move to the next day)."""

    session_maker: SessionMaker
    tokens_per_day: int = 0  # QUOTA_TOKENS_PER_USER_PER_DAY; 0 = no budget
    now: Now = utcnow
    ledger: UsageLedger = field(init=False)

    def __post_init__(self) -> None:
        self.ledger = UsageLedger(self.session_maker)

    def today(self) -> dt.date:
        return self.now().astimezone(dt.UTC).date()

    async def check(self, user_id: str) -> BudgetUse | None:
        """The user's use of the budget (None without one); `BudgetExceeded` (429) once it is spent."""
        if not self.tokens_per_day:
            return None
        spent = await self.ledger.spent(user_id=user_id, day=self.today())
        now = self.now()
        resets_at = next_utc_midnight(now)
        if spent >= self.tokens_per_day:
            at = resets_at.strftime("%Y-%m-%d %H:%M UTC")
            raise BudgetExceeded(
                f"You have used your {self.tokens_per_day:,}-token daily budget for the assistant "
                f"({QUOTA}); it resets at {at}. Try again then.",
                quota=QUOTA,
                retry_after=max(1, math.ceil((resets_at - now).total_seconds())),
            )
        return BudgetUse(spent=spent, budget=self.tokens_per_day, resets_at=resets_at)

    async def record(self, user_id: str, turn: TurnTokens) -> None:
        """Count a finished turn: the metric, then one upsert per model (in one transaction)."""
        for model, tokens in turn.by_model.items():
            for kind, count in zip(KINDS, tokens.columns().values(), strict=True):
                if count:
                    metrics.MODEL_TOKENS.labels(model=model, kind=kind).inc(count)
        if not turn.by_model:
            return
        additions = [
            UsageAddition(model=model, tokens=tokens.columns(), turns=int(model == turn.model))
            for model, tokens in sorted(turn.by_model.items())
        ]
        await self.ledger.add(user_id=user_id, day=self.today(), additions=additions)

    async def record_transcription(self, user_id: str, model: str, usage: TranscriptionUsage) -> None:
        """Count a dictation: the metrics, then one upsert into the row of `model` (no turn). A
        dictation that reported nothing still touches its row: the user dictated with the model that day."""
        for kind, count in zip(KINDS, usage.tokens.columns().values(), strict=True):
            if count:
                metrics.MODEL_TOKENS.labels(model=model, kind=kind).inc(count)
        metrics.TRANSCRIPTION_SECONDS.labels(model=model).inc(usage.audio_seconds)
        addition = UsageAddition(model=model, tokens=usage.tokens.columns(), turns=0, transcription_ms=usage.audio_ms)
        await self.ledger.add(user_id=user_id, day=self.today(), additions=[addition])


# ---- export ----------------------------------------------------------------------------------------

ExportFormat = Literal["csv", "jsonl"]
FIELDS = ("day", "user", "model", *TOKEN_COLUMNS, "turns", "transcription_seconds")
DEFAULT_BATCH_SIZE = 500


@dataclass(frozen=True, slots=True)
class UsageExport:
    format: ExportFormat = "csv"
    include_user: bool = False
    since: dt.date | None = None
    batch_size: int = DEFAULT_BATCH_SIZE


def hashed_user(user_id: str) -> str:
    """A stable pseudonym for a user id: the same user is one line item per day, but not named."""
    return "sha256:" + hashlib.sha256(user_id.encode()).hexdigest()[:32]


def _record(row: UsageRecord, include_user: bool) -> dict[str, Any]:
    return {
        "day": row.day.isoformat(),
        "user": row.user_id if include_user else hashed_user(row.user_id),
        "model": row.model,
        "input_tokens": row.input_tokens,
        "cached_input_tokens": row.cached_input_tokens,
        "output_tokens": row.output_tokens,
        "reasoning_tokens": row.reasoning_tokens,
        "turns": row.turns,
        # Stored as whole milliseconds (exact sums), shown as seconds: 1500 -> 1.5.
        "transcription_seconds": row.transcription_ms / 1000,
    }


async def export_usage(session_maker: SessionMaker, out: TextIO, options: UsageExport) -> int:
    """Write the usage rows (day, user, model: user hashed unless `include_user`) to `out`; how many."""
    if options.batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\r\n") if options.format == "csv" else None
    if writer is not None:
        writer.writeheader()
    written = 0
    after: UsageKey | None = None
    while True:
        async with session_maker() as session:
            rows = await scan_usage(session, after=after, limit=options.batch_size, since=options.since)
        for row in rows:
            record = _record(row, options.include_user)
            if writer is not None:
                # A user id or a model name is text someone else chose: a spreadsheet must not run it.
                writer.writerow({k: spreadsheet_safe(v) if isinstance(v, str) else v for k, v in record.items()})
            else:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        written += len(rows)
        if len(rows) < options.batch_size:
            return written
        after = rows[-1].key
