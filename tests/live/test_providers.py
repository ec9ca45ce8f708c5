"""Real model providers over real HTTP against local fake servers: Chat Completions and Responses."""

from __future__ import annotations

import json

import httpx
import pytest

from app.agents.offline.planner import Reply, ToolCall
from tests.support.auth import server_token
from tests.support.chatkit_client import ChatKitClient, user_input
from tests.support.fake_model_server import TITLE_MARKER, FakeModelServer, Slow, turn_requests
from tests.support.servers import ServerPool, unique_user


def _env(provider: str, fake: FakeModelServer) -> dict[str, str]:
    if provider == "openai-compatible":
        return {
            "MODEL_PROVIDER": "openai-compatible",
            "OPENAI_BASE_URL": fake.base_url,
            "MODEL_API_KEY": fake.api_key,
            "MODEL": "mimo-v2-flash",
        }
    return {
        "MODEL_PROVIDER": "openai",
        "OPENAI_BASE_URL": fake.base_url,
        "OPENAI_API_KEY": fake.api_key,
        "MODEL": "gpt-5-mini",
    }


@pytest.mark.parametrize("provider", ["openai-compatible", "openai"])
async def test_two_turns_with_a_tool_call_give_distinct_persisted_messages(
    live_server_factory, fake_model, provider: str
) -> None:
    fake = fake_model(
        [
            ToolCall(
                "add_task",
                {"title": "Buy milk", "description": None, "priority": "high", "due_date": None, "tags": None},
            ),
            Reply("Added “Buy milk” as a high-priority task."),
            Reply("You're welcome!"),
        ],
        title="Milk shopping",
    )
    server = live_server_factory(_env(provider, fake))
    token = server_token(server.env, "alice")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        alice = ChatKitClient(http, token)
        first = await alice.create_thread("please add buy milk, high priority")
        second = await alice.send(first.thread_id, "thanks")
        for result in (first, second):
            assert result.status == 200
            assert not result.of_type("error"), result.of_type("error")
        assert first.assistant_text() == "Added “Buy milk” as a high-priority task."
        assert second.assistant_text() == "You're welcome!"
        assert first.of_type("client_effect")[0].name == "tasks.changed"
        assert first.of_type("thread.updated")[-1].thread.title == "Milk shopping"

        streamed_ids = [
            e.item.id
            for r in (first, second)
            for e in r.events
            if e.type == "thread.item.done" and e.item.type == "assistant_message"
        ]
        assert len(streamed_ids) == 2
        assert len(set(streamed_ids)) == 2
        assert "__fake_id__" not in json.dumps([f for r in (first, second) for f in r.raw_frames])

        stored = (await alice.items(first.thread_id, order="asc", limit=50)).body["data"]
        stored_assistant = [(i["id"], i["content"][0]["text"]) for i in stored if i["type"] == "assistant_message"]
        assert stored_assistant == [
            (streamed_ids[0], "Added “Buy milk” as a high-priority task."),
            (streamed_ids[1], "You're welcome!"),
        ]
        tasks = await http.get("/api/tasks", headers={"Authorization": f"Bearer {token}"})
        assert [(t["title"], t["priority"]) for t in tasks.json()["items"]] == [("Buy milk", "high")]

    # The provider really got the tool result and the history, as its own API shapes them.
    conversation = [r for r in fake.requests if "thread title" not in json.dumps(r)]
    assert len(conversation) == 3
    second_call = json.dumps(conversation[1])
    assert '"ok": true' in second_call or '\\"ok\\":true' in second_call
    third_call = json.dumps(conversation[2])
    assert "Added \\u201cBuy milk\\u201d" in third_call or "Added “Buy milk”" in third_call
    expected_path = "/v1/chat/completions" if provider == "openai-compatible" else "/v1/responses"
    assert set(fake.paths) == {expected_path}


@pytest.mark.parametrize(("status", "message"), [(401, "credentials"), (429, "rate-limited"), (500, "failed")])
async def test_provider_errors_become_readable_error_events(
    live_server_factory, fake_model, status: int, message: str
) -> None:
    fake = fake_model([status, status, status, Reply("Recovered.")])
    server = live_server_factory(_env("openai-compatible", fake))
    token = server_token(server.env, "alice")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
        alice = ChatKitClient(http, token)
        failed = await alice.create_thread("hello there")
        assert failed.status == 200
        errors = failed.of_type("error")
        assert len(errors) == 1
        assert message in errors[0].message
        assert "test-key" not in json.dumps(failed.raw_frames)
        fake.script.clear()
        fake.script.append(Reply("Recovered."))
        retry = await alice.send(failed.thread_id, "hello again")
        assert retry.assistant_text() == "Recovered."
    assert "test-key" not in server.log()


async def test_unreachable_provider_is_a_readable_error(live_servers: ServerPool) -> None:
    server = live_servers.get(
        {
            "MODEL_PROVIDER": "openai-compatible",
            "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
            "MODEL_API_KEY": "x",
            "OPENAI_TIMEOUT_SECONDS": "2",
        }
    )
    token = server_token(server.env, unique_user("alice"))
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
        result = await ChatKitClient(http, token).create_thread("hello")
        errors = result.of_type("error")
        assert len(errors) == 1
        assert "could not be reached" in errors[0].message


