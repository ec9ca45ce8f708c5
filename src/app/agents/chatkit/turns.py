"""One turn per thread at a time, across workers and instances: the thread's turn lease.

A turn (a user message answered, a client tool's answer resumed, a retry) holds a lease on its
thread row (`ChatKitStore.claim_turn`: a token and an expiry, taken with one conditional UPDATE)
from before its first write until its last, and renews it every third of `lease_seconds` while
it runs. Why a lease and not a PostgreSQL advisory lock:

- a lock lives on a connection (or a transaction), so every running turn would pin a pooled
  connection through the model's seconds or minutes of thinking: the pool, not the model, would
  bound how many turns run at once;
- PgBouncer in transaction mode (DESIGN.md) hands a session-level lock's connection to others
  between transactions, and a transaction-level one needs a transaction open for the whole turn;
- a lease is the same UPDATE on SQLite, so the embedded default needs no second mechanism.

What a killed worker leaves behind is a lease nobody renews: the thread takes turns again when
it expires (`CHATKIT_TURN_LEASE_SECONDS`). A release that fails (the database away as the turn
ends) is tried again in the background until the lease would have expired anyway, so a user who
retries once the database is back is not kept waiting for the expiry. A turn waiting for the
lease polls the database (the holder may be another process), and is woken at once when the
holder is in its own process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol

import anyio

log = logging.getLogger("app.chatkit")

# A waiting turn retries the claim after this long, doubling up to the ceiling: quick when the
# holder is about to finish (its last writes), a few cheap UPDATEs a second when it is thinking.
FIRST_RETRY_SECONDS = 0.02
RETRY_CEILING_SECONDS = 0.5
# A release that failed is tried again after this long, doubling up to the ceiling.
FIRST_RELEASE_RETRY_SECONDS = 0.25
RELEASE_RETRY_CEILING_SECONDS = 2.0


class LeaseStore(Protocol):
    """The thread lease calls of `app.store.chatkit_store.ChatKitStore`."""

    async def claim_turn(self, thread_id: str, lease: str, seconds: float, context: Any) -> bool: ...
    async def renew_turn(self, thread_id: str, lease: str, seconds: float, context: Any) -> bool: ...
    async def release_turn(self, thread_id: str, lease: str, context: Any) -> None: ...


class TurnLocks:
    """Hands out `TurnLease`s, and wakes this process's waiters when one of its leases is released."""

    def __init__(self, store: LeaseStore, *, lease_seconds: float) -> None:
        self.store = store
        self.lease_seconds = lease_seconds
        # The waiters of this process by thread, woken when a lease of this process is released.
        self._released: dict[tuple[str, str], asyncio.Event] = {}
        self._waiting: dict[tuple[str, str], int] = {}
        # The threads with a turn queued in this process (`queue`): at most one each.
        self._queued: set[tuple[str, str]] = set()
        # Releases being tried again (`TurnLease.release`); kept here so they are not collected.
        self._releasing: set[asyncio.Task[None]] = set()

    def lease(self, thread_id: str, context: Any) -> TurnLease:
        return TurnLease(self, thread_id, context)

    def queue(self, lease: TurnLease) -> bool:
        """Mark `lease` (not claimed: another turn runs) as its thread's one queued turn in this
        process; False when the thread already has one. A queued turn holds a stream slot (and one
        of its user's share) for as long as it waits: without a bound, a few quick messages on one
        thread would take every slot the user has. It leaves the queue when its claim ends."""
        if lease._key in self._queued:
            return False
        self._queued.add(lease._key)
        lease._queued = True
        return True

    def _unqueue(self, lease: TurnLease) -> None:
        if lease._queued:
            lease._queued = False
            self._queued.discard(lease._key)

    async def _wait_for_release(self, key: tuple[str, str], seconds: float) -> None:
        event = self._released.setdefault(key, asyncio.Event())
        self._waiting[key] = self._waiting.get(key, 0) + 1
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await event.wait()
        finally:
            self._waiting[key] -= 1
            if not self._waiting[key]:
                # Nobody here waits for this thread any more (the holder may be in another process,
                # and never release it here): forget it, or threads waited on once would pile up.
                del self._waiting[key]
                if self._released.get(key) is event:
                    del self._released[key]

    def _wake(self, key: tuple[str, str]) -> None:
        event = self._released.pop(key, None)
        if event is not None:
            event.set()

    def _release_later(self, lease: TurnLease) -> None:
        task = asyncio.get_running_loop().create_task(self._retry_release(lease))
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    async def _retry_release(self, lease: TurnLease) -> None:
        # The lease was renewed at most `lease_seconds` ago: past that it has expired on its own.
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self.lease_seconds
        delay = FIRST_RELEASE_RETRY_SECONDS
        while loop.time() + delay < give_up_at:
            await asyncio.sleep(delay)
            try:
                await self.store.release_turn(lease.thread_id, lease._token, lease._context)
            except Exception:
                delay = min(delay * 2, RELEASE_RETRY_CEILING_SECONDS)
                continue
            log.info("a turn lease was released on a later try", extra={"fields": {"thread_id": lease.thread_id}})
            self._wake(lease._key)
            return

    async def aclose(self) -> None:
        """Stop the releases still being tried (the worker's shutdown): their leases expire."""
        for task in list(self._releasing):
            task.cancel()
        await asyncio.gather(*self._releasing, return_exceptions=True)


