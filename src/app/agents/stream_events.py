"""Responses stream events from their JSON: one rule for both model transports.

The stock path (`providers.ResponsesClient`) builds every event with `parse_stream_event`; the
lean one (`transport`) all but the per-token deltas, so the two hand the SDK the same objects.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Union, cast, get_args, get_origin

from openai._models import construct_type
from openai.types.responses import ResponseStreamEvent
from pydantic import Field, TypeAdapter, ValidationError


def _stream_event_members() -> tuple[type[Any], ...]:
    union = get_args(ResponseStreamEvent)[0] if get_origin(ResponseStreamEvent) is Annotated else ResponseStreamEvent
    return get_args(union)


@cache
def _tagged_stream_events() -> TypeAdapter[Any]:
    """`ResponseStreamEvent` as a union pydantic picks the member of by its `type` tag.

    Built on first use, not at import: it is about a tenth of importing the app (every worker
    start pays it), and a worker on the offline model never needs it."""
    tagged: Any = Annotated[Union[_stream_event_members()], Field(discriminator="type")]  # noqa: UP007 (runtime tuple)
    return TypeAdapter(tagged)


# Each member by its `type` tag, for events a lenient server sends without a field the SDK's types
# require (an OpenAI-compatible server, or an older API version: `logprobs` on text events,
# `usage.input_tokens_details.cache_write_tokens`).
_STREAM_EVENT_BY_TAG: dict[str, type[Any]] = {
    tag: member
    for member in _stream_event_members()
    for tag in get_args(member.model_fields["type"].annotation)
    if isinstance(tag, str)
}


def tagged_stream_event(data: dict[str, Any]) -> Any | None:
    """The event of `data`'s `type` tag, validated; built unvalidated when a field is missing
    or malformed; None for a type this SDK does not know."""
    try:
        return _tagged_stream_events().validate_python(data)
    except ValidationError:
        member = _STREAM_EVENT_BY_TAG.get(data.get("type"))  # type: ignore[arg-type]
        if member is not None:
            return construct_type(type_=member, value=_with_annotations(data))
    return None


def _with_annotations(value: Any) -> Any:
    """`value` with `annotations: []` on each `output_text` part that has none.

    Why: OpenAI-compatible servers (the lenient_server golden case) leave out the annotations of a
    text part; ChatKit iterates them when the part is done, and a missing list failed the turn.
    """
    if isinstance(value, dict):
        fixed = {k: _with_annotations(v) for k, v in value.items()}
        if fixed.get("type") == "output_text" and fixed.get("annotations") is None:
            fixed["annotations"] = []
        return fixed
    if isinstance(value, list):
        return [_with_annotations(v) for v in value]
    return value


def parse_stream_event(data: dict[str, Any]) -> ResponseStreamEvent:
    """One Responses stream event from its JSON, as the stock path (`ResponsesClient`) builds it:
    the lean transport builds its events other than deltas with this, so both agree."""
    event = tagged_stream_event(data)
    if event is None:
        # What the openai client builds for a type it does not know (non-strict: unvalidated).
        event = construct_type(type_=ResponseStreamEvent, value=data)
    return cast(ResponseStreamEvent, event)
