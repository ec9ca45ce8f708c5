"""A non-streamed Responses answer as the openai package builds it, without its per-field walk.

Why: the lean transport builds the `Response` of a non-streamed call (the thread title's, once per
new conversation) as the openai client does, with `openai._models.construct_type`. That walks the
model's ~35 fields in Python: each field's type unwrapped, its default looked up when absent, and
each union-typed value validated through a `TypeAdapter` found by hashing its type. ~0.3 ms of CPU
for the fake's short title answer on the 2-CPU machine (more for the real API's, which sends every
field), where pydantic validates the same document in ~0.08 ms.

When the result is the same. `construct_type` validates every union-typed field's value (pydantic's
own validation, the same schema the model's field has); a value that fails is constructed leniently
instead. The other fields (`NON_UNION_FIELDS`) are taken as they are, a float's exact int made a
float. So for a document whose non-union fields already have their exact JSON type, validating the
whole model gives the same object (fields, extra keys, nested objects; the fields set once the
extra keys are taken out of it, as `construct` leaves them out) when it succeeds; anything else (a
field that fails validation, a lenient server's missing field) goes to `construct_type`.
tests/unit/test_response_json.py pins the equality (on the recorded corpus, and on documents
validation would change) and `NON_UNION_FIELDS` against the model's fields, so an openai upgrade
that adds one fails there.
"""

from __future__ import annotations

from typing import Any, Final, cast

import pydantic
from openai._models import construct_type
from openai.types.responses import Response

# The `Response` fields whose declared type is not a union, and the exact types of a value that
# pydantic's lax validation keeps as it is (as `construct_type` keeps it).
NON_UNION_FIELDS: Final[dict[str, tuple[type, ...]]] = {
    "id": (str,),
    "created_at": (int, float),
    "object": (str,),
    "output": (list,),
    "parallel_tool_calls": (bool,),
    "tools": (list,),
}
_MAX_EXACT_INT: Final = 2**53  # larger ints may not survive `float()`: `construct_type` keeps those as ints


def _plain(value: dict[str, Any]) -> bool:
    """Whether each non-union field present has a type both builders keep unchanged."""
    for name, kinds in NON_UNION_FIELDS.items():
        if name not in value:
            continue
        field = value[name]
        if type(field) not in kinds:
            return False
        if type(field) is int and not -_MAX_EXACT_INT <= field <= _MAX_EXACT_INT:
            return False
    return True


def response(value: object) -> Response:
    """`construct_type(type_=Response, value=value)`: validated when that gives the same object."""
    if type(value) is dict and _plain(value):
        try:
            built = Response.model_validate(value)
        except pydantic.ValidationError:
            pass
        else:
            extra = built.__pydantic_extra__
            if extra:
                # Validation counts the extra keys among the fields set; openai's `construct` does not.
                object.__setattr__(built, "__pydantic_fields_set__", built.__pydantic_fields_set__ - extra.keys())
            return built
    return cast(Response, construct_type(type_=Response, value=value))


__all__ = ["NON_UNION_FIELDS", "response"]
