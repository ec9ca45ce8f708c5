"""The ChatKit protocol in openapi/openapi.json: generated from the library, complete, and enforced.

The spec's ChatKit section is checked for completeness against the installed openai-chatkit
(every request type in the discriminated union, every event type, an answer for each type), and
the contract checker the whole suite runs through (tests/support/contract.py) is shown to catch a
mutated frame, answer and request taken from a live server's real exchange.
"""

from __future__ import annotations

import copy
import json
import typing
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from chatkit.types import ChatKitReq, ThreadStreamEvent
from jsonschema import Draft202012Validator

from app.controllers.chatkit import STREAMING_TYPES
from app.http.openapi_chatkit import non_streaming_types, streaming_types
from tests.support import contract
from tests.support.auth import token
from tests.support.chatkit_client import ChatKitClient, parse_sse
from tests.support.servers import ServerPool, unique_user
from tests.support.widgets import find as widget_find

SPEC = json.loads(contract.SPEC_PATH.read_text())
SCHEMAS = SPEC["components"]["schemas"]
OPERATION = SPEC["paths"]["/chatkit"]["post"]


def _tags(union: Any) -> set[str]:
    members = typing.get_args(typing.get_args(union)[0]) if typing.get_origin(union) is typing.Annotated else ()
    return {typing.get_args(m.model_fields["type"].annotation)[0] for m in members}


def test_the_request_body_is_a_discriminated_union_of_every_library_request_type() -> None:
    body = OPERATION["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/ChatKitRequest"}
    union = SCHEMAS["ChatKitRequest"]
    assert union["discriminator"]["propertyName"] == "type"
    assert set(union["discriminator"]["mapping"]) == _tags(ChatKitReq)
    assert len(union["oneOf"]) == len(_tags(ChatKitReq)) == 16
    for ref in union["oneOf"]:
        member = SCHEMAS[ref["$ref"].rsplit("/", 1)[1]]
        assert "type" in member["required"] and "params" in member["properties"], ref


def test_the_event_union_covers_every_library_event_and_is_the_streams_item_schema() -> None:
    union = SCHEMAS["ChatKitEvent"]
    assert set(union["discriminator"]["mapping"]) == _tags(ThreadStreamEvent)
    assert len(union["oneOf"]) == 12
    stream = OPERATION["responses"]["200"]["content"]["text/event-stream"]
    data = stream["x-item-schema"]["properties"]["data"]
    assert data["contentMediaType"] == "application/json"
    assert data["contentSchema"] == {"$ref": "#/components/schemas/ChatKitEvent"}


def test_the_spec_is_valid_openapi_3_1_and_why_the_item_schema_is_an_extension() -> None:
    """The document validates against the OpenAPI 3.1 meta-schema (the one schemathesis ships); the
    same document with OpenAPI 3.2's `itemSchema` key would not, and openapi-python-client reads no
    3.2 document: hence `x-item-schema` (docs/self-hosted-mode.md, "The ChatKit protocol in the spec")."""
    from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

    assert SPEC["openapi"] == "3.1.0"
    assert [str(e) for e in OPENAPI_31_VALIDATOR.iter_errors(SPEC)] == []
    stream = SPEC["paths"]["/chatkit"]["post"]["responses"]["200"]["content"]["text/event-stream"]
    as_32 = copy.deepcopy(SPEC)
    media = as_32["paths"]["/chatkit"]["post"]["responses"]["200"]["content"]["text/event-stream"]
    media["itemSchema"] = media.pop("x-item-schema")
    assert any("itemSchema" in str(e) for e in OPENAPI_31_VALIDATOR.iter_errors(as_32))
    assert "x-item-schema" in stream


def test_every_request_type_has_exactly_one_documented_answer() -> None:
    answers = OPERATION["x-chatkit-answers"]
    assert set(answers) == _tags(ChatKitReq)
    assert set(streaming_types()) == set(STREAMING_TYPES), "the controller's streaming types are the library's"
    for kind in streaming_types():
        assert answers[kind] == {"text/event-stream": {"$ref": "#/components/schemas/ChatKitEvent"}}
    expected = {
        "threads.get_by_id": "ChatKitThread",
        "threads.update": "ChatKitThread",
        "threads.list": "ChatKitPage_Thread_",
        "items.list": "ChatKitPage_ThreadItem_",
        "input.transcribe": "ChatKitTranscriptionResult",
        "threads.sync_custom_action": "ChatKitSyncCustomActionResponse",
        "items.feedback": "ChatKitEmptyAnswer",
        "attachments.delete": "ChatKitEmptyAnswer",
        "threads.delete": "ChatKitEmptyAnswer",
    }
    for kind in non_streaming_types():
        (schema,) = answers[kind].values()
        if kind == "attachments.create":
            assert {r["$ref"] for r in schema["oneOf"]} == {
                "#/components/schemas/ChatKitFileAttachment",
                "#/components/schemas/ChatKitImageAttachment",
            }
        else:
            assert schema == {"$ref": f"#/components/schemas/{expected[kind]}"}, kind


