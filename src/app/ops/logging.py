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
