"""What a turn tells the user besides the answer: ChatKit `notice` and `progress_update` events.

- The model is slow: when a model call has produced nothing for `MODEL_SLOW_NOTICE_SECONDS`, one
  `notice` (info) per turn says so, instead of silence (`SlowModelWatch`, driven by `TurnNotices`).
- The model call is retried (a 429 or 5xx from the provider, a dropped connection): a `notice`
  (warning) saying so and how long it waits; the provider's client reports it (`current`).
- A limit is nearly spent: the chat rate limit after this turn, the attachment storage quota.
- Several task tools at once (the model completes 12 tasks in one step): `progress_update`s
  counting them ("Completed 3 of 12 tasks…"); reading the attachments of the user's message.

No HTTP here: events go to a `sink` (the turn's `AgentContext.stream`), which the ChatKit
stream merges with the model's events.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from chatkit.types import NoticeEvent, ProgressUpdateEvent, ThreadStreamEvent

from app.agents.messages import Language, counted, say
from app.core.limits import Budget
from app.services.usage import BudgetUse

log = logging.getLogger("app.assistant")

Sink = Callable[[ThreadStreamEvent], Awaitable[None]]

SLOW_MODEL_MESSAGE = say("notice.slow_model")


class SlowModelWatch:
    """When a model call has been silent for `after` seconds: the timing, without any I/O.

    A call is watched from `started()` to `ended()`; `output()` restarts the silence. It is due
    once per turn at most.
    """

    def __init__(self, after: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.after = after
        self.clock = clock
        self.calls = 0  # model calls in flight (handoffs and retries never overlap, but be exact)
        self.last_output = 0.0
        self.fired = False

    def started(self) -> None:
        self.calls += 1
        self.last_output = self.clock()

    def ended(self) -> None:
        self.calls = max(0, self.calls - 1)

    def output(self) -> None:
        self.last_output = self.clock()

    def remaining(self) -> float | None:
        """Seconds until it is due; None while nothing is watched (or it was already said)."""
        if self.fired or self.calls == 0:
            return None
        return max(0.0, self.last_output + self.after - self.clock())

    def due(self) -> bool:
        remaining = self.remaining()
        return remaining is not None and remaining <= 0.0


class TurnNotices:
    """The notices of one turn: the slow-model watch, provider retries, tool-batch progress."""

    def __init__(
        self,
        sink: Sink,
        *,
        slow_after: float,
        clock: Callable[[], float] = time.monotonic,
        lang: Language = "en",
    ) -> None:
        self.sink = sink
        self.lang = lang  # the conversation's language (app.agents.chatkit.language)
        self.slow = SlowModelWatch(slow_after, clock)
        self._changed = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None
        # Retries the provider's client made for this turn so far: each model call's span counts its own.
        self.retries = 0

    def start(self) -> None:
        self._watcher = asyncio.create_task(self._watch())

    def close(self) -> None:
        # Not awaited: the turn may be ending because its own task is being cancelled.
        if self._watcher is not None:
            self._watcher.cancel()

    # ---- the model -----------------------------------------------------------------------------

    def model_started(self) -> None:
        self.slow.started()
        self._changed.set()

    def model_ended(self) -> None:
        self.slow.ended()
        self._changed.set()

    def output(self) -> None:
        """Something reached the user (called once per streamed event: keep it cheap)."""
        self.slow.last_output = self.slow.clock()

    async def _watch(self) -> None:
        while True:
            remaining = self.slow.remaining()
            try:
                async with asyncio.timeout(remaining):
                    await self._changed.wait()
                self._changed.clear()
                continue
            except TimeoutError:
                pass
            if self.slow.due():
                self.slow.fired = True
                await self.sink(NoticeEvent(level="info", message=say("notice.slow_model", self.lang)))
                return

    async def retrying(self, *, attempt: int, of: int, wait: float, status: int | None) -> None:
        """The provider's client is about to retry a failed model call, after `wait` seconds."""
        self.retries += 1
        if status == 429:
            reason = say("notice.retry.rate_limited", self.lang)
        elif status is None:
            reason = say("notice.retry.unreachable", self.lang)
        else:
            reason = say("notice.retry.failed", self.lang, status=status)
        seconds = max(1, math.ceil(wait))
        message = say("notice.retry", self.lang, reason=reason, seconds=seconds, attempt=attempt, of=of)
        await self.sink(NoticeEvent(level="warning", message=message))
        self.slow.output()  # the user was just told why it is quiet

    # ---- task tools ----------------------------------------------------------------------------

    async def progress(self, text: str, icon: str | None = None) -> None:
        await self.sink(ProgressUpdateEvent(text=text, icon=icon))


