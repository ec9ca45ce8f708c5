"""Hosted ChatKit sessions: the one place their rules live.

- A session is minted for the authenticated user only; OpenAI receives that user id.
- Every mint, refresh and cancel leaves a row in `hosted_sessions`: who, which session, until
  when, its status (active | refreshed | cancelled) and when it changed. The client secret is
  never stored, only its SHA-256, so a refresh can name the old session by its secret.
- Ownership is a property of the repository: every lookup filters by the caller's user id, so
  another user's session is indistinguishable from one that does not exist.
- A refresh always mints a new session for the caller and cancels the old one only when the
  caller owns it and it is still active. A secret or session id that is unknown or belongs to
  someone else is ignored (the answer is the same either way, so it reveals nothing): the
  caller still gets a working session, as ChatKit's `getClientSecret()` expects, and no one
  can cancel another user's session.
- `status = 'refreshed'` means replaced *and* cancelled upstream. When that cancel fails the
  old row stays `active` with `replaced_by` set, so `DELETE` can finish the job later.
- One refresh per session: a refresh first claims the session it replaces (one conditional
  UPDATE to `refreshing`, committed before OpenAI is called, so no lock is held across that
  call). Of concurrent refreshes of one secret, on any worker, exactly one wins; the others, and
  any later refresh of a session already replaced, get a 409 `AlreadyRefreshed` telling the
  client to use the newer secret or mint a new session. A failed mint gives the claim back; a
  claim that could not be given back (the database failed too, the process died) is taken over
  by the next refresh once it is older than any refresh can take (`CLAIM_GRACE_SECONDS`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging

import anyio
from sqlalchemy.ext.asyncio import AsyncSession

from app.contracts import ChatKitSession
from app.core.clock import utcnow
from app.core.errors import Conflict, DomainError, NotFound, ServiceUnavailable, UpstreamError
from app.core.limits import RateLimiter, enforce
from app.core.text import require_storable
from app.ops import metrics
from app.services.openai_sessions import MAX_RETRIES, HostedChatKit, UpstreamSession, UpstreamSessionGone
from app.store.connections import database_cause
from app.store.models import HostedSession
from app.store.sessions import HostedSessionRepository, fingerprint

log = logging.getLogger("app.sessions")

ACTIVE = "active"
REFRESHING = "refreshing"  # claimed by a refresh that is minting its replacement
REFRESHED = "refreshed"
CANCELLED = "cancelled"

# A refresh holds its claim for at most OpenAI's timeout per attempt plus this, which covers the
# SDK's backoff between attempts and recording the new session (pool wait, one reconnect). A claim
# older than that was left behind by a refresh that could not give it back (its release failed
# with the database, or its process died): the next refresh takes it over instead of answering
# 409 for a secret the client never received.
CLAIM_GRACE_SECONDS = 60.0


class HostedNotConfigured(ServiceUnavailable):
    """Hosted mode lacks its settings (the API key or the workflow id)."""


class AlreadyRefreshed(Conflict):
    """The session a refresh names was already replaced, or another refresh is replacing it (409)."""

    def __init__(self, field: str) -> None:
        super().__init__(
            "This session was already refreshed (another refresh replaced it or is replacing it): use the "
            "newer client secret that refresh returned, or mint a new session with POST /api/chatkit/sessions.",
            field=field,
        )


class HostedSessionService:
    """Mint, refresh and cancel hosted sessions for one request's user."""

    def __init__(self, db_session: AsyncSession, upstream: HostedChatKit, limiter: RateLimiter) -> None:
        self.db = db_session
        self.repository = HostedSessionRepository(session=db_session)
        self.upstream = upstream
        self.limiter = limiter

    async def mint(self, user_id: str) -> ChatKitSession:
        self._require_configured()
        await self._admit(user_id)
        # A mint writes one row and reads nothing: in autocommit that INSERT is durable when it
        # returns, with no BEGIN/COMMIT round trips around it (bench/mint.py).
        await self.db.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        session = await self._mint_and_record(user_id)
        metrics.SESSIONS_MINTED.labels(operation="mint").inc()
        log.info("hosted session minted", extra={"fields": _fields(user_id, session)})
        return _minted(session)

    async def refresh(
        self,
        user_id: str,
        *,
        current_client_secret: str | None = None,
        session_id: str | None = None,
    ) -> ChatKitSession:
        if current_client_secret is not None and session_id is not None:
            raise DomainError("Send either current_client_secret or session_id, not both.", field="session_id")
        self._require_configured()
        await self._admit(user_id)
        previous: HostedSession | None = None
        named = "current_client_secret" if current_client_secret is not None else "session_id"
        if current_client_secret is not None:
            previous = await self.repository.owned_by_secret(user_id, current_client_secret)
        elif session_id is not None:
            previous = await self.repository.owned(user_id, session_id)
        claimed: str | None = None  # the session id this refresh claimed
        if previous is not None and previous.status != CANCELLED:
            if previous.replaced_by is not None or not await self.repository.claim_for_refresh(
                previous, abandoned_before=self._abandoned_before()
            ):
                raise AlreadyRefreshed(named)
            await self.db.commit()  # visible to every other refresh before OpenAI is called
            claimed = previous.session_id

        try:
            session = await self._mint_and_record(user_id)
        except BaseException:
            if claimed is not None:
                await self._release_claim(user_id, claimed)
            raise
        metrics.SESSIONS_MINTED.labels(operation="refresh").inc()
        outcome = "none named"
        if current_client_secret is not None or session_id is not None:
            outcome = "not owned or unknown" if previous is None else await self._retire(previous, session)
        log.info(
            "hosted session refreshed",
            extra={"fields": {**_fields(user_id, session), "previous": outcome}},
        )
        return _minted(session)

    async def cancel(self, user_id: str, session_id: str) -> None:
        self._require_configured()
        require_storable(session_id, "session_id")
        row = await self.repository.owned(user_id, session_id)
        if row is None:
            raise NotFound("The session does not exist or belongs to another user; check the session id.")
        if row.status not in (ACTIVE, REFRESHING):
            return  # already cancelled (a refresh cancels the session it replaces): idempotent
        if not _expired(row):
            with contextlib.suppress(UpstreamSessionGone):  # already gone upstream: nothing to cancel
                await self.upstream.cancel(row.session_id, user_id=user_id)
        row.status = CANCELLED
        await self.db.commit()
        log.info(
            "hosted session cancelled",
            extra={"fields": {"user_id": user_id, "session_id": row.session_id}},
        )

    async def _release_claim(self, user_id: str, session_id: str) -> None:
        """Give back the claim of a refresh that failed; the refresh's own error is what the caller
        gets, so a failed release is only logged (the claim is taken over once abandoned)."""
        # Shielded: a client that disconnects cancels the refresh, and the claim must still go back.
        with anyio.CancelScope(shield=True):
            try:
                # By id: a failed record rolled the session back, which expired `previous`.
                await self.repository.release_claim(user_id, session_id)
                await self.db.commit()
            except Exception as exc:
                log.warning(
                    "could not give back a refresh's claim; the next refresh takes it over once abandoned",
                    extra={"fields": {"user_id": user_id, "session_id": session_id, "error": database_cause(exc)}},
                )
                with contextlib.suppress(Exception):
                    await self.db.rollback()

    def _abandoned_before(self) -> dt.datetime:
        """Claims made before this belong to refreshes that ended without giving them back."""
        longest = self.upstream.settings.openai_timeout_seconds * (MAX_RETRIES + 1) + CLAIM_GRACE_SECONDS
        return utcnow() - dt.timedelta(seconds=longest)

    def _require_configured(self) -> None:
        missing = self.upstream.missing
        if missing:
            names = " and ".join(missing)
            verb, pronoun = ("is", "it") if len(missing) == 1 else ("are", "them")
            raise HostedNotConfigured(
                f"Hosted ChatKit sessions are not configured on this server: {names} {verb} not set. "
                f"The operator must set {pronoun} and restart; GET /api/chatkit/health shows the status."
            )

    async def _admit(self, user_id: str) -> None:
        await enforce(
            self.limiter,
            f"hosted-sessions:{user_id}",
            "Too many ChatKit sessions requested for this user; retry in {retry_after} seconds.",
        )

    async def _mint_and_record(self, user_id: str) -> UpstreamSession:
        session = await self.upstream.create(user_id)
        try:
            await self.repository.record(
                user_id=user_id,
                session_id=session.session_id,
                status=ACTIVE,
                secret_sha256=fingerprint(session.client_secret),
                workflow_version=session.workflow_version,
                expires_at=session.expires_at,
            )
            await self.db.commit()
        except Exception:
            # A secret that was never recorded could not be audited or cancelled by its owner:
            # withdraw it rather than hand it out.
            await self.db.rollback()
            try:
                await self.upstream.cancel(session.session_id, user_id=user_id)
            except (UpstreamError, UpstreamSessionGone):
                log.warning(
                    "could not cancel a hosted session whose record failed",
                    extra={"fields": {"user_id": user_id, "session_id": session.session_id}},
                )
            raise
        return session

    async def _retire(self, previous: HostedSession, replacement: UpstreamSession) -> str:
        """Cancel the session a refresh replaces (claimed by this refresh); what happened, for the log."""
        if previous.status != REFRESHING:
            return f"already {previous.status}"
        previous.replaced_by = replacement.session_id
        if _expired(previous):
            previous.status = REFRESHED
            outcome = "expired"
        else:
            try:
                await self.upstream.cancel(previous.session_id, user_id=previous.user_id)
            except UpstreamSessionGone:
                previous.status = REFRESHED
                outcome = "gone upstream"
            except UpstreamError as exc:
                # The caller already has a working replacement; keep the old row active so a
                # DELETE can cancel it later, and say so in the log.
                previous.status = ACTIVE
                outcome = f"cancel failed ({exc.failure})"
            else:
                previous.status = REFRESHED
                outcome = "cancelled"
        await self.db.commit()
        return outcome


def _expired(row: HostedSession) -> bool:
    return row.expires_at is not None and row.expires_at <= utcnow()


def _minted(session: UpstreamSession) -> ChatKitSession:
    return ChatKitSession(
        client_secret=session.client_secret,
        session_id=session.session_id,
        expires_at=session.expires_at,
        status="success",
    )


def _fields(user_id: str, session: UpstreamSession) -> dict[str, object]:
    return {
        "user_id": user_id,
        "session_id": session.session_id,
        "expires_at": session.expires_at.isoformat(),
        "workflow_version": session.workflow_version,
    }
