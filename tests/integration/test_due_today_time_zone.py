"""`/today` ("Due today", a composer tool that forces list_tasks with today's filter) from a front end
that sends no `Time-Zone` header but answers `get_time_zone` (the page's `?tz=ask`): the forced call
comes first, so nothing can ask the page before it; its "today" is DEFAULT_TIME_ZONE's, and the reply
says so (it was UTC's, unsaid). SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine
from testkit.chatkit import user_input

from app.asgi import create_app
from app.http.auth import mint_dev_token
from tests.conftest import make_settings
from tests.support.chatkit_client import ChatKitClient


async def test_due_today_without_a_time_zone_header_lists_the_default_zones_day_and_says_so(
    tmp_path: Path, database_url: str, engine: AsyncEngine
) -> None:
    # A zone whose date is not UTC's now: UTC+14 from 10:00 UTC, UTC-12 before noon UTC.
    zone = "Pacific/Kiritimati" if dt.datetime.now(dt.UTC).hour >= 10 else "Etc/GMT+12"
    settings = make_settings(tmp_path, DATABASE_URL=database_url, DEFAULT_TIME_ZONE=zone)
    day = dt.datetime.now(ZoneInfo(zone)).date()
    async with AsyncTestClient(create_app(settings)) as http:
        token = mint_dev_token(settings, "alice")
        rest = {"Authorization": f"Bearer {token}"}
        for title, due in (("Pay rent", day), ("Pay the UTC bill", dt.datetime.now(dt.UTC).date())):
            created = await http.post("/api/tasks", json={"title": title, "due_date": due.isoformat()}, headers=rest)
            assert created.status_code == 201, created.text
        alice = ChatKitClient(http, token, client_tools="get_time_zone")
        message = user_input("pay")
        message["inference_options"] = {"tool_choice": {"id": "today"}}
        result = await alice.request("threads.create", {"input": message})
        assert result.status == 200 and not result.of_type("error"), result.of_type("error")
        text = result.assistant_text()
        assert "Pay rent" in text and "Pay the UTC bill" not in text, text
        assert zone in text  # the reply says whose "today" it is
