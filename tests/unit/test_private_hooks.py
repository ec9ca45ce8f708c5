"""The libraries' private methods TaskPilot overrides or calls, pinned by signature.

A private method may change in any release, patch releases included, and an override of one
whose signature moved fails far from the cause (a stream that stops, a retry that never
happens, a repository that no longer confines reads to its user). Each test below imports the
symbol and checks its parameters and whether it is a coroutine or an async generator; when one
fails, its message names the library, its installed version, and what to review before
updating the pin (and the upper bound in pyproject.toml).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
from dataclasses import dataclass
from typing import Any, Literal

import pytest

Flavour = Literal["sync", "coroutine", "async generator"]


@dataclass(frozen=True)
class Hook:
    distribution: str
    owner: str  # "module:Class"
    name: str
    parameters: tuple[str, ...]  # names, keyword-only ones after a "*"
    flavour: Flavour
    used_by: str

    @property
    def id(self) -> str:
        return f"{self.owner.split(':')[1]}.{self.name}"


# The parameters of the SDK Responses model's request methods the lean transport overrides and calls.
_RESPONSES_MODEL_REQUEST = (
    "self",
    "system_instructions",
    "input",
    "model_settings",
    "tools",
    "output_schema",
    "handoffs",
    "previous_response_id",
    "conversation_id",
    "stream",
    "prompt",
)


HOOKS = [
    # ChatKit: the server's request path (TaskPilotChatKitServer).
    Hook(
        "openai-chatkit",
        "chatkit.server:ChatKitServer",
        "_process_streaming_impl",
        ("self", "request", "context"),
        "async generator",
        "TaskPilotChatKitServer overrides it (the turn's events, partial answers, limit notices)",
    ),
    Hook(
        "openai-chatkit",
        "chatkit.server:ChatKitServer",
        "_process_streaming",
        ("self", "request", "context"),
        "async generator",
        "TaskPilotChatKitServer.process calls it with a request it already parsed",
    ),
    Hook(
        "openai-chatkit",
        "chatkit.server:ChatKitServer",
        "_process_non_streaming",
        ("self", "request", "context"),
        "coroutine",
        "TaskPilotChatKitServer.process calls it with a request it already parsed",
    ),
    Hook(
        "openai-chatkit",
        "chatkit.server:ChatKitServer",
        "_serialize",
        ("self", "obj"),
        "sync",
        "TaskPilotChatKitServer frames its own events as the library frames them",
    ),
    # openai: the clients of hosted sessions (services) and of the model provider (agents).
    Hook(
        "openai",
        "openai:AsyncOpenAI",
        "_should_retry",
        ("self", "response"),
        "sync",
        "the hosted-sessions client overrides it (no retry of a 429: Retry-After goes to the browser)",
    ),
    Hook(
        "openai",
        "openai:AsyncOpenAI",
        "_sleep_for_retry",
        ("self", "*", "retries_taken", "max_retries", "options", "response"),
        "coroutine",
        "ResponsesClient overrides it (a retry is announced to the waiting turn)",
    ),
    Hook(
        "openai",
        "openai:AsyncOpenAI",
        "_process_response_data",
        ("self", "*", "data", "cast_to", "response"),
        "sync",
        "ResponsesClient overrides it (stream events parsed by their tag)",
    ),
    Hook(
        "openai",
        "openai:AsyncOpenAI",
        "_calculate_retry_timeout",
        ("self", "remaining_retries", "options", "response_headers"),
        "sync",
        "ResponsesClient._sleep_for_retry calls it to say how long the retry waits",
    ),
    # Agents SDK: the lean transport (app.agents.transport) replaces only the Responses model's
    # transport, at the seam the SDK's own websocket model overrides.
    Hook(
        "openai-agents",
        "agents.models.openai_responses:OpenAIResponsesModel",
        "_fetch_response",
        _RESPONSES_MODEL_REQUEST,
        "coroutine",
        "LeanResponsesModel overrides it (the request sent by our transport, not the openai client)",
    ),
    Hook(
        "openai-agents",
        "agents.models.openai_responses:OpenAIResponsesModel",
        "_build_response_create_kwargs",
        _RESPONSES_MODEL_REQUEST,
        "sync",
        "LeanResponsesModel calls it: the request body is the SDK's own",
    ),
    Hook(
        "openai-agents",
        "agents.models.openai_responses:_ResponseStreamWithRequestId",
        "__init__",
        ("self", "stream", "*", "request_id", "cleanup"),
        "sync",
        "LeanResponsesModel wraps its events in it (request id, usage accounting, one close)",
    ),
    Hook(
        "openai-agents",
        "agents.models.openai_chatcompletions:OpenAIChatCompletionsModel",
        "_get_client",
        ("self",),
        "sync",
        "LeanChatCompletionsModel overrides it (`chat.completions.create` sent by our transport)",
    ),
    # Advanced Alchemy: every read of a TaskRepository goes through it (user isolation).
    Hook(
        "advanced-alchemy",
        "advanced_alchemy.repository:SQLAlchemyAsyncRepository",
        "_execute",
        ("self", "statement", "uniquify"),
        "coroutine",
        "TaskRepository overrides it to confine every read to its user",
    ),
]


def _parameters(function: Any) -> tuple[str, ...]:
    names: list[str] = []
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY and "*" not in names:
            names.append("*")
        names.append(parameter.name)
    return tuple(names)


def _flavour(function: Any) -> Flavour:
    if inspect.isasyncgenfunction(function):
        return "async generator"
    if inspect.iscoroutinefunction(function):
        return "coroutine"
    return "sync"


@pytest.mark.parametrize("hook", HOOKS, ids=lambda hook: hook.id)
def test_a_private_hook_we_rely_on_keeps_its_signature(hook: Hook) -> None:
    version = importlib.metadata.version(hook.distribution)
    module_name, class_name = hook.owner.split(":")
    owner = getattr(importlib.import_module(module_name), class_name)
    function = getattr(owner, hook.name, None)
    where = f"{hook.distribution} {version}: {class_name}.{hook.name}"
    advice = (
        f"TaskPilot relies on it ({hook.used_by}): review that code against {hook.distribution} {version}, "
        "then update this pin and the upper bound in pyproject.toml."
    )
    assert function is not None, f"{where} no longer exists. {advice}"
    assert _parameters(function) == hook.parameters, (
        f"{where} now takes {_parameters(function)}, not {hook.parameters}. {advice}"
    )
    assert _flavour(function) == hook.flavour, f"{where} is now a {_flavour(function)}, not a {hook.flavour}. {advice}"


def test_the_chat_resource_keeps_its_client_where_the_plain_body_chat_reads_it() -> None:
    """`ResponsesClient.chat` builds its completions resource from the resource's private `_client`."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(api_key="unused", base_url="http://127.0.0.1:9/v1")
    version = importlib.metadata.version("openai")
    assert getattr(client.chat, "_client", None) is client, (
        f"openai {version}: AsyncChat no longer keeps its client as `_client`; review _PlainBodyChat in the "
        "model providers, then the upper bound in pyproject.toml."
    )


