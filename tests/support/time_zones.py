"""Time zones for tests of "today": one whose date differs from UTC's right now."""

from __future__ import annotations

import datetime as dt
import zoneinfo


def zone_on_another_date() -> tuple[str, dt.date]:
    """A real zone whose date differs from the UTC date right now (one of UTC+14 and UTC-12 always does)."""
    now = dt.datetime.now(dt.UTC)
    for zone in ("Pacific/Kiritimati", "Etc/GMT+12"):
        local = now.astimezone(zoneinfo.ZoneInfo(zone)).date()
        if local != now.date():
            return zone, local
    raise AssertionError("no zone differs from UTC: impossible")  # pragma: no cover
