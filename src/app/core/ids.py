"""Identifiers: time-ordered, with enough randomness that a load run never collides.

ChatKit's default ids carry 32 random bits, and a run of ~150k rows hit four primary-key
collisions; these carry 74 random bits (UUIDv7, RFC 9562) and sort by creation time.
"""

from __future__ import annotations

import os
import time
import uuid


def uuid7() -> uuid.UUID:
    """A UUIDv7: 48 bits of Unix milliseconds, version and variant bits, 74 random bits."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    rand_a = rand >> 68  # 12 bits
    rand_b = rand & ((1 << 62) - 1)  # 62 bits
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= rand_a << 64
    value |= 0b10 << 62
    value |= rand_b
    return uuid.UUID(int=value)


def prefixed_id(prefix: str) -> str:
    """`<prefix>_<32 hex digits of a UUIDv7>`, e.g. `thr_0192f3...`; sorts by creation time."""
    return f"{prefix}_{uuid7().hex}"
