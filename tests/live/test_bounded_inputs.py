"""Issue 27, items 2, 5 and 9 (part): inputs on paths that skip the REST contracts are bounded before
any work, and small defects that were 500s (or silence) are clear answers.

One real server process per database (granian, over real HTTP, SQLite and PostgreSQL; from the run's
pool of shared servers), the offline model, a CORS allowlist (for the browser MCP client's preflight);
each test uses its own users.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from testkit.chatkit import dev_token

from app.core.errors import DomainError
from app.services.tasks import MAX_TAG_LENGTH, MAX_TAGS, normalize_tags
from tests.support.chatkit_client import ChatKitClient, StreamResult
from tests.support.servers import LiveServer, ServerPool, unique_user
from tests.support.widgets import find, replaced, widgets

ORIGIN = "http://page.example.test"
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest, live_servers: ServerPool) -> LiveServer:
    if request.param == "postgres":
        request.getfixturevalue("postgres_url")  # skips (or fails under CI) without PostgreSQL
    return live_servers.get({"CORS_ORIGINS": ORIGIN, "RATE_LIMIT_CHAT_PER_MINUTE": "0"}, database=request.param)


def user() -> str:
    return unique_user("u")


@pytest.fixture
async def http(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=120) as client:
        yield client


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {dev_token(name)}"}


def mcp_call(name: str, arguments: dict[str, Any], request_id: Any = 1) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }


def fields_of(body: dict[str, Any]) -> list[str]:
    return [error["field"] for error in body.get("errors") or []]


# ---- item 2: tag lists ------------------------------------------------------------------------------


async def test_sixty_thousand_tags_are_refused_before_any_work_over_mcp_and_rest(http: httpx.AsyncClient) -> None:
    name = user()
    tags = [f"tag{n}" for n in range(60_000)]  # ~590 KB: one worker spent 22 s on it
    called = await http.post(
        "/mcp", json=mcp_call("add_task", {"title": "x", "tags": tags}), headers={**MCP_HEADERS, **bearer(name)}
    )
    assert called.status_code == 200, called.text
    result = called.json()["result"]
    assert result["isError"] is True
    text = result["content"][0]["text"]
    assert "tags" in text and f"at most {MAX_TAGS}" in text, text
    assert len(text) < 2000, "the refusal does not echo the list back"
    assert (await http.get("/health")).status_code == 200

    # One overlong tag is refused by the tool's schema too, naming the field.
    long_tag = await http.post(
        "/mcp",
        json=mcp_call("add_task", {"title": "x", "tags": ["x" * 100_000]}),
        headers={**MCP_HEADERS, **bearer(name)},
    )
    long_result = long_tag.json()["result"]
    assert long_result["isError"] is True and "tags" in long_result["content"][0]["text"]

    # The schemas MCP clients (and models) read carry the bounds.
    listed = await http.post(
        "/mcp", json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers={**MCP_HEADERS, **bearer(name)}
    )
    schemas = {tool["name"]: tool["inputSchema"] for tool in listed.json()["result"]["tools"]}
    for tool in ("add_task", "update_task"):
        tags_schema = schemas[tool]["properties"]["tags"]
        array = next(option for option in tags_schema.get("anyOf", [tags_schema]) if option.get("type") == "array")
        assert array["maxItems"] == MAX_TAGS, (tool, tags_schema)
        assert array["items"]["maxLength"] == MAX_TAG_LENGTH, (tool, tags_schema)

    # REST: a 400 naming tags, on create and on update; nothing was created by any of it.
    created = await http.post("/api/tasks", json={"title": "x", "tags": tags}, headers=bearer(name))
    assert created.status_code == 400 and "tags" in fields_of(created.json()), created.text
    task = (await http.post("/api/tasks", json={"title": "ok"}, headers=bearer(name))).json()
    patched = await http.patch(f"/api/tasks/{task['id']}", json={"tags": tags}, headers=bearer(name))
    assert patched.status_code == 400 and "tags" in fields_of(patched.json()), patched.text
    listing = (await http.get("/api/tasks", params={"status": "all"}, headers=bearer(name))).json()
    assert [(t["title"], t["tags"]) for t in listing["items"]] == [("ok", [])]


class _Untouchable(list[str]):
    """A tag list that fails the test if anything reads its items."""

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("the tags were read before their count was checked")

    def __getitem__(self, index: Any) -> Any:
        raise AssertionError("the tags were read before their count was checked")


def test_the_task_service_counts_tags_before_reading_them() -> None:
    too_many = _Untouchable(["a"] * (MAX_TAGS + 1))
    with pytest.raises(DomainError) as refused:
        normalize_tags(too_many)
    assert refused.value.field == "tags" and f"at most {MAX_TAGS}" in refused.value.detail
    with pytest.raises(DomainError) as overlong:
        normalize_tags(["ok", "x" * 10_000])
    assert overlong.value.field == "tags"
    assert normalize_tags([" Work", "work ", "Home"]) == ["work", "home"]


async def test_the_agents_sdk_tools_declare_the_tag_bounds_and_refuse_past_them_by_name() -> None:
    from agents.tool_context import ToolContext

    from app.agents.tools import TASK_TOOLS

    tools = {tool.name: tool for tool in TASK_TOOLS}
    for name in ("add_task", "update_task"):
        tags_schema = tools[name].params_json_schema["properties"]["tags"]
        array = next(option for option in tags_schema.get("anyOf", [tags_schema]) if option.get("type") == "array")
        assert array["maxItems"] == MAX_TAGS, tags_schema
    add_task = tools["add_task"]
    for tags in ([f"t{n}" for n in range(60_000)], ["x" * 100_000]):
        arguments = json.dumps({"title": "x", "description": None, "priority": None, "due_date": None, "tags": tags})
        # No run context: arguments past the schema never reach the tool (nor the database).
        context = ToolContext(context=None, tool_name="add_task", tool_call_id="call_1", tool_arguments=arguments)
        result = json.loads(await add_task.on_invoke_tool(context, arguments))
        assert result["ok"] is False and result["field"] == "tags", result
        assert "at most" in result["error"] and len(result["error"]) < 200, result


# ---- item 5: client-tool answers --------------------------------------------------------------------


class ClientToolPage(ChatKitClient):
    """A page without a Time-Zone header that says it answers the get_time_zone client tool."""

    @property
    def headers(self) -> dict[str, str]:
        return {**super().headers, "ChatKit-Client-Tools": "get_time_zone"}


async def pending_time_zone_question(page: ChatKitClient) -> str:
    asked = await page.create_thread("add a task to buy milk tomorrow")
    assert asked.status == 200 and not asked.of_type("error"), asked.raw_frames
    last = [e.item for e in asked.events if e.type == "thread.item.done"][-1]
    assert (last.type, last.name, last.status) == ("client_tool_call", "get_time_zone", "pending")
    return asked.thread_id


async def test_a_client_tool_answer_is_only_its_declared_shape_and_small(http: httpx.AsyncClient) -> None:
    page = ClientToolPage(http, dev_token(user()))
    thread = await pending_time_zone_question(page)

    async def answer(result: Any) -> StreamResult:
        return await page.request("threads.add_client_tool_output", {"thread_id": thread, "result": result})

    extra = await answer({"time_zone": "UTC", "foo": "bar"})
    assert extra.status == 400, extra.body
    assert "params.result.foo" in fields_of(extra.body), extra.body
    assert "params.result.foo" in extra.body["detail"]

    huge = await answer({"time_zone": "UTC", "notes": "x" * 870_000})  # was an 878 KB model request
    assert huge.status in (400, 413), huge.body
    assert "params.result" in json.dumps(huge.body)

    # Nothing of the refused answers was stored: the call is still pending, and a proper answer works.
    items = (await page.items(thread, order="desc", limit=1)).body["data"]
    assert (items[0]["type"], items[0]["status"]) == ("client_tool_call", "pending")
    answered = await answer({"time_zone": "UTC"})
    assert answered.status == 200 and not answered.of_type("error"), answered.raw_frames
    stored = [
        i for i in (await page.items(thread, order="asc", limit=20)).body["data"] if i["type"] == "client_tool_call"
    ]
    assert [i["output"] for i in stored] == [{"time_zone": "UTC"}]


# ---- item 9: the small ones -------------------------------------------------------------------------


async def test_retry_after_an_item_that_is_not_a_user_message_is_a_400_naming_item_id(
    http: httpx.AsyncClient,
) -> None:
    chat = ChatKitClient(http, dev_token(user()), time_zone="UTC")
    await http.post("/api/tasks", json={"title": "Buy milk"}, headers={"Authorization": f"Bearer {chat.token}"})
    shown = await chat.create_thread("show my tasks")
    assert shown.status == 200 and not shown.of_type("error"), shown.raw_frames
    before = [i["id"] for i in (await chat.items(shown.thread_id, order="asc", limit=20)).body["data"]]
    not_messages = [e.item.id for e in shown.events if e.type == "thread.item.done" and e.item.type != "user_message"]
    assert not_messages, [e.type for e in shown.events]
    for item_id in not_messages:
        retried = await chat.request("threads.retry_after_item", {"thread_id": shown.thread_id, "item_id": item_id})
        assert retried.status == 400, (retried.status, retried.body)
        assert "params.item_id" in fields_of(retried.body), retried.body
    after = [i["id"] for i in (await chat.items(shown.thread_id, order="asc", limit=20)).body["data"]]
    assert after == before


async def test_a_due_date_past_year_9999_in_the_edit_form_is_refused_not_a_500(http: httpx.AsyncClient) -> None:
    # +14:00: the last instant of 9999 somewhere west is already year 10000 here.
    chat = ChatKitClient(http, dev_token(user()), time_zone="Pacific/Kiritimati")
    auth = {"Authorization": f"Bearer {chat.token}"}
    milk = (await http.post("/api/tasks", json={"title": "Buy milk", "due_date": "2026-12-24"}, headers=auth)).json()
    shown = await chat.create_thread("show my tasks")
    (widget,) = widgets(shown)

    async def act(kind: str, item_id: str | None, **payload: Any) -> StreamResult:
        return await chat.request(
            "threads.custom_action",
            {"thread_id": shown.thread_id, "item_id": item_id, "action": {"type": kind, "payload": payload}},
        )

    form = replaced(await act("task.edit", widget.id, id=milk["id"]))
    (submit,) = find(form, "Form")
    late = "9999-12-31T20:00:00-10:00"
    saved = await act(
        "task.edit.save", widget.id, **submit["onSubmitAction"]["payload"], title="Buy milk", due_date=late
    )
    assert saved.status == 200 and not saved.of_type("error"), saved.raw_frames
    shown_form = json.dumps(replaced(saved))
    assert "Not saved: " in shown_form and "due_date" in shown_form, shown_form

    # Without a widget to draw the error in, the same refusal is a 400.
    sync = await chat.request(
        "threads.sync_custom_action",
        {
            "thread_id": shown.thread_id,
            "item_id": None,
            "action": {"type": "task.edit.save", "payload": {"id": milk["id"], "title": "Buy milk", "due_date": late}},
        },
    )
    assert sync.status == 400, (sync.status, sync.body)
    assert "due_date" in sync.body["detail"]
    assert (await http.get(f"/api/tasks/{milk['id']}", headers=auth)).json()["due_date"] == "2026-12-24"


@pytest.mark.parametrize("days", ["99999999999", "9" * 5000])
async def test_a_due_date_in_a_huge_number_of_days_gets_a_plain_reply(http: httpx.AsyncClient, days: str) -> None:
    chat = ChatKitClient(http, dev_token(user()), time_zone="UTC")
    said = await chat.create_thread(f"add a task to pay rent in {days} days")
    assert said.status == 200 and not said.of_type("error"), said.raw_frames
    assert said.assistant_text().strip()
    listing = await http.get("/api/tasks", headers={"Authorization": f"Bearer {chat.token}"})
    assert listing.json()["total"] == 0


async def test_browser_mcp_clients_pass_the_cors_preflight_and_read_the_session_header(
    http: httpx.AsyncClient,
) -> None:
    preflight = await http.options(
        "/mcp",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, mcp-session-id, mcp-protocol-version",
        },
    )
    assert preflight.status_code in (200, 204), (preflight.status_code, preflight.text)
    allowed = {h.strip().lower() for h in preflight.headers["access-control-allow-headers"].split(",")}
    assert {"mcp-session-id", "mcp-protocol-version", "authorization", "content-type"} <= allowed
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    answered = await http.post("/mcp", json=initialize, headers={**MCP_HEADERS, **bearer(user()), "Origin": ORIGIN})
    assert answered.status_code == 200, answered.text
    exposed = {h.strip().lower() for h in answered.headers["access-control-expose-headers"].split(",")}
    assert "mcp-session-id" in exposed


@pytest.mark.parametrize("request_id", [{}, {"a": 1}, [], True, None, 1.5], ids=repr)
async def test_a_jsonrpc_request_whose_id_is_not_a_string_or_integer_gets_an_invalid_request_error(
    http: httpx.AsyncClient, request_id: Any
) -> None:
    sent = {"jsonrpc": "2.0", "id": request_id, "method": "tools/list"}
    answered = await http.post("/mcp", json=sent, headers={**MCP_HEADERS, **bearer(user())})
    assert answered.status_code == 400, (answered.status_code, answered.text)
    assert answered.headers["content-type"].startswith("application/json")
    body = answered.json()
    assert body["jsonrpc"] == "2.0" and body["id"] is None
    assert body["error"]["code"] == -32600
    assert "id" in body["error"]["message"]
    # A proper id still works on the same server.
    ok = await http.post("/mcp", json={**sent, "id": 7}, headers={**MCP_HEADERS, **bearer(user())})
    assert ok.status_code == 200 and ok.json()["id"] == 7
