"""The `Time-Zone` request header: the IANA zone the caller's dates mean (GitHub's REST API
uses the same header). One dependency, so every route that takes it validates it the same way
and the OpenAPI document lists it as a header parameter of exactly those routes."""

from __future__ import annotations

from typing import Annotated

from litestar.params import HeaderParameter

from app.core.clock import TIME_ZONE_HEADER, parse_time_zone

TIME_ZONE_DESCRIPTION = (
    "The IANA time zone of the user (for example `Asia/Karachi`; a browser's "
    "`Intl.DateTimeFormat().resolvedOptions().timeZone`). Relative dates (today, tomorrow, "
    "overdue, due today) are dates in this zone; without the header they are dates in the server's "
    "DEFAULT_TIME_ZONE (UTC unless configured). "
    "Anything but a zone name of the IANA database is a 400 naming the header."
)


def provide_time_zone(
    time_zone_header: Annotated[
        str | None,
        HeaderParameter(
            name=TIME_ZONE_HEADER,
            description=TIME_ZONE_DESCRIPTION,
            required=False,
        ),
    ] = None,
) -> str | None:
    """The checked zone name, None when the header is absent (a 400 problem when it is not a zone)."""
    if time_zone_header is None:
        return None
    return parse_time_zone(time_zone_header)