# The turn whose model calls the provider's client makes now: the client is shared by every turn,
# and the Agents SDK runs the model in a task of its own that inherits the context of `respond`.
current: contextvars.ContextVar[TurnNotices | None] = contextvars.ContextVar("taskpilot_turn_notices", default=None)


# ---- tool batches ---------------------------------------------------------------------------------

_BATCHED = frozenset({"add_task", "update_task", "complete_task", "delete_task", "get_task"})
BATCH_MIN = 2  # one tool call is shown by its workflow task alone


@dataclass
class ToolBatch:
    """The task tools one model response called together, and how many have finished."""

    tools: tuple[str, ...]
    done: int = 0
    lang: Language = "en"

    @property
    def total(self) -> int:
        return len(self.tools)

    def _tool(self) -> str:
        """ ".<tool>" when every call is the same batched tool, else ""."""
        names = set(self.tools)
        only = next(iter(names)) if len(names) == 1 else None
        return f".{only}" if only in _BATCHED else ""

    def started_text(self) -> str:
        return say(f"batch.running{self._tool()}", self.lang, total=self.total)

    def finished_one(self) -> str:
        self.done = min(self.total, self.done + 1)
        return say(f"batch.finished{self._tool()}", self.lang, done=self.done, total=self.total)


def reading_attachments_text(count: int, lang: Language = "en") -> str:
    return counted("attachments.reading", count, lang)


# ---- limits nearly spent -------------------------------------------------------------------------


def _duration(seconds: float) -> str:
    seconds = max(1, math.ceil(seconds))
    if seconds < 120:
        return f"{seconds} s"
    return f"{math.ceil(seconds / 60)} min"


def chat_budget_notice(budget: Budget | None, lang: Language = "en") -> NoticeEvent | None:
    """A warning when this turn left the user's chat rate limit nearly spent."""
    if budget is None or not budget.near_limit:
        return None
    per = say("limit.per_minute", lang) if budget.period == 60 else f"{_duration(budget.period)}"
    left = (
        say("limit.last_message", lang) if budget.remaining == 0 else counted("limit.remaining", budget.remaining, lang)
    )
    refill = _duration(budget.period / budget.limit)
    message = say(
        "limit.message", lang, left=left, limit=budget.limit, per=per, refill=refill, full=_duration(budget.full_in)
    )
    return NoticeEvent(level="warning", title=say("limit.title", lang), message=message)


def storage_notice(stored: int, quota: int, lang: Language = "en") -> NoticeEvent:
    """A warning that the user's attachments nearly fill their storage quota."""
    percent = min(100, math.floor(100 * stored / quota))
    message = say("storage.message", lang, percent=percent, stored=_size(stored), quota=_size(quota))
    return NoticeEvent(level="warning", title=say("storage.title", lang), message=message)


def token_budget_notice(use: BudgetUse | None, lang: Language = "en") -> NoticeEvent | None:
    """A warning when the user has spent 80% of their daily token budget (QUOTA_TOKENS_PER_USER_PER_DAY)."""
    if use is None or not use.near:
        return None
    percent = min(100, math.floor(100 * use.spent / use.budget))
    message = say("tokens.message", lang, percent=percent, budget=f"{use.budget:,}", resets=f"{use.resets_at:%H:%M}")
    return NoticeEvent(level="warning", title=say("tokens.title", lang), message=message)


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} bytes"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} KiB"
    return f"{count / (1024 * 1024):.1f} MiB"


__all__ = [
    "BATCH_MIN",
    "SLOW_MODEL_MESSAGE",
    "SlowModelWatch",
    "ToolBatch",
    "TurnNotices",
    "chat_budget_notice",
    "current",
    "reading_attachments_text",
    "storage_notice",
    "token_budget_notice",
]
