"""A client generated from the checked-in `openapi/openapi.json` works against a live server.

`openapi-python-client` generates a package into a temporary folder (docs/api-and-mcp.md shows the same
command); the tests import it and use it over real HTTP: health, tasks CRUD and errors, the
development token route, and hosted session mint/refresh/cancel against a local fake of OpenAI.
If the spec drifts from what the server answers, these fail where a front-end team would.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from testkit.chatkit import user_input

from app.http.auth import mint_dev_token
from app.settings import Settings
from tests.support.fake_openai import FakeOpenAI
from tests.support.servers import PROJECT_ROOT, LiveServer, start_live_server

SPEC = PROJECT_ROOT / "openapi" / "openapi.json"
PACKAGE = "taskpilot_generated_client"
API_KEY = "sk-test-GeneratedClient-0123456789abcdef"
WORKFLOW_ID = "wf_generated_client_workflow"


def snake(name: str) -> str:
    """openapi-python-client's module names: `CreateChatKitSession` -> `create_chat_kit_session`."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


class Generated:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.package = importlib.import_module(PACKAGE)
        self.models = importlib.import_module(f"{PACKAGE}.models")

    def op(self, tag: str, operation_id: str) -> ModuleType:
        return importlib.import_module(f"{PACKAGE}.api.{snake(tag)}.{snake(operation_id)}")

    def client(self, base_url: str, token: str | None = None) -> Any:
        if token is None:
            return self.package.Client(base_url=base_url, timeout=30)
        return self.package.AuthenticatedClient(base_url=base_url, token=token, timeout=30)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Generated]:
    out = tmp_path_factory.mktemp("generated")
    config = out / "config.json"
    config.write_text(json.dumps({"post_hooks": []}))
    command = [
        sys.executable,
        "-m",
        "openapi_python_client",
        "generate",
        "--path",
        str(SPEC),
        "--output-path",
        str(out / PACKAGE),
        "--meta",
        "none",
        "--config",
        str(config),
    ]
    result = subprocess.run(command, cwd=out, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
    sys.path.insert(0, str(out))
    try:
        yield Generated(out)
    finally:
        sys.path.remove(str(out))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def fake_openai_module() -> Iterator[FakeOpenAI]:
    """One fake OpenAI for the module's server (conftest's `fake_openai` is one per test)."""
    fake = FakeOpenAI(API_KEY)
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, fake_openai_module: FakeOpenAI) -> Iterator[LiveServer]:
    # The module's own server: its environment names the fake's port, which no other server has.
    live = start_live_server(
        tmp_path_factory.mktemp("server"),
        {
            "MODEL_PROVIDER": "offline",
            "OPENAI_API_KEY": API_KEY,
            "OPENAI_BASE_URL": fake_openai_module.base_url,
            "CHATKIT_WORKFLOW_ID": WORKFLOW_ID,
            "OPENAI_TIMEOUT_SECONDS": "5",
        },
    )
    yield live
    live.stop()


def token_for(user: str) -> str:
    return mint_dev_token(Settings.from_env({}), user)


def test_every_operation_in_the_spec_has_a_generated_function(generated: Generated) -> None:
    spec = json.loads(SPEC.read_text())
    operations = [
        (operation["tags"][0], operation["operationId"])
        for item in spec["paths"].values()
        for method, operation in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]
    assert len(operations) >= 15
    for tag, operation_id in operations:
        module = generated.op(tag, operation_id)
        for function in ("sync_detailed", "asyncio_detailed", "sync", "asyncio"):
            assert callable(getattr(module, function, None)), f"{operation_id}.{function}"


def test_health_through_the_generated_client(generated: Generated, server: LiveServer) -> None:
    client = generated.client(server.base_url)
    live = generated.op("Health", "GetLiveness").sync(client=client)
    assert type(live).__name__ == "Liveness" and live.status == "ok" and live.version
    ready = generated.op("Health", "GetReadiness").sync(client=client)
    assert type(ready).__name__ == "Readiness" and str(ready.status.value) == "ready"
    health = generated.op("Health", "GetChatKitHealth").sync(client=client)
    assert type(health).__name__ == "ChatKitHealth"
    assert health.hosted.ready is True and health.hosted.missing == []
    assert health.self_hosted.endpoint == "/chatkit" and health.auth_mode == "dev"
    assert health.chatkit_ready is True and health.message.startswith("ChatKit is properly configured")
    legacy = generated.op("Health", "GetChatKitHealthLegacy").sync(client=client)
    assert type(legacy).__name__ == "ChatKitHealth" and legacy.to_dict() == health.to_dict()