def test_taskpilots_extensions_headers_and_problems_are_in_the_spec() -> None:
    headers = {p["name"]: p for p in OPERATION["parameters"] if p["in"] == "header"}
    assert {"Time-Zone", "ChatKit-Client-Tools"} <= set(headers)
    assert not any(h["required"] for h in headers.values()), "a stock client sends neither"
    assert OPERATION["x-client-tool-results"] == {"get_time_zone": {"$ref": "#/components/schemas/TimeZoneToolResult"}}
    assert SCHEMAS["TimeZoneToolResult"]["required"] == ["time_zone"]
    actions = SCHEMAS[OPERATION["x-widget-actions"]["$ref"].rsplit("/", 1)[1]]
    assert set(actions["discriminator"]["mapping"]) == {
        "task.complete",
        "task.reopen",
        "task.delete",
        "task.delete.confirm",
        "task.delete.cancel",
        "task.edit",
        "task.edit.save",
        "task.edit.cancel",
    }
    assert set(SCHEMAS["TaskEditForm"]["properties"]) >= {"id", "title", "due_date", "priority"}
    for status in ("400", "401", "404", "409", "413", "429", "503"):
        content = OPERATION["responses"][status]["content"]
        assert content == {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


# ---- the checker catches what it must: a live exchange, then mutated -------------------------------


@pytest.fixture
async def chat(live_servers: ServerPool) -> AsyncIterator[ChatKitClient]:
    # The run's shared default server (the offline model answers these few requests), as a user of its own.
    server = live_servers.get()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        yield ChatKitClient(http, token(unique_user("contract")))


async def test_a_live_stream_and_answer_pass_and_each_mutation_is_caught(chat: ChatKitClient) -> None:
    before = contract.TALLY.counts["SSE frames valid"]
    created = await chat.create_thread("add a task to buy milk tomorrow")
    assert created.status == 200 and created.raw_frames
    assert contract.TALLY.counts["SSE frames valid"] - before == len(created.raw_frames), "every frame was checked"
    for frame in created.raw_frames:
        assert contract.check_event(frame) == []

    event = json.loads(created.raw_frames[0])
    assert event["type"] == "thread.created"
    missing = copy.deepcopy(event)
    del missing["thread"]["id"]
    assert any("'id' is a required property" in p for p in contract.check_event(json.dumps(missing)))
    wrong_type = copy.deepcopy(event)
    wrong_type["thread"]["created_at"] = 1700000000
    assert any("created_at" in p for p in contract.check_event(json.dumps(wrong_type)))
    unknown = {**event, "type": "thread.exploded"}
    assert contract.check_event(json.dumps(unknown))

    listed = await chat.request("threads.list", {"limit": 5})
    assert listed.status == 200 and contract.check_answer("threads.list", listed.body) == []
    broken = {**listed.body, "has_more": "no"}
    assert any("has_more" in p for p in contract.check_answer("threads.list", broken))
    assert contract.check_answer("threads.delete", listed.body), "threads.delete answers {} only"


def test_a_mutated_request_is_caught() -> None:
    request = {"type": "threads.list", "params": {"limit": 5, "order": "desc"}}
    assert contract.check_request(request) == []
    assert contract.check_request({**request, "params": {"limit": "five"}})
    assert contract.check_request({"type": "threads.get_by_id", "params": {}}), "thread_id is required"
    assert contract.check_request({"params": {}}), "type is the discriminator: required"
    assert contract.check_request({"type": "threads.nope", "params": {}})


def test_widget_actions_are_checked_against_x_widget_actions() -> None:
    task = "0193a0d2-6c1e-7b8a-9f00-000000000001"
    assert contract.check_widget_action({"type": "task.complete", "payload": {"id": task}}) == []
    save = {"type": "task.edit.save", "payload": {"id": task, "title": "Buy oat milk", "due_date": ""}}
    assert contract.check_widget_action(save) == []
    assert contract.check_widget_action({"type": "task.complete", "payload": {"id": "7"}})
    assert contract.check_widget_action({"type": "task.complete", "payload": {}}), "id is required"
    assert contract.check_widget_action({**save, "payload": {**save["payload"], "due_date": 5}})
    assert contract.check_widget_action({"type": "someone.elses", "payload": None}) is None, "not TaskPilot's"


async def test_the_hook_fails_an_exchange_whose_frame_breaks_the_spec(chat: ChatKitClient) -> None:
    """The httpx hook over a real answer whose second frame is mutated in flight: the test that read
    it gets a ContractViolation, and the violation is recorded (its teardown would fail too)."""
    real = await chat.create_thread("hello")
    frames = real.raw_frames
    assert len(frames) >= 2
    mutated = json.loads(frames[1])
    mutated.pop("type")
    body = "".join(f"data: {f}\n\n" for f in [frames[0], json.dumps(mutated), *frames[2:]]).encode()

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    # The mutated bytes are replayed by a transport; the hook under test is the real one.
    before = len(contract.TALLY.violations)
    async with httpx.AsyncClient(base_url="http://replay", transport=httpx.MockTransport(answer)) as replay:
        with pytest.raises(contract.ContractViolation, match="SSE frame"):
            await ChatKitClient(replay, "token").create_thread("hello")
    assert len(contract.TALLY.violations) == before + 1
    del contract.TALLY.violations[before:]  # caught on purpose: this test must not fail for it

    ok, _ = parse_sse(body.decode())
    assert len(ok) == len(frames)


async def test_the_hook_fails_an_accepted_request_that_breaks_the_spec() -> None:
    def accept(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"content-type": "application/json"}, content=b'{"data":[],"has_more":false}'
        )

    before = len(contract.TALLY.violations)
    async with httpx.AsyncClient(base_url="http://replay", transport=httpx.MockTransport(accept)) as replay:
        with pytest.raises(contract.ContractViolation, match="accepted a request the spec refuses"):
            await replay.post("/chatkit", json={"type": "threads.list", "params": {"limit": "five"}})
        answered = await replay.post("/chatkit", json={"type": "threads.list", "params": {"limit": 5}})
        assert answered.status_code == 200
    assert len(contract.TALLY.violations) == before + 1
    del contract.TALLY.violations[before:]


