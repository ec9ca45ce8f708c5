"""Persistence of hosted-session audit rows; every lookup takes the owner's user id."""

from __future__ import annotations

import hashlib

from advanced_alchemy.repository import SQLAlchemyAsyncRepository

from app.store.models import HostedSession


def fingerprint(client_secret: str) -> str:
    """SHA-256 of a client secret. Secrets are long random strings, so no salt is needed."""
    return hashlib.sha256(client_secret.encode()).hexdigest()


class HostedSessionRepository(SQLAlchemyAsyncRepository[HostedSession]):
    """Rows of `hosted_sessions`; every lookup takes the owner's user id."""

    model_type = HostedSession

    async def owned(self, user_id: str, session_id: str) -> HostedSession | None:
        return await self.get_one_or_none(user_id=user_id, session_id=session_id)

    async def owned_by_secret(self, user_id: str, client_secret: str) -> HostedSession | None:
        return await self.get_one_or_none(user_id=user_id, secret_sha256=fingerprint(client_secret))
