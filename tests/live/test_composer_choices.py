"""The composer's choices (issue 18, item 2): a tool that forces the turn's tool, and a model from
the operator's allowlist (`MODEL_CHOICES`), sent with a user message as `inference_options`.

Over real HTTP on a real server process: the offline model honours a forced tool; a tool or model
the server does not offer is a 400 problem before any stream opens, with nothing stored; the
chosen model and the forced tool reach a provider (a local fake Responses server records each
request body); the page reads the choices from `GET /api/chatkit/health`. Settings validation is
checked on `Settings.from_env` and on `taskpilot serve`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from app.agents.tools import COMPOSER_TOOLS, TOOL_NAMES
from app.settings import Settings, SettingsError
from tests.support.auth import token
from tests.support.chatkit_client import ChatKitClient, StreamResult
from tests.support.fake_model_server import TITLE_MARKER, FakeModelServer, turn_requests
from tests.support.servers import LiveServer, ServerPool, run_cli, unique_user

OPTIONS = "params.input.inference_options"


def message(text: str, **inference_options: Any) -> dict[str, Any]:
    return {
        "content": [{"type": "input_text", "text": text}],
        "attachments": [],
        "inference_options": inference_options,
    }


async def create(chat: ChatKitClient, text: str, **inference_options: Any) -> StreamResult:
    return await chat.request("threads.create", {"input": message(text, **inference_options)})


async def add(chat: ChatKitClient, thread_id: str, text: str, **inference_options: Any) -> StreamResult:
    return await chat.request(
        "threads.add_user_message", {"thread_id": thread_id, "input": message(text, **inference_options)}
    )


async def tasks_of(http: httpx.AsyncClient, user: str) -> list[dict[str, Any]]:
    response = await http.get(
        "/api/tasks", params={"status": "all"}, headers={"Authorization": f"Bearer {token(user)}"}
    )
    response.raise_for_status()
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def refused_field(result: StreamResult) -> str:
    """The field a 400 problem names (no stream was opened)."""
    assert result.status == 400, (result.status, result.body)
    assert not result.events and not result.headers.get("content-type", "").startswith("text/event-stream")
    assert result.headers["content-type"].startswith("application/problem+json")
    fields = [error["field"] for error in result.body.get("errors", [])]
    assert len(fields) == 1, result.body
    return fields[0]


# ---- the tools, declared once ------------------------------------------------------------------------


def test_each_composer_tool_forces_one_task_tool_and_ids_are_unique() -> None:
    assert {tool.tool for tool in COMPOSER_TOOLS} <= set(TOOL_NAMES)
    ids = [tool.id for tool in COMPOSER_TOOLS]
    assert len(ids) == len(set(ids))
    assert {"add_task", "summary"} <= set(ids)


# ---- MODEL_CHOICES at start-up ------------------------------------------------------------------------


def test_model_choices_default_to_the_first_unless_model_names_one() -> None:
    assert Settings.from_env({}).model_choices == ()
    first = Settings.from_env({"MODEL_CHOICES": " gpt-5-mini , gpt-5 "})
    assert (first.model, first.model_choices) == ("gpt-5-mini", ("gpt-5-mini", "gpt-5"))
    named = Settings.from_env({"MODEL_CHOICES": "gpt-5-mini,gpt-5", "MODEL": "gpt-5"})
    assert (named.model, named.model_choices) == ("gpt-5", ("gpt-5-mini", "gpt-5"))
    assert Settings.from_env({"MODEL": "gpt-5"}).model == "gpt-5"


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"MODEL_CHOICES": "gpt-5,,gpt-5-mini"}, "empty model id"),
        ({"MODEL_CHOICES": "gpt-5,"}, "empty model id"),
        ({"MODEL_CHOICES": "gpt-5,gpt 5"}, "no spaces"),
        ({"MODEL_CHOICES": "gpt-5," + "x" * 200}, "at most 128 characters"),
        ({"MODEL_CHOICES": "gpt-5,gpt-5-mini,gpt-5"}, "gpt-5 more than once"),
        ({"MODEL_CHOICES": "gpt-5,o3", "MODEL": "gpt-5-mini"}, "does not include MODEL='gpt-5-mini'"),
    ],
    ids=["empty", "trailing-comma", "space", "long", "duplicate", "model-not-offered"],
)
def test_bad_model_choices_are_refused_naming_the_setting(env: dict[str, str], says: str) -> None:
    with pytest.raises(SettingsError, match=r"^MODEL_CHOICES") as refused:
        Settings.from_env(env)
    assert says in str(refused.value)
    assert "\n" not in str(refused.value)


def test_serve_with_bad_model_choices_exits_with_one_line() -> None:
    result = run_cli(["serve"], {"MODEL_CHOICES": "gpt-5,gpt-5"}, check=False)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].count("MODEL_CHOICES") >= 1 and "more than once" in lines[0], result.stderr


# ---- a forced tool, honoured by the offline model ---------------------------------------------------


async def test_a_forced_tool_is_honoured_by_the_offline_model(live_servers: ServerPool) -> None:
    olga = unique_user("olga")
    server = live_servers.get()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        chat = ChatKitClient(http, token(olga), time_zone="UTC")

        # "Buy milk" alone reads as nothing the offline assistant knows; with Add task it is a task.
        plain = await create(chat, "Buy milk")
        assert plain.status == 200 and not plain.of_type("error")
        assert await tasks_of(http, olga) == []

        added = await add(chat, plain.thread_id, "Buy milk", tool_choice={"id": "add_task"})
        assert added.status == 200 and not added.of_type("error"), added.raw_frames
        assert [task["title"] for task in await tasks_of(http, olga)] == ["Buy milk"]
        assert "Added" in added.assistant_text() and "Buy milk" in added.assistant_text()
        assert added.of_type("client_effect")[0].name == "tasks.changed"

        # A message that itself asks for something else still gets the chosen tool: the summary.
        summary = await add(chat, plain.thread_id, "add a task to walk the dog", tool_choice={"id": "summary"})
        assert summary.status == 200 and not summary.of_type("error")
        assert summary.assistant_text().startswith("You have 1 open and 0 completed tasks")
        assert [task["title"] for task in await tasks_of(http, olga)] == ["Buy milk"]

        # Find tasks: the text is what to look for.
        found = await add(chat, plain.thread_id, "milk", tool_choice={"id": "list_tasks"})
        assert found.status == 200 and "Buy milk" in found.assistant_text()

        # The stored message keeps its choice, so a retry makes the same one (no second task: the
        # retry answers again from the message, which forced the summary).
        items = await chat.items(plain.thread_id, limit=50, order="asc")
        stored = [item for item in items.body["data"] if item["type"] == "user_message"]
        assert [item["inference_options"].get("tool_choice") for item in stored] == [
            None,
            {"id": "add_task"},
            {"id": "summary"},
            {"id": "list_tasks"},
        ]
        retried = await chat.request(
            "threads.retry_after_item", {"thread_id": plain.thread_id, "item_id": stored[2]["id"]}
        )
        assert retried.status == 200 and retried.assistant_text().startswith("You have 1 open")


async def test_an_unknown_tool_is_a_400_before_the_stream_and_nothing_is_stored(
    live_servers: ServerPool,
) -> None:
    uma = unique_user("uma")
    server = live_servers.get()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        chat = ChatKitClient(http, token(uma), time_zone="UTC")
        refused = await create(chat, "add a task to buy milk", tool_choice={"id": "delete_everything"})
        assert refused_field(refused) == f"{OPTIONS}.tool_choice.id"
        assert "'delete_everything' is not a composer tool" in refused.body["detail"]
        assert "'add_task'" in refused.body["detail"]
        threads = await chat.request("threads.list", {"limit": 10})
        assert threads.body["data"] == []

        thread = await create(chat, "hello")
        before = (await chat.items(thread.thread_id, limit=50)).body["data"]
        # Task tools the composer does not offer are not composer tools either.
        refused = await add(chat, thread.thread_id, "3", tool_choice={"id": "delete_task"})
        assert refused_field(refused) == f"{OPTIONS}.tool_choice.id"
        assert (await chat.items(thread.thread_id, limit=50)).body["data"] == before
        assert await tasks_of(http, uma) == []


# ---- models: the allowlist ------------------------------------------------------------------------


async def test_without_model_choices_only_the_default_model_may_be_named(
    live_servers: ServerPool,
) -> None:
    vera = unique_user("vera")
    server = live_servers.get({"MODEL": "gpt-5-mini"})
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        health = (await http.get("/api/chatkit/health")).json()
        assert health["self_hosted"]["composer"]["models"] == []
        assert [tool["id"] for tool in health["self_hosted"]["composer"]["tools"]] == [t.id for t in COMPOSER_TOOLS]

        chat = ChatKitClient(http, token(vera), time_zone="UTC")
        refused = await create(chat, "add a task to buy milk", model="gpt-5")
        assert refused_field(refused) == f"{OPTIONS}.model"
        assert "MODEL_CHOICES is not set" in refused.body["detail"]
        assert (await chat.request("threads.list", {"limit": 10})).body["data"] == []

        accepted = await create(chat, "add a task to buy milk", model="gpt-5-mini")
        assert accepted.status == 200 and not accepted.of_type("error")


async def test_a_model_outside_model_choices_is_a_400_naming_the_field(
    live_servers: ServerPool,
) -> None:
    wim = unique_user("wim")
    server = live_servers.get({"MODEL_CHOICES": "gpt-5-mini,gpt-5"})
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        health = (await http.get("/api/chatkit/health")).json()
        assert health["self_hosted"]["composer"]["models"] == [
            {"id": "gpt-5-mini", "label": "gpt-5-mini", "default": True},
            {"id": "gpt-5", "label": "gpt-5", "default": False},
        ]
        chat = ChatKitClient(http, token(wim), time_zone="UTC")
        thread = await create(chat, "hello", model="gpt-5")
        assert thread.status == 200 and not thread.of_type("error")
        before = (await chat.items(thread.thread_id, limit=50)).body["data"]
        for model in ("o3", "GPT-5", ""):
            refused = await add(chat, thread.thread_id, "add a task to buy milk", model=model)
            assert refused_field(refused) == f"{OPTIONS}.model"
            assert "'gpt-5-mini', 'gpt-5'" in refused.body["detail"]
        assert (await chat.items(thread.thread_id, limit=50)).body["data"] == before


async def test_a_retry_of_a_message_whose_model_was_withdrawn_is_a_400(
    live_server_factory: Callable[..., LiveServer],
) -> None:
    first = live_server_factory({"MODEL_CHOICES": "gpt-5-mini,gpt-5"})
    async with httpx.AsyncClient(base_url=first.base_url, timeout=30) as http:
        chat = ChatKitClient(http, token("xia"), time_zone="UTC")
        thread = await create(chat, "what's open?", model="gpt-5")
        (asked,) = [
            i for i in (await chat.items(thread.thread_id, limit=50)).body["data"] if i["type"] == "user_message"
        ]
    first.stop()
    # The operator withdraws gpt-5 (same database, new settings).
    second = live_server_factory({"MODEL_CHOICES": "gpt-5-mini"}, migrate=False)
    async with httpx.AsyncClient(base_url=second.base_url, timeout=30) as http:
        chat = ChatKitClient(http, token("xia"), time_zone="UTC")
        refused = await chat.request(
            "threads.retry_after_item", {"thread_id": thread.thread_id, "item_id": asked["id"]}
        )
        assert refused_field(refused) == "params.item_id"
        assert "no longer offers" in refused.body["detail"] and "'gpt-5'" in refused.body["detail"]


# ---- the provider path: the chosen model and the forced tool reach the model ---------------------------


async def test_the_chosen_model_and_tool_reach_the_provider(
    live_server_factory: Callable[..., LiveServer], fake_model: Callable[..., FakeModelServer]
) -> None:
    from app.agents.offline.planner import Reply, ToolCall

    add_milk = {"title": "Buy milk", "description": None, "priority": None, "due_date": None, "tags": None}
    fake = fake_model([Reply("Hello!"), ToolCall("add_task", add_milk), Reply("Added #1 Buy milk.")])
    server = live_server_factory(
        {
            "MODEL_PROVIDER": "openai",
            "OPENAI_BASE_URL": fake.base_url,
            "OPENAI_API_KEY": fake.api_key,
            "MODEL_CHOICES": "gpt-5-mini,gpt-5",
        }
    )
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        chat = ChatKitClient(http, token("yan"), time_zone="UTC")
        hello = await create(chat, "hello")
        assert hello.status == 200 and hello.assistant_text() == "Hello!"
        (default_turn,) = turn_requests(fake)
        assert default_turn["model"] == "gpt-5-mini"
        assert default_turn.get("tool_choice") in (None, "auto")

        added = await add(chat, hello.thread_id, "Buy milk", model="gpt-5", tool_choice={"id": "add_task"})
        assert added.status == 200 and added.assistant_text() == "Added #1 Buy milk.", added.raw_frames
        forced, after_tool = turn_requests(fake)[1:]
        assert forced["model"] == after_tool["model"] == "gpt-5"
        assert forced["tool_choice"] == {"type": "function", "name": "add_task"}
        # Once the tool ran, the SDK lets the model answer (no loop of forced calls).
        assert after_tool.get("tool_choice") in (None, "auto")
        assert [task["title"] for task in await tasks_of(http, "yan")] == ["Buy milk"]


async def test_the_thread_title_is_written_by_the_model_the_composer_chose(
    live_server_factory: Callable[..., LiveServer], fake_model: Callable[..., FakeModelServer]
) -> None:
    from app.agents.offline.planner import Reply

    fake = fake_model([Reply("Hello!"), Reply("Hi again.")])
    server = live_server_factory(
        {
            "MODEL_PROVIDER": "openai",
            "OPENAI_BASE_URL": fake.base_url,
            "OPENAI_API_KEY": fake.api_key,
            "MODEL_CHOICES": "gpt-5-mini,gpt-5",
        }
    )
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        chat = ChatKitClient(http, token("tia"), time_zone="UTC")
        chosen = await create(chat, "hello", model="gpt-5")
        assert chosen.status == 200 and chosen.assistant_text() == "Hello!", chosen.raw_frames
        default = await create(chat, "hello again")
        assert default.status == 200 and default.assistant_text() == "Hi again.", default.raw_frames
    titles = [body for body in fake.requests if TITLE_MARKER in json.dumps(body.get("instructions") or "")]
    assert [body["model"] for body in titles] == ["gpt-5", "gpt-5-mini"]


async def test_a_turn_resumed_by_a_client_tool_keeps_its_model(
    live_server_factory: Callable[..., LiveServer], fake_model: Callable[..., FakeModelServer]
) -> None:
    from app.agents.offline.planner import Reply, ToolCall

    fake = fake_model([ToolCall("get_time_zone", {}), Reply("You have nothing due today.")])
    server = live_server_factory(
        {
            "MODEL_PROVIDER": "openai",
            "OPENAI_BASE_URL": fake.base_url,
            "OPENAI_API_KEY": fake.api_key,
            "MODEL_CHOICES": "gpt-5-mini,gpt-5",
        }
    )
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        # No Time-Zone header, and a page that answers get_time_zone: the model asks it.
        chat = ChatKitClient(http, token("zed"), client_tools="get_time_zone")
        asked = await create(chat, "what is due today?", model="gpt-5")
        assert asked.status == 200 and not asked.of_type("error"), asked.raw_frames
        resumed = await chat.request(
            "threads.add_client_tool_output", {"thread_id": asked.thread_id, "result": {"time_zone": "UTC"}}
        )
        assert resumed.status == 200 and resumed.assistant_text() == "You have nothing due today."
        assert [body["model"] for body in turn_requests(fake)] == ["gpt-5", "gpt-5"]


def test_the_offline_model_forces_the_tool_before_a_handoff_or_a_time_zone_question() -> None:
    from agents import Agent, handoff

    from app.agents.chatkit.time_zone import GET_TIME_ZONE_TOOL
    from app.agents.offline.model import OfflineModel
    from app.agents.offline.planner import Reply, ToolCall
    from app.agents.tools import TASK_TOOLS

    model = OfflineModel()
    tools = [*TASK_TOOLS, GET_TIME_ZONE_TOOL]
    urdu = [handoff(Agent(name="Urdu specialist"))]
    text = "کل دودھ خریدنا"  # "buy milk tomorrow", in Urdu, with no verb of its own
    said = [{"role": "user", "type": "message", "content": text}]
    # Unforced, an Urdu message goes to the Urdu specialist first.
    assert model.decide(said, tools, urdu) == ToolCall(urdu[0].tool_name, {})
    forced = model.decide(said, tools, urdu, tool_choice="add_task")
    assert isinstance(forced, ToolCall) and forced.name == "add_task"
    assert forced.arguments["title"] == "دودھ خریدنا" and forced.arguments["due_date"] is not None
    # "auto" and "required" force nothing.
    assert model.decide(said, tools, urdu, tool_choice="auto") == ToolCall(urdu[0].tool_name, {})

    # Later in the turn the SDK no longer forces it; the call made says what was chosen.
    output = '{"ok": true, "task": {"id": "t1", "number": 1, "title": "دودھ خریدنا", "priority": "medium"}}'
    after = [
        *said,
        {"type": "function_call", "call_id": "c1", "name": "add_task", "arguments": json.dumps(forced.arguments)},
        {"type": "function_call_output", "call_id": "c1", "output": output},
    ]
    reply = model.decide(after, tools, urdu)
    assert isinstance(reply, Reply) and "دودھ خریدنا" in reply.text and "شامل" in reply.text


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest) -> str:
    """The shared server's database kind: SQLite, then PostgreSQL."""
    if request.param == "postgres":
        request.getfixturevalue("postgres_url")  # skips (or fails under CI) without PostgreSQL
    return str(request.param)


