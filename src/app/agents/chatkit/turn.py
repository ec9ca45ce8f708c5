"""The turn: what the ChatKit server's `respond` does with a user message (or a resumed turn).

It runs the assistant through the Agents SDK and streams its events, with store-generated ids for
every assistant message (`library.MessageIds`), entity annotations on replies that name the user's
tasks, a `tasks.changed` client effect when tasks change, and a thread title. A provider failure
becomes a ChatKit `error` event with a message a person can act on; `notice` and `progress_update`
events say what silence would not (`app.agents.chatkit.notices`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, cast

import anyio
from chatkit.agents import stream_agent_response
from chatkit.errors import CustomStreamError
from chatkit.store import Store
from chatkit.types import (
    AssistantMessageItem,
    ClientEffectEvent,
    ProgressUpdateEvent,
    ThreadItemDoneEvent,
    ThreadMetadata,
    ThreadStreamEvent,
    UserMessageItem,
)
from opentelemetry.trace import Span

from app.agents.assistant import Assistant, TurnContext, describe_model_error, model_error_log
from app.agents.chatkit import merge, notices
from app.agents.chatkit.composer import NO_CHOICE, ComposerChoices, TurnChoice
from app.agents.chatkit.entities import annotate
from app.agents.chatkit.language import note_message, thread_language
from app.agents.chatkit.library import LibraryClockStore, MessageIds
from app.agents.chatkit.time_zone import GET_TIME_ZONE, answered_zone, remember_zone, remembered_zone, zone_sentence
from app.agents.messages import say
from app.core.clock import Now, zone_clock
from app.core.errors import ProtocolError
from app.ops import metrics, model_calls, tracing
from app.services.quotas import UserLimits
from app.services.usage import TurnTokens, UsageBook

log = logging.getLogger("app.chatkit")

# `stream_agent_response` merges the SDK's events with the tools' without a task per event.
merge.install()

# How many of the newest items a resumed turn looks through for the user message it answers.
RESUME_LOOKBACK = 20


@dataclass
class TurnRunner:
    """What a turn needs from the server that runs it."""

    store: Store[Any]
    assistant: Assistant
    session_maker: Any
    limits: UserLimits
    composer: ComposerChoices
    now: Now  # the instant "today" is taken from, in the user's time zone
    generate_message_id: Callable[[ThreadMetadata, Any], str]
    # DEFAULT_TIME_ZONE: the dates of a turn whose user's zone nobody said, nor can be asked.
    default_time_zone: str = "UTC"
    model_slow_notice_seconds: float = 8.0
    # Message text is personal data: it reaches the logs only when an operator opts in.
    log_content: bool = False
    # Where each turn's tokens are recorded (the `usage` table, the metric); None: only logged.
    usage: UsageBook | None = None

    async def respond(
        self, thread: ThreadMetadata, input_user_message: UserMessageItem | None, context: Any
    ) -> AsyncIterator[ThreadStreamEvent]:
        """The turn's events; then, however it ended (a failure or a disconnect included), its tokens
        are logged and recorded: they were billed either way."""
        tokens = TurnTokens(model=self.assistant.model_name)
        # Not made current here (a generator's context is its caller's between yields): `_respond`
        # makes it current around the awaits that start model calls, tools and SQL.
        span = tracing.start_span(
            tracing.TURN_SPAN, {"chatkit.thread.id": thread.id, "taskpilot.turn.resumed": input_user_message is None}
        )
        # The title's model call, started beside the answer's (`_respond` adds it here).
        titles: list[asyncio.Future[str]] = []
        try:
            async for event in self._respond(thread, input_user_message, context, tokens, span, titles):
                yield event
        except BaseException as exc:
            if span is not None:
                tracing.failed(
                    span, "cancelled" if isinstance(exc, GeneratorExit | anyio.get_cancelled_exc_class()) else exc
                )
            raise
        finally:
            with anyio.CancelScope(shield=True), tracing.within(span):
                await _settle(titles)
                await self._account(thread, context, tokens)
            if span is not None:
                span.set_attribute("gen_ai.request.model", tokens.model)
                for kind, count in tokens.total().counts().items():
                    span.set_attribute(f"gen_ai.usage.{kind}_tokens", count)
                span.end()

    async def _account(self, thread: ThreadMetadata, context: Any, tokens: TurnTokens) -> None:
        total = tokens.total()
        fields = {
            "thread_id": thread.id,
            "model": tokens.model,
            "input_tokens": total.input,
            "cached_input_tokens": total.cached_input,
            "output_tokens": total.output,
            "reasoning_tokens": total.reasoning,
        }
        log.info("turn tokens", extra={"fields": fields})
        if self.usage is None:
            return
        try:
            await self.usage.record(context.user_id, tokens)
        except Exception as exc:  # the answer is already given: a lost count must not fail it
            log.warning("could not record token usage", extra={"fields": {**fields, "error": type(exc).__name__}})

    async def _respond(
        self,
        thread: ThreadMetadata,
        input_user_message: UserMessageItem | None,
        context: Any,
        tokens: TurnTokens,
        span: Span | None,
        titles: list[asyncio.Future[str]],
    ) -> AsyncIterator[ThreadStreamEvent]:
        zone = await self._time_zone(thread, input_user_message, context)
        # A composer tool forces the turn's first call ("Due today" lists today's tasks at once): the
        # model cannot ask the page for its zone before it, so that call's dates are the default zone's, said.
        forced = input_user_message is not None and input_user_message.inference_options.tool_choice is not None
        default_zone = zone is None and (forced or GET_TIME_ZONE not in getattr(context, "client_tools", ()))
        if default_zone:
            zone = self.default_time_zone
        # The conversation's language, from the user's messages: the language of the turn's fixed strings.
        lang = note_message(thread, input_user_message) if input_user_message is not None else thread_language(thread)
        turn = TurnContext(
            thread=thread,
            store=cast("Store[Any]", LibraryClockStore(self.store)),
            request_context=context,
            user_id=context.user_id,
            session_maker=self.session_maker,
            max_tasks=self.limits.tasks_per_user,
            time_zone=zone,
            default_zone=default_zone,
            dates_note=zone_sentence(zone, default=default_zone) if zone is not None else None,
            clock=zone_clock(zone, self.now),
            language=lang,
        )
        ids = MessageIds(lambda: self.generate_message_id(thread, context))
        failure: CustomStreamError | None = None
        started = time.perf_counter()
        reply_text: list[str] = []
        turn.notices = turn_notices = notices.TurnNotices(
            turn.stream, slow_after=self.model_slow_notice_seconds, lang=lang
        )
        # The provider's client is shared by every turn; it finds this turn's notices here.
        current_notices = notices.current.set(turn_notices)
        turn_notices.start()
        choice = NO_CHOICE
        result = None
        title: asyncio.Future[str] | None = None
        try:
            attached = len(input_user_message.attachments) if input_user_message is not None else 0
            if attached:
                # Their bytes are read (from blob storage) into the model's input before it runs.
                yield ProgressUpdateEvent(text=notices.reading_attachments_text(attached, lang), icon="document")
            # Up to and including the message this turn answers, whatever was stored after it.
            up_to = input_user_message.id if input_user_message is not None else None
            with tracing.within(span):  # the run's task, started inside, carries the turn's span
                choice = await self._turn_choice(thread, input_user_message, context)
                tokens.model = turn.model = choice.model or self.assistant.model_name
                if thread.title is None and input_user_message is not None and self.assistant.title_with_model:
                    # The title's model call runs beside the answer's, not after it: the stream
                    # ends as soon as the answer does instead of one more round trip later.
                    # Its retries are not the answer's: the user is not told of them, nor is the
                    # answer's span (the transport tells `notices.current`, unset in its context).
                    title_context = contextvars.copy_context()
                    title_context.run(notices.current.set, None)
                    title = asyncio.get_running_loop().create_task(
                        self.assistant.title(input_user_message, thread, choice.model, tokens=tokens),
                        context=title_context,
                    )
                    titles.append(title)
                result = await self.assistant.run(thread, turn, choice, up_to=up_to)
            async for event in stream_agent_response(turn, result):
                turn_notices.output()
                event = ids.remap(event)
                if isinstance(event, ThreadItemDoneEvent) and isinstance(event.item, AssistantMessageItem):
                    # Tasks the reply names (tagged, or returned by a tool this turn) become entity
                    # annotations the front end links; the item is saved as yielded here.
                    annotated = annotate(event.item, turn.named_tasks)
                    if annotated is not event.item:
                        event = ThreadItemDoneEvent(item=annotated)
                if (
                    self.log_content
                    and isinstance(event, ThreadItemDoneEvent)
                    and isinstance(event.item, AssistantMessageItem)
                ):
                    reply_text.append("".join(part.text for part in event.item.content))
                yield event
        except CustomStreamError as exc:
            failure = exc
        except Exception as exc:  # provider, network or tool failure: the user gets a readable error
            metrics.MODEL_ERRORS.labels(kind=metrics.error_kind(exc)).inc()
            if turn.model_call_started is not None:  # the model call in flight is what failed
                model_calls.failed(tokens.model, exc, time.perf_counter() - turn.model_call_started)
            if turn.model_span is not None:
                turn.model_span.end(metrics.error_kind(exc), retries_after=turn_notices.retries)
                turn.model_span = None
            message, retry = describe_model_error(exc, lang)
            fields, traceback = model_error_log(exc)
            log.warning("turn failed", exc_info=traceback, extra={"fields": {"thread_id": thread.id, **fields}})
            failure = CustomStreamError(message, allow_retry=retry)
        finally:
            if result is not None:  # every model call of the run: the answer and each tool round trip
                tokens.add(tokens.model, result.context_wrapper.usage)
            if turn.model_span is not None:  # cancelled (the client went away) during a model call
                turn.model_span.end("cancelled", retries_after=turn_notices.retries)
                turn.model_span = None
            turn_notices.close()
            with contextlib.suppress(ValueError):  # closed from another context: nothing to restore
                notices.current.reset(current_notices)
        metrics.TURN_DURATION.observe(time.perf_counter() - started)
        if self.log_content:
            said = " ".join(
                getattr(part, "text", "") for part in (input_user_message.content if input_user_message else [])
            )
            log.info(
                "turn content",
                extra={"fields": {"thread_id": thread.id, "user_text": said, "reply_text": "\n".join(reply_text)}},
            )
        if turn.changed_task_ids:
            # A host page listens for this to refresh its own task list.
            yield ClientEffectEvent(name="tasks.changed", data={"ids": sorted(turn.changed_task_ids)})
        if failure is not None:
            raise failure
        if thread.title is None and input_user_message is not None:
            # Without a model for titles: the message's first sentence, made here.
            text = await (title or self.assistant.title(input_user_message, thread, choice.model, tokens=tokens))
            if text == say("title.new_chat"):
                text = say("title.new_chat", lang)
            thread.title = self.limits.cut_title(text)

    async def _turn_choice(self, thread: ThreadMetadata, message: UserMessageItem | None, context: Any) -> TurnChoice:
        """The composer's choice for this turn (checked by the gate). A turn resumed without a
        message (a client tool's answer) keeps the model its user message chose, and forces no tool:
        the forced call was that turn's first."""
        if message is not None:
            return self.composer.choose(message.inference_options)
        page = await self.store.load_thread_items(thread.id, None, RESUME_LOOKBACK, "desc", context)
        asked = next((item for item in page.data if isinstance(item, UserMessageItem)), None)
        if asked is None:
            return NO_CHOICE
        try:
            return TurnChoice(model=self.composer.choose(asked.inference_options).model)
        except ProtocolError:  # withdrawn since that message was sent: the default model
            return NO_CHOICE

    async def _time_zone(self, thread: ThreadMetadata, message: UserMessageItem | None, context: Any) -> str | None:
        """The user's zone for this turn (see `app.agents.chatkit.time_zone`): the request's header,
        else the page's answer to `get_time_zone` that this turn resumes from, else what the thread
        remembers; None when nobody said (`respond` then asks the front end, or uses DEFAULT_TIME_ZONE)."""
        header: str | None = getattr(context, "time_zone", None)
        if header is not None:
            return header
        if message is None:  # resuming: the newest item may be the page's answer
            page = await self.store.load_thread_items(thread.id, None, 1, "desc", context)
            answered = answered_zone(page.data[0] if page.data else None)
            if answered is not None:
                remember_zone(thread, answered)
                return answered
        return remembered_zone(thread)


async def _settle(titles: list[asyncio.Future[str]]) -> None:
    """End a turn's title call: cancelled when the turn ended without reading it (a failure, or
    the client gone at any point, a `yield` included), then waited for, so the tokens it was
    billed for before that are in the turn's count (`respond` counts them next)."""
    for title in titles:
        title.cancel()  # (a no-op once it is done)
    await asyncio.gather(*titles, return_exceptions=True)
