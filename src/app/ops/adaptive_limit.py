"""How many streams a worker admits, found by measuring: an AIMD limit driven by event-loop lag.

A fixed count is wrong on every machine but the one it was measured on: 50 streams per worker
left two cores 0.41 busy while two users in three were refused (issue 30), and on a slower
machine or with a chattier model the same 50 could be too many. What the open streams feel is
the event loop's lag: every delta waits for the loop, so while the loop answers promptly each
open stream's deltas leave on time, and when it does not, they leave late for everyone.

`LoopLagSampler` measures that lag cheaply: a task sleeps `interval` and records how late it
woke (the time the loop spent on other callbacks before it came back to this one), and which
part of that lateness was the worker's own work: Linux counts, per thread, the time it was ready
to run but waiting for a CPU (`/proc/thread-self/schedstat`, "run queue wait"). That part of the
lag is the OS running other processes (on a shared machine, or the database beside it), which
fewer streams here would not shorten; the rest is this loop's own callbacks. Where the count is
not available, all of the lag is taken as the worker's own. Every `window` samples,
`AdaptiveLimit` takes the window's 90th percentile of each (one stray sample, a garbage
collection or one turn's set-up, does not move the limit) and applies the rules:

- **own lag above the target**: back off multiplicatively, from what is open (`backoff` x the
  open streams, or x the limit if fewer): a limit above the open streams would not stop admitting;
- **lag above the target, own lag under it**: hold. The open streams are late because the worker
  does not get the CPU, not because it has too much to do: refusing more would not help them,
  admitting more would add to it;
- **under it, and the limit in use** (the window's demand, open + waiting + turned away, reached
  half the limit): grow additively, by up to `growth` x the limit, in proportion to the room
  left under the target (a gradient: near the target the steps get small). An unused limit does
  not grow, so an idle worker does not end up admitting a burst it never measured;
- never below `floor`, never above `ceiling` (CHATKIT_MAX_STREAMS: memory, file descriptors and
  the database still bound a worker whatever its CPU says).

No clock is read here: `AdaptiveLimit` gets the lag samples and the counts, and the sampler takes
its clocks and its sleep as arguments, so both are deterministic under test. Like Netflix's
concurrency-limits (AIMD, Gradient2) and Envoy's adaptive concurrency filter, the signal is a
latency the admitted work feels; here it is the loop's, which every stream of the worker shares.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

# Samples per decision, and the share of them that must be under the target (the window's p90).
WINDOW_SAMPLES = 10
LAG_PERCENTILE = 0.9
# One sample per 50 ms: a decision every 0.5 s, about as long as a delta's wait may grow before
# a 100 ms delta rhythm shows it. 20 wake-ups a second cost nothing next to the streams.
SAMPLE_INTERVAL_SECONDS = 0.05


@dataclass(frozen=True, slots=True)
class LimitRules:
    """The bounds and the steps of the limit."""

    ceiling: int
    floor: int
    target_lag_seconds: float
    # The most one window adds, as a share of the limit (at zero lag); less as lag nears the target.
    growth: float = 0.25
    # Above the target, the limit becomes this share of the streams open (Netflix's AIMD default).
    backoff: float = 0.9

    def __post_init__(self) -> None:
        if not 1 <= self.floor <= self.ceiling:
            raise ValueError("the floor must be at least 1 and at most the ceiling")
        if self.target_lag_seconds <= 0:
            raise ValueError("the target lag must be positive")
        if not 0 < self.backoff < 1 or self.growth <= 0:
            raise ValueError("backoff must be in (0, 1) and growth positive")


class AdaptiveLimit:
    """The current limit; `observe` one lag sample at a time, it decides once per window."""

    def __init__(self, rules: LimitRules, *, window: int = WINDOW_SAMPLES) -> None:
        if window < 1:
            raise ValueError("window must be at least 1 sample")
        self.rules = rules
        self.window = window
        # Start low and earn the rest: a worker has not measured anything yet.
        self.limit = rules.floor
        # The last window's p90s: all the lateness, and the part the worker spent running.
        self.lag_seconds = 0.0
        self.own_lag_seconds = 0.0
        self._samples: list[tuple[float, float]] = []

    def observe(
        self, lag_seconds: float, own_lag_seconds: float | None = None, *, open_streams: int, demand: int
    ) -> bool:
        """Record one sample; at the end of a window apply the rules. True when a window ended.

        `own_lag_seconds`: the part of the lag the worker spent running (all of it when not
        given); `open_streams`: the streams open now; `demand`: the most streams wanted at once
        during the window (open, waiting and turned away for capacity)."""
        lag = max(0.0, lag_seconds)
        own = lag if own_lag_seconds is None else min(lag, max(0.0, own_lag_seconds))
        self._samples.append((lag, own))
        if len(self._samples) < self.window:
            return False
        self.lag_seconds = _percentile([sample[0] for sample in self._samples])
        self.own_lag_seconds = _percentile([sample[1] for sample in self._samples])
        self._samples.clear()
        self.limit = self.next_limit(self.lag_seconds, self.own_lag_seconds, open_streams=open_streams, demand=demand)
        return True

    def next_limit(self, lag_seconds: float, own_lag_seconds: float, *, open_streams: int, demand: int) -> int:
        """The rules, on one window's lags (pure: the limit is not changed)."""
        rules = self.rules
        if own_lag_seconds > rules.target_lag_seconds:
            shrunk = math.floor(min(self.limit, open_streams) * rules.backoff)
            return max(rules.floor, min(self.limit - 1, shrunk))
        if lag_seconds > rules.target_lag_seconds:
            return self.limit  # late for want of CPU, not for too much work here: hold
        if 2 * demand < self.limit:
            return self.limit  # not in use: nothing measured says more would be smooth
        room = 1.0 - lag_seconds / rules.target_lag_seconds
        step = max(1, math.ceil(self.limit * rules.growth * room))
        return min(rules.ceiling, self.limit + step)


