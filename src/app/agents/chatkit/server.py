"""The ChatKit server: protocol handling on top of openai-chatkit's `ChatKitServer`.

What this adds to the library:
- the request is parsed with one prebuilt `TypeAdapter` and checked (fields, ownership of every
  thread, item and attachment it names) *before* a stream opens, so bad input is a 4xx, never a
  broken stream;
- `respond()` runs the assistant through the Agents SDK and streams its events, with
  store-generated ids for every assistant message (Chat Completions providers call them all
  `__fake_id__`), entity annotations on replies that name the user's tasks, a `tasks.changed`
  client effect when tasks change, and a thread title;
- provider failures become a ChatKit `error` event with a message a person can act on;
- `notice` and `progress_update` events say what silence would not (`app.agents.chatkit.notices`): a slow
  model, a retried model call, a nearly spent rate limit or storage quota, a batch of task tools;
- cleanup on cancellation is shielded so a disconnect never loses the partial answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, cast

import anyio
import msgspec
from chatkit.actions import Action
from chatkit.agents import stream_agent_response
from chatkit.errors import CustomStreamError
from chatkit.server import ChatKitServer, NonStreamingResult, StreamingResult
from chatkit.store import AttachmentStore, NotFoundError, Store
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageContentPartDone,
    AssistantMessageContentPartTextDelta,
    AssistantMessageItem,
    AttachmentsDeleteReq,
    AudioInput,
    ChatKitReq,
    ClientEffectEvent,
    ClientToolCallItem,
    ErrorEvent,
    FeedbackKind,
    InputTranscribeReq,
    ItemsFeedbackReq,
    Page,
    ProgressUpdateEvent,
    StructuredInputItem,
    SyncCustomActionResponse,
    ThreadCreatedEvent,
    ThreadItem,
    ThreadItemAddedEvent,
    ThreadItemDoneEvent,
    ThreadItemRemovedEvent,
    ThreadItemReplacedEvent,
    ThreadItemUpdatedEvent,
    ThreadMetadata,
    ThreadsAddClientToolOutputReq,
    ThreadsAddStructuredInputReq,
    ThreadsAddUserMessageReq,
    ThreadsCreateReq,
    ThreadsCustomActionReq,
    ThreadsRetryAfterItemReq,
    ThreadsSyncCustomActionReq,
    ThreadStreamEvent,
    ThreadsUpdateReq,
    TranscriptionResult,
    UserMessageItem,
    WidgetItem,
    is_streaming_req,
)
from pydantic import TypeAdapter, ValidationError

from app.agents.assistant import Assistant, TurnContext, describe_model_error, model_error_log
from app.agents.chatkit import notices
from app.agents.chatkit.composer import NO_CHOICE, ComposerChoices, TurnChoice
from app.agents.chatkit.entities import annotate, check_tags
from app.agents.chatkit.time_zone import (
    GET_TIME_ZONE,
    answered_zone,
    checked_answer,
    remember_zone,
    remembered_zone,
    zone_sentence,
)
from app.agents.chatkit.turns import TurnLease, TurnLocks
from app.agents.chatkit.widgets import TaskActions
from app.core.clock import Now, utcnow, zone_clock
from app.core.errors import Conflict, ProtocolError, QuotaExceeded, Unsupported
from app.core.text import first_unstorable, unstorable_detail
from app.ops import metrics
from app.services.quotas import CountingStore, UserLimits
from app.services.transcription import Audio, Transcriber

log = logging.getLogger("app.chatkit")

# Built once: constructing the adapter for the request union costs milliseconds per call.
REQUEST_ADAPTER: TypeAdapter[ChatKitReq] = TypeAdapter(ChatKitReq)
FAKE_ID = "__fake_id__"
# An answer to a client tool is stored and replayed to the model; the declared ones are far smaller.
MAX_CLIENT_TOOL_RESULT_BYTES = 4096
# How many of the newest items a resumed turn looks through for the user message it answers.
RESUME_LOOKBACK = 20
TURN_RUNNING = (
    "A turn is already running on this thread (another tab, or this request sent twice): wait for its "
    "answer, then retry if you still need to."
)
MESSAGE_WAITING = (
    "A message is already waiting on this thread for the running turn to finish: wait for their answers, "
    "then send yours."
)
TOOL_CALL_ANSWERED = (
    "The thread has no pending client tool call to answer: a turn is already running with its answer "
    "(this one was sent twice), or it was answered before."
)


def _dictation_not_configured() -> Unsupported:
    return Unsupported(
        "Dictation is not configured on this server: set TRANSCRIPTION_MODEL (and OPENAI_API_KEY) "
        "to enable input.transcribe.",
    )


def describe_validation_error(exc: ValidationError) -> ProtocolError:
    errors: list[dict[str, str]] = []
    for error in exc.errors(include_url=False)[:10]:
        loc = list(error.get("loc", ()))
        if loc and isinstance(loc[0], str) and "." in loc[0]:
            loc = loc[1:]  # the discriminator tag (the request type) says nothing about the field
        location = ".".join(str(part) for part in loc)
        errors.append({"field": location or "body", "message": str(error.get("msg", "is invalid"))})
    first = exc.errors(include_url=False)[0]
    if first.get("type") == "json_invalid":
        reason = str((first.get("ctx") or {}).get("error", ""))
        if reason.startswith("recursion limit exceeded"):
            # Valid JSON, nested deeper than the parser follows (a tag's `data`, an action's payload):
            # the answer the HTTP layer gives a body too deep for its own parser (app.http.problems).
            detail = f"The JSON body is nested too deeply ({reason}); send a flatter document."
            return ProtocolError(detail, field="body")
        return ProtocolError("The body is not valid JSON: send a ChatKit request object.")
    tag_error = next((e for e in exc.errors(include_url=False) if e.get("type") == "union_tag_invalid"), None)
    if tag_error is not None:
        ctx = tag_error.get("ctx") or {}
        return ProtocolError(
            f"Unknown ChatKit request type {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}.",
            errors=errors,
        )
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return ProtocolError(f"Invalid ChatKit request: {summary}. Fix these fields and retry.", errors=errors)


class TaskPilotChatKitServer(ChatKitServer[Any]):
    """ChatKit server whose assistant manages the signed-in user's tasks."""

    def __init__(
        self,
        store: Store[Any],
        assistant: Assistant,
        task_actions: TaskActions,
        session_maker: Any,
        *,
        turns: TurnLocks,
        attachment_store: AttachmentStore[Any] | None = None,
        keepalive_seconds: float = 15.0,
        transcriber: Transcriber | None = None,
        log_content: bool = False,
        limits: UserLimits | None = None,
        now: Now = utcnow,
        model_slow_notice_seconds: float = 8.0,
        composer: ComposerChoices | None = None,
        default_time_zone: str = "UTC",
    ) -> None:
        super().__init__(store, attachment_store)
        self.turns = turns  # one turn per thread at a time (app.agents.chatkit.turns)
        # DEFAULT_TIME_ZONE: the dates of a turn whose user's zone nobody said, nor can be asked.
        self.default_time_zone = default_time_zone
        self.model_slow_notice_seconds = model_slow_notice_seconds
        # The composer's tools and models (inference_options), checked before a stream opens.
        self.composer = composer or ComposerChoices(default_model=assistant.model_name)
        self.now = now  # the instant "today" is taken from, in the user's time zone
        self.limits = limits or UserLimits()
        self.assistant = assistant
        self.task_actions = task_actions
        self.session_maker = session_maker
        self.keepalive_seconds = keepalive_seconds
        self.transcriber = transcriber
        # Message text is personal data: it reaches the logs only when an operator opts in.
        self.log_content = log_content
        # The client tools this server may ask for, each with the check of its answer's shape.
        self.client_tool_answers: dict[str, Callable[[Any], object]] = {GET_TIME_ZONE: checked_answer}

    # ---- request entry point -------------------------------------------------------------

    async def process(self, request: str | bytes | bytearray, context: Any) -> StreamingResult | NonStreamingResult:
        try:
            parsed = REQUEST_ADAPTER.validate_json(request)
        except ValidationError as exc:
            raise describe_validation_error(exc) from None
        refuse_unstorable(request)
        await self._authorize(parsed, context)
        if isinstance(parsed, ThreadsCreateReq):
            # Last, once every other check has passed: it saves the thread.
            reserved = await self.limits.reserve_new_thread(cast("CountingStore", self.store), context)
            context = replace(context, reserved_thread_id=reserved)
        if is_streaming_req(parsed):
            try:
                lease = await self._take_turn(parsed, context)
            except BaseException:
                await self._drop_reserved_thread(context)
                raise
            events = self._process_streaming(parsed, context)
            return StreamingResult(events if lease is None else self._holding(lease, events, parsed, context))
        return NonStreamingResult(await self._process_non_streaming(parsed, context))

    async def _drop_reserved_thread(self, context: Any) -> None:
        """Delete the thread reserved for a `threads.create` whose stream failed before the page
        learned its id: nobody can use it, and it counts against the thread quota. (A 503 here is
        re-sent by a load balancer, which reserves another: without this, empty threads pile up.)
        Shielded: a disconnect must not cut it short."""
        reserved = getattr(context, "reserved_thread_id", None)
        if reserved is None:
            return
        try:
            with anyio.CancelScope(shield=True):
                await self.store.delete_thread(reserved, context)
        except Exception as exc:  # the store may be what failed: the empty thread then stays until deleted
            log.warning(
                "could not delete an unused new thread",
                extra={"fields": {"thread_id": reserved, "error": type(exc).__name__}},
            )

    async def _take_turn(self, request: ChatKitReq, context: Any) -> TurnLease | None:
        """The turn lease a streaming request runs under (README "One turn per thread"), decided
        before the stream opens so that a refusal is a 409, not a broken stream.

        - a user message takes the free lease, or queues: its claim then waits inside the stream,
          behind the running turn (with keepalives), and it is stored and answered after it;
        - a client tool's answer (or a structured input) waits while the call is still pending (the
          turn that asked may be finishing its last writes), and is a 409 once another submit of it
          has resumed the turn;
        - a retry is a 409 while any turn runs;
        - a new thread's turn holds its (reserved) thread from the start: once `thread.created` has
          told the page its id, another tab may send on it.
        At most one user message queues per thread (per worker): a queued turn holds a stream slot
        and one of its user's share while it waits, so a further one is a 409 before any stream
        opens. Widget actions (no model turn) take no lease.
        """
        lease: TurnLease | None = None
        try:
            match request:
                case ThreadsCreateReq():
                    lease = self.turns.lease(context.reserved_thread_id, context)
                    if not await lease.try_claim():  # pragma: no cover - nobody else knows the id yet
                        raise Conflict(TURN_RUNNING)
                    return lease
                case ThreadsAddUserMessageReq():
                    lease = self.turns.lease(request.params.thread_id, context)
                    if await lease.try_claim() or self.turns.queue(lease):
                        return lease
                    raise Conflict(MESSAGE_WAITING)
                case ThreadsRetryAfterItemReq():
                    lease = self.turns.lease(request.params.thread_id, context)
                    if not await lease.try_claim():
                        raise Conflict(TURN_RUNNING)
                    # Again, now that no other turn can change the thread: the item `_authorize` saw may be gone.
                    await self.store.load_item(request.params.thread_id, request.params.item_id, context)
                    return lease
                case ThreadsAddClientToolOutputReq() | ThreadsAddStructuredInputReq():
                    lease = self.turns.lease(request.params.thread_id, context)
                    await lease.claim(still_wanted=lambda: self._still_pending(request, context))
                    await self._still_pending(request, context)  # again, as for a retry
                    return lease
                case _:
                    return None
        except BaseException:
            if lease is not None:
                await lease.release()
            raise

    async def _still_pending(
        self, request: ThreadsAddClientToolOutputReq | ThreadsAddStructuredInputReq, context: Any
    ) -> None:
        """A `Conflict` unless what the request answers is still waiting for its answer."""
        if isinstance(request, ThreadsAddClientToolOutputReq):
            await self._pending_tool_call(request.params.thread_id, context, TOOL_CALL_ANSWERED)
            return
        item = await self.store.load_item(request.params.thread_id, request.params.item_id, context)
        if isinstance(item, StructuredInputItem) and item.status != "pending":
            raise Conflict("This structured input was already answered: a turn is already running with it.")

    async def _pending_tool_call(self, thread_id: str, context: Any, refusal: str) -> ClientToolCallItem:
        page = await self.store.load_thread_items(thread_id, None, 1, "desc", context)
        last = page.data[0] if page.data else None
        if not isinstance(last, ClientToolCallItem) or last.status != "pending":
            raise Conflict(refusal)
        return last

    async def _holding(
        self, lease: TurnLease, events: AsyncGenerator[bytes, None], request: ChatKitReq, context: Any
    ) -> AsyncGenerator[bytes, None]:
        """`events` run under `lease`: claimed first (a queued message waits here), renewed while
        they run, released when they end, however they end (a disconnect included, even one that
        cut the claim short)."""
        try:
            queued = lease.queued
            await lease.claim()
            if queued and isinstance(request, ThreadsAddUserMessageReq):
                # The turns it waited behind added items: the thread may be full now.
                try:
                    await self.limits.check_thread_items(
                        cast("CountingStore", self.store), request.params.thread_id, context
                    )
                except QuotaExceeded as exc:
                    yield self._event_frame(ErrorEvent(code="custom", message=exc.detail, allow_retry=False))
                    return
            async with lease.kept():
                async for event in events:
                    yield event
        finally:
            await lease.release()  # (a no-op once `kept` has released it)
            await events.aclose()

    def _event_frame(self, event: ThreadStreamEvent) -> bytes:
        """An event as `_process_streaming` frames it."""
        return b"data: " + self._serialize(event) + b"\n\n"

    async def _authorize(self, request: ChatKitReq, context: Any) -> None:
        """Load what the request names, as this user: another user's data is `NotFoundError` (404).
        Then the user's quotas and the length limits, so a refusal comes before any stream opens."""
        params = getattr(request, "params", None)
        thread_id = getattr(params, "thread_id", None)
        if thread_id is not None:
            await self.store.load_thread(thread_id, context)
        await self._check_limits(request, context)
        match request:
            case ThreadsRetryAfterItemReq() | ThreadsAddStructuredInputReq():
                item = await self.store.load_item(request.params.thread_id, request.params.item_id, context)
                if isinstance(item, UserMessageItem):
                    # A retry runs with the message's stored choices, which the operator may since
                    # have withdrawn (MODEL_CHOICES changed).
                    try:
                        self.composer.choose(item.inference_options)
                    except ProtocolError as exc:
                        raise ProtocolError(
                            f"The message to retry made a choice this server no longer offers: {exc.detail} "
                            "Send the message again instead.",
                            field="params.item_id",
                        ) from None
                # The library raises ValueError for these only after the 200 stream has opened (or as
                # a 500, before its first event).
                if isinstance(request, ThreadsRetryAfterItemReq) and not isinstance(item, UserMessageItem):
                    raise ProtocolError(
                        f"params.item_id names a {item.type} item; a retry is after a user message: "
                        "send the id of the user message whose answer to retry.",
                        field="params.item_id",
                    )
                if isinstance(request, ThreadsAddStructuredInputReq) and not isinstance(item, StructuredInputItem):
                    raise ProtocolError("params.item_id must name a structured input item.")
            case ThreadsCustomActionReq() | ThreadsSyncCustomActionReq():
                if request.params.item_id:
                    item = await self.store.load_item(request.params.thread_id, request.params.item_id, context)
                    if not isinstance(item, WidgetItem):
                        raise ProtocolError("params.item_id must name a widget item for a custom action.")
            case AttachmentsDeleteReq():
                await self.store.load_attachment(request.params.attachment_id, context)
            case InputTranscribeReq():
                # Type, size and base64 are checked here, before the library decodes the audio
                # (it raises on bad base64) and before anything is sent upstream.
                if self.transcriber is None:
                    raise _dictation_not_configured()
                self.transcriber.check(request.params.audio_base64, request.params.mime_type)
            case ThreadsCreateReq() | ThreadsAddUserMessageReq():
                self.composer.choose(request.params.input.inference_options)
                check_tags(request.params.input.content)
                for attachment_id in request.params.input.attachments:
                    attachment = await self.store.load_attachment(attachment_id, context)
                    if attachment.upload_descriptor is not None:
                        raise Conflict(f"Attachment {attachment_id} has not been uploaded yet: upload its bytes first.")
                    if attachment.thread_id is not None and attachment.thread_id != thread_id:
                        raise Conflict(f"Attachment {attachment_id} belongs to another thread: attach the file again.")
                if (
                    not any(getattr(part, "text", "").strip() for part in request.params.input.content)
                    and not request.params.input.attachments
                ):
                    raise ProtocolError("params.input.content is empty: send some text or an attachment.")
            case ItemsFeedbackReq():
                if not request.params.item_ids:
                    raise ProtocolError("params.item_ids is empty: name at least one item.")
                for item_id in request.params.item_ids:
                    await self.store.load_item(request.params.thread_id, item_id, context)
            case ThreadsAddClientToolOutputReq():
                last = await self._pending_tool_call(
                    request.params.thread_id, context, "The thread has no pending client tool call to answer."
                )
                self._check_client_tool_answer(last.name, request.params.result)

    def _check_client_tool_answer(self, name: str, result: Any) -> None:
        """The answer is stored on the thread and sent to the model on every later turn: only a
        small answer of the shape declared for that client tool is taken (a `ProtocolError` naming
        the field otherwise), before any stream opens."""
        size = len(msgspec.json.encode(result))
        if size > MAX_CLIENT_TOOL_RESULT_BYTES:
            raise ProtocolError(
                f"params.result is {size} bytes; an answer to {name} is at most {MAX_CLIENT_TOOL_RESULT_BYTES} bytes.",
                field="params.result",
            )
        check = self.client_tool_answers.get(name)
        if check is None:
            raise ProtocolError(
                f"This server declares no answer for the client tool {name!r}; it takes no output for it.",
                field="params.result",
            )
        check(result)

    async def _check_limits(self, request: ChatKitReq, context: Any) -> None:
        limits, store = self.limits, cast("CountingStore", self.store)
        match request:
            case (
                ThreadsAddUserMessageReq()
                | ThreadsRetryAfterItemReq()
                | ThreadsCustomActionReq()
                | ThreadsAddClientToolOutputReq()
                | ThreadsAddStructuredInputReq()
            ):
                await limits.check_thread_items(store, request.params.thread_id, context)
            case ThreadsUpdateReq():
                limits.check_title(request.params.title, "params.title")
        if isinstance(request, ThreadsCreateReq | ThreadsAddUserMessageReq):
            length = sum(len(getattr(part, "text", "")) for part in request.params.input.content)
            limits.check_message(length, "params.input.content")

    async def _process_streaming_impl(self, request: Any, context: Any) -> AsyncGenerator[ThreadStreamEvent, None]:
        """The library's stream, made safe to end at any point once it has opened.

        The library turns most failures inside a turn into an `error` event, but not those around
        it (saving the user's message after `thread.created` went out, the final thread save):
        those were re-raised and cut the connection. Every failure ends with one `error` event
        here, and the answer streamed so far is saved first (the library saves it only when the
        client disconnects).
        """
        pending: dict[str, _Partial] = {}
        thread_id: str | None = getattr(getattr(request, "params", None), "thread_id", None)
        opened = announced = False
        try:
            async for event in super()._process_streaming_impl(request, context):
                if isinstance(event, ThreadCreatedEvent):
                    thread_id = event.thread.id
                    announced = True  # the page knows the new thread from here on
                self._track_pending(pending, event)
                if isinstance(event, ErrorEvent):
                    await self._save_partial(thread_id, pending, context)
                # The library stamps items with naive `datetime.now()`; the store keeps UTC. Stamping
                # the streamed copies the same way makes a reload show exactly what was streamed.
                yield _with_utc_timestamps(event)
                if not opened:
                    opened = True
                    # Right after the first event (`thread.created` stays first): the limits this
                    # turn leaves nearly spent.
                    for notice in await self._limit_notices(request, context):
                        yield notice
        except BaseException as exc:
            if not announced:
                await self._drop_reserved_thread(context)
            if not opened or not isinstance(exc, Exception):
                raise  # before the first event, an HTTP error from the central mapping (503) says it better
            # Only the type: a driver's message can carry the statement's parameters (message text).
            log.warning(
                "stream failed after it opened",
                extra={"fields": {"thread_id": thread_id, "error": type(exc).__name__}},
            )
            await self._save_partial(thread_id, pending, context)
            yield ErrorEvent(
                code="custom",
                message="Something went wrong while answering; your message may not have been saved. Send it again.",
                allow_retry=True,
            )

    async def _limit_notices(self, request: Any, context: Any) -> list[ThreadStreamEvent]:
        found: list[ThreadStreamEvent] = []
        budget = notices.chat_budget_notice(getattr(context, "chat_budget", None))
        if budget is not None:
            found.append(budget)
        if isinstance(request, ThreadsCreateReq | ThreadsAddUserMessageReq) and request.params.input.attachments:
            # Only when the user adds files: one query, where the warning is about what they do.
            try:
                stored = await self.limits.attachment_bytes_near_quota(cast("CountingStore", self.store), context)
            except Exception as exc:  # a warning must never fail the turn
                log.warning("could not count stored attachments", extra={"fields": {"error": type(exc).__name__}})
                stored = None
            if stored is not None:
                found.append(notices.storage_notice(stored, self.limits.attachment_bytes_per_user))
        return found

    def _track_pending(self, pending: dict[str, _Partial], event: ThreadStreamEvent) -> None:
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

    # ---- protocol hooks ---------------------------------------------------------------------

    async def add_feedback(self, thread_id: str, item_ids: list[str], feedback: FeedbackKind, context: Any) -> None:
        save_feedback = getattr(self.store, "save_feedback", None)
        if save_feedback is None:
            raise Unsupported("Feedback is not stored by this server.")
        recorded = await save_feedback(thread_id, item_ids, feedback, context)
        metrics.FEEDBACK.labels(kind=feedback).inc(recorded if isinstance(recorded, int) else len(item_ids))

    async def transcribe(self, audio_input: AudioInput, context: Any) -> TranscriptionResult:
        if self.transcriber is None:
            raise _dictation_not_configured()
        audio = Audio(data=audio_input.data, media_type=audio_input.media_type.strip().lower())
        text = await self.transcriber.transcribe(audio, user_id=getattr(context, "user_id", None))
        return TranscriptionResult(text=text)

    async def handle_stream_cancelled(
        self, thread: ThreadMetadata, pending_items: list[ThreadItem], context: Any
    ) -> None:
        # The disconnect that got us here also cancels every await in this scope; without the
        # shield the writes below are cancelled too and the partial answer is lost.
        cleanup = asyncio.ensure_future(super().handle_stream_cancelled(thread, pending_items, context))
        with anyio.CancelScope(shield=True):
            await asyncio.shield(cleanup)

    # ---- the assistant ---------------------------------------------------------------------

    async def respond(
        self, thread: ThreadMetadata, input_user_message: UserMessageItem | None, context: Any
    ) -> AsyncIterator[ThreadStreamEvent]:
        zone = await self._time_zone(thread, input_user_message, context)
        default_zone = zone is None and GET_TIME_ZONE not in getattr(context, "client_tools", ())
        if default_zone:
            zone = self.default_time_zone
        turn = TurnContext(
            thread=thread,
            store=cast("Store[Any]", _LibraryClockStore(self.store)),
            request_context=context,
            user_id=context.user_id,
            session_maker=self.session_maker,
            max_tasks=self.limits.tasks_per_user,
            time_zone=zone,
            default_zone=default_zone,
            dates_note=zone_sentence(zone, default=default_zone) if zone is not None else None,
            clock=zone_clock(zone, self.now),
        )
        ids = _MessageIds(lambda: self.store.generate_item_id("message", thread, context))
        failure: CustomStreamError | None = None
        started = time.perf_counter()
        reply_text: list[str] = []
        turn.notices = turn_notices = notices.TurnNotices(turn.stream, slow_after=self.model_slow_notice_seconds)
        # The provider's client is shared by every turn; it finds this turn's notices here.
        current_notices = notices.current.set(turn_notices)
        turn_notices.start()
        choice = NO_CHOICE
        try:
            attached = len(input_user_message.attachments) if input_user_message is not None else 0
            if attached:
                # Their bytes are read (from blob storage) into the model's input before it runs.
                yield ProgressUpdateEvent(text=notices.reading_attachments_text(attached), icon="document")
            choice = await self._turn_choice(thread, input_user_message, context)
            # Up to and including the message this turn answers, whatever was stored after it.
            up_to = input_user_message.id if input_user_message is not None else None
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
            message, retry = describe_model_error(exc)
            fields, traceback = model_error_log(exc)
            log.warning("turn failed", exc_info=traceback, extra={"fields": {"thread_id": thread.id, **fields}})
            failure = CustomStreamError(message, allow_retry=retry)
        finally:
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
            title = await self.assistant.title(input_user_message, thread, choice.model)
            thread.title = self.limits.cut_title(title)

    async def _turn_choice(self, thread: ThreadMetadata, message: UserMessageItem | None, context: Any) -> TurnChoice:
        """The composer's choice for this turn (checked in `_authorize`). A turn resumed without a
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
        """The user's zone for this turn (see `app.agents.chatkit.time_zone`): the request's header, else the
        page's answer to `get_time_zone` that this turn resumes from, else what the thread remembers;
        None when nobody said (`respond` then asks the front end, or uses DEFAULT_TIME_ZONE)."""
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

    async def action(
        self, thread: ThreadMetadata, action: Action[str, Any], sender: WidgetItem | None, context: Any
    ) -> AsyncIterator[ThreadStreamEvent]:
        outcome = await self.task_actions.apply(action, sender, context)
        if outcome.replacement is not None:
            yield ThreadItemReplacedEvent(item=outcome.replacement)
        if outcome.changed_ids:
            yield ClientEffectEvent(name="tasks.changed", data={"ids": sorted(outcome.changed_ids)})

    async def sync_action(
        self, thread: ThreadMetadata, action: Action[str, Any], sender: WidgetItem | None, context: Any
    ) -> SyncCustomActionResponse:
        try:
            outcome = await self.task_actions.apply(action, sender, context)
        except CustomStreamError as exc:
            # No stream carries it as an error event here: without this it was a 500.
            raise ProtocolError(exc.message) from None
        if outcome.replacement is not None:
            await self.store.save_item(thread.id, outcome.replacement, context)
        return SyncCustomActionResponse(updated_item=outcome.replacement)


def _as_library_time(item: ThreadItem) -> ThreadItem:
    """The item with `created_at` as naive local time, like the library's `datetime.now()`."""
    if item.created_at.tzinfo is None:
        return item
    return item.model_copy(update={"created_at": item.created_at.astimezone().replace(tzinfo=None)})


