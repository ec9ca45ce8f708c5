"""The clock: aware UTC instants and the UTC date, the only times TaskPilot stores or compares."""

from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()
