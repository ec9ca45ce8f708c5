"""The per-user session rate limiter (GCRA over a key-value store), on Litestar's MemoryStore."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from litestar.stores.memory import MemoryStore

from app.core.limits import RateLimiter, retry_after_seconds
from app.ops.ratelimit import StoreRateLimiter


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def limiter(limit: int, clock: Clock, store: MemoryStore | None = None) -> StoreRateLimiter:
    return StoreRateLimiter(store or MemoryStore(), limit=limit, clock=clock)


async def test_burst_of_the_limit_then_one_per_interval() -> None:
    clock = Clock()
    limit: RateLimiter = limiter(3, clock)
    assert [await limit.acquire("alice") for _ in range(3)] == [None, None, None]
    wait = await limit.acquire("alice")
    assert wait == pytest.approx(20.0)  # 60 s / 3: the oldest of the burst frees a slot at +20 s
    clock.now += 19.5
    assert await limit.acquire("alice") == pytest.approx(0.5)
    clock.now += 0.5
    assert await limit.acquire("alice") is None
    assert await limit.acquire("alice") == pytest.approx(20.0)


async def test_refusals_are_not_counted() -> None:
    clock = Clock()
    limit = limiter(2, clock)
    await limit.acquire("alice")
    await limit.acquire("alice")
    for _ in range(10):
        assert await limit.acquire("alice") == pytest.approx(30.0)
    clock.now += 30
    assert await limit.acquire("alice") is None


async def test_keys_are_independent_and_a_quiet_minute_restores_the_burst() -> None:
    clock = Clock()
    limit = limiter(2, clock)
    assert await limit.acquire("alice") is None
    assert await limit.acquire("alice") is None
    assert await limit.acquire("alice") is not None
    assert await limit.acquire("bob") is None
    clock.now += 60
    assert [await limit.acquire("alice") for _ in range(3)][:2] == [None, None]


async def test_zero_means_off() -> None:
    limit = limiter(0, Clock())
    assert all([await limit.acquire("alice") is None for _ in range(1000)])


async def test_state_lives_in_the_store_with_an_expiry() -> None:
    clock = Clock()
    store = MemoryStore()
    limit = limiter(4, clock, store)
    await limit.acquire("alice")
    assert await store.exists("alice")
    expires_in = await store.expires_in("alice")
    assert expires_in is not None
    assert 0 < expires_in <= 16
    # A second limiter on the same store (another instance sharing Redis, later) sees the count.
    other = limiter(4, clock, store)
    for _ in range(3):
        assert await other.acquire("alice") is None
    assert await other.acquire("alice") is not None


async def test_garbage_in_the_store_does_not_lock_anyone_out() -> None:
    store = MemoryStore()
    await store.set("alice", b"not a number")
    assert await limiter(1, Clock(), store).acquire("alice") is None


async def test_concurrent_requests_never_exceed_the_burst() -> None:
    limit = limiter(5, Clock())
    results = await asyncio.gather(*(limit.acquire("alice") for _ in range(50)))
    assert sum(result is None for result in results) == 5


async def test_idle_keys_are_purged_from_a_memory_store() -> None:
    clock = Clock()
    store = MemoryStore()
    limit = limiter(60, clock, store)  # one per second: each key expires 2 s after its last use
    for user in ("alice", "bob", "carol"):
        await limit.acquire(user)
    assert set(store._store) == {"alice", "bob", "carol"}
    # MemoryStore judges expiry by the real clock: each key must expire within 2 s, and then 2.1 s
    # pass for it (its expiry moved back: a real sleep cost the suite 2.1 s).
    latest = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
    for entry in store._store.values():
        assert entry.expires_at is not None and entry.expires_at <= latest
        entry.expires_at -= dt.timedelta(seconds=2.1)
    clock.now += StoreRateLimiter.PURGE_INTERVAL_SECONDS
    await limit.acquire("dave")
    assert set(store._store) == {"dave"}


def test_retry_after_is_whole_seconds_rounded_up() -> None:
    assert retry_after_seconds(0.01) == 1
    assert retry_after_seconds(2.0) == 2
    assert retry_after_seconds(2.1) == 3