class _LibraryClockStore:
    """The store as openai-chatkit's agent helpers see it: items with naive local timestamps.

    `stream_agent_response` resumes a workflow from the last stored items and later subtracts its
    naive `datetime.now()` from that item's `created_at` (`end_workflow`); the store returns UTC-
    aware times, and naive minus aware is a TypeError. Naive local time is the same instant (the
    store reads naive values as local time), so saving such an item back changes nothing.
    """

    def __init__(self, store: Store[Any]) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def load_thread_items(
        self, thread_id: str, after: str | None, limit: int, order: str, context: Any
    ) -> Page[ThreadItem]:
        page = await self._store.load_thread_items(thread_id, after, limit, order, context)
        return page.model_copy(update={"data": [_as_library_time(item) for item in page.data]})

    async def load_item(self, thread_id: str, item_id: str, context: Any) -> ThreadItem:
        return _as_library_time(await self._store.load_item(thread_id, item_id, context))


def refuse_unstorable(request: str | bytes | bytearray) -> None:
    """A `ProtocolError` naming the first field whose text the database cannot store (NUL).

    Checked on the decoded JSON, so every string of every request type is covered: ids, cursors,
    message text, titles, metadata, action payloads. (msgspec decodes a body in microseconds.)
    """
    try:
        decoded = msgspec.json.decode(request)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):  # pragma: no cover - pydantic parsed it
        return
    field = first_unstorable(decoded)
    if field is not None:
        raise ProtocolError(unstorable_detail(field), field=field)


