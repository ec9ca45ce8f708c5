"""The Agents SDK's `get_default_model_settings`, its deep copy made field by field.

Why: the SDK resolves a model call's settings (`turn_preparation.get_model_settings`) by comparing
the agent's settings with the implicit defaults of its model's name, twice per model call for an
agent whose model is a name: each a `copy.deepcopy` of a `ModelSettings` (a dataclass of ~30
fields, and for a GPT-5 name its pydantic `Reasoning`), ~30-50 us each on the 2-CPU machine.

`default_model_settings` gives what the library gives: a fresh `ModelSettings` equal to the
library's for that name, sharing no mutable value with any other (the deep copy's point: a caller
may change what it got). The library's answer for each name is computed once (the name resolved
as the library resolves it, so OPENAI_DEFAULT_MODEL is read at every call as before) and kept
private; each call copies it with `copy.deepcopy` for its non-scalar fields only (most are None
or a string, which a deep copy returns as they are). `install` puts it where the run loop looks it
up; tests/unit/test_model_defaults.py pins the equality against the library's own function.
"""

from __future__ import annotations

import copy
from typing import Any, Final

import agents.run_internal.turn_preparation as turn_preparation
from agents.model_settings import ModelSettings
from agents.models import default_models

from app.agents.sdk_json import JSON_SCALARS

_library: Final = default_models.get_default_model_settings
_by_name: dict[str, ModelSettings] = {}  # the library's answer per model name; never handed out
_MAX_NAMES: Final = 64  # (names come from MODEL and MODEL_CHOICES: a few)


def default_model_settings(model: str | None = None) -> ModelSettings:
    """The library's `get_default_model_settings(model)`."""
    name = model if model is not None else default_models.get_default_model()
    template = _by_name.get(name)
    if template is None:
        if len(_by_name) >= _MAX_NAMES:
            _by_name.clear()
        template = _by_name[name] = _library(name)
    return _deep_copy(template)


def _deep_copy(settings: ModelSettings) -> ModelSettings:
    """`copy.deepcopy(settings)` (a dataclass without `__deepcopy__`: a new instance of its class,
    its `__dict__` deep-copied with one memo), scalars taken as they are (their deep copy is themselves)."""
    copied = object.__new__(type(settings))
    memo: dict[int, Any] = {}
    copied.__dict__.update(
        {
            name: value if type(value) in JSON_SCALARS else copy.deepcopy(value, memo)
            for name, value in settings.__dict__.items()
        }
    )
    return copied


def install() -> None:
    """`default_model_settings` in place of the library's where the run loop's settings resolution
    (`turn_preparation.get_model_settings`, per model call) looks it up by name."""
    turn_preparation.get_default_model_settings = default_model_settings  # type: ignore[attr-defined]


__all__ = ["default_model_settings", "install"]
