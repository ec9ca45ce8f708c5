"""REST contract of /api/tasks: status codes, problem+json, unknown fields, paging, isolation, spec."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.asgi import create_app
from app.settings import Settings
from app.store.models import Base
from tests.conftest import auth_headers, make_settings

PROBLEM = "application/problem+json"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[AsyncTestClient[Litestar], Settings]]:
    settings = make_settings(tmp_path)
    app = create_app(settings)
    async with app.state.services.db_config.get_engine().begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    async with AsyncTestClient(app) as client:
        yield client, settings


def problem_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["detail"]
    return body


def fields_of(body: dict[str, Any]) -> set[str]:
    return {error["field"] for error in body.get("errors") or []}


async def test_every_route_needs_a_token(api) -> None:
    client, _ = api
    some_id = uuid.uuid4()
    for method, path in [
        ("GET", "/api/tasks"),
        ("POST", "/api/tasks"),
        ("GET", "/api/tasks/summary"),
        ("GET", f"/api/tasks/{some_id}"),
        ("PATCH", f"/api/tasks/{some_id}"),
        ("DELETE", f"/api/tasks/{some_id}"),
        ("POST", f"/api/tasks/{some_id}/complete"),
        ("POST", f"/api/tasks/{some_id}/reopen"),
    ]:
        response = await client.request(method, path, json={"title": "x"} if method in {"POST", "PATCH"} else None)
        body = problem_of(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer"), path
        assert "Authorization: Bearer" in body["detail"]


async def test_create_read_update_complete_reopen_delete(api) -> None:
    client, settings = api
    alice = auth_headers(settings, "alice")

    created = await client.post(
        "/api/tasks",
        json={"title": "Write report", "priority": "high", "due_date": "2025-03-05", "tags": ["Work"]},
        headers=alice,
    )
    assert created.status_code == 201, created.text
    task = created.json()
    assert task["number"] == 1
    assert task["title"] == "Write report"
    assert task["priority"] == "high"
    assert task["due_date"] == "2025-03-05"
    assert task["tags"] == ["work"]
    assert task["description"] is None
    assert task["completed_at"] is None
    assert task["completed"] is False
    uuid.UUID(task["id"])
    url = f"/api/tasks/{task['id']}"

    fetched = await client.get(url, headers=alice)
    assert fetched.status_code == 200
    assert fetched.json() == task

    patched = await client.patch(url, json={"description": "Q1 numbers", "due_date": None}, headers=alice)
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["description"] == "Q1 numbers"
    assert body["due_date"] is None
    assert body["title"] == "Write report"  # absent: unchanged
    assert body["tags"] == ["work"]

    completed = await client.post(f"{url}/complete", headers=alice)
    assert completed.status_code == 200
    assert completed.json()["completed"] is True
    assert completed.json()["completed_at"]

    reopened = await client.post(f"{url}/reopen", headers=alice)
    assert reopened.status_code == 200
    assert reopened.json()["completed"] is False
    assert reopened.json()["completed_at"] is None

    deleted = await client.delete(url, headers=alice)
    assert deleted.status_code == 204
    assert deleted.content == b""
    problem_of(await client.get(url, headers=alice), 404)
    problem_of(await client.delete(url, headers=alice), 404)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "title"),
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": "ok", "bogus": 1}, "bogus"),
        ({"title": "ok", "priority": "urgent"}, "priority"),
        ({"title": "ok", "due_date": "next friday"}, "due_date"),
        ({"title": "ok", "tags": "work"}, "tags"),
        ({"title": "ok", "tags": ["x" * 41]}, "tags[0]"),
        ({"title": "ok", "description": "d" * 5001}, "description"),
        ({"title": "ok", "completed": True}, "completed"),
    ],
)
async def test_create_rejects_bad_input(api, body: dict[str, Any], field: str) -> None:
    client, settings = api
    response = await client.post("/api/tasks", json=body, headers=auth_headers(settings, "alice"))
    problem = problem_of(response, 400)
    assert field in fields_of(problem), problem
    assert field.split("[")[0] in problem["detail"]
    listed = await client.get("/api/tasks", headers=auth_headers(settings, "alice"))
    assert listed.json()["items"] == []


async def test_patch_rejects_bad_input(api) -> None:
    client, settings = api
    alice = auth_headers(settings, "alice")
    task = (await client.post("/api/tasks", json={"title": "Read"}, headers=alice)).json()
    url = f"/api/tasks/{task['id']}"
    for body, field in [
        ({"titel": "typo"}, "titel"),
        ({"title": None}, "title"),
        ({"priority": None}, "priority"),
        ({"tags": None}, "tags"),
        ({"completed": "yes"}, "completed"),
        ({"title": " "}, "title"),
    ]:
        problem = problem_of(await client.patch(url, json=body, headers=alice), 400)
        assert field in fields_of(problem), (body, problem)
    assert (await client.get(url, headers=alice)).json() == task
    problem_of(await client.patch(f"/api/tasks/{uuid.uuid4()}", json={"title": "x"}, headers=alice), 404)


async def test_list_filters_sorting_and_cursor_paging(api) -> None:
    client, settings = api
    alice = auth_headers(settings, "alice")
    for body in [
        {"title": "Write report", "priority": "high", "due_date": "2000-01-05", "tags": ["work"]},
        {"title": "Buy milk", "priority": "low", "tags": ["home"]},
        {"title": "Plan trip", "description": "Lisbon", "due_date": "2999-01-01", "tags": ["home"]},
        {"title": "File taxes", "priority": "high", "due_date": "2000-01-01"},
        {"title": "Read book"},
    ]:
        assert (await client.post("/api/tasks", json=body, headers=alice)).status_code == 201
    taxes = (await client.get("/api/tasks", params={"q": "taxes"}, headers=alice)).json()["items"][0]
    await client.post(f"/api/tasks/{taxes['id']}/complete", headers=alice)

    async def numbers(**params: Any) -> list[int]:
        response = await client.get("/api/tasks", params=params, headers=alice)
        assert response.status_code == 200, response.text
        return [item["number"] for item in response.json()["items"]]

    assert await numbers() == [1, 2, 3, 4, 5]
    assert await numbers(status="open") == [1, 2, 3, 5]
    assert await numbers(status="completed") == [4]
    assert await numbers(priority="high") == [1, 4]
    assert await numbers(tag="home") == [2, 3]
    assert await numbers(q="lisbon") == [3]
    # A bad search names the parameter the client sent: `q` (the service and the tools call it `search`).
    for bad in ("   ", "nul\x00"):
        refused = await client.get("/api/tasks", params={"q": bad}, headers=alice)
        assert refused.status_code == 400, refused.text
        assert [error["field"] for error in refused.json()["errors"]] == ["q"], refused.text
    assert await numbers(overdue="true") == [1]
    assert await numbers(due_before="2000-01-05") == [1, 4]
    assert await numbers(due_after="2000-01-02") == [1, 3]
    assert await numbers(sort="due_date") == [4, 1, 3, 2, 5]
    assert await numbers(sort="priority") == [1, 4, 3, 5, 2]
    assert await numbers(sort="number", order="desc") == [5, 4, 3, 2, 1]
    assert await numbers(limit=2, offset=2) == [3, 4]

    walked: list[int] = []
    params: dict[str, Any] = {"limit": 2, "sort": "title"}
    while True:
        page = (await client.get("/api/tasks", params=params, headers=alice)).json()
        assert page["total"] == 5
        walked += [item["number"] for item in page["items"]]
        if "next_cursor" not in page:
            break
        params["cursor"] = page["next_cursor"]
    assert walked == [2, 4, 3, 5, 1]

    for bad, field in [
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"status": "done"}, "status"),
        ({"sort": "colour"}, "sort"),
        ({"due_before": "soon"}, "due_before"),
        ({"cursor": "garbage"}, "cursor"),
        ({"cursor": params["cursor"]}, "cursor"),  # a title-sorted cursor on the default sort
        ({"offset": -1}, "offset"),
    ]:
        problem = problem_of(await client.get("/api/tasks", params=bad, headers=alice), 400)
        assert field in fields_of(problem), (bad, problem)


async def test_summary(api) -> None:
    client, settings = api
    alice = auth_headers(settings, "alice")
    for body in [
        {"title": "old", "due_date": "2000-01-01", "priority": "high"},
        {"title": "later", "due_date": "2999-01-01", "priority": "low"},
        {"title": "whenever"},
    ]:
        await client.post("/api/tasks", json=body, headers=alice)
    response = await client.get("/api/tasks/summary", headers=alice)
    assert response.status_code == 200
    summary = response.json()
    assert {k: v for k, v in summary.items() if k != "today"} == {
        "total": 3,
        "open": 3,
        "completed": 0,
        "overdue": 1,
        "due_today": 0,
        "by_priority": {"low": 1, "medium": 1, "high": 1},
    }


async def test_another_users_tasks_are_invisible(api) -> None:
    client, settings = api
    alice, bob = auth_headers(settings, "alice"), auth_headers(settings, "bob")
    task = (await client.post("/api/tasks", json={"title": "Alice's secret"}, headers=alice)).json()
    url = f"/api/tasks/{task['id']}"

    assert (await client.get("/api/tasks", headers=bob)).json() == {"items": [], "total": 0}
    assert (await client.get("/api/tasks/summary", headers=bob)).json()["total"] == 0
    for response in [
        await client.get(url, headers=bob),
        await client.patch(url, json={"title": "mine now"}, headers=bob),
        await client.post(f"{url}/complete", headers=bob),
        await client.post(f"{url}/reopen", headers=bob),
        await client.delete(url, headers=bob),
    ]:
        body = problem_of(response, 404)
        assert "Alice" not in body["detail"]
    assert (await client.get(url, headers=alice)).json() == task


async def test_openapi_names_every_task_operation(api) -> None:
    client, _ = api
    spec = (await client.get("/schema/openapi.json")).json()
    operations = {
        operation["operationId"]: (method, path, operation)
        for path, item in spec["paths"].items()
        if path.startswith("/api/tasks")
        for method, operation in item.items()
    }
    assert set(operations) == {
        "ListTasks",
        "CreateTask",
        "GetTask",
        "UpdateTask",
        "DeleteTask",
        "CompleteTask",
        "ReopenTask",
        "GetTaskSummary",
    }
    for method, path, operation in operations.values():
        assert operation["tags"] == ["Tasks"], (method, path)
        assert operation.get("security") == [{"BearerAuth": []}], (method, path)
    assert operations["CreateTask"][2]["responses"].keys() >= {"201", "400", "401"}
    assert operations["DeleteTask"][2]["responses"].keys() >= {"204", "404"}
    assert operations["CompleteTask"][2]["responses"].keys() >= {"200", "404"}
    schemas = spec["components"]["schemas"]
    assert not schemas["TaskUpdate"].get("required")
    assert set(schemas["TaskCreate"]["required"]) == {"title"}
    list_params = {p["name"] for p in operations["ListTasks"][2]["parameters"]}
    assert list_params >= {
        "status",
        "priority",
        "due_before",
        "due_after",
        "overdue",
        "tag",
        "q",
        "sort",
        "order",
    }
    assert list_params >= {"limit", "cursor", "offset"}