def test_the_chat_completions_model_sends_through_the_client_it_gets() -> None:
    """`LeanChatCompletionsModel` replaces only the client `_fetch_response` sends with: that method
    must still send through `self._get_client().chat.completions.create`, not its own client."""
    from agents.models.openai_chatcompletions import OpenAIChatCompletionsModel

    version = importlib.metadata.version("openai-agents")
    source = inspect.getsource(OpenAIChatCompletionsModel._fetch_response)
    assert "self._get_client().chat.completions.create(" in source, (
        f"openai-agents {version}: OpenAIChatCompletionsModel._fetch_response no longer sends with "
        "`self._get_client().chat.completions.create`; review app.agents.chat_transport."
    )


def test_field_get_default_is_still_there() -> None:
    """`app.agents.chat_transport` fills a chunk's missing fields as openai's `construct` does."""
    from openai._compat import field_get_default

    version = importlib.metadata.version("openai")
    assert tuple(inspect.signature(field_get_default).parameters) == ("field",), (
        f"openai {version}: openai._compat.field_get_default changed; review app.agents.chat_transport."
    )


def test_construct_type_keeps_its_keywords() -> None:
    """`ResponsesClient` builds a stream event that fails validation with `openai._models.construct_type`;
    `app.agents.response_json` builds a non-streamed response with it when validation would differ."""
    from openai._models import construct_type

    version = importlib.metadata.version("openai")
    assert {"value", "type_"} <= set(inspect.signature(construct_type).parameters), (
        f"openai {version}: openai._models.construct_type no longer takes value= and type_=; review "
        "ResponsesClient._process_response_data and app.agents.response_json, then the upper bound in pyproject.toml."
    )


@pytest.mark.parametrize(
    ("module_name", "name", "parameters"),
    [
        ("agents.models.openai_responses", "_mark_transport_request_without_usage", ("response",)),
        ("agents.models._retry_runtime", "should_disable_provider_managed_retries", ()),
        ("agents.models._response_terminal", "response_terminal_failure_error", ("event_type", "response")),
        ("agents.run_internal.tool_execution", "_FunctionToolBatchExecutor", None),
    ],
)
def test_the_agents_sdk_functions_the_lean_transport_calls_are_still_there(
    module_name: str, name: str, parameters: tuple[str, ...] | None
) -> None:
    """`app.agents.transport` calls these private functions of the Agents SDK as its own Responses
    model does (the golden test of the transports patches `_FunctionToolBatchExecutor`)."""
    version = importlib.metadata.version("openai-agents")
    function = getattr(importlib.import_module(module_name), name, None)
    assert function is not None, f"openai-agents {version}: {module_name}.{name} is gone; review app.agents.transport."
    if parameters is not None:
        assert _parameters(function) == parameters, (
            f"openai-agents {version}: {module_name}.{name} now takes {_parameters(function)}; "
            "review app.agents.transport."
        )
