"""The one granian command line: `taskpilot serve`, the tests' live servers and `bench/` all run it.

Anything that measures or tests "the server" must start exactly what production starts, so the
flags live here and nowhere else.
"""

from __future__ import annotations

import sys

from app.settings import DEFAULT_HTTP_HEADER_READ_TIMEOUT_SECONDS

APP_FACTORY = "app.worker:create_app"


def granian_argv(
    *,
    host: str,
    port: int,
    workers: int,
    log_level: str = "info",
    target: str = APP_FACTORY,
    header_read_timeout_seconds: int = DEFAULT_HTTP_HEADER_READ_TIMEOUT_SECONDS,
) -> list[str]:
    """`python -m granian ...` serving the ASGI factory `target` as production does.

    `header_read_timeout_seconds` is `HTTP_HEADER_READ_TIMEOUT_SECONDS` (the body timeout is the
    app's own: granian has none).
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
        target,
    ]
