"""Structured JSON logs: one object per line, content-free unless LOG_CONTENT says otherwise."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from app.settings import Settings


class JsonFormatter(logging.Formatter):
    """One JSON object per line; extra fields passed via `extra={"fields": {...}}`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(settings: Settings) -> None:
    _drop_library_handlers()
    root = logging.getLogger()
    if any(getattr(h, "_taskpilot", False) for h in root.handlers):
        root.setLevel(settings.log_level)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler._taskpilot = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    # Chatty libraries stay at WARNING unless we debug; httpx would log every URL it calls.
    for name in (
        "httpx",
        "httpcore",
        "httpx2",
        "httpcore2",
        "openai",
        "openai.agents",
        "sqlalchemy.engine",
        "aiosqlite",
        "mcp",
    ):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def _drop_library_handlers() -> None:
    """One log format: libraries' records reach our JSON handler on the root logger only.

    `chatkit/logger.py`, when first imported with LOG_LEVEL set (the variable we read too), adds
    its own plain-text StreamHandler to the `chatkit` logger, so each of its records was printed
    twice, once not as JSON. Importing it here first makes sure that handler exists to remove.
    The level it set from LOG_LEVEL goes too: the root's (`settings.log_level`) decides, whatever
    the environment held when chatkit was imported (LOG_LEVEL from a .env file is read later, and the
    tests' servers are forked from a process that imported chatkit once: tests/support/server_template.py)."""
    import chatkit.logger  # noqa: F401  (its import-time handler is what is removed below)

    chatkit_logger = logging.getLogger("chatkit")
    for handler in list(chatkit_logger.handlers):
        chatkit_logger.removeHandler(handler)
    chatkit_logger.setLevel(logging.NOTSET)
    chatkit_logger.propagate = True
