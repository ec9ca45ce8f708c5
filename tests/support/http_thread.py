"""Run a `http.server` server on a daemon thread, stoppable at once."""

from __future__ import annotations

import socketserver
import threading

# `serve_forever` checks for `shutdown()` once per poll interval (0.5 s by default), so every
# fake server's teardown waited up to half a second: over a run, minutes of nothing.
POLL_SECONDS = 0.02


def serve_in_thread(server: socketserver.BaseServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": POLL_SECONDS}, daemon=True)
    thread.start()
    return thread
