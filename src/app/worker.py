"""What granian runs in each worker process: `app.worker:create_app` (`app.ops.serving.APP_FACTORY`).

The same app as `app.asgi.create_app()`, built with Python's cyclic garbage collector paused. Importing
the app allocates millions of objects, nearly all of them alive until the process exits, and with the
default thresholds the collector walked them again and again while they were made: ~0.7 s of the
~5 s of CPU a worker spent starting (more under coverage's tracer, which `make test` runs every live
server under). Nothing is collected during the build; the start-up hook
(`app.ops.runtime.tune_garbage_collector`) then collects once and freezes what is left, as it did before.
"""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from litestar import Litestar


def create_app() -> Litestar:
    """The granian factory: `app.asgi.create_app()` from the environment's settings, without collections."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        # Imported here, not at the top: the import is most of what the pause is for.
        from app.asgi import create_app as build

        return build()
    finally:
        if was_enabled:
            gc.enable()
