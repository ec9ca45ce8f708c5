"""The user's time zone decides "today", "tomorrow" and "overdue" (issue 18, item 4; issue 26, item 1).

Ways the server learns it: the `Time-Zone` request header (on /chatkit, REST and MCP), or, when a
ChatKit request has none and says it answers the `get_time_zone` client tool
(`ChatKit-Client-Tools: get_time_zone`), that tool: the turn ends with a pending client tool call,
the page answers through `threads.add_client_tool_output`, and the stored turn resumes with the
zone known (and the thread remembers it). A client that says neither (ChatKit's web component with
default options) gets dates in `DEFAULT_TIME_ZONE`, never a client tool call, and replies that
used such a date say which zone it was. A name that is not an IANA zone is a 400 naming the header
(or the result field) before anything runs, or a start-up failure naming `DEFAULT_TIME_ZONE`.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from litestar.testing import AsyncTestClient
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from app.asgi import create_app
from app.core.clock import parse_time_zone, zone_today
from app.core.errors import DomainError
from app.http.auth import mint_dev_token
from app.http.client_tools import parse_client_tools
from app.settings import Settings, SettingsError
from tests.conftest import create_schema, make_settings
from tests.support.auth import token
from tests.support.chatkit_client import ChatKitClient, StreamResult
from tests.support.fake_model_server import FakeModelServer, turn_requests
from tests.support.mcp import call
from tests.support.servers import ServerPool, unique_user
from tests.support.time_zones import zone_on_another_date

KARACHI = "Asia/Karachi"  # UTC+5, no summer time
# 02:00 on 23 November in Karachi is still 22 November in UTC.
KARACHI_2AM = dt.datetime(2026, 11, 22, 21, 0, tzinfo=dt.UTC)
BAD_ZONES = ["Mars/Olympus", "localtime", "../../etc/passwd", "+05:00", "asia/karachi", "", "A" * 300]


def done_items(result: StreamResult) -> list[Any]:
    return [e.item for e in result.events if e.type == "thread.item.done"]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest) -> str:
    """The shared server's database kind: SQLite, then PostgreSQL."""
    if request.param == "postgres":
        request.getfixturevalue("postgres_url")  # skips (or fails under CI) without PostgreSQL
    return str(request.param)


# ---- the zone names accepted ----------------------------------------------------------------------


def test_only_iana_zone_names_are_accepted() -> None:
    assert parse_time_zone(KARACHI) == KARACHI
    assert parse_time_zone("UTC") == "UTC"
    assert parse_time_zone(" Europe/Berlin ") == "Europe/Berlin"
    for bad in BAD_ZONES:
        with pytest.raises(DomainError) as refused:
            parse_time_zone(bad)
        assert refused.value.errors[0]["field"] == "Time-Zone"
        assert "IANA time zone" in refused.value.detail


def test_today_is_the_date_where_the_user_is() -> None:
    assert zone_today(KARACHI, lambda: KARACHI_2AM) == dt.date(2026, 11, 23)
    assert zone_today(None, lambda: KARACHI_2AM) == dt.date(2026, 11, 22)
    assert zone_today("America/Los_Angeles", lambda: KARACHI_2AM) == dt.date(2026, 11, 22)


# ---- the Urdu user at 02:00 in UTC+5 --------------------------------------------------------------


