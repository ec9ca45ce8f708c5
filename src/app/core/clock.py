"""The clock: aware UTC instants, and "today" as a date in the user's time zone.

TaskPilot stores and compares instants in UTC. A *date* the user means ("today", "tomorrow",
"overdue", "due today") is the date where the user is: an Urdu user in UTC+5 at 02:00 local time
is still on yesterday's date in UTC. Callers name the zone with an IANA name (the `Time-Zone`
request header, or the page's answer to the `get_time_zone` client tool); without one the date is
the UTC date.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import zoneinfo
from collections.abc import Callable

from app.core.errors import DomainError

TIME_ZONE_HEADER = "Time-Zone"
MAX_TIME_ZONE_CHARS = 64
# Files of the zone database that are not IANA zone names.
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory", "leapseconds", "tzdata.zi"})
_ZONE_SHAPE = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+){0,2}")

Now = Callable[[], dt.datetime]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def to_utc(value: dt.datetime) -> dt.datetime:
    """`value` as an aware UTC instant. A naive value is read as this machine's local time: that is
    what openai-chatkit's `datetime.now()` stamps threads and items with. The one normalisation of
    the library's timestamps: the Store applies it to what it saves, the stream to what it sends."""
    return value.astimezone(dt.UTC)


def to_library_time(value: dt.datetime) -> dt.datetime:
    """`value` as the library's naive local time (the inverse of `to_utc`): the same instant, safe
    in the library's arithmetic with its own naive `datetime.now()`."""
    return value if value.tzinfo is None else value.astimezone().replace(tzinfo=None)


def utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


@functools.cache
def known_time_zones() -> frozenset[str]:
    """The IANA names of the system's zone database (read once: listing it takes ~0.1 s)."""
    return frozenset(zoneinfo.available_timezones() - _NOT_ZONES) | {"UTC"}


def parse_time_zone(value: str, *, field: str = TIME_ZONE_HEADER, source: str = "header") -> str:
    """`value` if it is an IANA time zone name (`Asia/Karachi`, `UTC`), else a `DomainError` naming `field`.

    Only names of the zone database are accepted: `zoneinfo.ZoneInfo` alone would also open
    `localtime` or a file path, and an offset such as `+05:00` says nothing about summer time.
    """
    name = value.strip()
    if len(name) <= MAX_TIME_ZONE_CHARS and _ZONE_SHAPE.fullmatch(name) and name in known_time_zones():
        return name
    shown = value if len(value) <= MAX_TIME_ZONE_CHARS else value[:MAX_TIME_ZONE_CHARS] + "…"
    detail = (
        f"{field} must be an IANA time zone name such as Asia/Karachi, Europe/Berlin or UTC; "
        f"{shown!r} is not one. Send the browser's Intl.DateTimeFormat().resolvedOptions().timeZone."
    )
    raise DomainError(detail, errors=[{"field": field, "message": detail, "source": source}])


def zone_today(time_zone: str | None, now: Now = utcnow) -> dt.date:
    """Today's date in `time_zone` (an IANA name already checked by `parse_time_zone`); UTC's without one."""
    instant = now()
    if time_zone is None:
        return instant.astimezone(dt.UTC).date()
    return instant.astimezone(zoneinfo.ZoneInfo(time_zone)).date()


def zone_clock(time_zone: str | None, now: Now = utcnow) -> Callable[[], dt.date]:
    """A clock of dates ("today") in `time_zone`, for the task service and tools."""
    if time_zone is None and now is utcnow:
        return utc_today

    def today() -> dt.date:
        return zone_today(time_zone, now)

    return today
