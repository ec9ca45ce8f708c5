"""The ChatKit server: openai-chatkit's `ChatKitServer`, with TaskPilot's gate, stream and turn.

A request goes one way through this room:

1. `requests.parse_request`: the body, parsed once into the library's request union (the controller
   routes on that object and passes it to `handle`; `process` is the library's entry for a raw body);
2. `gate.Gate`: every refusal before a stream opens (ownership, quotas, limits, content, the turn lease);
3. the hand-off, `_library_events` and `_library_answer` below: the one place where TaskPilot's code
   gives a request to the library (its private `_process_streaming_impl` and `_process_non_streaming`,
   whose events and answers it serialises with its private `_serialize`);
4. `stream.StreamGuard`: the library's events made safe to end at any point, then framed as SSE;
5. the library calls back the protocol hooks here: `respond` (the turn, `turn.TurnRunner`),
   `action`/`sync_action` (widget actions, `actions.TaskActions`), `add_feedback`, `transcribe`,
   `handle_stream_cancelled` (shielded, so a disconnect never loses the partial answer).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

import anyio
from chatkit.actions import Action
from chatkit.errors import CustomStreamError
from chatkit.server import ChatKitServer, NonStreamingResult, StreamingResult
from chatkit.store import AttachmentStore, NotFoundError, Store
from chatkit.types import (
    ActiveStatus,
    AudioInput,
    ChatKitReq,
    ClientEffectEvent,
    ClosedStatus,
    FeedbackKind,
    NonStreamingReq,
    StreamingReq,
    SyncCustomActionResponse,
    ThreadItem,
    ThreadItemReplacedEvent,
    ThreadMetadata,
    ThreadStreamEvent,
    TranscriptionResult,
    UserMessageItem,
    WidgetItem,
    is_streaming_req,
)

from app.agents.assistant import Assistant
from app.agents.chatkit.actions import TaskActions
from app.agents.chatkit.composer import ComposerChoices
from app.agents.chatkit.gate import Gate
from app.agents.chatkit.language import thread_language
from app.agents.chatkit.requests import REQUEST_ADAPTER, dictation_not_configured, parse_request
from app.agents.chatkit.stream import StreamGuard
from app.agents.chatkit.time_zone import GET_TIME_ZONE, checked_answer
from app.agents.chatkit.turn import TurnRunner
from app.agents.chatkit.turns import TurnLocks
from app.agents.messages import say
from app.core.clock import Now, utcnow
from app.core.errors import ProtocolError, Unsupported
from app.ops import metrics
from app.services.quotas import UserLimits
from app.services.transcription import Audio, Transcriber, Transcription
from app.services.usage import UsageBook

log = logging.getLogger("app.chatkit")


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
        usage: UsageBook | None = None,
    ) -> None:
        super().__init__(store, attachment_store)
        self.limits = limits or UserLimits()
        self.assistant = assistant
        self.task_actions = task_actions
        self.keepalive_seconds = keepalive_seconds
        self.transcriber = transcriber
        # Where each turn's and each dictation's tokens are recorded; None: only logged.
        self.usage = usage
        # The composer's tools and models (inference_options), checked before a stream opens.
        self.composer = composer or ComposerChoices(default_model=assistant.model_name)
        # The client tools this server may ask for, each with the check of its answer's shape.
        self.client_tool_answers: dict[str, Callable[[Any], object]] = {GET_TIME_ZONE: checked_answer}
        self.gate = Gate(
            store=store,
            limits=self.limits,
            turns=turns,  # one turn per thread at a time (app.agents.chatkit.turns)
            composer=self.composer,
            transcriber=transcriber,
            client_tool_answers=self.client_tool_answers,
            usage=usage,
        )
        self.guard = StreamGuard(store=store, limits=self.limits)
        self.turn = TurnRunner(
            store=store,
            assistant=assistant,
            session_maker=session_maker,
            limits=self.limits,
            composer=self.composer,
            now=now,
            generate_message_id=lambda thread, context: store.generate_item_id("message", thread, context),
            default_time_zone=default_time_zone,
            model_slow_notice_seconds=model_slow_notice_seconds,
            log_content=log_content,
            usage=usage,
        )

    # ---- entry points ------------------------------------------------------------------------

    parse = staticmethod(parse_request)

    async def process(self, request: str | bytes | bytearray, context: Any) -> StreamingResult | NonStreamingResult:
        """The library's entry point, for a raw body (the controller parses first and calls `handle`)."""
        return await self.handle(parse_request(request), context)

    async def handle(self, request: ChatKitReq, context: Any) -> StreamingResult | NonStreamingResult:
        """A parsed request: through the gate, then to the library."""
        await self.gate.authorize(request, context)
        context = await self.gate.budget(request, context)
        context = await self.gate.reserve(request, context)
        if is_streaming_req(request):
            try:
                lease = await self.gate.take_turn(request, context)
            except BaseException:
                await self.gate.drop_reserved_thread(context)
                raise
            frames = self._frames(request, context)
            if lease is not None:
                frames = self.gate.holding(lease, frames, request, context, self._event_frame)
            return StreamingResult(frames)
        return NonStreamingResult(await self._library_answer(request, context))

    async def _frames(self, request: StreamingReq, context: Any) -> AsyncGenerator[bytes, None]:
        events = self.guard.events(
            self._library_events(request, context), request, context, self.gate.drop_reserved_thread
        )
        async for event in events:
            yield self._event_frame(event)

    # ---- the hand-off to openai-chatkit: the one place our code gives it a request -------------

    def _library_events(self, request: StreamingReq, context: Any) -> AsyncIterator[ThreadStreamEvent]:
        """The library's events for a streaming request (it calls back `respond`, `action`, ...)."""
        return self._process_streaming_impl(request, context)

    async def _library_answer(self, request: NonStreamingReq, context: Any) -> bytes:
        """The library's JSON answer to a non-streaming request."""
        return await self._process_non_streaming(request, context)

    def _event_frame(self, event: ThreadStreamEvent) -> bytes:
        """An event as an SSE frame, serialised exactly as the library serialises its own."""
        return b"data: " + self._serialize(event) + b"\n\n"

    # ---- protocol hooks ----------------------------------------------------------------------

    async def respond(
        self, thread: ThreadMetadata, input_user_message: UserMessageItem | None, context: Any
    ) -> AsyncIterator[ThreadStreamEvent]:
        async for event in self.turn.respond(thread, input_user_message, context):
            yield event
        # A turn that filled the thread (QUOTA_ITEMS_PER_THREAD) closes it with the reason, which
        # ChatKit's component shows instead of taking messages it would refuse; the library saves
        # the thread and streams `thread.updated`. A client that sends anyway gets the gate's 429.
        reason = await self.limits.full_thread(self.gate.counting_store, thread.id, context)
        if reason is not None:
            # The reason in the conversation's language (the 429 problem text stays the service's).
            thread.status = ClosedStatus(
                reason=say("thread.closed.full", thread_language(thread), limit=self.limits.items_per_thread)
            )
        elif isinstance(thread.status, ClosedStatus):
            # Closed under a smaller quota, and this turn found room (QUOTA_ITEMS_PER_THREAD was raised).
            thread.status = ActiveStatus()

    async def add_feedback(self, thread_id: str, item_ids: list[str], feedback: FeedbackKind, context: Any) -> None:
        save_feedback = getattr(self.store, "save_feedback", None)
        if save_feedback is None:
            raise Unsupported("Feedback is not stored by this server.")
        recorded = await save_feedback(thread_id, item_ids, feedback, context)
        metrics.FEEDBACK.labels(kind=feedback).inc(recorded if isinstance(recorded, int) else len(item_ids))

    async def transcribe(self, audio_input: AudioInput, context: Any) -> TranscriptionResult:
        if self.transcriber is None:
            raise dictation_not_configured()
        audio = Audio(data=audio_input.data, media_type=audio_input.media_type.strip().lower())
        user_id = getattr(context, "user_id", None)
        transcription = await self.transcriber.transcribe(audio, user_id=user_id)
        # Shielded: the call is billed even if the person gave up waiting for its text.
        with anyio.CancelScope(shield=True):
            await self._account_transcription(user_id, transcription)
        return TranscriptionResult(text=transcription.text)

    async def _account_transcription(self, user_id: str | None, transcription: Transcription) -> None:
        assert self.transcriber is not None
        usage = transcription.usage
        fields = {
            "model": self.transcriber.model,
            "user_id": user_id,
            "input_tokens": usage.tokens.input,
            "output_tokens": usage.tokens.output,
            "audio_seconds": usage.audio_seconds,
            "usage_reported": usage.reported,
        }
        log.info("transcription usage", extra={"fields": fields})
        if self.usage is None or user_id is None:
            return
        try:
            await self.usage.record_transcription(user_id, self.transcriber.model, usage)
        except Exception as exc:  # the text is already transcribed: a lost count must not fail the dictation
            fields["error"] = type(exc).__name__
            log.warning("could not record transcription usage", extra={"fields": fields})

    async def handle_stream_cancelled(
        self, thread: ThreadMetadata, pending_items: list[ThreadItem], context: Any
    ) -> None:
        # The disconnect that got us here also cancels every await in this scope; without the
        # shield the writes below are cancelled too and the partial answer is lost.
        cleanup = asyncio.ensure_future(super().handle_stream_cancelled(thread, pending_items, context))
        with anyio.CancelScope(shield=True):
            await asyncio.shield(cleanup)

    async def action(
        self, thread: ThreadMetadata, action: Action[str, Any], sender: WidgetItem | None, context: Any
    ) -> AsyncIterator[ThreadStreamEvent]:
        outcome = await self.task_actions.apply(action, sender, context, thread_language(thread))
        if outcome.replacement is not None:
            yield ThreadItemReplacedEvent(item=outcome.replacement)
        if outcome.changed_ids:
            yield ClientEffectEvent(name="tasks.changed", data={"ids": sorted(outcome.changed_ids)})

    async def sync_action(
        self, thread: ThreadMetadata, action: Action[str, Any], sender: WidgetItem | None, context: Any
    ) -> SyncCustomActionResponse:
        try:
            outcome = await self.task_actions.apply(action, sender, context, thread_language(thread))
        except CustomStreamError as exc:
            # No stream carries it as an error event here: without this it was a 500.
            raise ProtocolError(exc.message) from None
        if outcome.replacement is not None:
            await self.store.save_item(thread.id, outcome.replacement, context)
        return SyncCustomActionResponse(updated_item=outcome.replacement)


__all__ = ["REQUEST_ADAPTER", "NotFoundError", "TaskPilotChatKitServer"]
