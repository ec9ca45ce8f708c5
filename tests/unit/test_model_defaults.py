"""`app.agents.model_defaults`: the Agents SDK's `get_default_model_settings`, deep-copied field by
field from a per-name template. Each test expects what the library's own function gives: an equal
`ModelSettings` of the same class, and nothing mutable shared with any other call's answer."""

from __future__ import annotations

import copy
from typing import Any

import agents.run_internal.turn_preparation as turn_preparation
import pytest
from agents.model_settings import ModelSettings
from agents.models import default_models
from pydantic import BaseModel

from app.agents import model_defaults

NAMES = [
    None,
    "gpt-5",
    "gpt-5-2025-08-07",
    "gpt-5-mini",
    "gpt-5.1",
    "gpt-5.2-pro",
    "gpt-5.6-luna",
    "gpt-5-chat-latest",
    "gpt-4o",
    "llama3",
    "",
]


def _tree(value: Any) -> Any:
    """`value` with each object's class, to compare types as well as values."""
    if isinstance(value, BaseModel):
        return (type(value), {k: _tree(v) for k, v in value.__dict__.items()}, sorted(value.model_fields_set))
    if hasattr(value, "__dataclass_fields__"):
        return (type(value), {k: _tree(v) for k, v in vars(value).items()})
    if isinstance(value, dict):
        return (type(value), {k: _tree(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return (type(value), [_tree(v) for v in value])
    return (type(value), value)


def _mutable_ids(value: Any) -> set[int]:
    """The ids of every non-scalar object reachable from `value` (but `value`'s own class)."""
    found: set[int] = set()

    def walk(item: Any) -> None:
        if type(item) in (str, int, float, bool, type(None)) or id(item) in found:
            return
        found.add(id(item))
        if isinstance(item, BaseModel):
            for v in item.__dict__.values():
                walk(v)
        elif hasattr(item, "__dict__"):
            for v in vars(item).values():
                walk(v)
        elif isinstance(item, dict):
            for v in item.values():
                walk(v)
        elif isinstance(item, list | tuple | set):
            for v in item:
                walk(v)

    walk(value)
    return found


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("env", [None, "gpt-5", "gpt-4.1"])
def test_the_settings_are_the_librarys(name: str | None, env: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    if env is None:
        monkeypatch.delenv(default_models.OPENAI_DEFAULT_MODEL_ENV_VARIABLE_NAME, raising=False)
    else:
        monkeypatch.setenv(default_models.OPENAI_DEFAULT_MODEL_ENV_VARIABLE_NAME, env)
    expected = model_defaults._library(name)
    for _ in range(2):  # the first call fills the template, the second copies it
        got = model_defaults.default_model_settings(name)
        assert type(got) is ModelSettings
        assert got == expected
        assert _tree(got) == _tree(expected)


@pytest.mark.parametrize("name", ["gpt-5", "gpt-5-mini", "gpt-4o"])
def test_no_mutable_value_is_shared(name: str) -> None:
    first = model_defaults.default_model_settings(name)
    second = model_defaults.default_model_settings(name)
    template = model_defaults._by_name[name]
    constants = set().union(
        *(_mutable_ids(s) for s in default_models._GPT_5_DEFAULT_MODEL_SETTINGS_BY_REASONING_EFFORT.values()),
        _mutable_ids(default_models._GPT_5_TEXT_ONLY_DEFAULT_MODEL_SETTINGS),
    )
    assert not _mutable_ids(first) & _mutable_ids(second)
    assert not _mutable_ids(first) & (_mutable_ids(template) | constants)
    if first.reasoning is not None:  # a caller changing what it got changes nothing else
        first.reasoning.effort = "high"
        assert model_defaults.default_model_settings(name).reasoning == second.reasoning != first.reasoning


def test_a_shared_value_stays_shared_within_one_copy() -> None:
    """`copy.deepcopy` copies an object reachable twice once (one memo); so does ours."""
    shared = {"k": [1]}
    settings = ModelSettings()
    settings.extra_args = settings.extra_body = shared  # (its constructor copies each)
    ours = model_defaults._deep_copy(settings)
    theirs = copy.deepcopy(settings)
    assert ours == theirs
    assert ours.extra_args is ours.extra_body
    assert theirs.extra_args is theirs.extra_body
    assert ours.extra_args is not shared


def test_model_settings_copies_as_a_plain_dataclass() -> None:
    """`_deep_copy` is `copy.deepcopy` for a class that copies its `__dict__` and nothing else: an SDK
    release giving `ModelSettings` its own copy or pickle hooks, or slots, must be reviewed there."""
    assert "__slots__" not in vars(ModelSettings)
    for hook in ("__deepcopy__", "__setstate__"):
        assert not hasattr(ModelSettings, hook), hook
    assert ModelSettings.__reduce_ex__ is object.__reduce_ex__
    assert ModelSettings.__getstate__ is object.__getstate__  # type: ignore[attr-defined]


def test_installed_where_the_run_loop_resolves_settings() -> None:
    import app.agents.assistant  # noqa: F401  (installs it)

    assert turn_preparation.get_default_model_settings is model_defaults.default_model_settings
    assert default_models.get_default_model_settings is model_defaults._library
