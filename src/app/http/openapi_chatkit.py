"""The ChatKit protocol in the OpenAPI document, generated from the types the server validates with.

`POST /chatkit` speaks ChatKit's own protocol, whose types are the openai-chatkit library's pydantic
models: the request union (`ChatKitReq`, the very adapter `app.agents.server` parses bodies with),
each non-streaming request's JSON answer and the stream's event union (`ThreadStreamEvent`). Their
JSON Schemas come from pydantic (`TypeAdapter.json_schemas`, Draft 2020-12, which OpenAPI 3.1
uses), never written by hand, and are hoisted into `components.schemas` with a `ChatKit` prefix so
no library name can clash with one of TaskPilot's msgspec contracts. TaskPilot's own extensions
(its widgets' action payloads, the results of its client tools) are generated the same way from
the pydantic models the server validates them with.

OpenAPI 3.1 cannot describe the items of a `text/event-stream`; OpenAPI 3.2's media type
`itemSchema` does (each item an SSE event whose `data` is JSON). The document stays 3.1.0 (the
client generators here accept no 3.2 document), so the event union is given under the documented
extension `x-item-schema`, with exactly 3.2's `itemSchema` meaning.
"""

from __future__ import annotations

import copy
import typing
import warnings
from dataclasses import dataclass
from functools import cache
from typing import Any

from chatkit.types import Attachment as ChatKitAttachment
from chatkit.types import (
    AttachmentsCreateReq,
    InputTranscribeReq,
    ItemsListReq,
    NonStreamingReq,
    StreamingReq,
    SyncCustomActionResponse,
    Thread,
    ThreadItem,
    ThreadsGetByIdReq,
    ThreadsListReq,
    ThreadsSyncCustomActionReq,
    ThreadStreamEvent,
    ThreadsUpdateReq,
    TranscriptionResult,
)
from chatkit.types import Page as ChatKitPage
from litestar.openapi.spec import Components
from pydantic import BaseModel, ConfigDict, TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, PydanticJsonSchemaWarning

from app.agents.server import REQUEST_ADAPTER
from app.agents.time_zone import CLIENT_TOOL_RESULTS
from app.agents.widgets import TASK_WIDGET_ACTION

PREFIX = "ChatKit"
REF = "#/components/schemas/"
# The msgspec envelope the controller routes on (`app.contracts.ChatKitRequest`) is a placeholder
# of the same name: the generated request union replaces it in the document.
REPLACED = frozenset({"ChatKitRequest"})
REQUEST_SCHEMA = "ChatKitRequest"
EVENT_SCHEMA = "ChatKitEvent"
JSON_ANSWER_SCHEMA = "ChatKitJsonAnswer"
EMPTY_ANSWER_SCHEMA = "ChatKitEmptyAnswer"
TASK_ACTION_SCHEMA = "TaskWidgetAction"
ITEM_SCHEMA_KEY = "x-item-schema"
ANSWERS_KEY = "x-chatkit-answers"
CLIENT_TOOLS_KEY = "x-client-tool-results"
WIDGET_ACTIONS_KEY = "x-widget-actions"
CLIENT_TOOLS_HEADER = "ChatKit-Client-Tools"
CLIENT_TOOLS_HEADER_DESCRIPTION = (
    "The client tools this client answers, comma-separated (today only `get_time_zone`). Without it "
    "the assistant calls no client tool: a stock ChatKit client needs no header but Authorization."
)


class EmptyAnswer(BaseModel):
    """The answer of a request that returns nothing: `{}`."""

    model_config = ConfigDict(extra="forbid", title=EMPTY_ANSWER_SCHEMA)


# The JSON answer of every non-streaming request type, as the library serialises it
# (`ChatKitServer._process_non_streaming`); a type missing here is a test failure
# (tests/live/test_openapi_chatkit.py), so a library upgrade cannot add one silently.
JSON_ANSWERS: dict[type[BaseModel], Any] = {
    ThreadsGetByIdReq: Thread,
    ThreadsListReq: ChatKitPage[Thread],
    ItemsListReq: ChatKitPage[ThreadItem],
    AttachmentsCreateReq: ChatKitAttachment,
    InputTranscribeReq: TranscriptionResult,
    ThreadsUpdateReq: Thread,
    ThreadsSyncCustomActionReq: SyncCustomActionResponse,
}


