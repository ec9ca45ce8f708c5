"""The one granian command line: `taskpilot serve`, the tests' live servers and `bench/` all run it.

Anything that measures or tests "the server" must start exactly what production starts, so the
flags live here and nowhere else.
"""

from __future__ import annotations

import sys

APP_FACTORY = "app.asgi:create_app"


def granian_argv(
    *,
    host: str,
    port: int,
    workers: int,
    log_level: str = "info",
    target: str = APP_FACTORY,
) -> list[str]:
    """`python -m granian ...` serving the ASGI factory `target` as production does."""
    return [
        sys.executable,
        "-m",
        "granian",
        "--interface",
        "asgi",
        # asyncio's loop lets the app chain granian's SIGTERM handler for graceful draining
        # (uvloop does not expose its handler table; see app.ops.drain).
        "--loop",
        "asyncio",
        "--factory",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        log_level.lower(),
        "--no-access-log",
        target,
    ]