def test_development_token_through_the_generated_client(generated: Generated, server: LiveServer) -> None:
    models = generated.models
    mint = generated.op("Development", "CreateDevelopmentToken")
    anonymous = generated.client(server.base_url)
    minted = mint.sync(client=anonymous, body=models.DevTokenRequest(user_id="gen-dev"))
    assert type(minted).__name__ == "DevToken", minted
    assert minted.user_id == "gen-dev" and isinstance(minted.expires_at, dt.datetime)
    summary = generated.op("Tasks", "GetTaskSummary").sync(client=generated.client(server.base_url, minted.token))
    assert type(summary).__name__ == "TaskSummary" and summary.total == 0

    refused = mint.sync_detailed(client=anonymous, body=models.DevTokenRequest(user_id="no spaces"))
    assert refused.status_code == 400
    assert type(refused.parsed).__name__ == "Problem" and "user_id" in refused.parsed.detail


def test_tasks_crud_and_errors_through_the_generated_client(generated: Generated, server: LiveServer) -> None:
    models = generated.models
    names = ("CreateTask", "ListTasks", "GetTask", "UpdateTask", "CompleteTask", "ReopenTask", "DeleteTask")
    tasks = {name: generated.op("Tasks", name) for name in (*names, "GetTaskSummary")}
    client = generated.client(server.base_url, token_for("gen-alice"))

    created = tasks["CreateTask"].sync(
        client=client,
        body=models.TaskCreate(
            title="Write the report",
            description="Q3 numbers",
            priority=models.TaskCreatePriority.HIGH,
            due_date=dt.date(2030, 1, 15),
            tags=["Work", " work ", "urgent"],
        ),
    )
    assert type(created).__name__ == "Task", created
    assert isinstance(created.id, uuid.UUID) and created.number == 1
    assert created.due_date == dt.date(2030, 1, 15) and created.tags == ["work", "urgent"]
    assert created.completed is False and isinstance(created.created_at, dt.datetime)

    page = tasks["ListTasks"].sync(client=client, status=models.ListTasksStatus.OPEN)
    assert type(page).__name__ == "TaskList" and page.total == 1
    assert [t.id for t in page.items] == [created.id]
    assert tasks["GetTask"].sync(created.id, client=client).title == "Write the report"

    updated = tasks["UpdateTask"].sync(
        created.id, client=client, body=models.TaskUpdate(title="Write the final report", due_date=None)
    )
    assert updated.title == "Write the final report" and updated.due_date is None
    assert updated.description == "Q3 numbers", "absent fields stay as they are"

    done = tasks["CompleteTask"].sync(created.id, client=client)
    assert done.completed is True and isinstance(done.completed_at, dt.datetime)
    summary = tasks["GetTaskSummary"].sync(client=client)
    assert (summary.total, summary.open_, summary.completed) == (1, 0, 1)
    assert tasks["ReopenTask"].sync(created.id, client=client).completed is False

    deleted = tasks["DeleteTask"].sync_detailed(created.id, client=client)
    assert deleted.status_code == 204
    missing = tasks["GetTask"].sync_detailed(created.id, client=client)
    assert missing.status_code == 404
    assert type(missing.parsed).__name__ == "Problem" and missing.parsed.status == 404 and missing.parsed.detail

    invalid = tasks["CreateTask"].sync_detailed(client=client, body=models.TaskCreate(title=""))
    assert invalid.status_code == 400
    assert type(invalid.parsed).__name__ == "Problem"
    assert "title" in invalid.parsed.detail

    other_user = generated.client(server.base_url, token_for("gen-bob"))
    assert tasks["ListTasks"].sync(client=other_user).total == 0, "tasks are per user"

    anonymous = tasks["ListTasks"].sync_detailed(client=generated.client(server.base_url))
    assert anonymous.status_code == 401
    assert type(anonymous.parsed).__name__ == "Problem" and "Bearer" in anonymous.parsed.detail


