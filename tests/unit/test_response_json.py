"""`app.agents.response_json`: a non-streamed `Response` as `openai._models.construct_type` builds
it. Each test expects what the library's own function gives for the same document: an equal model,
the same classes all the way down, the same fields set and the same extra keys."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pydantic
import pytest
from openai._models import construct_type
from openai._utils import is_union
from openai.types.responses import Response

from app.agents import response_json

CORPUS = Path(__file__).parents[1] / "data" / "model_streams"


def _corpus_responses() -> list[tuple[str, dict[str, Any]]]:
    """Every response object of the recorded Responses streams (created, completed, failed, ...)."""
    found: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(CORPUS.glob("*/*.sse")):
        for line in path.read_text().splitlines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data.startswith("[DONE]"):
                continue
            event = json.loads(data)
            if isinstance(event.get("response"), dict):
                found.append((f"{path.parent.name}/{path.name}:{event['type']}", event["response"]))
    return found


def _title_answer() -> dict[str, Any]:
    """A title's answer as bench/fake_upstream.py sends it."""
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 1765100000,
        "model": "gpt-5-mini",
        "status": "completed",
        "output": [
            {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": "Planning the week", "annotations": [], "logprobs": []}],
            }
        ],
        "parallel_tool_calls": False,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": 200,
            "output_tokens": 60,
            "total_tokens": 260,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
    }


def _full_response() -> dict[str, Any]:
    """A title's answer as OpenAI's API sends it: every field, most of them set, and one it may add."""
    document = _title_answer()
    document.update(
        background=False,
        error=None,
        incomplete_details=None,
        instructions="Write a short thread title",
        max_output_tokens=None,
        max_tool_calls=None,
        metadata={},
        previous_response_id=None,
        prompt_cache_key=None,
        reasoning={"effort": "minimal", "summary": None},
        safety_identifier=None,
        service_tier="default",
        store=True,
        temperature=1.0,
        text={"format": {"type": "text"}, "verbosity": "medium"},
        top_logprobs=0,
        top_p=1.0,
        truncation="disabled",
        user=None,
        a_field_openai_added_later={"nested": [1, 2]},
    )
    return document


def _broken(document: dict[str, Any], **changes: Any) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    changed.update(changes)
    return changed


BASE = _full_response()
DOCUMENTS: list[tuple[str, Any]] = [
    ("fake title answer", _title_answer()),
    ("full answer", BASE),
    *_corpus_responses(),
    # What validation would change or reject: each must come out as `construct_type` makes it.
    ("created_at as text", _broken(BASE, created_at="1765100000")),
    ("created_at a huge int", _broken(BASE, created_at=2**60 + 1)),
    ("created_at a bool", _broken(BASE, created_at=True)),
    ("parallel_tool_calls as 1", _broken(BASE, parallel_tool_calls=1)),
    ("parallel_tool_calls null", _broken(BASE, parallel_tool_calls=None)),
    ("id a number", _broken(BASE, id=7)),
    ("object not response", _broken(BASE, object="chat.completion")),
    ("output null", _broken(BASE, output=None)),
    ("usage missing its details", _broken(BASE, usage={"input_tokens": 1, "output_tokens": 2, "total_tokens": 3})),
    ("an output item missing its role", _broken(BASE, output=[{"id": "m", "type": "message", "content": []}])),
    ("an unknown output item", _broken(BASE, output=[{"id": "x", "type": "something_new", "data": 1}])),
    ("status unknown", _broken(BASE, status="paused")),
    ("usage null", _broken(BASE, usage=None)),
    ("model missing", {k: v for k, v in BASE.items() if k != "model"}),
    ("empty", {}),
    ("not a dict", ["a", "list"]),
]


def _tree(value: Any) -> Any:
    """`value` with every model's class, fields set and extra keys, to compare more than `==` does."""
    if isinstance(value, pydantic.BaseModel):
        return (
            type(value),
            sorted(value.model_fields_set),
            {k: _tree(v) for k, v in value.__dict__.items()},
            {k: _tree(v) for k, v in (value.__pydantic_extra__ or {}).items()},
            value.__pydantic_private__,
        )
    if isinstance(value, dict):
        return (type(value), {k: _tree(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return (type(value), [_tree(v) for v in value])
    return (type(value), value)


@pytest.mark.parametrize(("name", "document"), DOCUMENTS, ids=[name for name, _ in DOCUMENTS])
def test_the_response_is_the_one_construct_type_builds(name: str, document: Any) -> None:
    expected = construct_type(type_=Response, value=copy.deepcopy(document))
    got = response_json.response(copy.deepcopy(document))
    assert got == expected
    assert _tree(got) == _tree(expected)
    if isinstance(got, Response):
        got._request_id = "req_1"
        expected._request_id = "req_1"
        assert got._request_id == expected._request_id
        # (pydantic warns while dumping the broken documents' mistyped values: that is the library's
        # object too, and the dump is compared, not judged)
        assert got.model_dump(warnings=False) == expected.model_dump(warnings=False)


def test_the_corpus_and_the_full_answer_take_the_validated_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cheap path is the one taken for well-formed answers (else the module saves nothing)."""
    monkeypatch.setattr(response_json, "construct_type", _fail)
    for document in (BASE, _title_answer()):
        response_json.response(document)


def _fail(**_: Any) -> Any:
    raise AssertionError("construct_type was called")


def test_the_non_union_fields_are_the_ones_the_module_checks() -> None:
    """`construct_type` keeps a non-union field's value as it is; validation may coerce it. An openai
    release that adds one (or makes a field a union) must be reviewed in `response_json`."""
    non_union = set()
    for name, field in Response.model_fields.items():
        annotation = field.annotation
        origin = getattr(annotation, "__origin__", None) or annotation
        if not is_union(origin):
            non_union.add(name)
    assert non_union == set(response_json.NON_UNION_FIELDS)


def test_no_field_has_a_default_other_than_none_nor_an_alias() -> None:
    """`construct_type` gives a field sent as null its default; validation gives None. Equal while
    every default is None; and it reads fields by alias, which none has."""
    for name, field in Response.model_fields.items():
        assert field.alias is None, name
        if not field.is_required():
            assert field.get_default() is None, name