async def test_tagged_unions_get_the_verdict_draft_2020_12_gives(chat: ChatKitClient) -> None:
    """The checker decides a tagged union (`oneOf`/`anyOf` of `$ref`s with a `const` tag each) by the
    member the instance's tag names, not by trying every member (a task-list widget took 0.6 s of
    CPU that way): every frame of a real turn with a widget, and mutations of its widget deep in
    the tree, get the same verdict from it as from a plain Draft 2020-12 validator."""
    created = await chat.create_thread("add a task to buy milk")
    shown = await chat.send(created.thread_id, "show my tasks")
    frames = [json.loads(frame) for frame in created.raw_frames + shown.raw_frames]
    widget = next(f for f in frames if f["type"] == "thread.item.done" and f["item"]["type"] == "widget")
    schema = contract.answer_validator("threads.create", "text/event-stream")
    assert schema is not None
    plain = Draft202012Validator(
        schema.schema, registry=contract.spec().registry, format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    events = [{"$ref": f"#/components/schemas/{name}"} for name in ("ChatKitThreadCreatedEvent", "ChatKitErrorEvent")]
    assert contract.union_tags(tuple(e["$ref"] for e in events)) == ("type", {"thread.created": 0, "error": 1})

    def changed(change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
        mutated = copy.deepcopy(widget)
        change(mutated)
        return mutated

    def text(frame: dict[str, Any]) -> dict[str, Any]:
        return widget_find(frame["item"]["widget"], "Text")[0]

    # (instance, valid): a component of a known type the widget tree does not require is still a
    # widget component (the spec's dynamic fallback), so not every deep change breaks the frame.
    mutations = [
        (changed(lambda f: text(f).update(type="Title")), True),  # another member's tag, its fields present
        (changed(lambda f: text(f).update(value=7)), True),  # not a Text, still a dynamic component
        (changed(lambda f: text(f).update(type=7)), False),  # no tag at all, and not a component
        (changed(lambda f: text(f).pop("type")), False),
        (changed(lambda f: f["item"].pop("created_at")), False),
        (changed(lambda f: f["item"].update(type="assistant_message")), False),  # its fields missing
        (changed(lambda f: f.update(type="thread.item.exploded")), False),
    ]
    for instance, valid in [*((frame, True) for frame in frames), *mutations]:
        assert schema.is_valid(instance) == plain.is_valid(instance) == valid, instance
