"""Graceful shutdown: on SIGTERM, refuse new streams, give open ones a bounded time, then cut them.

Granian, on SIGTERM, stops accepting connections but waits for every in-flight response before
the app's shutdown hooks run, so a long stream would hold a deploy forever and the hooks would
come too late to bound it. The worker's own signal handler is therefore chained: ours starts
draining at once, and hands the signal on to granian once the open streams have finished or
been cut. A cut stream is cancelled like a client disconnect, so ChatKit's shielded cleanup
persists the partial answer, and the client receives a final `error` event saying to resend.

Chaining needs the loop's handler table, which asyncio's loop exposes (and uvloop's does not):
`taskpilot serve` runs granian with `--loop asyncio` for that reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("app.lifecycle")


class Drain:
    """The set of open streams and whether the process is shutting down."""

    def __init__(self, grace_seconds: float) -> None:
        self.grace_seconds = grace_seconds
        self.draining = False
        self.streams: set[asyncio.Task[Any]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    def track(self, task: asyncio.Task[Any]) -> None:
        self.streams.add(task)
        self._idle.clear()
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self.streams.discard(task)
        if not self.streams:
            self._idle.set()

    async def drain(self) -> int:
        """Wait up to the grace period for open streams, then cancel the rest; returns how many were cut."""
        self.draining = True
        started = time.monotonic()
        log.info("draining", extra={"fields": {"open_streams": len(self.streams), "grace_s": self.grace_seconds}})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout=self.grace_seconds)
        cut = [task for task in self.streams if not task.done()]
        for task in cut:
            task.cancel()
        if cut:
            # Each cancelled producer runs ChatKit's (shielded) cleanup before it finishes.
            await asyncio.wait(cut, timeout=30)
        log.info(
            "drained",
            extra={"fields": {"cut_streams": len(cut), "seconds": round(time.monotonic() - started, 2)}},
        )
        return len(cut)

    def install_signal_handlers(self) -> bool:
        """Chain SIGTERM/SIGINT on the running loop; False when the loop does not allow chaining."""
        loop = asyncio.get_running_loop()
        table = getattr(loop, "_signal_handlers", None)
        if not isinstance(table, dict):
            log.warning("graceful draining unavailable: the event loop does not expose its signal handlers")
            return False
        try:
            for signum in (signal.SIGTERM, signal.SIGINT):
                previous = table.get(signum)
                loop.add_signal_handler(signum, self._on_signal, signum, _callback_of(previous))
        except (ValueError, RuntimeError) as exc:  # not the main thread (in-process test clients)
            log.info("signal handlers not installed: %s", exc)
            return False
        return True

    def _on_signal(self, signum: int, previous: Callable[[], None] | None) -> None:
        if self._task is not None:
            if previous is not None:
                previous()  # a second signal: stop now
            return

        async def drain_then_stop() -> None:
            try:
                await self.drain()
            finally:
                if previous is not None:
                    previous()

        self._task = asyncio.get_running_loop().create_task(drain_then_stop())


def _callback_of(handle: Any) -> Callable[[], None] | None:
    if handle is None:
        return None
    callback = getattr(handle, "_callback", None)
    args = getattr(handle, "_args", ())
    if callback is None:
        return None
    return lambda: callback(*args)
