"""The one granian command line: `taskpilot serve`, the tests' live servers and `bench/` all run it.

Anything that measures or tests "the server" must start exactly what production starts, so the
flags live here and nowhere else.
"""

from __future__ import annotations

import math
import sys

from app.settings import DEFAULT_HTTP_HEADER_READ_TIMEOUT_SECONDS, DEFAULT_SHUTDOWN_GRACE_SECONDS

APP_FACTORY = "app.worker:create_app"
# How long after SHUTDOWN_GRACE_SECONDS a worker may take to stop before granian kills it: the cut
# streams' saves and the shutdown steps (the traces' last flush) run after the grace.
STOP_MARGIN_SECONDS = 10


def granian_argv(
    *,
    host: str,
    port: int,
    workers: int,
    log_level: str = "info",
    target: str = APP_FACTORY,
    header_read_timeout_seconds: int = DEFAULT_HTTP_HEADER_READ_TIMEOUT_SECONDS,
    shutdown_grace_seconds: float = DEFAULT_SHUTDOWN_GRACE_SECONDS,
) -> list[str]:
    """`python -m granian ...` serving the ASGI factory `target` as production does.

    `header_read_timeout_seconds` is `HTTP_HEADER_READ_TIMEOUT_SECONDS` (the body timeout is the
    app's own: granian has none); `shutdown_grace_seconds` is `SHUTDOWN_GRACE_SECONDS`.
    """
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
        # HTTP/1 only: with `auto` granian first sniffs for an HTTP/2 preface, with no timeout, so a
        # connection that sends nothing was held forever. HTTP/2 arrives over TLS, which a proxy
        # in front terminates; nothing here speaks cleartext HTTP/2.
        "--http",
        "1",
        # Also closes idle keep-alive connections: waiting for the next request is reading headers.
        "--http1-header-read-timeout",
        str(header_read_timeout_seconds * 1000),
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
        # Without it granian exits (status 1) when any worker dies, and the instance with it: a
        # worker killed by the OOM killer or a crash must cost only the streams it carried. A worker
        # that dies again within 5.5 s of its respawn is a crash loop, and granian then exits.
        # (`--respawn-interval` paces only reloads and lifetime respawns: a dead worker is replaced
        # at once.)
        "--respawn-failed-workers",
        # A SIGTERM that reaches a worker still starting (a respawn, or the instance's own start)
        # is lost: without this, granian then waits on that worker until the orchestrator's
        # SIGKILL, and the instance never finishes its stop (tests/live/test_live_server.py has the run).
        "--workers-kill-timeout",
        str(math.ceil(shutdown_grace_seconds) + STOP_MARGIN_SECONDS),
        target,
    ]
