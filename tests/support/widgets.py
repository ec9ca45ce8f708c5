"""Reading ChatKit widgets out of a stream: the widget items it drew, the one an action replaced,
and every component of one type in a widget tree."""

from __future__ import annotations

from typing import Any

from tests.support.chatkit_client import StreamResult


def widgets(result: StreamResult) -> list[Any]:
    """The widget items the stream finished drawing (`thread.item.done`)."""
    return [e.item for e in result.events if e.type == "thread.item.done" and e.item.type == "widget"]


def replaced(result: StreamResult) -> dict[str, Any]:
    """The widget tree of the one `thread.item.replaced` event an action answered with."""
    events = result.of_type("thread.item.replaced")
    assert len(events) == 1, [e.type for e in result.events]
    return dict(events[0].item.widget.model_dump(mode="json", by_alias=True, exclude_none=True))


def find(node: Any, kind: str) -> list[dict[str, Any]]:
    """Every component of type `kind` in a widget tree."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if node.get("type") == kind:
            found.append(node)
        for value in node.values():
            found.extend(find(value, kind))
    elif isinstance(node, list):
        for value in node:
            found.extend(find(value, kind))
    return found