class RunQueueWait:
    """The calling thread's total time runnable but not running, in seconds, from Linux's
    schedstat (0.0 forever where there is none: then every lag counts as the worker's own)."""

    def __init__(self, path: str = "/proc/thread-self/schedstat") -> None:
        try:
            self._fd: int | None = os.open(path, os.O_RDONLY)  # thread-self: resolved for this thread now
        except OSError:
            self._fd = None

    def __call__(self) -> float:
        if self._fd is None:
            return 0.0
        try:  # "<ns on CPU> <ns waiting on a run queue> <timeslices>"
            return int(os.pread(self._fd, 128, 0).split()[1]) / 1e9
        except (OSError, ValueError, IndexError):
            return 0.0

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def _percentile(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, math.ceil(LAG_PERCENTILE * len(ordered)) - 1)]


class LoopLagSampler:
    """A task that measures how late the event loop wakes a sleeper, and how much of that the
    worker spent running, and hands each pair to `on_lag(lag, own_lag)`."""

    def __init__(
        self,
        on_lag: Callable[[float, float], None],
        *,
        interval: float = SAMPLE_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.perf_counter,
        waited_clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        """`waited_clock`: the loop thread's total time waiting for a CPU, in seconds (default:
        `RunQueueWait`, opened in the loop's thread when the sampler starts)."""
        self.on_lag = on_lag
        self.interval = interval
        self._clock = clock
        self._waited_clock = waited_clock
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        waited_clock = self._waited_clock
        own_clock = RunQueueWait() if waited_clock is None else None  # of this (the loop's) thread
        waited = waited_clock or own_clock or (lambda: 0.0)
        try:
            while True:
                started, waited_before = self._clock(), waited()
                await self._sleep(self.interval)
                lag = max(0.0, self._clock() - started - self.interval)
                # Time spent ready but without a CPU was the OS running someone else, not this loop.
                self.on_lag(lag, max(0.0, lag - (waited() - waited_before)))
        finally:
            if own_clock is not None:
                own_clock.close()

    def start(self) -> None:
        """Run in the current event loop (each worker's own, from its startup hook)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.run(), name="loop-lag-sampler")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