def test_chatkit_protocol_through_the_generated_client(generated: Generated, server: LiveServer) -> None:
    """The spec's ChatKit request union and JSON answers make typed calls: a request model per type,
    its answer parsed into the answer's model (a thread, a page of threads or items, `{}`)."""
    models = generated.models
    protocol = generated.op("ChatKit", "ChatKitProtocol")
    client = generated.client(server.base_url, token_for("gen-dave"))

    empty = protocol.sync(client=client, body=models.ThreadsListReq(params=models.ThreadListParams(limit=5)))
    assert type(empty).__name__ == "PageThread" and empty.data == [] and empty.has_more is False

    # A thread made over the stream, then read, listed, renamed, its items paged and deleted, all typed.
    # The generated functions parse JSON answers only: a stream is sent as the generated request
    # (its body model, its headers) and read by the caller.
    create = models.ThreadsCreateReq.from_dict({"type": "threads.create", "params": {"input": user_input("hello")}})
    created = client.get_httpx_client().request(**protocol._get_kwargs(body=create, time_zone="Asia/Karachi"))
    assert created.status_code == 200 and created.headers["content-type"].startswith("text/event-stream")
    thread_id = json.loads(created.content.split(b"\n\n")[0].removeprefix(b"data: "))["thread"]["id"]

    thread = protocol.sync(client=client, body=models.ThreadsGetByIdReq(params=models.ThreadGetByIdParams(thread_id)))
    assert type(thread).__name__ == "Thread" and thread.id == thread_id
    assert isinstance(thread.created_at, dt.datetime)
    assert [type(item).__name__ for item in thread.items.data][:1] == ["UserMessageItem"]

    listed = protocol.sync(client=client, body=models.ThreadsListReq(params=models.ThreadListParams(limit=5)))
    assert type(listed).__name__ == "PageThread" and [t.id for t in listed.data] == [thread_id]

    renamed = protocol.sync(
        client=client, body=models.ThreadsUpdateReq(params=models.ThreadUpdateParams(thread_id, "Renamed"))
    )
    assert type(renamed).__name__ == "Thread" and renamed.title == "Renamed"

    items = protocol.sync(
        client=client, body=models.ItemsListReq(params=models.ItemsListParams(thread_id=thread_id, limit=1))
    )
    assert type(items).__name__ == "PageThreadItem" and len(items.data) == 1 and items.has_more is True

    deleted = protocol.sync(client=client, body=models.ThreadsDeleteReq(params=models.ThreadDeleteParams(thread_id)))
    assert type(deleted).__name__ == "ChatKitEmptyAnswer" and deleted.to_dict() == {}

    unknown = protocol.sync_detailed(client=client, body=models.ThreadsGetByIdReq(models.ThreadGetByIdParams("nope")))
    assert unknown.status_code == 404 and type(unknown.parsed).__name__ == "Problem"
    assert unknown.headers["content-type"].startswith("application/problem+json")


def test_hosted_sessions_through_the_generated_client(
    generated: Generated, server: LiveServer, fake_openai_module: FakeOpenAI
) -> None:
    fake_openai = fake_openai_module
    models = generated.models
    client = generated.client(server.base_url, token_for("gen-carol"))
    before = len(fake_openai.creates())

    session = generated.op("Hosted sessions", "CreateChatKitSession").sync(client=client)
    assert type(session).__name__ == "ChatKitSession", session
    assert session.client_secret and session.session_id
    assert str(getattr(session.status, "value", session.status)) == "success"
    assert isinstance(session.expires_at, dt.datetime) and session.expires_at.tzinfo is not None
    sent = fake_openai.creates()[before:]
    assert [r.body["user"] for r in sent] == ["gen-carol"]
    assert sent[0].body["workflow"]["id"] == WORKFLOW_ID

    refreshed = generated.op("Hosted sessions", "RefreshChatKitSession").sync(
        client=client, body=models.ChatKitSessionRefresh(session_id=session.session_id)
    )
    assert type(refreshed).__name__ == "ChatKitSession" and refreshed.session_id != session.session_id
    assert session.session_id in fake_openai.cancels()

    cancelled = generated.op("Hosted sessions", "CancelChatKitSession").sync_detailed(
        refreshed.session_id, client=client
    )
    assert cancelled.status_code == 204
    assert refreshed.session_id in fake_openai.cancels()

    legacy = generated.op("Hosted sessions", "CreateChatKitSessionLegacy").sync(client=client)
    assert type(legacy).__name__ == "ChatKitSession"

    foreign = generated.op("Hosted sessions", "CancelChatKitSession").sync_detailed(
        legacy.session_id, client=generated.client(server.base_url, token_for("gen-mallory"))
    )
    assert foreign.status_code == 404 and type(foreign.parsed).__name__ == "Problem"