class TurnLease:
    """One turn's claim on one thread: `try_claim` or `claim` (waiting), then `kept()` for the turn."""

    def __init__(self, locks: TurnLocks, thread_id: str, context: Any) -> None:
        self._locks = locks
        self.thread_id = thread_id
        self._context = context
        self._token = uuid.uuid4().hex
        self._key = (str(getattr(context, "user_id", "")), thread_id)
        self.held = False
        # A claim whose answer never came back (cancelled by a disconnect once its UPDATE may have
        # committed): the lease may be ours without `held` saying so, and `release` must free it.
        self._unsure = False
        self._queued = False

    @property
    def queued(self) -> bool:
        return self._queued

    async def try_claim(self) -> bool:
        """Take the lease if no other turn holds it (`NotFoundError` if the thread is gone)."""
        if not self.held:
            self._unsure = True
            self.held = await self._locks.store.claim_turn(
                self.thread_id, self._token, self._locks.lease_seconds, self._context
            )
            self._unsure = False
        return self.held

    async def hold_from(self, save: Callable[[str, float], Awaitable[None]]) -> None:
        """Hold the lease from the write that creates its thread: `save(token, seconds)` saves the
        new thread already holding it (`ChatKitStore.reserve_thread(turn=...)`), one statement fewer
        than saving it and then claiming it. Until `save` returns, the lease may be ours (`release`
        frees it then)."""
        self._unsure = True
        await save(self._token, self._locks.lease_seconds)
        self.held = True
        self._unsure = False

    async def claim(self, still_wanted: Callable[[], Awaitable[None]] | None = None) -> None:
        """Wait until this turn holds the lease. `still_wanted` runs between attempts and raises
        to give up (the turn it waits behind may have made this one pointless)."""
        delay = FIRST_RETRY_SECONDS
        try:
            while not await self.try_claim():
                if still_wanted is not None:
                    await still_wanted()
                await self._locks._wait_for_release(self._key, delay)
                delay = min(delay * 2, RETRY_CEILING_SECONDS)
        finally:
            self._locks._unqueue(self)

    async def release(self) -> None:
        """Free the thread (shielded: a disconnect must not leave it held until the lease expires).
        Sent whenever the lease may be ours, a claim cut short included: the release matches the
        token, so it changes nothing when this turn never got the lease."""
        self._locks._unqueue(self)
        if not (self.held or self._unsure):
            return
        self.held = self._unsure = False
        try:
            with anyio.CancelScope(shield=True):
                await self._locks.store.release_turn(self.thread_id, self._token, self._context)
        except Exception as exc:  # tried again in the background; at worst the lease expires
            log.warning(
                "could not release a turn lease",
                extra={"fields": {"thread_id": self.thread_id, "error": type(exc).__name__}},
            )
            self._locks._release_later(self)
        finally:
            self._locks._wake(self._key)

    @asynccontextmanager
    async def kept(self) -> AsyncIterator[None]:
        """Renew the (claimed) lease while the body runs; release it after, however it ends."""
        renewing = asyncio.create_task(self._renew())
        try:
            yield
        finally:
            renewing.cancel()
            with contextlib.suppress(BaseException):
                await renewing
            await self.release()

    async def _renew(self) -> None:
        seconds = self._locks.lease_seconds
        while True:
            await asyncio.sleep(seconds / 3)
            try:
                if not await self._locks.store.renew_turn(self.thread_id, self._token, seconds, self._context):
                    # Expired (this process stalled for longer than the lease) and taken by another turn.
                    log.warning("a turn lost its thread's lease", extra={"fields": {"thread_id": self.thread_id}})
                    return
            except Exception as exc:  # the database is away: try again next time, before it expires
                log.warning(
                    "could not renew a turn lease",
                    extra={"fields": {"thread_id": self.thread_id, "error": type(exc).__name__}},
                )