async def test_an_urdu_user_at_two_in_the_morning_gets_her_own_date_not_yesterdays(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    await create_schema(settings.database_url)
    app = create_app(settings, now=lambda: KARACHI_2AM)
    async with AsyncTestClient(app) as http:
        token = mint_dev_token(settings, "amna")
        in_karachi = ChatKitClient(http, token, time_zone=KARACHI)
        today = await in_karachi.create_thread("آج دودھ خریدنے کا کام شامل کریں")  # add "buy milk" today
        tomorrow = await in_karachi.send(today.thread_id, "کل اہم: رپورٹ جمع کرنے کا کام شامل کریں")  # report, tomorrow
        assert not today.of_type("error") and not tomorrow.of_type("error")
        assert "client_tool_call" not in [i.type for i in done_items(today)]  # the header said where she is

        # Without the header (and nothing remembered on a new thread), UTC's date: the bug this fixes.
        in_utc = ChatKitClient(http, token, time_zone="UTC")
        utc = await in_utc.create_thread("آج چائے خریدنے کا کام شامل کریں")
        assert not utc.of_type("error")

        tasks = (await http.get("/api/tasks", headers={"Authorization": f"Bearer {token}"})).json()["items"]
        due = {task["number"]: task["due_date"] for task in tasks}
        assert due == {1: "2026-11-23", 2: "2026-11-24", 3: "2026-11-22"}, tasks


# ---- the header over real HTTP on a real server: /chatkit, REST, MCP --------------------------------


async def test_the_time_zone_header_decides_today_on_chatkit_rest_and_mcp(live_servers: ServerPool) -> None:
    server = live_servers.get()
    user = unique_user("alice")
    zone, local_today = zone_on_another_date()
    utc_today = dt.datetime.now(dt.UTC).date()
    alice = {"Authorization": f"Bearer {token(user)}"}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        chat = ChatKitClient(http, token(user), time_zone=zone)
        added = await chat.create_thread("add a task to pay rent today")
        assert not added.of_type("error") and "client_tool_call" not in [i.type for i in done_items(added)]
        tasks = (await http.get("/api/tasks", headers=alice)).json()["items"]
        assert [(t["title"], t["due_date"]) for t in tasks] == [("Pay rent", local_today.isoformat())]

        # REST: the summary's `today`, "due today" and "overdue" follow the header.
        local = (await http.get("/api/tasks/summary", headers={**alice, "Time-Zone": zone})).json()
        plain = (await http.get("/api/tasks/summary", headers=alice)).json()
        assert (local["today"], local["due_today"]) == (local_today.isoformat(), 1)
        assert (plain["today"], plain["due_today"]) == (utc_today.isoformat(), 0)
        overdue = await http.get("/api/tasks", params={"overdue": "true"}, headers={**alice, "Time-Zone": zone})
        assert overdue.json()["total"] == 0
        if local_today < utc_today:  # in UTC-12 the task is due "yesterday" by UTC's date
            assert (await http.get("/api/tasks", params={"overdue": "true"}, headers=alice)).json()["total"] == 1

    # MCP: the same header on the MCP request.
    headers = {**alice, "Time-Zone": zone}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as transport,
        Client(streamable_http_client(f"{server.base_url}/mcp", http_client=transport)) as client,
    ):
        error, result = await call(client, "task_summary", {})
        assert not error and result["summary"]["today"] == local_today.isoformat()
        error, result = await call(client, "add_task", {"title": "Call mum", "due_date": "tomorrow"})
        assert not error and result["task"]["due_date"] == (local_today + dt.timedelta(days=1)).isoformat()


