"""Admission control for ChatKit turns: a worker takes only the streams it can carry.

A turn is admitted before its request is processed, so a refusal writes nothing and answers a
fast 503 with `Retry-After` while no stream has opened (ChatKit shows it as an error the user
can retry). Beyond the limit a turn may wait briefly for a slot (a burst of turns arriving
together is smoothed rather than refused), but only a bounded number may wait, and only for a
bounded time: a long queue would only turn refusals into slow refusals.

Why a limit at all: every open stream costs this worker CPU for each delta and a share of the
database pool for its writes. Past what the worker can carry, deltas arrive late for everyone,
pool checkouts time out, and turns that were already streaming fail. Refusing at the door
keeps the turns already admitted healthy (issue 21 measured what happens without it).

The limit is per worker process (each granian worker has its own event loop and pool). It is
measured, not fixed: with an `AdaptiveLimit` (app.ops.adaptive_limit) the worker admits new
streams while its event loop keeps the open ones smooth and backs off when it lags; the
configured count (CHATKIT_MAX_STREAMS) is then only the ceiling. Lowering the limit never ends
an open stream: it stops admitting (and hands no freed slot to a waiter) until enough have ended.

Within it, one user may hold only a share of the slots (`per_user`, open or waiting): without a
share, one account with a few long streams could take every slot of a worker and turn `/ready`
to saturated for everyone. A user past their share is refused with a 429 (it is their own
traffic, not the server's load, that is too much) before anything is read or written. The share
is per worker too: a user's streams on other workers or instances are not counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque

from app.core.errors import ServiceUnavailable, TooManyRequests
from app.ops import metrics
from app.ops.adaptive_limit import AdaptiveLimit, LimitRules, LoopLagSampler
from app.settings import Settings

REFUSAL_DETAIL = (
    "The assistant is answering as many conversations as this server can carry; "
    "nothing was saved. Send your message again in a few seconds."
)
USER_SHARE_DETAIL = (
    "You already have {held} answers streaming, the most one user may have at once; nothing was saved. "
    "Wait for one of them to finish (or stop it), then send your message again."
)
# A stream lasts seconds to minutes: a refused user should not come back at once.
USER_SHARE_RETRY_AFTER = 5


class StreamSlot:
    """One admitted turn's place; released exactly once, however the turn ends."""

    __slots__ = ("_admission", "_released", "_user")

    def __init__(self, admission: Admission, user: str | None = None) -> None:
        self._admission = admission
        self._released = False
        self._user = user

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._admission._forget(self._user)
            self._admission._release()


