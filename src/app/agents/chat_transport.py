"""The lean model transport for Chat Completions (`MODEL_PROVIDER=openai-compatible`, `MODEL_TRANSPORT=lean`).

The Responses half (`app.agents.transport`) explains why. This is the same for the Agents SDK's
`OpenAIChatCompletionsModel`: `LeanChatCompletionsModel` is that model with only the client it
sends with replaced (`_get_client`: the SDK builds the request's keyword arguments inline in
`_fetch_response` and hands them to `client.chat.completions.create`, so that call is the seam;
replacing `_fetch_response` would copy the SDK's request building). Everything around it stays the
SDK's: the messages and tools it converts, its stream handler (`ChatCmplStreamHandler`), spans,
usage. Ours: the request sent by `Transport` (its retry loop, notices and the openai package's
exceptions), the server-sent events split by its parser and decoded by msgspec, and each chunk
built as the openai client builds it (non-strict: `construct_type`, which tolerates the fields
lenient servers leave out) without its per-field type walk where a value needs none (`chunk`).
"""

from __future__ import annotations

import types
import typing
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, Final, Literal, cast

import openai
import pydantic
from agents.models.openai_chatcompletions import OpenAIChatCompletionsModel
from openai._compat import field_get_default
from openai._models import construct_type
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from app.agents.transport import Answer, Transport, json_body, sse_payloads

# ---- chunks, built as the openai client builds them ---------------------------------------------

_SCALAR, _MODEL, _MODELS, _OTHER = range(4)


def _scalar_types(annotation: Any) -> tuple[type, ...] | None:
    """The value types openai's construction keeps unchanged for a field of `annotation` (a string,
    a string literal, an int or a bool, optional or not); None when it may convert the value."""
    members = typing.get_args(annotation) if _is_union(annotation) else (annotation,)
    members = tuple(m for m in members if m is not type(None))
    if len(members) != 1:
        return None
    (member,) = members
    if member in (str, int, bool):
        return (member,)
    if typing.get_origin(member) is Literal and all(isinstance(a, str) for a in typing.get_args(member)):
        return (str,)
    return None


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


class _Builder:
    """`construct_type(type_=model, value=data)` for one openai model class, field by field: the
    walk (`_construct_field`) kept for a value that needs it, skipped where its answer is known
    (None: the field's default; a string, int or bool for a field of that type: the value itself; a
    required nested model or list of them: built the same way, recursively)."""

    _built: dict[type, _Builder] = {}

    @classmethod
    def of(cls, model: type[pydantic.BaseModel]) -> _Builder:
        builder = cls._built.get(model)
        if builder is None:
            builder = cls._built[model] = cls(model)
        return builder

    def __init__(self, model: type[pydantic.BaseModel]) -> None:
        self.model = model
        self.defaults: dict[str, Any] = {}
        self.fields: dict[str, tuple[int, Any, Any, Any]] = {}  # name: (kind, detail, annotation, metadata)
        for name, field in model.model_fields.items():
            if field.alias not in (None, name):
                raise TypeError(f"{model.__name__}.{name} has an alias")  # (none of the chunk's models has)
            default = field_get_default(field)
            if default is not None and not isinstance(default, str | int | float | bool):
                raise TypeError(f"{model.__name__}.{name} has a mutable default")
            self.defaults[name] = default
            annotation = field.annotation
            kind: int = _OTHER
            detail: Any = None
            if not field.metadata:
                scalars = _scalar_types(annotation)
                origin = typing.get_origin(annotation)
                args = typing.get_args(annotation)
                if scalars is not None:
                    kind, detail = _SCALAR, scalars
                elif isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
                    kind, detail = _MODEL, annotation
                elif (
                    origin is list
                    and len(args) == 1
                    and isinstance(args[0], type)
                    and issubclass(args[0], pydantic.BaseModel)
                ):
                    kind, detail = _MODELS, args[0]
            self.fields[name] = (kind, detail, annotation, field.metadata)

    def build(self, data: dict[str, Any]) -> Any:
        values = dict(self.defaults)
        fields_set: set[str] = set()
        extra: dict[str, Any] = {}
        fields = self.fields
        for key, value in data.items():
            field = fields.get(key)
            if field is None:
                extra[key] = value  # openai's models allow extra fields, kept as they came
                continue
            fields_set.add(key)
            if value is None:
                continue  # the default
            kind, detail, annotation, metadata = field
            if kind == _SCALAR and type(value) in detail:
                values[key] = value
            elif kind == _MODEL and type(value) is dict:
                values[key] = _Builder.of(detail).build(value)
            elif kind == _MODELS and type(value) is list and all(type(entry) is dict for entry in value):
                builder = _Builder.of(detail)
                values[key] = [builder.build(entry) for entry in value]
            else:
                values[key] = construct_type(value=value, type_=annotation, metadata=metadata)
        # As openai's `BaseModel.construct` finishes a model (pydantic's own `model_construct` steps).
        built = self.model.__new__(self.model)
        object.__setattr__(built, "__dict__", values)
        object.__setattr__(built, "__pydantic_private__", None)
        object.__setattr__(built, "__pydantic_extra__", extra)
        object.__setattr__(built, "__pydantic_fields_set__", fields_set)
        return built


