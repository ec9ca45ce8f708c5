"""The gate before a stream: everything a ChatKit request can be refused for, decided before the
200 goes out, so that a refusal is a 4xx (problem+json), never a broken stream.

- `authorize`: what the request names is loaded as this user (another user's data is a 404), the
  user's quotas and the length limits hold, and its content is acceptable (composer choices, tags,
  attachments uploaded and of this thread, a client tool's answer of the declared shape);
- `reserve`: a `threads.create` reserves its thread, last, once every other check has passed;
- `take_turn`: the turn lease (docs/self-hosted-mode.md, "One turn per thread"), then `holding` runs the
  stream under it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, replace
from typing import Any, cast

import anyio
import msgspec
from chatkit.store import NotFoundError, Store
from chatkit.types import (
    AttachmentsDeleteReq,
    ChatKitReq,
    ClientToolCallItem,
    ErrorEvent,
    InputTranscribeReq,
    ItemsFeedbackReq,
    StructuredInputItem,
    ThreadsAddClientToolOutputReq,
    ThreadsAddStructuredInputReq,
    ThreadsAddUserMessageReq,
    ThreadsCreateReq,
    ThreadsCustomActionReq,
    ThreadsRetryAfterItemReq,
    ThreadsSyncCustomActionReq,
    ThreadStreamEvent,
    ThreadsUpdateReq,
    UserMessageItem,
    WidgetItem,
)

from app.agents.chatkit.composer import ComposerChoices
from app.agents.chatkit.entities import check_tags
from app.agents.chatkit.requests import dictation_not_configured
from app.agents.chatkit.turns import TurnLease, TurnLocks
from app.core.errors import Conflict, ProtocolError, QuotaExceeded
from app.services.quotas import CountingStore, UserLimits
from app.services.transcription import Transcriber
from app.services.usage import UsageBook

log = logging.getLogger("app.chatkit")

# An answer to a client tool is stored and replayed to the model; the declared ones are far smaller.
MAX_CLIENT_TOOL_RESULT_BYTES = 4096
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

QUESTION_SUPERSEDED = (
    "This structured input was left unanswered: the conversation went on with a later message. "
    "Say your answer in a new message instead."
)


@dataclass
class Gate:
    """The checks of one server; `client_tool_answers` is the server's own dict (tests add to it)."""

    store: Store[Any]
    limits: UserLimits
    turns: TurnLocks
    composer: ComposerChoices
    transcriber: Transcriber | None
    # The client tools this server may ask for, each with the check of its answer's shape.
    client_tool_answers: dict[str, Callable[[Any], object]]
    # The daily token budget (QUOTA_TOKENS_PER_USER_PER_DAY); None: no budget is kept.
    usage: UsageBook | None = None

    @property
    def counting_store(self) -> CountingStore:
        return cast("CountingStore", self.store)

    async def budget(self, request: ChatKitReq, context: Any) -> Any:
        """The context a request that starts a turn runs with, carrying the user's use of their daily
        token budget; once it is spent, a 429 naming the budget and when it resets (before the thread
        of a `threads.create` is reserved, before a dictation's audio is uploaded: a transcription
        spends tokens too)."""
        if self.usage is None or not isinstance(
            request, ThreadsCreateReq | ThreadsAddUserMessageReq | ThreadsRetryAfterItemReq | InputTranscribeReq
        ):
            return context
        use = await self.usage.check(context.user_id)
        return context if use is None else replace(context, token_budget=use)

    async def reserve(self, request: ChatKitReq, context: Any) -> Any:
        """The context a `threads.create` runs with: its thread reserved (and counted against the
        user's thread quota), saved holding the turn lease its stream runs under (`take_turn`).
        Last, once every other check has passed: it saves the thread."""
        if not isinstance(request, ThreadsCreateReq):
            return context
        store = self.counting_store
        thread_id = store.generate_thread_id(context)
        # Saved holding the new turn's lease (`take_turn`): nobody else knows the id yet.
        lease = self.turns.lease(thread_id, context)

        async def save(token: str, seconds: float) -> None:
            await self.limits.reserve_new_thread(store, context, thread_id=thread_id, turn=(token, seconds))

        reserved = replace(context, reserved_thread_id=thread_id, reserved_turn=lease)
        try:
            await lease.hold_from(save)
        except QuotaExceeded:
            raise  # refused inside the transaction, rolled back: nothing was saved
        except BaseException:
            # The row may have committed before the call failed (the connection died during
            # COMMIT, the request was cancelled): an empty thread holding this turn's lease would
            # sit in the user's list, counted against the quota and refusing every turn ("a turn
            # is running") until the lease expired. Deleted as a failed stream's is; gone with it.
            await self.drop_reserved_thread(reserved, unsure=True)
            raise
        return reserved

    async def drop_reserved_thread(self, context: Any, *, unsure: bool = False) -> None:
        """Delete the thread reserved for a `threads.create` whose stream failed before the page
        learned its id: nobody can use it, and it counts against the thread quota. (A 503 here is
        re-sent by a load balancer, which reserves another: without this, empty threads pile up.)
        Shielded: a disconnect must not cut it short. `unsure`: the reservation itself failed, and
        the thread may never have been saved."""
        reserved = getattr(context, "reserved_thread_id", None)
        if reserved is None:
            return
        try:
            with anyio.CancelScope(shield=True):
                await self.store.delete_thread(reserved, context)
        except NotFoundError:
            if not unsure:
                log.warning(
                    "could not delete an unused new thread",
                    extra={"fields": {"thread_id": reserved, "error": "NotFoundError"}},
                )
        except Exception as exc:  # the store may be what failed: the empty thread then stays until deleted
            log.warning(
                "could not delete an unused new thread",
                extra={"fields": {"thread_id": reserved, "error": type(exc).__name__}},
            )

    # ---- the turn lease ----------------------------------------------------------------------

    async def take_turn(self, request: ChatKitReq, context: Any) -> TurnLease | None:
        """The turn lease a streaming request runs under (docs/self-hosted-mode.md, "One turn per thread"), decided
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
                    reserved: TurnLease | None = getattr(context, "reserved_turn", None)
                    if reserved is not None and reserved.held:  # saved with the thread (`reserve`)
                        return reserved
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
                    # Again, now that no other turn can change the thread: the item `authorize` saw may be gone.
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
        thread_id = request.params.thread_id
        item = await self.store.load_item(thread_id, request.params.item_id, context)
        if isinstance(item, StructuredInputItem) and item.status != "pending":
            raise Conflict("This structured input was already answered: a turn is already running with it.")
        # The turn it resumes answers the newest user message: once the user wrote another one, the
        # question's turn is over, and resuming would act on that later message a second time.
        after: str | None = item.id
        while after is not None:
            page = await self.store.load_thread_items(thread_id, after, 50, "asc", context)
            if any(isinstance(later, UserMessageItem) for later in page.data):
                raise Conflict(QUESTION_SUPERSEDED)
            after = page.after if page.has_more else None

    async def _pending_tool_call(self, thread_id: str, context: Any, refusal: str) -> ClientToolCallItem:
        page = await self.store.load_thread_items(thread_id, None, 1, "desc", context)
        last = page.data[0] if page.data else None
        if not isinstance(last, ClientToolCallItem) or last.status != "pending":
            raise Conflict(refusal)
        return last

    async def holding(
        self,
        lease: TurnLease,
        events: AsyncGenerator[bytes, None],
        request: ChatKitReq,
        context: Any,
        frame: Callable[[ThreadStreamEvent], bytes],
    ) -> AsyncGenerator[bytes, None]:
        """`events` run under `lease`: claimed first (a queued message waits here), renewed while
        they run, released when they end, however they end (a disconnect included, even one that
        cut the claim short). `frame` writes an event as the stream writes its own."""
        try:
            queued = lease.queued
            await lease.claim()
            if queued and isinstance(request, ThreadsAddUserMessageReq):
                # The turns it waited behind added items: the thread may be full now.
                try:
                    await self.limits.check_thread_items(self.counting_store, request.params.thread_id, context)
                except QuotaExceeded as exc:
                    yield frame(ErrorEvent(code="custom", message=exc.detail, allow_retry=False))
                    return
            async with lease.kept():
                async for event in events:
                    yield event
        finally:
            await lease.release()  # (a no-op once `kept` has released it)
            await events.aclose()

    # ---- what the request names, and its content ---------------------------------------------

    async def authorize(self, request: ChatKitReq, context: Any) -> None:
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
                if isinstance(request, ThreadsAddStructuredInputReq):
                    if not isinstance(item, StructuredInputItem):
                        raise ProtocolError("params.item_id must name a structured input item.")
                    # The library logs every unknown id (a whole body of them, one line): refused here.
                    unknown = set(request.params.input.answers) - {question.id for question in item.inputs}
                    if unknown:
                        raise ProtocolError(
                            f"params.input.answers names {len(unknown)} id(s) that are no question of this "
                            f"structured input; its questions are: {', '.join(q.id for q in item.inputs)}.",
                            field="params.input.answers",
                        )
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
                    raise dictation_not_configured()
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
        limits, store = self.limits, self.counting_store
        match request:
            # A widget action, streamed or synchronous, adds no item: it works in a full (closed) thread.
            case (
                ThreadsAddUserMessageReq()
                | ThreadsRetryAfterItemReq()
                | ThreadsAddClientToolOutputReq()
                | ThreadsAddStructuredInputReq()
            ):
                await limits.check_thread_items(store, request.params.thread_id, context)
            case ThreadsUpdateReq():
                limits.check_title(request.params.title, "params.title")
        if isinstance(request, ThreadsCreateReq | ThreadsAddUserMessageReq):
            length = sum(len(getattr(part, "text", "")) for part in request.params.input.content)
            limits.check_message(length, "params.input.content")
        if isinstance(request, ThreadsAddStructuredInputReq):
            # The answer is stored and sent to the model on every later turn, as a message is.
            answers = request.params.input.answers.values()
            limits.check_message(sum(len(v) for a in answers for v in a.values), "params.input.answers")