async def test_chat_completions_tool_call_that_omits_optional_arguments_creates_the_task_with_defaults(
    live_server_factory, fake_model
) -> None:
    # vLLM, Ollama, MiMo and others do not enforce strict schemas: the nullable fields are left out.
    fake = fake_model([ToolCall("add_task", {"title": "Buy milk", "priority": "high"}), Reply("Added “Buy milk”.")])
    server = live_server_factory(_env("openai-compatible", fake))
    token = server_token(server.env, "alice")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        result = await ChatKitClient(http, token).create_thread("add buy milk, high priority")
        assert result.status == 200 and not result.of_type("error"), result.of_type("error")
        tasks = (await http.get("/api/tasks", headers={"Authorization": f"Bearer {token}"})).json()["items"]
    assert [(t["title"], t["priority"], t["description"], t["due_date"], t["tags"]) for t in tasks] == [
        ("Buy milk", "high", None, None, [])
    ]
    conversation = [r for r in fake.requests if "thread title" not in json.dumps(r)]
    tool_results = [m for m in conversation[1]["messages"] if m.get("role") == "tool"]
    assert len(tool_results) == 1 and json.loads(tool_results[0]["content"])["ok"] is True, tool_results


async def test_chat_completions_providers_get_text_only_user_content_as_a_plain_string(
    live_server_factory, fake_model
) -> None:
    # Some OpenAI-compatible servers accept only a string as a message's content.
    fake = fake_model([Reply("Hello!"), Reply("Still here.")])
    server = live_server_factory(_env("openai-compatible", fake))
    token = server_token(server.env, "alice")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        alice = ChatKitClient(http, token)
        first = await alice.create_thread("hi there")
        second = await alice.send(first.thread_id, "are you there?")
        assert not first.of_type("error") and not second.of_type("error")
    conversation = [r for r in fake.requests if "thread title" not in json.dumps(r)]
    users = [m for m in conversation[-1]["messages"] if m.get("role") == "user"]
    assert users and all(isinstance(m["content"], str) for m in users), users
    assert [m["content"] for m in users][-2:] == ["hi there", "are you there?"]


async def test_a_quote_reaches_the_model_with_its_own_message_only(live_server_factory, fake_model) -> None:
    """ChatKit's converter adds a message's `quoted_text` ("The user is referring to this in
    particular") for the thread's last message only; history converted an item at a time once re-sent
    every old quote on each later turn. Counted in what reaches the model."""
    fake = fake_model([Reply("About the milk."), Reply("Sure."), Reply("About the rent.")])
    server = live_server_factory(_env("openai", fake))
    first_quote, second_quote = "QUOTE-ONE: buy milk on Friday", "QUOTE-TWO: pay the rent"

    def copies(body: dict[str, object], quote: str) -> int:
        return json.dumps(body).count(quote)

    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        chat = ChatKitClient(http, server_token(server.env, unique_user("quinn")))
        first = await chat.request(
            "threads.create", {"input": {**user_input("What about this?"), "quoted_text": first_quote}}
        )
        second = await chat.send(first.thread_id, "Thanks")
        third = await chat.send_input(first.thread_id, {**user_input("And this?"), "quoted_text": second_quote})
        for result in (first, second, third):
            assert result.status == 200 and not result.of_type("error"), result.raw_frames
    turns = turn_requests(fake)
    assert len(turns) == 3
    assert [copies(body, first_quote) for body in turns] == [1, 0, 0]
    assert [copies(body, second_quote) for body in turns] == [0, 0, 1]
    # The messages themselves all reach the model on the last turn.
    assert all(text in json.dumps(turns[-1]) for text in ("What about this?", "Thanks", "And this?"))


async def test_the_title_is_asked_for_beside_the_answer_not_after_it(live_server_factory, fake_model) -> None:
    """The first turn's title call starts with the turn: it reaches the model while the answer is
    still being written (here: a model silent for 3 s), so the stream ends with the answer."""
    fake = fake_model([Slow(3.0, Reply("Done."))], title="Slow answer")
    server = live_server_factory(_env("openai", fake))
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        result = await ChatKitClient(http, server_token(server.env, unique_user())).create_thread("plan my week")
    assert result.status == 200 and result.assistant_text() == "Done."
    assert result.of_type("thread.updated")[-1].thread.title == "Slow answer"
    titled = [TITLE_MARKER in json.dumps(r) for r in fake.requests]
    assert sorted(titled) == [False, True]
    answer_at, title_at = (fake.received_at[titled.index(flag)] for flag in (False, True))
    # Asked after the answer, it would arrive 3 s after the answer's request at the earliest.
    assert title_at - answer_at < 2.0, (answer_at, title_at)


async def test_thread_titles_message_makes_no_title_call(live_server_factory, fake_model) -> None:
    fake = fake_model([Reply("Noted.")], title="A model's title")
    server = live_server_factory({**_env("openai", fake), "THREAD_TITLES": "message"})
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        client = ChatKitClient(http, server_token(server.env, unique_user()))
        result = await client.create_thread("Call the plumber about the leak. It is urgent.")
    assert result.status == 200 and result.assistant_text() == "Noted."
    assert result.of_type("thread.updated")[-1].thread.title == "Call the plumber about the leak"
    assert len(fake.requests) == 1 and TITLE_MARKER not in json.dumps(fake.requests[0])