# ---- "Due today" (`/today`): list_tasks with the day's filter fixed, whatever the model sends ---------


async def test_due_today_lists_the_open_tasks_due_on_the_users_date(live_servers: ServerPool, database: str) -> None:
    pia = unique_user("pia")
    server = live_servers.get(database=database)
    zone = "Pacific/Kiritimati"  # UTC+14: its date is UTC's tomorrow for most of the day
    today = dt.datetime.now(ZoneInfo(zone)).date()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        headers = {"Authorization": f"Bearer {token(pia)}", "Time-Zone": zone}

        async def task(title: str, due: dt.date | None) -> dict[str, Any]:
            body = {"title": title, "due_date": due.isoformat() if due else None}
            response = await http.post("/api/tasks", json=body, headers=headers)
            response.raise_for_status()
            created: dict[str, Any] = response.json()
            return created

        milk = await task("Buy milk", today)
        await task("Buy groceries", today + dt.timedelta(days=1))
        await task("Buy stamps", None)
        await task("Pay the overdue bill", today - dt.timedelta(days=1))
        done = await task("Buy bread", today)
        (await http.post(f"/api/tasks/{done['id']}/complete", headers=headers)).raise_for_status()

        chat = ChatKitClient(http, token(pia), time_zone=zone)
        # Words that would list everything ("buy": four tasks) are narrowed to the day's open tasks.
        listed = await create(chat, "buy", tool_choice={"id": "today"})
        assert listed.status == 200 and not listed.of_type("error"), listed.raw_frames
        (widget,) = [e.item for e in listed.of_type("thread.item.done") if e.item.type == "widget"]
        shown = widget.widget.model_dump_json()
        assert "Buy milk" in shown
        for other in ("Buy groceries", "Buy stamps", "Pay the overdue bill", "Buy bread"):
            assert other not in shown, other
        assert f"#{milk['number']}" in listed.assistant_text()

        (stored,) = [
            item
            for item in (await chat.items(listed.thread_id, limit=50)).body["data"]
            if item["type"] == "user_message"
        ]
        assert stored["inference_options"]["tool_choice"] == {"id": "today"}


