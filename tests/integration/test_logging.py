"""What the JSON log carries: the openai client's per-request lines stay out of it at INFO, and the
chatkit library's records come out as our JSON lines only."""

from __future__ import annotations

import logging

import pytest

from app.ops.logging import configure_logging
from app.settings import Settings


@pytest.mark.parametrize("library", ["httpx2", "httpcore2.connection", "httpx", "openai"])
def test_http_clients_do_not_log_every_request_at_info(library: str) -> None:
    # openai 3.x logs an "HTTP Request: POST ..." line per call through httpx2 (two per turn).
    configure_logging(Settings.from_env({"LOG_LEVEL": "info"}))
    assert not logging.getLogger(library).isEnabledFor(logging.INFO)
    assert logging.getLogger(library).isEnabledFor(logging.WARNING)
