"""The TaskPilotAI deployment guide's checks, replayed against TaskPilot.

Operators of the original front end follow a guide whose curl checks are the contract here:
`GET /api/v1/chatkit/health` answering `{"status", "message", "chatkit_ready"}` and
`POST /api/chatkit/sessions` answering `{"client_secret", "session_id", "status": "success"}`.
The live tests start `taskpilot serve` (as `make run` does) on a loopback port, with
`OPENAI_BASE_URL` at a local fake of OpenAI's sessions API, and send the guide's requests over
real HTTP. TaskPilot differs from the guide on purpose in one place: minting needs a bearer token,
so the guide's anonymous request is a 401 that says what to send, and the replay then adds one.
docs/troubleshooting.md answers the failures tried here with the same commands.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import psutil
import pytest
from litestar.testing import AsyncTestClient

from app.__main__ import OPENAPI_PATH
from app.agents.tools import composer_tool_options
from app.asgi import create_app
from app.ops.health import READY_PHRASE, chatkit_health
from app.settings import Secret
from tests.conftest import make_settings
from tests.support.auth import server_token
from tests.support.fake_openai import FakeOpenAI
from tests.support.servers import LiveServer

API_KEY = "sk-test-GuideReplayServerKey-0123456789abcdef"
WORKFLOW_ID = "wf_6946b383d368819081b556e6e5fa66330d48d0c9ea4fccd8"  # the guide's own workflow id
FRONT_END = "http://localhost:3000"  # where the guide's Next.js front end runs
HEALTH_PATHS = ("/api/v1/chatkit/health", "/api/chatkit/health")
# The guide's session check sends this header and no body.
GUIDE_HEADERS = {"Content-Type": "application/json"}


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(API_KEY, workflows=[WORKFLOW_ID])
    yield fake
    fake.stop()


def guide_env(fake: FakeOpenAI, **overrides: str) -> dict[str, str]:
    """The guide's backend `.env` (key and workflow), pointed at the fake, plus the front end's origin."""
    return {
        "OPENAI_API_KEY": API_KEY,
        "CHATKIT_WORKFLOW_ID": WORKFLOW_ID,
        "OPENAI_BASE_URL": fake.base_url,
        "OPENAI_TIMEOUT_SECONDS": "5",
        "MODEL_PROVIDER": "offline",
        "CORS_ORIGINS": FRONT_END,
        **overrides,
    }


def assert_no_server_secrets(*texts: str, key: str = API_KEY) -> None:
    for text in texts:
        assert key not in text
        assert key[-12:] not in text
        assert WORKFLOW_ID not in text


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"] and body["detail"]
    return body


def dev_token(server: LiveServer, user: str) -> str:
    """What the docs' `taskpilot token --user <name>` prints, minted in-process (that the CLI's
    token is accepted is tests/live/test_live_server.py::test_dev_token_from_cli_is_accepted)."""
    token = server_token(server.env, user)
    assert token.count(".") == 2
    return token


# --- the guide's checks over real HTTP against `taskpilot serve` -------------------------------


def test_guide_checks_pass_against_taskpilot_serve(live_server_factory: Any, fake_openai: FakeOpenAI) -> None:
    server = live_server_factory(guide_env(fake_openai), via_cli=True)
    # `taskpilot serve` replaced itself with granian, as under `make run`.
    assert "granian" in psutil.Process(server.process.pid).cmdline()[1:3]
    with httpx.Client(base_url=server.base_url, timeout=15) as client:
        # "Verify backend is running": curl http://localhost:8000/health
        liveness = client.get("/health")
        assert liveness.status_code == 200
        assert liveness.json()["status"] == "ok"

        # Backend Health Check: curl http://localhost:8000/api/v1/chatkit/health
        answers = [client.get(path) for path in HEALTH_PATHS]
        for answer in answers:
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"].startswith("application/json")
            assert_no_server_secrets(answer.text)
        guide, ours = (answer.json() for answer in answers)
        assert guide == ours  # the alias is the same document
        assert guide["chatkit_ready"] is True
        assert guide["message"].startswith(READY_PHRASE)
        assert "OPENAI_API_KEY" in guide["message"] and "CHATKIT_WORKFLOW_ID" in guide["message"]
        assert guide["status"] == "ok" and guide["service"] == "chatkit"  # the guide's API summary shape
        assert guide["hosted"] == {"ready": True, "missing": [], "detail": "POST /api/chatkit/sessions mints sessions"}
        assert guide["self_hosted"]["endpoint"] == "/chatkit" and guide["auth_mode"] == "dev"

        # Session Creation Test, verbatim: curl -X POST .../api/chatkit/sessions -H "Content-Type: ..."
        anonymous = client.post("/api/chatkit/sessions", headers=GUIDE_HEADERS)
        problem = assert_problem(anonymous, 401)
        assert "Authorization: Bearer <token>" in problem["detail"]
        assert problem["instance"] == "/api/chatkit/sessions"
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
        assert fake_openai.requests == []  # an anonymous caller spends nothing of the operator's quota

        # ... with the token TaskPilot requires.
        alice = {**GUIDE_HEADERS, "Authorization": f"Bearer {dev_token(server, 'alice')}"}
        minted = client.post("/api/chatkit/sessions", headers=alice)
        assert minted.status_code == 200, minted.text
        session = minted.json()
        assert session["status"] == "success"
        assert set(session) == {"client_secret", "session_id", "status", "expires_at"}
        upstream = fake_openai.sessions[session["session_id"]]
        assert session["client_secret"] == upstream["client_secret"]  # the guide's `jq -r .client_secret`
        (sent,) = fake_openai.creates()
        assert sent.body["user"] == "alice"
        assert sent.body["workflow"] == {"id": WORKFLOW_ID}

        # The front end's getClientSecret(existing): a refresh, on the current and the older path.
        refreshed = client.post(
            "/api/chatkit/sessions/refresh",
            headers=alice,
            json={"current_client_secret": session["client_secret"]},
        )
        assert refreshed.status_code == 200, refreshed.text
        assert refreshed.json()["status"] == "success"
        assert refreshed.json()["session_id"] != session["session_id"]
        legacy = client.post("/api/chatkit/refresh", headers=alice, json={"session_id": refreshed.json()["session_id"]})
        assert legacy.status_code == 200, legacy.text
        assert legacy.json()["status"] == "success"
        assert fake_openai.cancels() == [session["session_id"], refreshed.json()["session_id"]]

        # "ChatKit script not loading / CORS": the front end's origin may call with a token ...
        preflight = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        }
        allowed = client.options("/api/chatkit/sessions", headers={"Origin": FRONT_END, **preflight})
        assert allowed.status_code in {200, 204}, allowed.text
        assert allowed.headers["access-control-allow-origin"] == FRONT_END
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
        # ... an origin missing from CORS_ORIGINS may not.
        foreign = client.options("/api/chatkit/sessions", headers={"Origin": "http://localhost:3001", **preflight})
        assert foreign.headers.get("access-control-allow-origin") != "http://localhost:3001"

    server.stop()
    log = server.log()
    assert "hosted session minted" in log  # the guide's "Created ChatKit session" log line
    assert_no_server_secrets(log)
    assert session["client_secret"] not in log


@pytest.mark.parametrize(
    ("overrides", "names", "says"),
    [
        pytest.param(
            {"OPENAI_API_KEY": "sk-test-NotTheServersKey-987654321zyxw"},
            "OPENAI_API_KEY",
            "credentials were rejected",
            id="rejected-key",
        ),
        pytest.param(
            {"CHATKIT_WORKFLOW_ID": "wf_0000000000000000000000000000000000000000deadbeef"},
            "CHATKIT_WORKFLOW_ID",
            "found no ChatKit workflow",
            id="unknown-workflow",
        ),
    ],
)
def test_guide_failures_are_502_naming_the_variable(
    live_server_factory: Any, fake_openai: FakeOpenAI, overrides: dict[str, str], names: str, says: str
) -> None:
    """ "ChatKit loads but won't accept messages" / "Workflow not found": the session check tells why."""
    server = live_server_factory(guide_env(fake_openai, **overrides), via_cli=True)
    with httpx.Client(base_url=server.base_url, timeout=15) as client:
        health = client.get("/api/v1/chatkit/health").json()
        # Configured is not verified: health cannot know OpenAI will refuse; the mint says so.
        assert health["chatkit_ready"] is True
        token = dev_token(server, "alice")
        response = client.post("/api/chatkit/sessions", headers={**GUIDE_HEADERS, "Authorization": f"Bearer {token}"})
    detail = assert_problem(response, 502)["detail"]
    assert names in detail
    assert says in detail
    assert "Retrying will not help" in detail
    assert len(fake_openai.creates()) == 1  # not retried: it cannot succeed until the operator acts
    server.stop()
    for value in overrides.values():
        assert value not in response.text
        assert value not in server.log()
        assert value[-8:] not in response.text  # OpenAI quotes a masked key or the id; never relayed
    assert_no_server_secrets(response.text, server.log())


# --- the checked-in spec ------------------------------------------------------------------------


def test_spec_has_the_guide_path_deprecated_and_the_guide_fields() -> None:
    spec = json.loads(OPENAPI_PATH.read_text())
    alias = spec["paths"]["/api/v1/chatkit/health"]["get"]
    current = spec["paths"]["/api/chatkit/health"]["get"]
    assert alias["operationId"] == "GetChatKitHealthLegacy"
    assert alias["deprecated"] is True
    assert current.get("deprecated") is False
    assert alias["tags"] == current["tags"] == ["Health"]
    assert "security" not in alias  # public, like the path it aliases
    schema_of = lambda op: op["responses"]["200"]["content"]["application/json"]["schema"]  # noqa: E731
    assert schema_of(alias) == schema_of(current) == {"$ref": "#/components/schemas/ChatKitHealth"}
    health = spec["components"]["schemas"]["ChatKitHealth"]
    assert {"status", "chatkit_ready", "message", "service", "hosted", "self_hosted", "auth_mode"} <= set(
        health["required"]
    )
    assert health["properties"]["chatkit_ready"]["type"] == "boolean"
    session = spec["components"]["schemas"]["ChatKitSession"]
    assert session["properties"]["status"]["const"] == "success"
    assert "status" in session["required"]


# --- the health document in-process: fields, wording and no secret values ---------------------


async def test_health_alias_and_fields_in_process(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, OPENAI_API_KEY=API_KEY, CHATKIT_WORKFLOW_ID=WORKFLOW_ID)
    async with AsyncTestClient(app=create_app(settings)) as client:
        answers = [await client.get(path) for path in HEALTH_PATHS]
    assert [a.status_code for a in answers] == [200, 200]
    assert (
        answers[0].json() == answers[1].json() == msgspec.to_builtins(chatkit_health(settings, composer_tool_options()))
    )
    assert answers[0].json()["chatkit_ready"] is True


@pytest.mark.parametrize(
    ("unset", "missing"),
    [
        (("OPENAI_API_KEY", "CHATKIT_WORKFLOW_ID"), ["OPENAI_API_KEY", "CHATKIT_WORKFLOW_ID"]),
        (("CHATKIT_WORKFLOW_ID",), ["CHATKIT_WORKFLOW_ID"]),
        (("OPENAI_API_KEY",), ["OPENAI_API_KEY"]),
    ],
)
def test_health_message_names_what_is_not_configured(
    tmp_path: Path, unset: tuple[str, ...], missing: list[str]
) -> None:
    env = {"OPENAI_API_KEY": API_KEY, "CHATKIT_WORKFLOW_ID": WORKFLOW_ID, "MODEL_PROVIDER": "offline"}
    for name in unset:
        del env[name]
    health = chatkit_health(make_settings(tmp_path, **env))
    assert health.chatkit_ready is False
    assert health.hosted.missing == missing
    assert not health.message.startswith(READY_PHRASE)
    assert health.message.startswith("Hosted ChatKit is not configured")
    for name in ("OPENAI_API_KEY", "CHATKIT_WORKFLOW_ID"):
        assert (f"{name} " in health.message.split(", so")[0]) is (name in missing)
    assert "answers 503" in health.message
    assert "/chatkit is ready (the offline assistant)" in health.message  # self-hosted works regardless
    assert_no_server_secrets(health.message)


def test_health_message_mentions_the_domain_key_only_in_production_without_one(tmp_path: Path) -> None:
    production = {
        "APP_ENV": "production",
        "ALLOW_SQLITE_IN_PRODUCTION": "true",
        "AUTH_JWKS_URL": "https://app.example.com/api/auth/jwks",
        "OPENAI_API_KEY": API_KEY,
        "CHATKIT_WORKFLOW_ID": WORKFLOW_ID,
    }
    without = chatkit_health(make_settings(tmp_path, **production)).message
    with_key = chatkit_health(make_settings(tmp_path, **production, CHATKIT_DOMAIN_KEY="domain_pk_123")).message
    development = chatkit_health(make_settings(tmp_path, OPENAI_API_KEY=API_KEY, CHATKIT_WORKFLOW_ID=WORKFLOW_ID))
    assert "CHATKIT_DOMAIN_KEY is not set" in without
    assert "CHATKIT_DOMAIN_KEY" not in with_key
    assert "domain_pk_123" not in with_key
    assert "CHATKIT_DOMAIN_KEY" not in development.message  # localhost needs none


def test_health_never_contains_a_secret_value(tmp_path: Path) -> None:
    """Every setting marked secret, set to a recognisable value, appears nowhere in the document."""
    secrets = {
        "OPENAI_API_KEY": "sk-proj-HealthSecretValue-OpenAI-0001",
        "CHATKIT_WORKFLOW_ID": "wf_HealthSecretValueWorkflow0002",
        "MODEL_API_KEY": "HealthSecretValue-ModelKey-0003",
        "AUTH_JWT_SECRET": "HealthSecretValue-JwtSecret-0004-padding-padding",
        "AUTH_DEV_SECRET": "HealthSecretValue-DevSecret-0005",
        "METRICS_TOKEN": "HealthSecretValue-Metrics-0006",
        "REDIS_URL": "redis://:HealthSecretValueRedis0007@127.0.0.1:6399/0",
        "ATTACHMENT_S3_ACCESS_KEY_ID": "HealthSecretValue-S3Id-0008",
        "ATTACHMENT_S3_SECRET_ACCESS_KEY": "HealthSecretValue-S3Secret-0009",
        "ATTACHMENT_SIGNING_SECRET": "HealthSecretValue-Signing-0010-padding-padding",
        "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20HealthSecretValue-Otel-0011",
    }
    for provider in ("offline", "openai"):
        settings = make_settings(tmp_path, MODEL_PROVIDER=provider, **secrets)
        secret_fields = [f.name for f in dataclasses.fields(settings) if "Secret" in str(f.type)]
        # The list above sets every secret setting there is; a new one must be added to it.
        unset = [name for name in secret_fields if not isinstance(getattr(settings, name), Secret)]
        assert len(secret_fields) == len(secrets) and not unset, (secret_fields, unset)
        document = msgspec.json.encode(chatkit_health(settings)).decode()
        for name in secret_fields:
            value = getattr(settings, name).get()
            assert value not in document, name
        assert "HealthSecretValue" not in document  # no part of any of them either
        assert chatkit_health(settings).chatkit_ready is True
