"""Asking the user with choices: the `ask_user` tool shows a ChatKit structured input (a question with
options, or a free answer) instead of a question in text, and the run stops there.

The item is streamed and stored (`structured_input`, `pending`); ChatKit's component shows it and
sends the answer as `threads.add_structured_input`, which the library records on the item
(`answered` or `skipped`) and resumes the stored turn: the model reads the question and its answer
from history (the library's `structured_input_to_input`) and goes on, e.g. adds the task with the
priority chosen. The gate refuses a second submit of the same input (409, `gate.Gate.take_turn`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from agents import FunctionTool, RunContextWrapper, function_tool
from chatkit.types import (
    StructuredInputFreeform,
    StructuredInputItem,
    StructuredInputMultipleChoice,
    StructuredInputMultipleChoiceOption,
    ThreadItemDoneEvent,
)

ASK_USER = "ask_user"
ANSWER_ID = "answer"  # the one question's id: the answer is keyed by it
MAX_CHOICES = 8
MAX_TEXT = 300
ASKED = "Asked the user. Their answer comes back as a structured input in the conversation: do not answer now."


def structured_input(question: str, choices: list[str] | None, *, item_id: str, thread_id: str) -> StructuredInputItem:
    """The pending item asking `question`: one of `choices` (deduplicated, at most MAX_CHOICES; the
    component also offers a custom answer), or a free answer when there are none."""
    question = " ".join(question.split())[:MAX_TEXT] or "?"
    options = list(dict.fromkeys(" ".join(str(c).split())[:MAX_TEXT] for c in choices or []))
    options = [option for option in options if option][:MAX_CHOICES]
    asked: StructuredInputMultipleChoice | StructuredInputFreeform
    if options:
        asked = StructuredInputMultipleChoice(
            id=ANSWER_ID, question=question, options=[StructuredInputMultipleChoiceOption(value=o) for o in options]
        )
    else:
        asked = StructuredInputFreeform(id=ANSWER_ID, question=question)
    # Naive local time, as the library stamps its own items (`stream.with_utc_timestamps` shows it as UTC).
    return StructuredInputItem(id=item_id, thread_id=thread_id, created_at=datetime.now(), inputs=[asked])


async def _ask_user(ctx: RunContextWrapper[Any], question: str, choices: list[str] | None = None) -> str:
    """Ask the user one question and stop: they pick one of `choices` (or type their own answer).

    Use it instead of asking in text when a request leaves something open that a few options
    settle, e.g. which priority a new task should have when the user asks you which to use.

    Args:
        question: The question, short, in the user's language (e.g. "Which priority should “Buy milk” have?").
        choices: The options to pick from (e.g. ["high", "medium", "low"]); null or empty for a free answer.
    """
    turn = ctx.context
    item = structured_input(question, choices, item_id=turn.generate_id("message"), thread_id=turn.thread.id)
    await turn.stream(ThreadItemDoneEvent(item=item))
    return ASKED


ASK_USER_TOOL: FunctionTool = function_tool(_ask_user, name_override=ASK_USER)
