"""Process-level tuning applied once when a server worker starts.

Python's cyclic garbage collector, with its default thresholds (700, 10, 10), runs a full
collection every few hundred thousand allocations, and a full collection walks every tracked
object: everything the imports leave behind (Litestar, pydantic schemas, the openai types,
SQLAlchemy metadata) plus everything alive in open streams. Measured under load
(bench/streams.py, bench/turns.py; 600 concurrent in-process turns): full collections took up
to ~650 ms each — the worst gaps in every stream — and ~30% of the CPU (17-19 ms per turn before,
~10-12 ms after). Freezing the start-up heap takes those objects out of every later
collection, and larger thresholds make collections rarer; memory stayed the same in the
benchmarks (reference counting still frees almost everything at once; only cycles wait).
"""

from __future__ import annotations

import gc
from typing import Any

# (young generation allocations, young collections per middle one, middle per full one)
GC_THRESHOLDS = (10_000, 20, 20)


def tune_garbage_collector() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def tune_garbage_collector_on_startup(app: Any) -> None:
    """Litestar `on_startup` hook: every import and the app itself exist by now."""
    tune_garbage_collector()
