"""Persistence of hosted-session audit rows; every lookup takes the owner's user id."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import cast

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import Table, and_, insert, or_, update

from app.core.clock import utcnow
from app.store.models import HostedSession


def fingerprint(client_secret: str) -> str:
    """SHA-256 of a client secret. Secrets are long random strings, so no salt is needed."""
    return hashlib.sha256(client_secret.encode()).hexdigest()


class HostedSessionRepository(SQLAlchemyAsyncRepository[HostedSession]):
    """Rows of `hosted_sessions`; every lookup takes the owner's user id."""

    model_type = HostedSession

    async def record(
        self,
        *,
        user_id: str,
        session_id: str,
        status: str,
        secret_sha256: str,
        workflow_version: str | None,
        expires_at: dt.datetime,
    ) -> None:
        """Insert the row with one Core INSERT: no ORM flush, and no object left in the session.

        On a session in autocommit (a mint: `HostedSessionService.mint`) that one statement is
        the whole durable write, without BEGIN and COMMIT round trips; inside a transaction (a
        refresh) it commits with the rest.
        """
        now = utcnow()
        await self.session.execute(
            _INSERT,
            {
                "user_id": user_id,
                "session_id": session_id,
                "status": status,
                "secret_sha256": secret_sha256,
                "workflow_version": workflow_version,
                "expires_at": expires_at,
                "created_at": now,
                "updated_at": now,
            },
        )

    async def owned(self, user_id: str, session_id: str) -> HostedSession | None:
        return await self.get_one_or_none(user_id=user_id, session_id=session_id)

    async def owned_by_secret(self, user_id: str, client_secret: str) -> HostedSession | None:
        return await self.get_one_or_none(user_id=user_id, secret_sha256=fingerprint(client_secret))

    async def claim_for_refresh(self, row: HostedSession, *, abandoned_before: dt.datetime) -> bool:
        """Mark `row` as being replaced, unless another refresh did first (False then).

        One conditional UPDATE: concurrent claims of one row queue on its row lock (SQLite: on the
        database's write lock) and only the first finds it still `active` and not yet replaced.
        A claim made before `abandoned_before` is taken over: its refresh ended without giving it
        back (the database failed under the release, the process died) and no refresh runs that long.
        """
        result = await self.session.execute(
            update(HostedSession)
            .where(
                HostedSession.user_id == row.user_id,
                HostedSession.session_id == row.session_id,
                HostedSession.replaced_by.is_(None),
                or_(
                    HostedSession.status == "active",
                    and_(HostedSession.status == "refreshing", HostedSession.updated_at < abandoned_before),
                ),
            )
            .values(status="refreshing", updated_at=utcnow())
            .execution_options(synchronize_session="fetch")
        )
        return bool(getattr(result, "rowcount", 0))

    async def release_claim(self, user_id: str, session_id: str) -> None:
        """Give back a claim whose replacement could not be minted or recorded."""
        await self.session.execute(
            update(HostedSession)
            .where(
                HostedSession.user_id == user_id,
                HostedSession.session_id == session_id,
                HostedSession.status == "refreshing",
            )
            .values(status="active", updated_at=utcnow())
            .execution_options(synchronize_session="fetch")
        )


_INSERT = insert(cast("Table", HostedSession.__table__))
