"""Reading the conversation the Agents SDK hands the offline model: what the person typed this
turn, what they attached, and which tool calls this turn already made (with their results)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from app.agents.chatkit.entities import TASK_TAG_PREFIX, TagNote, parse_tags
from app.agents.labels import is_label, parse_label
from app.agents.offline import replies

# Conversions of non-user items (widgets, hidden context) also arrive as role=user messages;
# these prefixes mark them so the model does not mistake them for what the person typed.
STRUCTURED_INPUT_PREFIX = "A structured input request was displayed"
CONTEXT_PREFIXES = (
    "Hidden context for the agent",
    STRUCTURED_INPUT_PREFIX,
    "The following graphical UI widget",
    "A message was displayed to the user",
    "The user is referring to this",
    "# User-provided context",
    "[context]",
)


@dataclass(slots=True)
class Done:
    """A tool call already made in this turn, with its parsed output."""

    name: str
    arguments: dict[str, Any]
    output: Any


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "".join(parts)
    return ""


def as_dict(item: Any) -> dict[str, Any]:
    if isinstance(item, dict):
        return item
    dump = getattr(item, "model_dump", None)
    return dump() if callable(dump) else {}


def _parse_output(output: Any) -> Any:
    text = _text_of(output) if not isinstance(output, str) else output
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return {"text": text}


def _typed_text(content: Any) -> str:
    """The text of a user message without its attachments (their labels and contents)."""
    if isinstance(content, list):
        content = [part for part in content if not (isinstance(part, dict) and is_label(str(part.get("text", ""))))]
    return _text_of(content)


def attachments_of(content: Any) -> list[replies.AttachmentNote]:
    """The attachments of a user message, from the labels the converter gives them."""
    notes: list[replies.AttachmentNote] = []
    for part in content if isinstance(content, list) else []:
        text = part.get("text") if isinstance(part, dict) else None
        label = parse_label(text) if isinstance(text, str) else None
        if label is not None:
            notes.append(replies.AttachmentNote(name=label.name, size=label.size))
    return notes


def _last_user_message(items: list[dict[str, Any]]) -> int:
    last_user = -1
    for index, item in enumerate(items):
        if item.get("role") == "user" and item.get("type", "message") == "message":
            content = item.get("content")
            text = _typed_text(content)
            if (text and not text.startswith(CONTEXT_PREFIXES)) or attachments_of(content):
                last_user = index
    return last_user


def turn_attachments(items: list[dict[str, Any]]) -> list[replies.AttachmentNote]:
    """What the person attached to their last message."""
    last_user = _last_user_message(items)
    return attachments_of(items[last_user].get("content")) if last_user >= 0 else []


def turn_tags(items: list[dict[str, Any]]) -> list[TagNote]:
    """The tasks the person @-tagged in their last message, as the server resolved them: the
    `[task tag]` lines of the context message that follows it (`app.agents.chatkit.entities`)."""
    last_user = _last_user_message(items)
    if last_user < 0:
        return []
    notes: list[TagNote] = []
    for item in items[last_user + 1 :]:
        if item.get("role") != "user" or item.get("type", "message") != "message":
            break  # the model's own output: the context of the message has ended
        content = item.get("content")
        for part in content if isinstance(content, list) else [{"text": content}]:
            text = part.get("text") if isinstance(part, dict) else None
            if isinstance(text, str) and text.startswith(TASK_TAG_PREFIX):
                notes.extend(parse_tags(text))
    return notes


def read_turn(items: list[dict[str, Any]]) -> tuple[str, list[Done], bool]:
    """The last thing the person typed, the tool calls made since, and whether a handoff happened."""
    last_user = _last_user_message(items)
    user_text = _typed_text(items[last_user].get("content")) if last_user >= 0 else ""
    calls: dict[str, dict[str, Any]] = {}
    done: list[Done] = []
    handed_off = False
    for item in items[last_user + 1 :]:
        kind = item.get("type")
        if kind == "function_call":
            calls[str(item.get("call_id"))] = item
        elif kind == "function_call_output":
            call = calls.get(str(item.get("call_id")))
            if call is None:
                continue
            name = str(call.get("name"))
            if name.startswith("transfer_to_"):
                handed_off = True
                continue
            try:
                arguments = json.loads(call.get("arguments") or "{}")
            except ValueError:
                arguments = {}
            done.append(Done(name=name, arguments=arguments, output=_parse_output(item.get("output"))))
    return user_text, done, handed_off


def structured_answer(items: list[dict[str, Any]]) -> str | None:
    """The user's answer to the structured input asked since their last message (the library's
    `structured_input_to_input` text: "- <question>: <answer>"): the value chosen, "" when they
    skipped it, None when nothing was asked and answered since."""
    last_user = _last_user_message(items)
    for item in items[last_user + 1 :]:
        text = _text_of(item.get("content")) if item.get("role") == "user" else ""
        if not text.startswith(STRUCTURED_INPUT_PREFIX):
            continue
        status = text.split("\n", 1)[0].rsplit(":", 1)[-1].strip()
        if status == "skipped":
            return ""
        if status != "answered":
            continue
        for line in text.splitlines():
            if line.startswith("- ") and ": " in line:
                answer = line.rsplit(": ", 1)[1].strip()
                return "" if answer in {"skipped", "unanswered"} else answer
    return None