@pytest.mark.parametrize("bad", ["Mars/Olympus", "localtime", "../../etc/passwd"])
async def test_a_bad_time_zone_is_a_400_naming_the_header_everywhere(live_servers: ServerPool, bad: str) -> None:
    server = live_servers.get()
    user = unique_user("alice")
    headers = {"Authorization": f"Bearer {token(user)}", "Time-Zone": bad}
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    chatkit_body = {"type": "threads.list", "params": {"limit": 5}}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        answers = [
            await http.post("/chatkit", json=chatkit_body, headers=headers),
            await http.get("/api/tasks", headers=headers),
            await http.post("/api/tasks", json={"title": "x"}, headers=headers),
            await http.post(
                "/mcp", json=initialize, headers={**headers, "Accept": "application/json, text/event-stream"}
            ),
        ]
        for response in answers:
            assert response.status_code == 400, (response.request.url, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
            problem = response.json()
            assert "Time-Zone" in problem["detail"] and "IANA" in problem["detail"]
            assert problem["errors"][0]["field"] == "Time-Zone"
            assert problem["errors"][0]["source"] == "header"
        # Nothing was created by the refused POST.
        ok = await http.get("/api/tasks", headers={"Authorization": headers["Authorization"]})
        assert ok.json()["total"] == 0


# ---- no Time-Zone header, no client tool: DEFAULT_TIME_ZONE, said in the reply ----------------------

QUICK_START_TEXT = "add a task to buy milk tomorrow"  # docs/getting-started.md's quick start


def test_default_time_zone_is_utc_and_only_an_iana_name_is_accepted() -> None:
    assert Settings.from_env({}).default_time_zone == "UTC"
    assert Settings.from_env({"DEFAULT_TIME_ZONE": "Asia/Karachi"}).default_time_zone == KARACHI
    for bad in ("Mars/Olympus", "localtime", "+05:00"):
        with pytest.raises(SettingsError) as refused:
            Settings.from_env({"DEFAULT_TIME_ZONE": bad})
        assert str(refused.value).startswith("DEFAULT_TIME_ZONE=") and "IANA" in str(refused.value)


def test_the_client_tools_header_keeps_only_tools_taskpilot_has() -> None:
    assert parse_client_tools(None) == frozenset()
    assert parse_client_tools("get_time_zone") == {"get_time_zone"}
    assert parse_client_tools(" get_location , get_time_zone,,") == {"get_time_zone"}
    assert parse_client_tools("get_location, GET_TIME_ZONE") == frozenset()


@pytest.mark.parametrize("client_tools", [None, "get_location, open_map"], ids=["no-header", "unknown-tools"])
async def test_a_stock_client_gets_dates_in_the_default_zone_and_is_told_which(
    live_servers: ServerPool, client_tools: str | None
) -> None:
    zone, local_today = zone_on_another_date()
    server = live_servers.get({"DEFAULT_TIME_ZONE": zone})
    user = unique_user("alice")
    tomorrow = (local_today + dt.timedelta(days=1)).isoformat()
    alice = {"Authorization": f"Bearer {token(user)}"}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        stock = ChatKitClient(http, token(user), client_tools=client_tools)  # no Time-Zone header
        added = await stock.create_thread(QUICK_START_TEXT)
        assert added.status == 200 and not added.of_type("error"), added.raw_frames
        assert "client_tool_call" not in [i.type for i in done_items(added)]
        tasks = (await http.get("/api/tasks", headers=alice)).json()["items"]
        assert [(t["title"], t["due_date"]) for t in tasks] == [("Buy milk", tomorrow)]
        reply = added.assistant_text()
        assert tomorrow in reply and zone in reply and "default time zone" in reply, reply

        # A request whose answer does not depend on the date says nothing about zones.
        plain = await stock.send(added.thread_id, "add a task to water the plants")
        assert "Water the plants" in plain.assistant_text() and zone not in plain.assistant_text()

        # REST without the header: the same default zone's today.
        summary = (await http.get("/api/tasks/summary", headers=alice)).json()
        assert summary["today"] == local_today.isoformat()


async def test_a_real_model_is_told_the_default_zone_and_offered_the_client_tool_only_when_answered(
    live_server_factory,
    fake_model,
) -> None:
    from app.agents.offline.planner import Reply, ToolCall

    add = {"title": "Buy milk", "description": None, "priority": None, "due_date": "tomorrow", "tags": None}
    fake: FakeModelServer = fake_model(
        [ToolCall("add_task", add), Reply("Added."), ToolCall("get_time_zone", {}), Reply("Nothing is due.")]
    )
    server = live_server_factory(
        {
            "MODEL_PROVIDER": "openai",
            "OPENAI_BASE_URL": fake.base_url,
            "OPENAI_API_KEY": fake.api_key,
            "DEFAULT_TIME_ZONE": KARACHI,
        }
    )
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        stock = ChatKitClient(http, token("ida"))
        added = await stock.create_thread(QUICK_START_TEXT)
        assert added.status == 200 and added.assistant_text() == "Added.", added.raw_frames
        first, second = turn_requests(fake)
        assert "get_time_zone" not in [tool.get("name") for tool in first["tools"]]
        assert f"in {KARACHI}, the server's default time zone" in json.dumps(first["instructions"])
        # The tool result the model reads says which zone "tomorrow" was in.
        (output,) = [item["output"] for item in second["input"] if item.get("type") == "function_call_output"]
        result = json.loads(output)
        assert result["ok"] and KARACHI in result["time_zone"] and "default time zone" in result["time_zone"]

        # A front end that says it answers get_time_zone is offered it (and asked).
        page = ChatKitClient(http, token("ida"), client_tools="get_time_zone")
        asked = await page.create_thread("what is due today?")
        assert done_items(asked)[-1].type == "client_tool_call", asked.raw_frames
        third = turn_requests(fake)[2]
        assert "get_time_zone" in [tool.get("name") for tool in third["tools"]]
        assert "time zone is unknown: call get_time_zone" in json.dumps(third["instructions"])


# ---- no Time-Zone header, and a page that answers get_time_zone: the client tool ---------------------


async def test_without_the_header_the_assistant_asks_the_page_and_resumes_with_its_answer(
    live_servers: ServerPool, database: str
) -> None:
    server = live_servers.get(database=database)
    user = unique_user("alice")
    zone, local_today = zone_on_another_date()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        # A front end that sends no Time-Zone header but answers the client tool (TaskPilot's page).
        page = ChatKitClient(http, token(user), client_tools="get_time_zone")
        asked = await page.create_thread("add a task to buy milk tomorrow")
        assert asked.status == 200 and not asked.of_type("error")
        last = done_items(asked)[-1]
        assert (last.type, last.name, last.status) == ("client_tool_call", "get_time_zone", "pending")
        assert last.arguments == {}
        assert not asked.assistant_text()  # the run stopped at the client tool
        listing = await http.get("/api/tasks", headers={"Authorization": f"Bearer {token(user)}"})
        assert listing.json()["total"] == 0  # nothing decided before the zone is known

        # A wrong answer is refused before any stream opens, naming the field; the call stays pending.
        for result in ({"time_zone": "Mars/Olympus"}, {"zone": zone}, "Asia/Karachi"):
            refused = await page.request(
                "threads.add_client_tool_output", {"thread_id": asked.thread_id, "result": result}
            )
            assert refused.status == 400, refused.body
            assert refused.body["errors"][0]["field"] == "params.result.time_zone"

        answered = await page.request(
            "threads.add_client_tool_output", {"thread_id": asked.thread_id, "result": {"time_zone": zone}}
        )
        assert answered.status == 200 and not answered.of_type("error"), answered.of_type("error")
        tomorrow = (local_today + dt.timedelta(days=1)).isoformat()
        assert "Buy milk" in answered.assistant_text() and tomorrow in answered.assistant_text()
        tasks = (await http.get("/api/tasks", headers={"Authorization": f"Bearer {token(user)}"})).json()
        assert [(t["title"], t["due_date"]) for t in tasks["items"]] == [("Buy milk", tomorrow)]

        items = (await page.items(asked.thread_id, order="asc", limit=20)).body["data"]
        tool_call = next(i for i in items if i["type"] == "client_tool_call")
        assert tool_call["status"] == "completed" and tool_call["output"] == {"time_zone": zone}

        # The thread remembers the zone: the next relative date needs no second question.
        again = await page.send(asked.thread_id, "what is due tomorrow?")
        assert not again.of_type("error")
        assert "client_tool_call" not in [i.type for i in done_items(again)]
        assert "Buy milk" in again.assistant_text()

        # No pending call to answer any more: 409, as before.
        late = await page.request(
            "threads.add_client_tool_output", {"thread_id": asked.thread_id, "result": {"time_zone": zone}}
        )
        assert late.status == 409


async def test_requests_that_do_not_need_the_date_are_answered_without_asking(live_servers: ServerPool) -> None:
    server = live_servers.get()
    user = unique_user("alice")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        page = ChatKitClient(http, token(user), client_tools="get_time_zone")
        added = await page.create_thread("add a task to water the plants")
        assert "client_tool_call" not in [i.type for i in done_items(added)]
        assert "Water the plants" in added.assistant_text()