def _with_utc_timestamps(event: ThreadStreamEvent) -> ThreadStreamEvent:
    """The event with its item's or thread's naive `created_at` as UTC (a copy: the library keeps
    using the originals, and compares them with its own naive `datetime.now()`)."""
    if type(event) is ThreadItemUpdatedEvent:
        return event  # the text deltas, most of a stream: no timestamp (and pydantic's getattr misses are slow)
    for name in ("item", "thread"):
        holder = getattr(event, name, None)
        created_at = getattr(holder, "created_at", None)
        if holder is not None and isinstance(created_at, datetime) and created_at.tzinfo is None:
            fixed = holder.model_copy(update={"created_at": created_at.astimezone(UTC)})
            return event.model_copy(update={name: fixed})
    return event


@dataclass
class _Partial:
    """An assistant message being streamed: the item as added, and its text so far by content index."""

    added: AssistantMessageItem
    parts: dict[int, str] = field(default_factory=dict)

    def item(self) -> AssistantMessageItem:
        content = [AssistantMessageContent(text=self.parts[index], annotations=[]) for index in sorted(self.parts)]
        return self.added.model_copy(update={"content": content})


class _MessageIds:
    """Gives every assistant message a store-generated id.

    Chat Completions providers stream every message as `__fake_id__`; kept as is, two replies
    in one thread would overwrite each other. Events arrive in order (added, updates, done),
    so the model's id maps to one fresh id until that message is done.
    """

    def __init__(self, generate: Callable[[], str]) -> None:
        self._generate = generate
        self._current: dict[str, str] = {}

    def _map(self, model_id: str, *, done: bool = False) -> str:
        if model_id != FAKE_ID:
            return model_id
        mapped = self._current.get(model_id)
        if mapped is None:
            mapped = self._generate()
            self._current[model_id] = mapped
        if done:
            self._current.pop(model_id, None)
        return mapped

    def remap(self, event: ThreadStreamEvent) -> ThreadStreamEvent:
        if isinstance(event, ThreadItemAddedEvent | ThreadItemDoneEvent) and isinstance(
            event.item, AssistantMessageItem
        ):
            new_id = self._map(event.item.id, done=isinstance(event, ThreadItemDoneEvent))
            if new_id != event.item.id:
                return type(event)(item=event.item.model_copy(update={"id": new_id}))
        elif isinstance(event, ThreadItemUpdatedEvent) and event.item_id == FAKE_ID:
            return event.model_copy(update={"item_id": self._map(event.item_id)})
        return event


__all__ = ["REQUEST_ADAPTER", "NotFoundError", "TaskPilotChatKitServer"]
