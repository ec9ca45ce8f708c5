"""Signing in as a test user: development tokens minted in-process (no `taskpilot token` subprocess)."""

from __future__ import annotations

from testkit.chatkit import dev_token

from app.http.auth import mint_dev_token
from app.settings import Settings


def token(user: str, settings: Settings | None = None, *, ttl_seconds: int = 24 * 3600) -> str:
    """A development token for `user`, signed with `settings`' secret (default: the development
    default every test server uses unless its environment says otherwise)."""
    if settings is None:
        return dev_token(user, ttl_seconds=ttl_seconds)
    return mint_dev_token(settings, user, ttl_seconds=ttl_seconds)


def bearer(user: str, settings: Settings | None = None, *, time_zone: str | None = None) -> dict[str, str]:
    """The `Authorization` header for `user` (and `Time-Zone` when given)."""
    headers = {"Authorization": f"Bearer {token(user, settings)}"}
    if time_zone is not None:
        headers["Time-Zone"] = time_zone
    return headers


def server_token(env: dict[str, str], user: str) -> str:
    """A token a live server with environment `env` accepts (its own `DEV_JWT_SECRET`, if set)."""
    return token(user, Settings.from_env(env))
