"""The library's event stream, made safe to end at any point once it has opened.

openai-chatkit turns most failures inside a turn into an `error` event, but not those around it
(saving the user's message after `thread.created` went out, the final thread save): those were
re-raised and cut the connection. `StreamGuard.events` ends every failure with one `error` event,
saves the answer streamed so far first (the library saves it only when the client disconnects),
stamps what is streamed in UTC as the Store stores it, and adds the notices of the limits a turn
leaves nearly spent right after the first event.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import anyio
from chatkit.store import Store
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageContentPartDone,
    AssistantMessageContentPartTextDelta,
    AssistantMessageItem,
    ChatKitReq,
    ErrorEvent,
    ThreadCreatedEvent,
    ThreadItemAddedEvent,
    ThreadItemDoneEvent,
    ThreadItemRemovedEvent,
    ThreadItemReplacedEvent,
    ThreadItemUpdatedEvent,
    ThreadsAddUserMessageReq,
    ThreadsCreateReq,
    ThreadStreamEvent,
)

from app.agents.chatkit import notices
from app.agents.chatkit.language import detected
from app.agents.chatkit.library import with_utc_timestamps
from app.services.quotas import CountingStore, UserLimits

log = logging.getLogger("app.chatkit")

STREAM_FAILED = "Something went wrong while answering; your message may not have been saved. Send it again."


@dataclass
class _Partial:
    """An assistant message being streamed: the item as added, and its text so far by content index."""

    added: AssistantMessageItem
    parts: dict[int, str] = field(default_factory=dict)

    def item(self) -> AssistantMessageItem:
        content = [AssistantMessageContent(text=self.parts[index], annotations=[]) for index in sorted(self.parts)]
        return self.added.model_copy(update={"content": content})


@dataclass
class StreamGuard:
    store: Store[Any]
    limits: UserLimits

    async def events(
        self,
        library: AsyncIterator[ThreadStreamEvent],
        request: ChatKitReq,
        context: Any,
        unannounced: Callable[[Any], Awaitable[None]],
    ) -> AsyncGenerator[ThreadStreamEvent, None]:
        """`library`'s events for `request`, hardened. `unannounced` runs when the stream fails
        before the page learned the id of a new thread (the gate deletes the reserved thread)."""
        pending: dict[str, _Partial] = {}
        thread_id: str | None = getattr(getattr(request, "params", None), "thread_id", None)
        opened = announced = False
        try:
            async for event in library:
                if isinstance(event, ThreadCreatedEvent):
                    thread_id = event.thread.id
                    announced = True  # the page knows the new thread from here on
                _track_pending(pending, event)
                if isinstance(event, ErrorEvent):
                    await self._save_partial(thread_id, pending, context)
                # The library stamps items with naive `datetime.now()`; the store keeps UTC. Stamping
                # the streamed copies the same way makes a reload show exactly what was streamed.
                yield with_utc_timestamps(event)
                if not opened:
                    opened = True
                    # Right after the first event (`thread.created` stays first): the limits this
                    # turn leaves nearly spent.
                    for notice in await self._limit_notices(request, context):
                        yield notice
        except BaseException as exc:
            if not announced:
                await unannounced(context)
            if not opened or not isinstance(exc, Exception):
                raise  # before the first event, an HTTP error from the central mapping (503) says it better
            # Only the type: a driver's message can carry the statement's parameters (message text).
            log.warning(
                "stream failed after it opened",
                extra={"fields": {"thread_id": thread_id, "error": type(exc).__name__}},
            )
            await self._save_partial(thread_id, pending, context)
            yield ErrorEvent(code="custom", message=STREAM_FAILED, allow_retry=True)

    async def _limit_notices(self, request: ChatKitReq, context: Any) -> list[ThreadStreamEvent]:
        found: list[ThreadStreamEvent] = []
        # In the language of the message being sent (app.agents.chatkit.language); English otherwise.
        said = request.params.input if isinstance(request, ThreadsCreateReq | ThreadsAddUserMessageReq) else None
        lang = (detected(" ".join(getattr(part, "text", "") or "" for part in said.content)) if said else None) or "en"
        budget = notices.chat_budget_notice(getattr(context, "chat_budget", None), lang)
        if budget is not None:
            found.append(budget)
        tokens = notices.token_budget_notice(getattr(context, "token_budget", None), lang)
        if tokens is not None:
            found.append(tokens)
        if isinstance(request, ThreadsCreateReq | ThreadsAddUserMessageReq) and request.params.input.attachments:
            # Only when the user adds files: one query, where the warning is about what they do.
            try:
                stored = await self.limits.attachment_bytes_near_quota(cast("CountingStore", self.store), context)
            except Exception as exc:  # a warning must never fail the turn
                log.warning("could not count stored attachments", extra={"fields": {"error": type(exc).__name__}})
                stored = None
            if stored is not None:
                found.append(notices.storage_notice(stored, self.limits.attachment_bytes_per_user, lang))
        return found

    async def _save_partial(self, thread_id: str | None, pending: dict[str, _Partial], context: Any) -> None:
        """Save the partial answers of a failed stream (best effort: the store may be what failed)."""
        partial = [entry.item() for entry in pending.values() if "".join(entry.parts.values()).strip()]
        pending.clear()
        if thread_id is None or not partial:
            return
        try:
            with anyio.CancelScope(shield=True):
                for item in partial:
                    await self.store.add_thread_item(thread_id, item, context)
        except Exception as exc:
            fields = {"thread_id": thread_id, "error": type(exc).__name__}
            log.warning("could not save the partial answer", extra={"fields": fields})


def _track_pending(pending: dict[str, _Partial], event: ThreadStreamEvent) -> None:
    """Keep the text of assistant messages streamed but not yet done.

    Our own copy of the text: the library's pending items share content parts with the
    events, so applying the same updates to a second copy would double them.
    """
    if isinstance(event, ThreadItemAddedEvent) and isinstance(event.item, AssistantMessageItem):
        pending[event.item.id] = _Partial(event.item.model_copy(deep=True))
    elif isinstance(event, ThreadItemDoneEvent | ThreadItemReplacedEvent):
        pending.pop(event.item.id, None)
    elif isinstance(event, ThreadItemRemovedEvent):
        pending.pop(event.item_id, None)
    elif isinstance(event, ThreadItemUpdatedEvent) and event.item_id in pending:
        parts = pending[event.item_id].parts
        update = event.update
        if isinstance(update, AssistantMessageContentPartTextDelta):
            parts[update.content_index] = parts.get(update.content_index, "") + update.delta
        elif isinstance(update, AssistantMessageContentPartDone):
            parts[update.content_index] = update.content.text
