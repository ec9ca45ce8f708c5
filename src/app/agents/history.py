"""What the model sees of a thread: ChatKit thread items converted to model input.

Widgets become their copy text, task tags the task they name, attachments a label plus what the
model may read of them; assistant messages are plain text (the Chat Completions converter rejects
ChatKit's `output_text` parts). `estimate_tokens` is the cheap measure the assistant trims history by;
`item_to_input` converts one item with the library's per-thread rules.
"""

from __future__ import annotations

import base64
from typing import Any, Protocol, cast

from agents.items import TResponseInputItem
from chatkit.agents import ThreadItemConverter
from chatkit.types import (
    AssistantMessageItem,
    Attachment,
    ThreadItem,
    UserMessageItem,
    UserMessageTagContent,
    WidgetItem,
)
from openai.types.responses import (
    EasyInputMessageParam,
    ResponseInputContentParam,
    ResponseInputImageParam,
    ResponseInputTextParam,
)
from openai.types.responses.response_input_item_param import Message

from app.agents.chatkit.entities import TASK_TAG_PREFIX, format_tag, tag_task_id
from app.agents.labels import AttachmentLabel, format_label

IMAGE_TOKENS = 1_000  # what an image costs a vision model, roughly (a data URL's length says nothing)


def estimate_tokens(items: list[TResponseInputItem]) -> int:
    """A cheap, conservative token estimate (~4 characters a token) for trimming history."""
    return sum(_estimate_chars(item) for item in items) // 4 + 4 * len(items)


def _estimate_chars(item: Any) -> int:
    content = item.get("content") if isinstance(item, dict) else None
    if isinstance(content, list):
        images = [p for p in content if isinstance(p, dict) and p.get("type") == "input_image"]
        if images:
            rest = {**item, "content": [p for p in content if p not in images]}
            return len(str(rest)) + 4 * IMAGE_TOKENS * len(images)
    return len(str(item))


class AttachmentReader(Protocol):
    """Where the converter gets an attachment's bytes (`app.services.attachments.service.AttachmentService`)."""

    async def read_attachment(self, attachment: Attachment, limit: int) -> bytes | None:
        """Up to `limit` bytes of the attachment's content; None when none are stored."""
        ...


def attachment_size(attachment: Attachment) -> int | None:
    """The uploaded size, which the attachment store records in the (server-only) metadata."""
    size = (attachment.metadata or {}).get("size")
    return size if isinstance(size, int) else None


def attachment_label(attachment: Attachment) -> str:
    """`[attachment] name (type, N bytes)`: how every attachment is introduced to the model."""
    return format_label(
        AttachmentLabel(name=attachment.name, mime_type=attachment.mime_type, size=attachment_size(attachment))
    )