# pydantic names a generic model's definition after its full parameters; a page of the item union
# would be named after every member of it.
SHORT_NAMES = {
    GenerateJsonSchema().normalize_name(ChatKitPage[ThreadItem].__name__): "Page_ThreadItem_",
}


class ExcludeNoneJsonSchema(GenerateJsonSchema):
    """JSON Schemas of what ChatKitServer sends: it dumps every answer and event with
    `exclude_none=True`, so in serialization mode a field is required exactly when its value can
    never be None (a non-null default or none, and a type without null); the others may be absent."""

    def field_is_required(
        self,
        field: Any,  # a pydantic-core model, dataclass or typed-dict field schema
        total: bool,
    ) -> bool:
        if self.mode != "serialization" or field["type"] == "typed-dict-field":
            return super().field_is_required(field, total)
        if field.get("serialization_exclude_if") is not None:
            return False
        schema: Any = field["schema"]
        if schema["type"] == "default":
            if "default" in schema and schema["default"] is None:
                return False
            schema = schema["schema"]
        return bool(schema["type"] != "nullable")


def request_type(model: type[BaseModel]) -> str:
    """The `type` tag of a ChatKit request model (`threads.create`)."""
    (tag,) = typing.get_args(model.model_fields["type"].annotation)
    return str(tag)


def request_models(union: Any) -> list[type[BaseModel]]:
    """The request models of one of the library's request unions (Annotated or not)."""
    args = typing.get_args(union)
    if args and typing.get_origin(union) is typing.Annotated:
        args = typing.get_args(args[0])
    return list(args)


def streaming_types() -> list[str]:
    return [request_type(model) for model in request_models(StreamingReq)]


def non_streaming_types() -> list[str]:
    return [request_type(model) for model in request_models(NonStreamingReq)]


def _prefixed(node: Any, names: dict[str, str]) -> Any:
    """`node` with every `$ref` to a pydantic definition pointing at its prefixed component."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(REF):
                out[key] = REF + names[value[len(REF) :]]
            elif key == "mapping" and isinstance(value, dict):
                out[key] = {tag: REF + names[ref[len(REF) :]] for tag, ref in value.items()}
            else:
                out[key] = _prefixed(value, names)
        return out
    if isinstance(node, list):
        return [_prefixed(item, names) for item in node]
    return node


def _require_discriminators(schemas: dict[str, Any]) -> None:
    """Mark each tagged union's tag as required in its members.

    The library's models give `type` a default (the tag), so pydantic lists it as optional; but
    a tagged union (requests, events) refuses a member without it, and OpenAPI requires the
    discriminator property of every member. Only the `required` list changes."""

    tags: list[tuple[str, str]] = []  # (member, tag property)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            discriminator = node.get("discriminator")
            if isinstance(discriminator, dict) and "mapping" in discriminator:
                tags.extend(
                    (ref[len(REF) :], discriminator["propertyName"]) for ref in discriminator["mapping"].values()
                )
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(schemas)
    for name, prop in tags:
        member = schemas[name]
        if prop in member.get("properties", {}) and prop not in member.get("required", []):
            member["required"] = [prop, *member.get("required", [])]


def _generate(
    inputs: list[tuple[str, JsonSchemaMode, TypeAdapter[Any]]], prefix: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Top-level schemas by key and their hoisted, prefixed definitions."""
    with warnings.catch_warnings():
        # The library's `Action.type` defaults to its TypeVar, which has no JSON form: pydantic
        # leaves that default out, as it should, and says so each time.
        warnings.simplefilter("ignore", PydanticJsonSchemaWarning)
        by_key, top = TypeAdapter.json_schemas(
            inputs, ref_template=REF + "{model}", schema_generator=ExcludeNoneJsonSchema
        )
    definitions = dict(top.get("$defs", {}))
    names = {name: prefix + SHORT_NAMES.get(name, name) for name in definitions}
    schemas = {names[name]: _prefixed(schema, names) for name, schema in definitions.items()}
    # Generators name classes after the title: a model whose request and answer schemas differ is
    # defined twice (`X-Input`, `X-Output`), each needs a title of its own.
    for name in definitions:
        if name in SHORT_NAMES:
            schemas[names[name]]["title"] = SHORT_NAMES[name]
        elif name.endswith(("-Input", "-Output")):
            schemas[names[name]]["title"] = name.replace("-", "")
    keyed = {key[0]: _prefixed(schema, names) for key, schema in by_key.items()}
    return keyed, schemas