class Admission:
    """At most `limit` concurrent streams; up to `max_waiting` more wait `wait_seconds` for a slot.
    One user holds at most `per_user` of them, open or waiting (0: no share).

    `ceiling` is the most the worker ever admits; with `adaptive`, the limit is that limit's
    current value (fed by `observe_lag`, from `start`'s sampler), else the ceiling itself."""

    def __init__(
        self,
        ceiling: int,
        *,
        wait_seconds: float = 0.0,
        max_waiting: int | None = None,
        per_user: int = 0,
        adaptive: AdaptiveLimit | None = None,
    ) -> None:
        if ceiling < 1:
            raise ValueError("limit must be at least 1")
        if per_user < 0:
            raise ValueError("per_user must be 0 (no share) or more")
        if adaptive is not None and adaptive.rules.ceiling != ceiling:
            raise ValueError("the adaptive limit's ceiling must be the admission's")
        self.ceiling = ceiling
        self.adaptive = adaptive
        self.per_user = per_user
        self._held: dict[str, int] = {}  # by user: slots open or waited for
        self.wait_seconds = wait_seconds
        self._max_waiting = max_waiting
        self.open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        # The most streams wanted at once since the adaptive limit's last decision (its "in use").
        self._demand = 0
        self._sampler: LoopLagSampler | None = None
        # A refused client should come back once some of the open turns have ended, not at once.
        self.retry_after = max(1, math.ceil(wait_seconds) + 1)
        metrics.STREAM_CEILING.set(ceiling)
        metrics.STREAM_CAPACITY.set(self.limit)

    @property
    def max_waiting(self) -> int:
        """How many turns may wait at once: as given, else as many as the worker admits now."""
        return self.limit if self._max_waiting is None else self._max_waiting

    @property
    def limit(self) -> int:
        """The streams this worker admits now: the adaptive limit's value, or the ceiling."""
        return self.ceiling if self.adaptive is None else self.adaptive.limit

    def observe_lag(self, lag_seconds: float, own_lag_seconds: float | None = None) -> None:
        """One event-loop lag sample (and the part of it this worker spent running) for the
        adaptive limit; a no-op without one."""
        if self.adaptive is None:
            return
        demand = max(self._demand, self.open)
        if not self.adaptive.observe(lag_seconds, own_lag_seconds, open_streams=self.open, demand=demand):
            return
        self._demand = self.open + len(self._waiters)
        metrics.STREAM_CAPACITY.set(self.adaptive.limit)
        metrics.EVENT_LOOP_LAG.set(self.adaptive.lag_seconds)
        metrics.EVENT_LOOP_OWN_LAG.set(self.adaptive.own_lag_seconds)
        self._admit_waiters()  # a grown limit has room for the turns waiting now

    def start(self) -> None:
        """Start measuring the event loop's lag (call from the running worker's loop)."""
        if self.adaptive is not None:
            if self._sampler is None:
                self._sampler = LoopLagSampler(self.observe_lag)
            self._sampler.start()

    async def stop(self) -> None:
        if self._sampler is not None:
            await self._sampler.stop()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @property
    def saturated(self) -> bool:
        """No free slot: a new turn would wait or be refused."""
        return self.open >= self.limit

    def streams_of(self, user: str) -> int:
        """The slots `user` holds on this worker, open or waited for."""
        return self._held.get(user, 0)

    async def admit(self, user: str | None = None) -> StreamSlot:
        """A slot for one turn of `user`: `TooManyRequests` (429) when the user already holds their
        share, `ServiceUnavailable` (503 with Retry-After) when the worker has no slot free."""
        if user is not None and self.per_user:
            held = self._held.get(user, 0)
            if held >= self.per_user:
                metrics.TURNS_REFUSED.labels(reason="user_share").inc()
                raise TooManyRequests(USER_SHARE_DETAIL.format(held=held), retry_after=USER_SHARE_RETRY_AFTER)
            self._held[user] = held + 1
        try:
            return await self._admit(user if self.per_user else None)
        except BaseException:
            self._forget(user if self.per_user else None)
            raise

    async def _admit(self, user: str | None) -> StreamSlot:
        self._demand = max(self._demand, self.open + len(self._waiters) + 1)
        if self.open < self.limit and not self._waiters:
            return self._take(user)
        if self.wait_seconds <= 0 or len(self._waiters) >= self.max_waiting:
            raise self._refuse()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        metrics.STREAMS_WAITING.inc()
        try:
            # Not `wait_for`: on 3.11 it can swallow a cancellation that arrives as the slot does.
            async with asyncio.timeout(self.wait_seconds):
                await waiter
        except TimeoutError:
            if not waiter.done() or waiter.cancelled():
                raise self._refuse() from None
            # The slot was handed over just as the wait ran out: keep it.
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._release()  # handed a slot, then cancelled (the client left): pass it on
            raise
        finally:
            metrics.STREAMS_WAITING.dec()
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
        return StreamSlot(self, user)

    def _take(self, user: str | None) -> StreamSlot:
        self.open += 1
        return StreamSlot(self, user)

    def _forget(self, user: str | None) -> None:
        if user is None:
            return
        held = self._held.get(user, 0) - 1
        if held > 0:
            self._held[user] = held
        else:
            self._held.pop(user, None)  # the map holds only users with streams: it cannot grow without bound

    def _release(self) -> None:
        # Hand the slot straight to the oldest waiter, so a newcomer cannot jump the queue; but
        # only while the worker is within its limit (the adaptive limit may have dropped below
        # the streams open: then the slot is given up instead).
        if self.open <= self.limit:
            while self._waiters:
                waiter = self._waiters.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    return
        self.open -= 1

    def _admit_waiters(self) -> None:
        while self._waiters and self.open < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self.open += 1

    def _refuse(self) -> ServiceUnavailable:
        metrics.TURNS_REFUSED.labels(reason="capacity").inc()
        return ServiceUnavailable(REFUSAL_DETAIL, retry_after=self.retry_after)


def build_admission(settings: Settings) -> Admission:
    """The worker's admission control as configured: adaptive between CHATKIT_MIN_STREAMS and
    CHATKIT_MAX_STREAMS, or fixed at CHATKIT_MAX_STREAMS when the target lag is 0."""
    ceiling = settings.chatkit_max_streams
    adaptive = None
    if settings.chatkit_admission_target_lag_ms > 0:
        rules = LimitRules(
            ceiling=ceiling,
            floor=min(settings.chatkit_min_streams, ceiling),
            target_lag_seconds=settings.chatkit_admission_target_lag_ms / 1000,
        )
        adaptive = AdaptiveLimit(rules)
    return Admission(
        ceiling,
        wait_seconds=settings.chatkit_admission_wait_seconds,
        per_user=settings.chatkit_max_streams_per_user,
        adaptive=adaptive,
    )
