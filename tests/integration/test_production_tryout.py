"""Production tried locally: `taskpilot token` mints, from AUTH_JWT_SECRET, a token that a
production-mode server accepts (docs/production.md's Deploy steps use it for the smoke test), the claims it
needs are the ones the verifier requires, and `HEAD /` is answered like `GET /`, without a body."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest
from litestar.testing import AsyncTestClient

from app.asgi import create_app
from app.core.errors import AuthError
from app.http.auth import TokenVerifier, mint_token
from app.settings import Settings
from tests.conftest import create_schema, make_settings
from tests.support.servers import run_cli

SECRET = "tryout-shared-secret-0123456789abcdef-0123"
PRODUCTION = {
    "APP_ENV": "production",
    "AUTH_JWT_SECRET": SECRET,
    "AUTH_ISSUER": "https://app.example.com",
    "AUTH_AUDIENCE": "https://app.example.com",
    "ALLOW_SQLITE_IN_PRODUCTION": "true",
}


async def test_the_cli_mints_a_token_a_production_server_accepts(tmp_path: Path) -> None:
    env = {**PRODUCTION, "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/p.db"}
    minted = run_cli(["token", "--user", "alice"], env)
    token = minted.stdout.strip()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == "alice"
    assert claims["iss"] == claims["aud"] == "https://app.example.com"
    assert 3000 < claims["exp"] - claims["iat"] <= 3600  # an hour unless --ttl says otherwise
    assert jwt.get_unverified_header(token)["alg"] == "HS256"

    settings = make_settings(tmp_path, **PRODUCTION)
    context = await TokenVerifier(settings).verify(token)
    assert context.user_id == "alice"
    await create_schema(settings.database_url)
    async with AsyncTestClient(create_app(settings)) as client:
        response = await client.get("/api/tasks", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        assert (await client.get("/api/tasks")).status_code == 401


async def test_a_minted_token_carries_only_the_claims_the_settings_require(tmp_path: Path) -> None:
    bare = make_settings(tmp_path, AUTH_MODE="jwt", AUTH_JWT_SECRET=SECRET)
    token = mint_token(bare, "bob", ttl_seconds=60)
    assert set(jwt.decode(token, options={"verify_signature": False})) == {"sub", "iat", "exp"}
    assert (await TokenVerifier(bare).verify(token)).user_id == "bob"
    # A server that checks an issuer refuses it: the issuer is a required claim there.
    strict = make_settings(tmp_path, AUTH_MODE="jwt", AUTH_JWT_SECRET=SECRET, AUTH_ISSUER="https://a.example")
    with pytest.raises(AuthError, match="'iss'"):
        await TokenVerifier(strict).verify(token)
    # Development mode keeps minting development tokens.
    dev = make_settings(tmp_path)
    assert (await TokenVerifier(dev).verify(mint_token(dev, "carol", ttl_seconds=60))).user_id == "carol"


def test_tokens_for_jwks_keys_come_from_the_identity_provider(tmp_path: Path) -> None:
    env = {
        "APP_ENV": "production",
        "AUTH_JWKS_URL": "https://app.example.com/api/auth/jwks",
        "ALLOW_SQLITE_IN_PRODUCTION": "true",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/p.db",
    }
    refused = run_cli(["token", "--user", "alice"], env, check=False)
    assert refused.returncode == 2
    assert "AUTH_JWT_SECRET is not set" in refused.stderr and refused.stdout == ""
    with pytest.raises(AuthError, match="identity provider"):
        mint_token(Settings.from_env(env), "alice", ttl_seconds=60)


async def test_head_of_the_page_is_answered_like_get_without_a_body(tmp_path: Path) -> None:
    async with AsyncTestClient(create_app(make_settings(tmp_path))) as client:
        page = await client.get("/")
        head = await client.head("/")
    assert head.status_code == 200 and head.content == b""
    for header in ("content-type", "content-security-policy", "cache-control"):
        assert head.headers[header] == page.headers[header], header
    assert head.headers["content-length"] == str(len(page.content))
