"""JWT verification: JWKS (Ed25519, ES256, RS256) with key rotation, HS256, dev tokens, and attacks."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from app.core.errors import AuthError
from app.http.auth import TokenVerifier, bearer_token, mint_dev_token
from app.settings import Settings
from tests.support.http_thread import serve_in_thread

ORIGIN = "http://127.0.0.1:3000"


class JwksServer:
    """A JWKS endpoint on a loopback port, like Better Auth's `/api/auth/jwks`."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                body = json.dumps({"keys": outer.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api/auth/jwks"
        self.thread = serve_in_thread(self.httpd)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    server = JwksServer()
    yield server
    server.close()


def ed25519_key(kid: str) -> tuple[Any, dict[str, Any]]:
    private = ed25519.Ed25519PrivateKey.generate()
    public_jwk = json.loads(OKPAlgorithm.to_jwk(private.public_key()))
    public_jwk.update(kid=kid, alg="EdDSA", use="sig")
    return private, public_jwk


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"sub": "user-a", "iss": ORIGIN, "aud": ORIGIN, "iat": now, "exp": now + 900}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def jwks_settings(url: str) -> Settings:
    return Settings.from_env({"AUTH_MODE": "jwt", "AUTH_JWKS_URL": url, "AUTH_ISSUER": ORIGIN, "AUTH_AUDIENCE": ORIGIN})


async def test_better_auth_ed25519_token_is_accepted(jwks: JwksServer) -> None:
    private, public = ed25519_key("k1")
    jwks.keys = [public]
    token = jwt.encode(claims(), private, algorithm="EdDSA", headers={"kid": "k1"})
    context = await TokenVerifier(jwks_settings(jwks.url)).verify(token)
    assert context.user_id == "user-a"


async def test_es256_and_rs256_keys_are_accepted(jwks: JwksServer) -> None:
    ec_private = ec.generate_private_key(ec.SECP256R1())
    ec_jwk = json.loads(ECAlgorithm.to_jwk(ec_private.public_key()))
    ec_jwk.update(kid="ec1", alg="ES256")
    rsa_private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_jwk = json.loads(RSAAlgorithm.to_jwk(rsa_private.public_key()))
    rsa_jwk.update(kid="rsa1", alg="RS256")
    jwks.keys = [ec_jwk, rsa_jwk]
    verifier = TokenVerifier(jwks_settings(jwks.url))
    es = jwt.encode(claims(sub="es"), ec_private, algorithm="ES256", headers={"kid": "ec1"})
    rs = jwt.encode(claims(sub="rs"), rsa_private, algorithm="RS256", headers={"kid": "rsa1"})
    assert (await verifier.verify(es)).user_id == "es"
    assert (await verifier.verify(rs)).user_id == "rs"


async def test_keys_are_cached_and_refetched_on_unknown_kid(jwks: JwksServer) -> None:
    private1, public1 = ed25519_key("old")
    jwks.keys = [public1]
    verifier = TokenVerifier(jwks_settings(jwks.url))
    for _ in range(5):
        await verifier.verify(jwt.encode(claims(), private1, algorithm="EdDSA", headers={"kid": "old"}))
    assert jwks.hits == 1
    assert verifier.jwks is not None
    verifier.jwks.min_refresh_seconds = 0  # the rotation happens later than the flood guard's window
    # The auth server restarted and minted a new key: a token with the new kid triggers one re-fetch.
    private2, public2 = ed25519_key("new")
    jwks.keys = [public2]
    context = await verifier.verify(jwt.encode(claims(sub="b"), private2, algorithm="EdDSA", headers={"kid": "new"}))
    assert context.user_id == "b"
    assert jwks.hits == 2


async def test_unknown_kid_floods_do_not_hammer_the_jwks_endpoint(jwks: JwksServer) -> None:
    private, public = ed25519_key("k1")
    jwks.keys = [public]
    verifier = TokenVerifier(jwks_settings(jwks.url))
    await verifier.verify(jwt.encode(claims(), private, algorithm="EdDSA", headers={"kid": "k1"}))
    for i in range(20):
        with pytest.raises(AuthError, match="no signing key matches"):
            await verifier.verify(jwt.encode(claims(), private, algorithm="EdDSA", headers={"kid": f"x{i}"}))
    assert jwks.hits == 1


def _unsigned(payload: dict[str, Any], header: dict[str, Any]) -> str:
    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{b64(header)}.{b64(payload)}."


