"""Per-key rate limiting behind a tiny protocol, so the counters can move from memory to Redis.

`StoreRateLimiter` keeps one number per key (GCRA, the "generic cell rate algorithm": the
theoretical arrival time of the next request) in any key-value store with `get` and
`set(..., expires_in=...)` — Litestar's `MemoryStore` today, its `RedisStore` when a shared
store is configured. A limit of N per minute admits a burst of N, then one request every
60/N seconds, and a refusal says exactly how long to wait.

The read-modify-write is serialised per process by a lock. With a store shared between
instances two instances can race and admit a request or two over the limit during a burst;
a Redis implementation that must be exact runs the same arithmetic in one Lua script
behind the same `RateLimiter` protocol.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from app.core.limits import UNLIMITED, Budget, RateLimiter, budget_after
from app.ops import metrics
from app.settings import Settings

log = logging.getLogger("app.ratelimit")


class KeyValueStore(Protocol):
    """What the limiter needs from a store; `litestar.stores.base.Store` satisfies it."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: str | bytes, expires_in: int | None = None) -> None: ...


class StoreRateLimiter:
    """At most `limit` requests per `period` seconds per key (burst `limit`); `limit <= 0` is off."""

    PURGE_INTERVAL_SECONDS = 60.0

    def __init__(
        self,
        store: KeyValueStore,
        *,
        limit: int,
        period: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.limit = limit
        self.period = period
        # Wall-clock time, not monotonic: the stored instants must mean the same on every instance.
        self.clock = clock
        self._lock = asyncio.Lock()
        self._purged_at = clock()

    async def acquire(self, key: str) -> float | None:
        return (await self.admit(key)).wait

    async def admit(self, key: str) -> Budget:
        if self.limit <= 0:
            return UNLIMITED
        interval = self.period / self.limit
        async with self._lock:
            now = self.clock()
            raw = await self.store.get(key)
            try:
                arrival = float(raw) if raw else now
            except ValueError:  # a foreign value under our key must not lock the user out
                arrival = now
            arrival = max(arrival, now)
            next_arrival = arrival + interval
            admitted_at = next_arrival - self.period
            if admitted_at > now + 1e-9:
                return budget_after(self.limit, self.period, arrival - now, admitted_at - now)
            await self.store.set(key, repr(next_arrival), expires_in=math.ceil(next_arrival - now) + 1)
            await self._purge_expired(now)
            return budget_after(self.limit, self.period, next_arrival - now, None)

    async def _purge_expired(self, now: float) -> None:
        # MemoryStore only drops an expired key when it is read again; without this sweep every
        # user who ever minted a session would keep a few bytes forever.
        if now - self._purged_at < self.PURGE_INTERVAL_SECONDS:
            return
        self._purged_at = now
        delete_expired = getattr(self.store, "delete_expired", None)
        if delete_expired is not None:
            await delete_expired()


# GCRA in one atomic step on the Redis server, timed by the server's clock so instances agree.
# Answers {wait (0 when admitted), seconds the theoretical arrival time is ahead of now}, as
# strings: Redis would cut Lua numbers to integers.
_GCRA_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local next_tat = tat + interval
local allowed_at = next_tat - period
if allowed_at > now then
  return {tostring(allowed_at - now), tostring(tat - now)}
end
redis.call('SET', KEYS[1], tostring(next_tat), 'PX', math.ceil((next_tat - now) * 1000) + 1000)
return {'0', tostring(next_tat - now)}
"""


RateLimitState = Literal["ok", "degraded (in-memory, Redis unreachable)"]
RATE_LIMITS_OK: RateLimitState = "ok"
RATE_LIMITS_DEGRADED: RateLimitState = "degraded (in-memory, Redis unreachable)"
PING_TIMEOUT_SECONDS = 1.0


class RedisHealth:
    """Whether this instance can reach the Redis that holds the shared counters.

    Shared by every Redis limiter of one app. After a failure Redis is tried again at most every
    `retry_seconds` (a request meanwhile goes straight to memory instead of waiting for a connect
    timeout); the first success, or a `/ready` ping that answers, ends the outage.
    """

    def __init__(self, *, retry_seconds: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.retry_seconds = retry_seconds
        self.clock = clock
        self.degraded = False
        self._retry_at = 0.0
        metrics.RATE_LIMITS_DEGRADED.set(0)

    @property
    def state(self) -> RateLimitState:
        return RATE_LIMITS_DEGRADED if self.degraded else RATE_LIMITS_OK

    def should_try(self) -> bool:
        return not self.degraded or self.clock() >= self._retry_at

    def failed(self, exc: BaseException) -> None:
        self._retry_at = self.clock() + self.retry_seconds
        if not self.degraded:
            self.degraded = True
            metrics.RATE_LIMITS_DEGRADED.set(1)
            log.warning(
                "Redis unreachable: rate limits are counted in this instance's memory until it returns",
                extra={"fields": {"error": type(exc).__name__}},
            )

    def recovered(self) -> None:
        if self.degraded:
            self.degraded = False
            metrics.RATE_LIMITS_DEGRADED.set(0)
            log.info("Redis reachable again: rate limits are shared through Redis")


class RedisRateLimiter:
    """The same limit as `StoreRateLimiter`, exact across instances: one Lua script per request.

    When Redis cannot be reached the limit is still enforced, per instance, by `fallback` (in
    memory): an outage of the limiter must neither take the service down nor switch every limit
    off. With N instances the effective limit during an outage is up to N times the configured one.
    """

    def __init__(
        self,
        redis: Any,
        *,
        limit: int,
        period: float = 60.0,
        prefix: str = "taskpilot:rl:",
        health: RedisHealth | None = None,
        fallback: RateLimiter | None = None,
    ) -> None:
        self.redis = redis
        self.limit = limit
        self.period = period
        self.prefix = prefix
        self.health = health or RedisHealth()
        self.fallback = fallback or StoreRateLimiter(_memory_store(), limit=limit, period=period)
        self._script = redis.register_script(_GCRA_SCRIPT)

    async def acquire(self, key: str) -> float | None:
        return (await self.admit(key)).wait

    async def admit(self, key: str) -> Budget:
        if self.limit <= 0:
            return UNLIMITED
        if self.health.should_try():
            try:
                answer = await self._script(keys=[self.prefix + key], args=[self.period / self.limit, self.period])
                wait, ahead = float(answer[0]), float(answer[1])
            except Exception as exc:  # connection refused, timeout, script error: count in memory instead
                self.health.failed(exc)
            else:
                self.health.recovered()
                return budget_after(self.limit, self.period, ahead, wait if wait > 0 else None)
        return await self.fallback.admit(key)


def _memory_store() -> KeyValueStore:
    from litestar.stores.memory import MemoryStore

    return MemoryStore()


@dataclass
class Limits:
    """Every rate limit of the service, built once per app from settings."""

    chat: RateLimiter
    sessions: RateLimiter
    uploads: RateLimiter
    anonymous: RateLimiter
    redis: Any = None
    health: RedisHealth | None = None

    async def state(self) -> RateLimitState:
        """Whether the limits are shared through Redis as configured (pings Redis; bounded wait)."""
        if self.redis is None or self.health is None:
            return RATE_LIMITS_OK
        try:
            async with asyncio.timeout(PING_TIMEOUT_SECONDS):
                await self.redis.ping()
        except Exception as exc:  # any failure to answer means the counters are in memory now
            self.health.failed(exc)
        else:
            self.health.recovered()
        return self.health.state

    async def aclose(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()


def build_limits(settings: Settings) -> Limits:
    """Counters in Redis when `REDIS_URL` is set (shared by every instance), else in memory."""
    per_minute = {
        "chat": settings.rate_limit_chat_per_minute,
        "sessions": settings.chatkit_session_rate_limit_per_minute,
        "uploads": settings.rate_limit_uploads_per_minute,
        "anonymous": settings.rate_limit_anonymous_per_minute,
    }
    if settings.redis_url is not None:
        from redis.asyncio import Redis

        redis = Redis.from_url(settings.redis_url.get(), socket_timeout=1.0, socket_connect_timeout=1.0)
        health = RedisHealth()
        built: dict[str, RateLimiter] = {
            name: RedisRateLimiter(redis, limit=limit, prefix=f"taskpilot:rl:{name}:", health=health)
            for name, limit in per_minute.items()
        }
        return Limits(
            chat=built["chat"],
            sessions=built["sessions"],
            uploads=built["uploads"],
            anonymous=built["anonymous"],
            redis=redis,
            health=health,
        )
    memory: dict[str, RateLimiter] = {
        name: StoreRateLimiter(_memory_store(), limit=limit) for name, limit in per_minute.items()
    }
    return Limits(
        chat=memory["chat"], sessions=memory["sessions"], uploads=memory["uploads"], anonymous=memory["anonymous"]
    )
