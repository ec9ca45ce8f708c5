"""The rate-limiter interface, and the one way a limited operation is refused.

Implementations (in memory, or exact across instances in Redis) live in `app.ops.ratelimit`;
services and controllers see only `RateLimiter` and call `enforce`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

from app.core.errors import TooManyRequests


class RateLimiter(Protocol):
    async def acquire(self, key: str) -> float | None:
        """Count one request for `key`: None when admitted, else seconds until one would be."""
        ...


def retry_after_seconds(wait: float) -> int:
    """A `Retry-After` value: whole seconds, rounded up, at least 1."""
    return max(1, math.ceil(wait))


async def enforce(limiter: RateLimiter, key: str, detail: str, *, on_refusal: Callable[[], None] | None = None) -> None:
    """Count one request for `key`, or raise `TooManyRequests(detail)` saying how long to wait.

    `{retry_after}` in `detail` becomes the seconds to wait; `on_refusal` runs once per refusal
    (a metric, usually).
    """
    wait = await limiter.acquire(key)
    if wait is None:
        return
    if on_refusal is not None:
        on_refusal()
    seconds = retry_after_seconds(wait)
    raise TooManyRequests(detail.replace("{retry_after}", str(seconds)), retry_after=seconds)