@pytest.mark.parametrize(
    ("attack", "reason"),
    [
        ("alg_none", "algorithm is not accepted"),
        ("hs256_with_public_key", "algorithm is not accepted"),
        ("expired", "expired"),
        ("not_yet_valid", "not valid yet"),
        ("wrong_issuer", "issuer"),
        ("wrong_audience", "audience"),
        ("bad_signature", "signature is invalid"),
        ("other_key_same_kid", "signature is invalid"),
        ("missing_sub", "'sub'"),
        ("garbage", "not a well-formed JWT"),
        ("rs256_header_on_ed25519_key", "no signing key matches"),
    ],
)
async def test_attacks_are_rejected(jwks: JwksServer, attack: str, reason: str) -> None:
    private, public = ed25519_key("k1")
    jwks.keys = [public]
    verifier = TokenVerifier(jwks_settings(jwks.url))
    headers = {"kid": "k1"}
    now = int(time.time())
    if attack == "alg_none":
        token = _unsigned(claims(), {"alg": "none", "typ": "JWT", "kid": "k1"})
    elif attack == "hs256_with_public_key":
        public_pem = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        token = _hs256(claims(), public_pem, headers)
    elif attack == "expired":
        token = jwt.encode(claims(exp=now - 3600, iat=now - 7200), private, algorithm="EdDSA", headers=headers)
    elif attack == "not_yet_valid":
        token = jwt.encode(claims(nbf=now + 3600), private, algorithm="EdDSA", headers=headers)
    elif attack == "wrong_issuer":
        token = jwt.encode(claims(iss="https://evil.example"), private, algorithm="EdDSA", headers=headers)
    elif attack == "wrong_audience":
        token = jwt.encode(claims(aud="https://other.example"), private, algorithm="EdDSA", headers=headers)
    elif attack == "bad_signature":
        good = jwt.encode(claims(), private, algorithm="EdDSA", headers=headers)
        head, _payload, sig = good.split(".")
        forged_payload = base64.urlsafe_b64encode(json.dumps(claims(sub="admin")).encode()).rstrip(b"=").decode()
        token = f"{head}.{forged_payload}.{sig}"
    elif attack == "other_key_same_kid":
        attacker = ed25519.Ed25519PrivateKey.generate()
        token = jwt.encode(claims(), attacker, algorithm="EdDSA", headers=headers)
    elif attack == "missing_sub":
        token = jwt.encode(claims(sub=None), private, algorithm="EdDSA", headers=headers)
    elif attack == "garbage":
        token = "not-a-jwt"
    else:
        rsa_private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        token = jwt.encode(claims(), rsa_private, algorithm="RS256", headers=headers)
    with pytest.raises(AuthError, match=reason):
        await verifier.verify(token)


def _hs256(payload: dict[str, Any], key: bytes, headers: dict[str, Any]) -> str:
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", **headers}).encode())
    body = b64(json.dumps(payload).encode())
    sig = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


async def test_shared_secret_hs256() -> None:
    secret = "a-shared-secret-of-at-least-32-chars!!"
    settings = Settings.from_env({"AUTH_MODE": "jwt", "AUTH_JWT_SECRET": secret, "AUTH_ISSUER": ORIGIN})
    verifier = TokenVerifier(settings)
    assert (await verifier.verify(jwt.encode(claims(aud=None), secret, algorithm="HS256"))).user_id == "user-a"
    with pytest.raises(AuthError, match="signature is invalid"):
        await verifier.verify(jwt.encode(claims(aud=None), "x" * 40, algorithm="HS256"))
    with pytest.raises(AuthError, match="algorithm is not accepted"):
        await verifier.verify(jwt.encode(claims(aud=None), secret, algorithm="HS512"))


async def test_dev_tokens_only_in_dev_mode() -> None:
    dev = Settings.from_env({})
    token = mint_dev_token(dev, "alice")
    assert (await TokenVerifier(dev).verify(token)).user_id == "alice"
    jwt_mode = Settings.from_env({"AUTH_MODE": "jwt", "AUTH_JWT_SECRET": "q" * 40})
    with pytest.raises(AuthError):
        mint_dev_token(jwt_mode, "alice")
    with pytest.raises(AuthError):
        await TokenVerifier(jwt_mode).verify(token)


def test_bearer_header_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    for bad in (None, "", "Basic abc", "Bearer", "Bearer   "):
        with pytest.raises(AuthError):
            bearer_token(bad)
