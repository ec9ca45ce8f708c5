"""Issue 15, part A: every bad input is a clear 4xx, never a 500, on SQLite and PostgreSQL.

One real server process per database (granian, over real HTTP; from the run's pool of shared
servers), with small quotas so the quota tests are quick; each test uses its own users.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from testkit.chatkit import dev_token, event_type, json_headers, sse_frames, threads_create, user_input

from app.settings import DEFAULT_DEV_SECRET
from tests.support.mcp import call, mcp_client
from tests.support.servers import LiveServer, ServerPool, unique_user

QUOTAS = {
    "QUOTA_THREADS_PER_USER": "3",
    "QUOTA_ITEMS_PER_THREAD": "4",
    "QUOTA_TASKS_PER_USER": "3",
    "QUOTA_ATTACHMENT_BYTES_PER_USER": "1000",
    "MAX_THREAD_TITLE_CHARS": "50",
    "MAX_MESSAGE_CHARS": "500",
    "RATE_LIMIT_CHAT_PER_MINUTE": "0",
    "RATE_LIMIT_UPLOADS_PER_MINUTE": "0",
}
NUL = "\u0000"
SURROGATE = "\ud800"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest, live_servers: ServerPool) -> LiveServer:
    if request.param == "postgres":
        request.getfixturevalue("postgres_url")  # skips (or fails under CI) without PostgreSQL
    return live_servers.get(QUOTAS, database=request.param)


def user() -> str:
    return unique_user("u")


def client(server: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, timeout=30)


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {dev_token(name)}"}


def assert_problem(response: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    problem: dict[str, Any] = response.json()
    if field is not None:
        fields = [error["field"] for error in problem.get("errors") or []]
        assert field in fields or field in problem["detail"], problem
    return problem


def chatkit(http: httpx.Client, name: str, body: dict[str, Any] | bytes) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return http.post("/chatkit", content=content, headers=json_headers(dev_token(name)))


def new_thread(http: httpx.Client, name: str, text: str = "help") -> str:
    response = chatkit(http, name, threads_create(text))
    assert response.status_code == 200, response.text
    first = json.loads(sse_frames(response.content)[0].removeprefix(b"data: "))
    assert first["type"] == "thread.created"
    return str(first["thread"]["id"])


def thread_count(http: httpx.Client, name: str) -> int:
    response = chatkit(http, name, {"type": "threads.list", "params": {"limit": 100}})
    assert response.status_code == 200, response.text
    return len(response.json()["data"])


# ---- 1. NUL characters ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "surrogate"])
def test_nul_in_rest_strings_is_a_400_naming_the_field(server: LiveServer, bad: str) -> None:
    name = user()
    with client(server) as http:
        # A lone surrogate cannot be sent as JSON text at all (decoders refuse it): 400 either way.
        body = json.dumps({"title": f"buy{bad}milk", "tags": ["ok"]}).encode()
        response = http.post("/api/tasks", content=body, headers={**bearer(name), "Content-Type": "application/json"})
        assert_problem(response, 400, "title" if bad == NUL else None)
        body = json.dumps({"title": "fine", "tags": [f"a{bad}"]}).encode()
        response = http.post("/api/tasks", content=body, headers={**bearer(name), "Content-Type": "application/json"})
        assert_problem(response, 400, "tags" if bad == NUL else None)
        task = http.post("/api/tasks", json={"title": "ok"}, headers=bearer(name)).json()
        body = json.dumps({"description": f"x{bad}"}).encode()
        response = http.patch(
            f"/api/tasks/{task['id']}", content=body, headers={**bearer(name), "Content-Type": "application/json"}
        )
        assert_problem(response, 400, "description" if bad == NUL else None)
        # Query strings and paths carry both: %00, and %ED%A0%80 (a surrogate's UTF-8 form, which
        # the server reads as U+FFFD: harmless, so only "no 500" is asked of it).
        escaped = "%00" if bad == NUL else "%ED%A0%80"
        for query, field in ((f"q=a{escaped}", "q"), (f"tag=a{escaped}", "tag"), (f"cursor=a{escaped}", None)):
            response = http.get(f"/api/tasks?{query}", headers=bearer(name))
            if bad == SURROGATE:
                assert response.status_code < 500, (query, response.text)
                continue
            assert_problem(response, 400, field)
        response = http.get(f"/api/chatkit/attachments/atc_{escaped}", headers=bearer(name))
        assert response.status_code in {400, 404}, response.text
        assert response.status_code == 400 or bad == SURROGATE
        body = json.dumps({"session_id": f"s{bad}"}).encode()
        response = http.post(
            "/api/chatkit/sessions/refresh", content=body, headers={**bearer(name), "Content-Type": "application/json"}
        )
        assert response.status_code == 400, response.text


def test_nul_in_a_chatkit_request_is_a_400_before_the_stream_opens_and_leaves_no_thread(server: LiveServer) -> None:
    name = user()
    with client(server) as http:
        response = chatkit(http, name, threads_create(f"add a task{NUL}"))
        assert_problem(response, 400, "params.input.content.0.text")
        assert thread_count(http, name) == 0, "a refused threads.create must not leave an empty thread"
        thread_id = new_thread(http, name)
        requests = [
            (
                {"type": "threads.add_user_message", "params": {"thread_id": thread_id, "input": user_input(NUL)}},
                "params.input.content.0.text",
            ),
            ({"type": "threads.get_by_id", "params": {"thread_id": f"{thread_id}{NUL}"}}, "params.thread_id"),
            ({"type": "items.list", "params": {"thread_id": thread_id, "after": f"msg{NUL}"}}, "params.after"),
            ({"type": "threads.list", "params": {"after": NUL}}, "params.after"),
            ({"type": "threads.update", "params": {"thread_id": thread_id, "title": f"t{NUL}"}}, "params.title"),
            ({"type": "threads.create", "params": {"input": user_input("hi")}, "metadata": {"k": NUL}}, "metadata.k"),
            (
                {"type": "attachments.create", "params": {"name": f"a{NUL}.txt", "size": 3, "mime_type": "text/plain"}},
                "params.name",
            ),
        ]
        for body, field in requests:
            assert_problem(chatkit(http, name, body), 400, field)
        assert thread_count(http, name) == 1


def test_nul_in_a_token_subject_is_a_401_not_a_500(server: LiveServer) -> None:
    now = int(time.time())
    claims = {"sub": f"alice{NUL}", "iss": "taskpilot-dev", "iat": now, "exp": now + 600}
    token = jwt.encode(claims, DEFAULT_DEV_SECRET, algorithm="HS256")
    with client(server) as http:
        for method, path in (("GET", "/api/tasks"), ("POST", "/chatkit")):
            response = http.request(
                method, path, headers={"Authorization": f"Bearer {token}"}, content=b'{"type":"threads.list"}'
            )
            problem = assert_problem(response, 401)
            assert "sub" in problem["detail"]


async def test_nul_in_mcp_arguments_is_a_tool_error_naming_the_field(server: LiveServer) -> None:
    name = user()
    async with mcp_client(server.base_url, name) as mcp:
        failed, result = await call(mcp, "add_task", {"title": f"buy{NUL}milk"})
        assert failed and result["field"] == "title", result
        failed, result = await call(mcp, "list_tasks", {"search": f"x{NUL}"})
        assert failed and result["field"] == "search", result
        failed, result = await call(mcp, "add_task", {"title": "ok", "tags": ["a", f"b{NUL}"]})
        assert failed and result["field"] == "tags.1", result
        failed, result = await call(mcp, "get_task", {"task": f"1{NUL}"})
        assert failed and result["field"] == "task", result
        failed, _ = await call(mcp, "add_task", {"title": "still works"})
        assert not failed


# ---- 4. invalid UTF-8 ----------------------------------------------------------------------------------


def test_invalid_utf8_body_is_a_400_saying_send_utf8(server: LiveServer) -> None:
    name = user()
    headers = {**bearer(name), "Content-Type": "application/json"}
    logged_before = len(server.log())  # a shared server: only what these requests logged
    with client(server) as http:
        for method, path, body in (
            ("POST", "/api/tasks", b'{"title": "caf\xe9"}'),
            ("PATCH", f"/api/tasks/{uuid.uuid4()}", b'{"title": "\xff"}'),
            ("POST", "/chatkit", b'{"type": "threads.list", "params": {"after": "\xc3"}}'),
            ("POST", "/api/chatkit/sessions/refresh", b'{"session_id": "\xed\xa0\x80"}'),
        ):
            response = http.request(method, path, content=body, headers=headers)
            problem = assert_problem(response, 400)
            assert "UTF-8" in problem["detail"], (path, problem)
    assert "Traceback" not in server.log()[logged_before:]


# ---- 5. integer overflow ---------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [2**63 - 1, 2**63, 10**30, -(2**63) - 1])
def test_huge_chatkit_limits_are_clamped_not_a_500(server: LiveServer, limit: int) -> None:
    name = user()
    with client(server) as http:
        thread_id = new_thread(http, name)
        for body in (
            {"type": "threads.list", "params": {"limit": limit}},
            {"type": "items.list", "params": {"thread_id": thread_id, "limit": limit}},
        ):
            response = chatkit(http, name, body)
            assert response.status_code == 200, response.text
            assert response.json()["data"]


def test_rest_offset_and_limit_are_bounded_with_a_400_naming_the_field(server: LiveServer) -> None:
    with client(server) as http:
        for query, field in (
            ("offset=100000000000000000000", "offset"),
            ("offset=10000001", "offset"),
            ("offset=-1", "offset"),
            ("limit=100000000000000000000", "limit"),
            ("limit=201", "limit"),
        ):
            assert_problem(http.get(f"/api/tasks?{query}", headers=bearer(user())), 400, field)
        assert http.get("/api/tasks?offset=10000000", headers=bearer(user())).status_code == 200


# ---- 9. per-user quotas and lengths ------------------------------------------------------------------------


def test_thread_quota_is_a_429_naming_it_before_the_stream_opens(server: LiveServer) -> None:
    name = user()
    with client(server) as http:
        for _ in range(3):
            new_thread(http, name)
        response = chatkit(http, name, threads_create("one more"))
        problem = assert_problem(response, 429, "QUOTA_THREADS_PER_USER")
        assert "3" in problem["detail"]
        assert thread_count(http, name) == 3
        assert new_thread(http, user())  # another user is not affected


def test_items_per_thread_quota_is_a_429_naming_it(server: LiveServer) -> None:
    name = user()
    with client(server) as http:
        thread_id = new_thread(http, name)
        for _ in range(5):
            body = {"type": "threads.add_user_message", "params": {"thread_id": thread_id, "input": user_input("help")}}
            response = chatkit(http, name, body)
            if response.status_code != 200:
                break
            assert "error" not in [event_type(f) for f in sse_frames(response.content)]
        assert_problem(response, 429, "QUOTA_ITEMS_PER_THREAD")
        items = chatkit(http, name, {"type": "items.list", "params": {"thread_id": thread_id, "limit": 100}})
        assert len(items.json()["data"]) < 4 + 4  # the last turn that started below the quota, no more


def test_task_quota_is_a_429_naming_it(server: LiveServer) -> None:
    name = user()
    with client(server) as http:
        for number in range(3):
            assert http.post("/api/tasks", json={"title": f"t{number}"}, headers=bearer(name)).status_code == 201
        assert_problem(http.post("/api/tasks", json={"title": "t4"}, headers=bearer(name)), 429, "QUOTA_TASKS_PER_USER")
        assert len(http.get("/api/tasks", headers=bearer(name)).json()["items"]) == 3


def test_overlong_thread_title_and_message_are_a_400_naming_the_field(server: LiveServer) -> None:
    name = user()
    with client(server) as http:
        assert_problem(chatkit(http, name, threads_create("x" * 501)), 400, "params.input.content")
        thread_id = new_thread(http, name)
        body = {"type": "threads.update", "params": {"thread_id": thread_id, "title": "t" * 51}}
        assert_problem(chatkit(http, name, body), 400, "params.title")
        body = {"type": "threads.update", "params": {"thread_id": thread_id, "title": "t" * 50}}
        assert chatkit(http, name, body).status_code == 200


def _create_attachment(http: httpx.Client, name: str, size: int) -> httpx.Response:
    body = {"type": "attachments.create", "params": {"name": "a.txt", "size": size, "mime_type": "text/plain"}}
    return chatkit(http, name, body)


def test_upload_whose_size_differs_from_the_declared_one_is_refused_naming_size(server: LiveServer) -> None:
    name = user()
    with client(server) as http:
        for declared, sent, status in ((5, 100, 413), (100, 5, 400)):
            created = _create_attachment(http, name, declared)
            assert created.status_code == 200, created.text
            url = created.json()["upload_descriptor"]["url"]
            response = http.put(url, content=b"a" * sent)
            assert_problem(response, status, "size")
            # Nothing was kept: the same attachment takes its right size afterwards.
            assert http.put(url, content=b"a" * declared).status_code == 200


def test_attachment_storage_quota_is_a_413_naming_it(server: LiveServer) -> None:
    name = user()
    with client(server) as http:
        created = _create_attachment(http, name, 600)
        assert http.put(created.json()["upload_descriptor"]["url"], content=b"a" * 600).status_code == 200
        assert_problem(_create_attachment(http, name, 600), 413, "QUOTA_ATTACHMENT_BYTES_PER_USER")
        assert _create_attachment(http, name, 400).status_code == 200


async def test_chatkit_pages_hold_at_most_the_documented_maximum(session_maker: Any) -> None:
    """`threads.list` with limit 10**9 (or past BIGINT) gets one full page and `has_more`, on
    SQLite and PostgreSQL, never every row of the table."""
    import datetime as dt

    from chatkit.types import ThreadMetadata

    from app.core.context import RequestContext
    from app.store.chatkit_store import ChatKitStore

    documented_maximum = 100  # docs/self-hosted-mode.md: pages hold at most 100 rows

    store: ChatKitStore[Any] = ChatKitStore(session_maker)
    context = RequestContext(user_id="pager")
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for number in range(documented_maximum + 5):
        thread = ThreadMetadata(id=f"thr_{number:04d}", created_at=start + dt.timedelta(seconds=number))
        await store.save_thread(thread, context)
    for limit in (10**9, 2**63, 2**70):
        page = await store.load_threads(limit, None, "asc", context)
        assert len(page.data) == documented_maximum and page.has_more, limit
        rest = await store.load_threads(limit, page.after, "asc", context)
        assert len(rest.data) == 5 and not rest.has_more