_build_chunk: Final[Callable[[dict[str, Any]], Any]] = _Builder.of(ChatCompletionChunk).build


def chunk(data: Any) -> ChatCompletionChunk:
    """One streamed chunk from its decoded JSON, as the openai client (non-strict) builds it."""
    if type(data) is dict:
        return cast(ChatCompletionChunk, _build_chunk(data))
    return cast(ChatCompletionChunk, construct_type(type_=ChatCompletionChunk, value=data))


# ---- the model --------------------------------------------------------------------------------


class ChunkStream:
    """A streamed answer's chunks, as the SDK's model reads the openai client's `AsyncStream`:
    iterated, its HTTP `response` read for the request id, closed once done."""

    def __init__(self, response: Answer) -> None:
        self.response = response
        self._chunks: AsyncGenerator[ChatCompletionChunk] = sse_payloads(response, chunk)

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        return self._chunks

    async def aclose(self) -> None:
        try:
            await self._chunks.aclose()
        finally:
            await self.response.aclose()


class _Completions:
    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    async def create(self, **create_kwargs: Any) -> ChatCompletion | ChunkStream:
        """What `client.chat.completions.create(**create_kwargs)` answers, sent by the transport."""
        stream = create_kwargs.get("stream") is True
        response = await self.transport.send("/chat/completions", create_kwargs, stream=stream)
        if stream:
            return ChunkStream(response)
        request_id = response.headers.get("x-request-id")
        completion = cast(ChatCompletion, construct_type(type_=ChatCompletion, value=await json_body(response)))
        completion._request_id = request_id
        return completion


class _Chat:
    def __init__(self, transport: Transport) -> None:
        self.completions = _Completions(transport)


class LeanChatClient:
    """What the SDK's Chat Completions model asks of its client (`_get_client()`): the base URL (is
    the endpoint OpenAI's own? That decides `store` and `stream_options`) and `chat.completions.create`."""

    def __init__(self, base_url: Any, transport: Transport) -> None:
        self.base_url = base_url
        self.chat = _Chat(transport)


class LeanChatCompletionsModel(OpenAIChatCompletionsModel):
    """The SDK's Chat Completions model, its requests sent by `Transport` (see the module's docstring).

    `openai_client` is still given: the SDK converts the messages with its base URL and checks it
    for OpenAI's own endpoint; it sends nothing.
    """

    def __init__(self, model: str, openai_client: openai.AsyncOpenAI, transport: Transport) -> None:
        super().__init__(model, openai_client)
        self.transport = transport
        self._lean_client = LeanChatClient(openai_client.base_url, transport)

    def _get_client(self) -> openai.AsyncOpenAI:
        # (The SDK's own turns retries off here when the runner manages them; `Transport.send` does.)
        return cast(openai.AsyncOpenAI, self._lean_client)
