"""The composer's choices for one turn: a tool to force, and a model from the operator's allowlist.

ChatKit sends them with each user message as `inference_options` (`tool_choice.id`, `model`) and
stores them on the message, so a retry of that message makes the same choices. A choice this
server does not offer is refused before any stream opens (a `ProtocolError`: 400 naming the
field), never silently ignored: a user who picked "gpt-5" must not get another model unawares.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from chatkit.types import InferenceOptions

from app.agents.tools import COMPOSER_TOOL_BY_ID, COMPOSER_TOOLS
from app.core.errors import ProtocolError

OPTIONS_FIELD = "params.input.inference_options"


@dataclass(frozen=True, slots=True)
class TurnChoice:
    """What a turn runs with: `tool`, a task tool its first model call must make, with `arguments`
    fixed on that call (the composer tool's filter: "Due today"'s dates); `model`, the model for
    every call of the run. None: the assistant's own (no forced tool, MODEL)."""

    tool: str | None = None
    model: str | None = None
    arguments: Mapping[str, str] = field(default_factory=dict)


NO_CHOICE = TurnChoice()


@dataclass(frozen=True, slots=True)
class ComposerChoices:
    """The choices this server offers: the composer tools, and the models a turn may name:
    `models` (MODEL_CHOICES) when the operator lists them, else `default_model` (MODEL) alone."""

    default_model: str
    models: tuple[str, ...] = ()

    @property
    def allowed_models(self) -> tuple[str, ...]:
        return self.models or (self.default_model,)

    def choose(self, options: InferenceOptions | None, field: str = OPTIONS_FIELD) -> TurnChoice:
        """The turn's choice, or a `ProtocolError` naming every field this server does not offer
        (both the tool and the model when both are wrong: one answer, not one per attempt)."""
        if options is None:
            return NO_CHOICE
        problems: list[tuple[str, str]] = []
        tool: str | None = None
        arguments: Mapping[str, str] = {}
        if options.tool_choice is not None:
            composer_tool = COMPOSER_TOOL_BY_ID.get(options.tool_choice.id)
            if composer_tool is None:
                offered = ", ".join(repr(t.id) for t in COMPOSER_TOOLS)
                problems.append(
                    (
                        f"{field}.tool_choice.id",
                        f"{field}.tool_choice.id {options.tool_choice.id[:100]!r} is not a composer tool of this "
                        f"server: choose one of {offered}, or send no tool_choice.",
                    )
                )
            else:
                tool, arguments = composer_tool.tool, composer_tool.arguments
        model = options.model
        if model is not None and model not in self.allowed_models:
            if self.models:
                hint = f"choose one of {', '.join(map(repr, self.models))} (MODEL_CHOICES), or omit it for the default"
            else:
                hint = (
                    f"this server offers no model choice (MODEL_CHOICES is not set): omit it, "
                    f"or send {self.default_model!r}"
                )
            problems.append((f"{field}.model", f"{field}.model {model[:100]!r} is not offered here: {hint}."))
        if len(problems) == 1:
            ((where, detail),) = problems
            raise ProtocolError(detail, field=where)
        if problems:
            raise ProtocolError(
                " ".join(detail for _, detail in problems),
                errors=[{"field": where, "message": detail, "source": "body"} for where, detail in problems],
            )
        return TurnChoice(tool=tool, model=model if model != self.default_model else None, arguments=arguments)