class TaskPilotConverter(ThreadItemConverter):
    """Thread items as model input: compact widgets, task tags as the task they name (looked up
    among the user's tasks, `app.agents.chatkit.entities`), and attachments the model can
    read: images as image input (data URLs: a model provider cannot fetch a URL of this server),
    text files as text up to a budget, anything else (PDF, oversized files) as a short description.
    Every attachment is introduced by a label naming it, its type and its size."""

    def __init__(
        self,
        attachments: AttachmentReader | None = None,
        *,
        image_bytes: int = 4 * 1024 * 1024,
        text_chars: int = 20_000,
    ) -> None:
        self.attachments = attachments
        self.image_bytes = image_bytes
        self.text_chars = text_chars

    async def attachment_parts(self, attachment: Attachment) -> list[ResponseInputContentParam]:
        """The content parts of one attachment: its label, then what the model may see of it."""
        label = attachment_label(attachment)
        size = attachment_size(attachment)
        mime = attachment.mime_type
        if self.attachments is None or size is None:
            return [_text(f"{label}: its content is not available.")]
        if mime.startswith("image/"):
            data = await self.attachments.read_attachment(attachment, size) if size <= self.image_bytes else None
            if data is None or len(data) != size:
                return [_text(f"{label}: the image is too large to show you.")]
            image_url = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
            return [_text(label), ResponseInputImageParam(type="input_image", detail="auto", image_url=image_url)]
        if mime.startswith("text/") or mime == "application/json":
            # A character is at most 4 bytes of UTF-8: read no more than the budget can use.
            data = await self.attachments.read_attachment(attachment, min(size, 4 * self.text_chars))
            if data is None:
                return [_text(f"{label}: its content is not available.")]
            text = data.decode("utf-8", errors="ignore")
            shown = text[: self.text_chars]
            if len(shown) < len(text) or len(data) < size:
                shown += f"\n[truncated: only the first {len(shown)} characters are shown]"
            return [_text(f"{label}:\n{shown}")]
        return [_text(f"{label}: you cannot read this kind of file; only its name, type and size are known.")]

    async def attachment_to_message_content(self, attachment: Attachment) -> Any:
        return (await self.attachment_parts(attachment))[-1]

    async def user_message_to_input(self, item: UserMessageItem, is_last_message: bool = True) -> Any:
        """ChatKit's conversion, with each attachment as its label plus content (an image part alone
        would not say which file it is)."""
        converted = await super().user_message_to_input(
            item.model_copy(update={"attachments": []}), is_last_message=is_last_message
        )
        items: list[Any] = list(converted) if isinstance(converted, list) else [converted]
        items = await self._every_tag(item, items)
        if not item.attachments:
            return items
        message = items[0]  # ChatKit puts the user's own message first, then context messages
        parts = [part for attachment in item.attachments for part in await self.attachment_parts(attachment)]
        items[0] = {**message, "content": [*message["content"], *parts]}
        return items

    async def _every_tag(self, item: UserMessageItem, items: list[Any]) -> list[Any]:
        """ChatKit keeps one tag per distinct text; two tasks may share a title, so every distinct
        task (by id) gets its line in the @-mention context message."""
        tags = [part for part in item.content if isinstance(part, UserMessageTagContent)]
        if not tags:
            return items
        distinct = list({str(tag_task_id(tag) or tag.id): tag for tag in tags}.values())
        for index, message in enumerate(items):
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, list) and any(
                str(part.get("text", "")).startswith(TASK_TAG_PREFIX) for part in content if isinstance(part, dict)
            ):
                head = [p for p in content if not str(p.get("text", "")).startswith(TASK_TAG_PREFIX)]
                lines = [await self.tag_to_message_content(tag) for tag in distinct]
                items[index] = {**message, "content": [*head, *lines]}
        return items

    async def tag_to_message_content(self, tag: UserMessageTagContent) -> Any:
        # Only a tag the server resolved names a task (`resolve_tags`); its `data` is the client's.
        return _text(format_tag(tag))

    async def assistant_message_to_input(self, item: AssistantMessageItem) -> Any:
        # ChatKit's default sends `output_text` parts, which the Agents SDK's Chat Completions
        # converter rejects ("Unknown content"); plain text works for Responses and Chat Completions.
        text = "".join(part.text for part in item.content)
        return EasyInputMessageParam(type="message", role="assistant", content=text)

    async def widget_to_input(self, item: WidgetItem) -> Any:
        text = item.copy_text or "a widget"
        return Message(
            type="message",
            role="user",
            content=[ResponseInputTextParam(type="input_text", text=f"[context] Shown to the user: {text}")],
        )


async def item_to_input(converter: ThreadItemConverter, item: ThreadItem, *, last: bool) -> list[TResponseInputItem]:
    """One thread item as model input, by the rules ChatKit's `to_agent_input` applies to a whole
    thread, although the assistant converts history an item at a time (newest first, to fit its
    budget): what the library adds for the thread's last item only (a user message's `quoted_text`,
    "The user is referring to this in particular") is added only when `last`. Converted alone, every
    old message was its own last item, and its quote was re-sent to the model on every later turn."""
    if last or not isinstance(item, UserMessageItem):
        return await converter.to_agent_input([item])
    converted = await converter.user_message_to_input(item, is_last_message=False)
    if converted is None:
        return []
    return list(converted) if isinstance(converted, list) else [converted]


def plain_text_message(item: TResponseInputItem) -> TResponseInputItem:
    """A user message whose content is only text parts, with that text as a plain string.

    The Agents SDK sends a list of parts to Chat Completions, which some OpenAI-compatible
    servers refuse; a string is what every one of them accepts. Images and files keep the list.
    """
    if not isinstance(item, dict) or item.get("role") != "user":
        return item
    content = item.get("content")
    if not isinstance(content, list) or not content:
        return item
    if not all(isinstance(part, dict) and part.get("type") == "input_text" for part in content):
        return item
    return cast("TResponseInputItem", {**item, "content": "\n".join(str(part.get("text", "")) for part in content)})


def _text(text: str) -> ResponseInputTextParam:
    return ResponseInputTextParam(type="input_text", text=text)