async def test_due_today_fixes_the_filter_on_the_forced_call_only(
    live_server_factory: Callable[..., LiveServer], fake_model: Callable[..., FakeModelServer]
) -> None:
    from app.agents.offline.planner import Reply, ToolCall

    # The model asks for every task (no dates) on the forced call, and again on its own afterwards.
    everything = {"status": "all", "search": None, "due_before": None, "due_after": None}
    fake = fake_model([ToolCall("list_tasks", everything), ToolCall("list_tasks", everything), Reply("Done.")])
    server = live_server_factory(
        {"MODEL_PROVIDER": "openai", "OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": fake.api_key}
    )
    today = dt.datetime.now(dt.UTC).date()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        headers = {"Authorization": f"Bearer {token('quin')}", "Time-Zone": "UTC"}
        for title, due in (("Due today", today), ("Due later", today + dt.timedelta(days=3))):
            body = {"title": title, "due_date": due.isoformat()}
            (await http.post("/api/tasks", json=body, headers=headers)).raise_for_status()
        chat = ChatKitClient(http, token("quin"), time_zone="UTC")
        result = await create(chat, "what's on?", tool_choice={"id": "today"})
        assert result.status == 200 and result.assistant_text() == "Done.", result.raw_frames
    forced, second, _ = turn_requests(fake)
    assert forced["tool_choice"] == {"type": "function", "name": "list_tasks"}
    assert second.get("tool_choice") in (None, "auto")
    outputs = [
        json.loads(item["output"])
        for item in turn_requests(fake)[-1]["input"]
        if isinstance(item, dict) and item.get("type") == "function_call_output"
    ]
    assert [[task["title"] for task in output["tasks"]] for output in outputs] == [
        ["Due today"],  # the forced call: due today, open, whatever the model asked
        ["Due today", "Due later"],  # the model's own later call is its own
    ]