@dataclass(frozen=True)
class ChatKitSchemas:
    schemas: dict[str, Any]
    answers: dict[str, Any]  # request type -> {media type: schema}
    request_count: int
    event_count: int


@cache
def chatkit_schemas() -> ChatKitSchemas:
    """The ChatKit section of `components.schemas` and the answer of each request type."""
    answer_models = {request_type(model): answer for model, answer in JSON_ANSWERS.items()}
    library_inputs: list[tuple[str, JsonSchemaMode, TypeAdapter[Any]]] = [
        ("request", "validation", REQUEST_ADAPTER),
        ("event", "serialization", TypeAdapter(ThreadStreamEvent)),
        ("empty", "serialization", TypeAdapter(EmptyAnswer)),
    ]
    library_inputs += [(f"answer:{kind}", "serialization", TypeAdapter(model)) for kind, model in answer_models.items()]
    keyed, schemas = _generate(library_inputs, PREFIX)
    schemas[REQUEST_SCHEMA] = keyed["request"]
    schemas[EVENT_SCHEMA] = keyed["event"]
    _require_discriminators(schemas)

    own_inputs: list[tuple[str, JsonSchemaMode, TypeAdapter[Any]]] = [
        ("action", "validation", TASK_WIDGET_ACTION),
        *((f"tool:{name}", "validation", TypeAdapter(model)) for name, model in CLIENT_TOOL_RESULTS.items()),
    ]
    own_keyed, own = _generate(own_inputs, "")
    own[TASK_ACTION_SCHEMA] = own_keyed["action"]
    _require_discriminators(own)
    clash = set(own) & set(schemas)
    if clash:
        raise RuntimeError(f"TaskPilot's ChatKit extensions clash with ChatKit's schema names: {sorted(clash)}")
    schemas.update(own)

    answers: dict[str, Any] = {}
    json_answers: list[dict[str, str]] = []
    for kind in non_streaming_types():
        schema = keyed[f"answer:{kind}"] if kind in answer_models else keyed["empty"]
        answers[kind] = {"application/json": schema}
        if schema not in json_answers:
            json_answers.append(schema)
    for kind in streaming_types():
        answers[kind] = {"text/event-stream": {"$ref": REF + EVENT_SCHEMA}}
    schemas[JSON_ANSWER_SCHEMA] = {
        "title": JSON_ANSWER_SCHEMA,
        "description": f"The JSON answer of a non-streaming request; which one per request type: `{ANSWERS_KEY}`.",
        "anyOf": json_answers,
    }
    return ChatKitSchemas(
        schemas=schemas,
        answers=answers,
        request_count=len(keyed["request"]["oneOf"]),
        event_count=len(keyed["event"]["oneOf"]),
    )


def client_tool_results() -> dict[str, dict[str, str]]:
    """Each client tool's result schema (`params.result` of threads.add_client_tool_output)."""
    return {name: {"$ref": REF + model.__name__} for name, model in CLIENT_TOOL_RESULTS.items()}


def event_item_schema() -> dict[str, Any]:
    """One item of the event stream, as OpenAPI 3.2's `itemSchema` describes an SSE event."""
    return {
        "type": "object",
        "description": "One server-sent event; `: keepalive` comment lines between events are not events",
        "required": ["data"],
        "properties": {
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": {"$ref": REF + EVENT_SCHEMA},
            }
        },
    }


@dataclass
class ChatKitComponents(Components):
    """`components` with the generated ChatKit schemas beside the ones Litestar generates.

    Litestar sets `schemas` from its registry after reading the configured components, so the
    ChatKit schemas join when the document is serialised (generated then, once per process). A
    name clash with a msgspec contract is an error, except the placeholder they replace."""

    def to_schema(self) -> dict[str, Any]:
        result = super().to_schema()
        generated: dict[str, Any] = result.get("schemas", {})
        chatkit = chatkit_schemas().schemas
        clash = (set(generated) & set(chatkit)) - REPLACED
        if clash:
            raise RuntimeError(f"ChatKit schema names clash with msgspec contracts: {sorted(clash)}")
        merged = {**generated, **copy.deepcopy(chatkit)}
        result["schemas"] = {name: merged[name] for name in sorted(merged)}
        return result
