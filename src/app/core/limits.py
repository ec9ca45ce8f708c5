"""The rate-limiter interface, and the one way a limited operation is refused.

Implementations (in memory, or exact across instances in Redis) live in `app.ops.ratelimit`;
services and controllers see only `RateLimiter` and call `enforce`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from app.core.errors import TooManyRequests

# From this share of a budget used on, the user is warned before the limit refuses them (rate
# limits and storage quotas alike).
NEAR_LIMIT_FRACTION = 0.8


@dataclass(frozen=True, slots=True)
class Budget:
    """What one request left of a key's rate limit.

    `wait` is None when the request was admitted, else the seconds until one would be. Limits
    refill steadily (one request every `period / limit` seconds, up to a burst of `limit`), so
    `remaining` requests may be made right now and the whole burst is back after `full_in`.
    """

    wait: float | None
    limit: int = 0  # 0: no limit
    period: float = 60.0
    remaining: int = 0
    full_in: float = 0.0

    @property
    def near_limit(self) -> bool:
        return self.limit > 0 and self.wait is None and self.limit - self.remaining >= NEAR_LIMIT_FRACTION * self.limit


UNLIMITED = Budget(wait=None)


def budget_after(limit: int, period: float, ahead: float, wait: float | None) -> Budget:
    """The budget of a GCRA limit whose theoretical arrival time is `ahead` seconds from now."""
    interval = period / limit
    ahead = max(0.0, ahead)
    remaining = 0 if wait is not None else max(0, math.floor((period - ahead) / interval + 1e-9))
    return Budget(wait=wait, limit=limit, period=period, remaining=remaining, full_in=ahead)


class RateLimiter(Protocol):
    async def acquire(self, key: str) -> float | None:
        """Count one request for `key`: None when admitted, else seconds until one would be."""
        ...

    async def admit(self, key: str) -> Budget:
        """`acquire`, saying also what the request left of the limit."""
        ...


def retry_after_seconds(wait: float) -> int:
    """A `Retry-After` value: whole seconds, rounded up, at least 1."""
    return max(1, math.ceil(wait))


async def enforce(
    limiter: RateLimiter, key: str, detail: str, *, on_refusal: Callable[[], None] | None = None
) -> Budget:
    """Count one request for `key`, or raise `TooManyRequests(detail)` saying how long to wait.

    `{retry_after}` in `detail` becomes the seconds to wait; `on_refusal` runs once per refusal
    (a metric, usually). Admitted, the answer says what is left of the limit.
    """
    budget = await limiter.admit(key)
    wait = budget.wait
    if wait is None:
        return budget
    if on_refusal is not None:
        on_refusal()
    seconds = retry_after_seconds(wait)
    raise TooManyRequests(detail.replace("{retry_after}", str(seconds)), retry_after=seconds)
