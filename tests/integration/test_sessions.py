"""Hosted ChatKit sessions: mint, refresh, cancel and the legacy paths, through the real `openai`
SDK over real HTTP to a local fake of OpenAI's sessions API (tests/support/fake_openai.py).

Refresh of a session the caller does not own: the refresh still mints a session for the
caller and leaves the named session alone (see `app.services.hosted_sessions`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from testkit.processes import free_port

from app.asgi import create_app
from app.ops.logging import JsonFormatter
from app.settings import Settings
from app.store.db import build_db_config
from app.store.models import HostedSession
from tests.conftest import auth_headers
from tests.support.fake_openai import FakeOpenAI, error_body
from tests.support.hosted import API_KEY, SESSION_FIELDS, WORKFLOW_ID, assert_no_server_secrets, hosted_env, running
from tests.support.production import terminate_server_connections

# `status` is always "success": the field the TaskPilotAI deployment guide checks.
RESPONSE_KEY = {"current_client_secret": "client_secret", "session_id": "session_id"}


Hosted = Callable[..., Any]


@pytest.fixture
def hosted(tmp_path: Path, fake_openai: FakeOpenAI) -> Hosted:
    """`async with hosted(**ENV) as (client, app)`: the app on a SQLite file, talking to the fake."""

    def start(*, fake: FakeOpenAI | None = fake_openai, **overrides: Any) -> Any:
        env = hosted_env(fake, DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/hosted.db", **overrides)
        return running(Settings.from_env(env))

    return start


@pytest.fixture
def hosted_db(engine: AsyncEngine, database_url: str, fake_openai: FakeOpenAI) -> Hosted:
    """Like `hosted`, once on SQLite and once on PostgreSQL (schema made by the `engine` fixture)."""

    def start(**overrides: Any) -> Any:
        env = hosted_env(fake_openai, DATABASE_URL=database_url, **overrides)
        return running(Settings.from_env(env), create_schema=False)

    return start


async def rows(settings_url: str) -> list[HostedSession]:
    engine = build_db_config(Settings.from_env({"DATABASE_URL": settings_url})).get_engine()
    try:
        async with async_sessionmaker(engine, expire_on_commit=False)() as session:
            result = await session.execute(select(HostedSession).order_by(HostedSession.created_at))
            return list(result.scalars())
    finally:
        await engine.dispose()


def headers_for(app: Litestar, user: str) -> dict[str, str]:
    settings: Settings = app.state["services"].settings
    return auth_headers(settings, user)


def db_url(app: Litestar) -> str:
    settings: Settings = app.state["services"].settings
    return settings.database_url


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["detail"]
    return body


def log_text(caplog: pytest.LogCaptureFixture) -> str:
    formatter = JsonFormatter()
    return "\n".join(formatter.format(record) for record in caplog.records)


# --- mint ------------------------------------------------------------------------------------


async def test_mint_sends_user_workflow_ttl_and_configuration_and_answers_three_fields(
    hosted_db: Hosted,
    fake_openai: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    env = {
        "CHATKIT_WORKFLOW_VERSION": "7",
        "CHATKIT_SESSION_TTL_SECONDS": "900",
        "CHATKIT_SESSION_MAX_REQUESTS_PER_MINUTE": "25",
        "CHATKIT_FILE_UPLOAD_ENABLED": "false",
        "CHATKIT_HISTORY_ENABLED": "true",
        "CHATKIT_AUTOMATIC_THREAD_TITLING": "false",
    }
    async with hosted_db(**env) as (client, app):
        response = await client.post("/api/chatkit/sessions", headers=headers_for(app, "alice"))

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == SESSION_FIELDS
    assert body["status"] == "success"
    (sent,) = fake_openai.creates()
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.headers["openai-beta"] == "chatkit_beta=v1"
    assert sent.body == {
        "user": "alice",
        "workflow": {"id": WORKFLOW_ID, "version": "7"},
        "expires_after": {"anchor": "created_at", "seconds": 900},
        "rate_limits": {"max_requests_per_1_minute": 25},
        "chatkit_configuration": {
            "file_upload": {"enabled": False},
            "history": {"enabled": True},
            "automatic_thread_titling": {"enabled": False},
        },
    }
    upstream = fake_openai.sessions[body["session_id"]]
    assert body["client_secret"] == upstream["client_secret"]
    assert dt.datetime.fromisoformat(body["expires_at"]) == dt.datetime.fromtimestamp(upstream["expires_at"], dt.UTC)

    header_text = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    logs = log_text(caplog) + capfd.readouterr().err
    assert "hosted session minted" in logs  # the capture works, so its silence below means something
    assert_no_server_secrets(response.text, header_text, logs)
    assert upstream["client_secret"] not in logs


async def test_mint_omits_optional_settings_it_was_not_given(hosted: Hosted, fake_openai: FakeOpenAI) -> None:
    async with hosted() as (client, app):
        response = await client.post("/api/chatkit/sessions", headers=headers_for(app, "alice"))
    assert response.status_code == 200
    (sent,) = fake_openai.creates()
    assert sent.body["workflow"] == {"id": WORKFLOW_ID}
    assert "expires_after" not in sent.body
    assert "rate_limits" not in sent.body
    # TaskPilot's defaults are explicit, so OpenAI's differing default (uploads off) never applies silently.
    assert sent.body["chatkit_configuration"]["file_upload"] == {"enabled": True}


async def test_mint_requires_a_token(hosted: Hosted, fake_openai: FakeOpenAI) -> None:
    async with hosted() as (client, _app):
        response = await client.post("/api/chatkit/sessions")
    assert_problem(response, 401)
    assert fake_openai.requests == []


async def test_table_records_every_operation_and_never_the_secret(hosted_db: Hosted, fake_openai: FakeOpenAI) -> None:
    async with hosted_db() as (client, app):
        alice = headers_for(app, "alice")
        first = (await client.post("/api/chatkit/sessions", headers=alice)).json()
        second = (
            await client.post(
                "/api/chatkit/sessions/refresh",
                headers=alice,
                json={"current_client_secret": first["client_secret"]},
            )
        ).json()
        third = (await client.post("/api/chatkit/session", headers=alice)).json()
        cancelled = await client.delete(f"/api/chatkit/sessions/{third['session_id']}", headers=alice)
        assert cancelled.status_code == 204
        recorded = await rows(db_url(app))

    by_id = {row.session_id: row for row in recorded}
    assert set(by_id) == {first["session_id"], second["session_id"], third["session_id"]}
    assert {row.user_id for row in recorded} == {"alice"}
    assert by_id[first["session_id"]].status == "refreshed"
    assert by_id[first["session_id"]].replaced_by == second["session_id"]
    assert by_id[second["session_id"]].status == "active"
    assert by_id[third["session_id"]].status == "cancelled"
    for row, minted in ((by_id[first["session_id"]], first), (by_id[second["session_id"]], second)):
        assert row.expires_at == dt.datetime.fromisoformat(minted["expires_at"])
        assert row.secret_sha256 == hashlib.sha256(minted["client_secret"].encode()).hexdigest()
        assert row.created_at <= row.updated_at
    secrets_handed_out = [first["client_secret"], second["client_secret"], third["client_secret"]]
    for row in recorded:
        values = [str(getattr(row, column.key)) for column in HostedSession.__table__.columns]
        for secret in secrets_handed_out:
            assert not any(secret in value for value in values)
        assert not any(WORKFLOW_ID in value or API_KEY in value for value in values)


# --- refresh ---------------------------------------------------------------------------------


@pytest.mark.parametrize("named_by", ["current_client_secret", "session_id"])
async def test_refresh_mints_and_cancels_the_previous_session(
    hosted_db: Hosted, fake_openai: FakeOpenAI, named_by: str
) -> None:
    async with hosted_db() as (client, app):
        alice = headers_for(app, "alice")
        old = (await client.post("/api/chatkit/sessions", headers=alice)).json()
        response = await client.post(
            "/api/chatkit/sessions/refresh", headers=alice, json={named_by: old[RESPONSE_KEY[named_by]]}
        )
        recorded = {row.session_id: row for row in await rows(db_url(app))}

    assert response.status_code == 200, response.text
    new = response.json()
    assert set(new) == SESSION_FIELDS
    assert new["status"] == "success"
    assert new["session_id"] != old["session_id"]
    assert new["client_secret"] != old["client_secret"]
    assert [r.body["user"] for r in fake_openai.creates()] == ["alice", "alice"]
    assert fake_openai.cancels() == [old["session_id"]]
    assert fake_openai.sessions[old["session_id"]]["status"] == "cancelled"
    assert recorded[old["session_id"]].status == "refreshed"
    assert recorded[old["session_id"]].replaced_by == new["session_id"]
    assert recorded[new["session_id"]].status == "active"


@pytest.mark.parametrize("named_by", ["current_client_secret", "session_id"])
async def test_refresh_naming_another_users_session_mints_for_the_caller_and_cancels_nothing(
    hosted_db: Hosted, fake_openai: FakeOpenAI, named_by: str
) -> None:
    async with hosted_db() as (client, app):
        alices = (await client.post("/api/chatkit/sessions", headers=headers_for(app, "alice"))).json()
        response = await client.post(
            "/api/chatkit/sessions/refresh",
            headers=headers_for(app, "bob"),
            json={named_by: alices[RESPONSE_KEY[named_by]]},
        )
        unknown = await client.post(
            "/api/chatkit/sessions/refresh",
            headers=headers_for(app, "bob"),
            json={named_by: "cksess_nosuchsession"},
        )
        recorded = {row.session_id: row for row in await rows(db_url(app))}

    assert response.status_code == 200, response.text
    assert unknown.status_code == 200, unknown.text
    bobs = response.json()
    assert [r.body["user"] for r in fake_openai.creates()] == ["alice", "bob", "bob"]
    assert fake_openai.cancels() == []
    assert fake_openai.sessions[alices["session_id"]]["status"] == "active"
    assert recorded[alices["session_id"]].status == "active"
    assert recorded[alices["session_id"]].replaced_by is None
    assert recorded[bobs["session_id"]].user_id == "bob"


async def test_refresh_without_a_body_mints_and_rejects_bad_bodies(hosted: Hosted, fake_openai: FakeOpenAI) -> None:
    async with hosted() as (client, app):
        alice = headers_for(app, "alice")
        empty = await client.post("/api/chatkit/sessions/refresh", headers=alice)
        empty_object = await client.post("/api/chatkit/sessions/refresh", headers=alice, json={})
        both = await client.post(
            "/api/chatkit/sessions/refresh",
            headers=alice,
            json={"current_client_secret": "ek_x", "session_id": "cksess_x"},
        )
        typo = await client.post("/api/chatkit/sessions/refresh", headers=alice, json={"client_secret": "ek_x"})

    assert empty.status_code == 200, empty.text
    assert set(empty.json()) == SESSION_FIELDS
    assert empty_object.status_code == 200, empty_object.text
    assert "not both" in assert_problem(both, 400)["detail"]
    assert "client_secret" in assert_problem(typo, 400)["detail"]
    assert len(fake_openai.creates()) == 2
    assert fake_openai.cancels() == []


async def test_refresh_keeps_the_old_session_cancellable_when_its_upstream_cancel_fails(
    hosted: Hosted, fake_openai: FakeOpenAI
) -> None:
    async with hosted() as (client, app):
        alice = headers_for(app, "alice")
        old = (await client.post("/api/chatkit/sessions", headers=alice)).json()
        fake_openai.fail("cancel", 500, times=2)  # the SDK retries once
        response = await client.post(
            "/api/chatkit/sessions/refresh", headers=alice, json={"session_id": old["session_id"]}
        )
        assert response.status_code == 200, response.text
        recorded = {row.session_id: row for row in await rows(db_url(app))}
        assert recorded[old["session_id"]].status == "active"
        assert recorded[old["session_id"]].replaced_by == response.json()["session_id"]

        cancelled = await client.delete(f"/api/chatkit/sessions/{old['session_id']}", headers=alice)
        assert cancelled.status_code == 204
        recorded = {row.session_id: row for row in await rows(db_url(app))}
    assert recorded[old["session_id"]].status == "cancelled"
    assert fake_openai.sessions[old["session_id"]]["status"] == "cancelled"


async def test_refresh_of_an_expired_session_skips_the_upstream_cancel(hosted: Hosted, fake_openai: FakeOpenAI) -> None:
    async with hosted() as (client, app):
        alice = headers_for(app, "alice")
        old = (await client.post("/api/chatkit/sessions", headers=alice)).json()
        engine = build_db_config(app.state["services"].settings).get_engine()
        async with engine.begin() as connection:
            await connection.execute(
                text("UPDATE hosted_sessions SET expires_at = :past WHERE session_id = :id"),
                {"past": dt.datetime(2020, 1, 1, tzinfo=dt.UTC), "id": old["session_id"]},
            )
        await engine.dispose()
        response = await client.post(
            "/api/chatkit/sessions/refresh", headers=alice, json={"session_id": old["session_id"]}
        )
        recorded = {row.session_id: row for row in await rows(db_url(app))}
    assert response.status_code == 200
    assert fake_openai.cancels() == []
    assert recorded[old["session_id"]].status == "refreshed"


async def test_a_refresh_whose_mint_fails_leaves_the_old_session_refreshable(
    hosted_db: Hosted, fake_openai: FakeOpenAI
) -> None:
    """The claim a refresh takes on the old session is given back when OpenAI refuses the new one."""
    async with hosted_db() as (client, app):
        alice = headers_for(app, "alice")
        old = (await client.post("/api/chatkit/sessions", headers=alice)).json()
        fake_openai.fail("create", 500, times=2)  # the SDK retries once
        named = {"current_client_secret": old["client_secret"]}
        failed = await client.post("/api/chatkit/sessions/refresh", headers=alice, json=named)
        assert failed.status_code == 502, failed.text
        recorded = {row.session_id: row for row in await rows(db_url(app))}
        assert recorded[old["session_id"]].status == "active"
        assert recorded[old["session_id"]].replaced_by is None
        retried = await client.post("/api/chatkit/sessions/refresh", headers=alice, json=named)
        assert retried.status_code == 200, retried.text
        again = await client.post("/api/chatkit/sessions/refresh", headers=alice, json=named)
        assert_problem(again, 409)
        assert "already refreshed" in again.json()["detail"]
        recorded = {row.session_id: row for row in await rows(db_url(app))}
    assert recorded[old["session_id"]].status == "refreshed"
    assert recorded[old["session_id"]].replaced_by == retried.json()["session_id"]


async def test_a_claim_its_refresh_abandoned_is_taken_over_and_a_fresh_one_is_not(
    hosted_db: Hosted, fake_openai: FakeOpenAI
) -> None:
    """A refresh whose claim could not be given back (the database failed under it, or the process
    died) must not leave its session unrefreshable: a claim older than any refresh takes is free."""
    async with hosted_db() as (client, app):
        alice = headers_for(app, "alice")
        old = (await client.post("/api/chatkit/sessions", headers=alice)).json()
        named = {"session_id": old["session_id"]}

        async def claimed_ago(age: dt.timedelta) -> None:
            engine = build_db_config(app.state["services"].settings).get_engine()
            async with engine.begin() as connection:
                await connection.execute(
                    update(HostedSession)
                    .where(HostedSession.session_id == old["session_id"])
                    .values(status="refreshing", updated_at=dt.datetime.now(dt.UTC) - age)
                )
            await engine.dispose()

        await claimed_ago(dt.timedelta(seconds=1))  # a refresh waiting for OpenAI right now
        assert_problem(await client.post("/api/chatkit/sessions/refresh", headers=alice, json=named), 409)
        await claimed_ago(dt.timedelta(hours=1))  # a refresh that ended without giving it back
        response = await client.post("/api/chatkit/sessions/refresh", headers=alice, json=named)
        recorded = {row.session_id: row for row in await rows(db_url(app))}
    assert response.status_code == 200, response.text
    assert fake_openai.cancels() == [old["session_id"]]
    assert recorded[old["session_id"]].status == "refreshed"
    assert recorded[old["session_id"]].replaced_by == response.json()["session_id"]


def _run_sql(database_url: str, statement: str) -> None:
    """Run `statement` on its own engine and event loop: for the fake's thread, mid-request."""

    async def run() -> None:
        engine = build_db_config(Settings.from_env({"DATABASE_URL": database_url})).get_engine()
        try:
            async with engine.begin() as connection:
                await connection.execute(text(statement))
        finally:
            await engine.dispose()

    asyncio.run(run())


async def test_a_refresh_whose_claim_cannot_be_given_back_answers_its_own_error(
    hosted_db: Hosted, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    """OpenAI refuses the new session and the database fails under the release of the claim: the
    client is told what failed first (502), and the claim waits to be taken over once abandoned."""
    async with hosted_db() as (client, app):
        alice = headers_for(app, "alice")
        old = (await client.post("/api/chatkit/sessions", headers=alice)).json()
        url = db_url(app)
        fake_openai.fail("create", 500, times=2)  # the SDK retries once
        fake_openai.before_next_create(lambda: _run_sql(url, "ALTER TABLE hosted_sessions RENAME TO away"))
        try:
            failed = await client.post(
                "/api/chatkit/sessions/refresh", headers=alice, json={"session_id": old["session_id"]}
            )
        finally:
            await asyncio.to_thread(_run_sql, url, "ALTER TABLE away RENAME TO hosted_sessions")
        recorded = {row.session_id: row for row in await rows(url)}
    assert_problem(failed, 502)
    assert recorded[old["session_id"]].status == "refreshing"
    assert "could not give back a refresh's claim" in log_text(caplog)


@pytest.mark.postgres
async def test_a_refresh_whose_pooled_connections_died_while_openai_answered_succeeds(
    fresh_postgres_url: str, fake_openai: FakeOpenAI
) -> None:
    """The claim is committed before OpenAI is called; a database restart during that call leaves the
    pool dead, so recording the new session is retried on a fresh connection. The retry must not
    cost the refresh the old row it loaded (a 500 after a successful mint, the claim left behind)."""
    settings = Settings.from_env(hosted_env(fake_openai, DATABASE_URL=fresh_postgres_url))
    async with running(settings) as (client, app):
        alice = headers_for(app, "alice")
        old = (await client.post("/api/chatkit/sessions", headers=alice)).json()
        fake_openai.before_next_create(lambda: asyncio.run(terminate_server_connections(fresh_postgres_url)))
        response = await client.post(
            "/api/chatkit/sessions/refresh", headers=alice, json={"session_id": old["session_id"]}
        )
        recorded = {row.session_id: row for row in await rows(db_url(app))}
    assert response.status_code == 200, response.text
    new = response.json()
    assert fake_openai.cancels() == [old["session_id"]]
    assert recorded[old["session_id"]].status == "refreshed"
    assert recorded[old["session_id"]].replaced_by == new["session_id"]
    assert recorded[new["session_id"]].status == "active"


# --- cancel ----------------------------------------------------------------------------------


async def test_cancel_own_session_and_not_another_users(hosted_db: Hosted, fake_openai: FakeOpenAI) -> None:
    async with hosted_db() as (client, app):
        alice, bob = headers_for(app, "alice"), headers_for(app, "bob")
        alices = (await client.post("/api/chatkit/sessions", headers=alice)).json()
        path = f"/api/chatkit/sessions/{alices['session_id']}"

        foreign = await client.delete(path, headers=bob)
        assert_problem(foreign, 404)
        assert fake_openai.cancels() == []

        own = await client.delete(path, headers=alice)
        assert own.status_code == 204
        assert own.content == b""
        assert fake_openai.cancels() == [alices["session_id"]]
        assert fake_openai.sessions[alices["session_id"]]["status"] == "cancelled"

        again = await client.delete(path, headers=alice)
        assert again.status_code == 204
        assert fake_openai.cancels() == [alices["session_id"]]  # nothing left to cancel upstream

        unknown = await client.delete("/api/chatkit/sessions/cksess_nosuchsession", headers=alice)
        assert_problem(unknown, 404)
        recorded = await rows(db_url(app))
    assert [(r.user_id, r.status) for r in recorded] == [("alice", "cancelled")]


async def test_cancel_of_a_session_openai_no_longer_knows_is_recorded(hosted: Hosted, fake_openai: FakeOpenAI) -> None:
    async with hosted() as (client, app):
        alice = headers_for(app, "alice")
        minted = (await client.post("/api/chatkit/sessions", headers=alice)).json()
        del fake_openai.sessions[minted["session_id"]]
        response = await client.delete(f"/api/chatkit/sessions/{minted['session_id']}", headers=alice)
        recorded = await rows(db_url(app))
    assert response.status_code == 204
    assert fake_openai.cancels() == [minted["session_id"]]
    assert recorded[0].status == "cancelled"


async def test_cancel_upstream_failure_is_reported_and_leaves_the_session_active(
    hosted: Hosted, fake_openai: FakeOpenAI
) -> None:
    async with hosted() as (client, app):
        alice = headers_for(app, "alice")
        minted = (await client.post("/api/chatkit/sessions", headers=alice)).json()
        fake_openai.fail("cancel", 503, times=2)
        response = await client.delete(f"/api/chatkit/sessions/{minted['session_id']}", headers=alice)
        recorded = await rows(db_url(app))
    assert_problem(response, 502)
    assert recorded[0].status == "active"


# --- legacy paths ----------------------------------------------------------------------------


async def test_legacy_paths_behave_like_the_current_ones(hosted: Hosted, fake_openai: FakeOpenAI) -> None:
    async with hosted() as (client, app):
        alice = headers_for(app, "alice")
        minted = await client.post("/api/chatkit/session", headers=alice)
        assert minted.status_code == 200
        assert set(minted.json()) == SESSION_FIELDS
        refreshed = await client.post(
            "/api/chatkit/refresh",
            headers=alice,
            json={"current_client_secret": minted.json()["client_secret"]},
        )
        assert refreshed.status_code == 200
        assert set(refreshed.json()) == SESSION_FIELDS
        bare = await client.post("/api/chatkit/refresh", headers=alice)  # what older front ends send
        assert bare.status_code == 200
        foreign = await client.post(
            "/api/chatkit/refresh",
            headers=headers_for(app, "bob"),
            json={"session_id": bare.json()["session_id"]},
        )
        assert foreign.status_code == 200
        unconfigured_check = await client.post("/api/chatkit/session")
        assert_problem(unconfigured_check, 401)
        recorded = {row.session_id: row for row in await rows(db_url(app))}
    assert fake_openai.cancels() == [minted.json()["session_id"]]
    assert recorded[minted.json()["session_id"]].status == "refreshed"
    assert recorded[bare.json()["session_id"]].status == "active"
    assert [r.body["user"] for r in fake_openai.creates()] == ["alice", "alice", "alice", "bob"]


def test_openapi_names_tags_and_deprecates_the_session_routes(tmp_path: Path) -> None:
    app = create_app(Settings.from_env({"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/openapi.db"}))
    spec = app.openapi_schema.to_schema()
    expected = {
        ("/api/chatkit/sessions", "post"): ("CreateChatKitSession", False, "200"),
        ("/api/chatkit/sessions/refresh", "post"): ("RefreshChatKitSession", False, "200"),
        ("/api/chatkit/sessions/{session_id}", "delete"): ("CancelChatKitSession", False, "204"),
        ("/api/chatkit/session", "post"): ("CreateChatKitSessionLegacy", True, "200"),
        ("/api/chatkit/refresh", "post"): ("RefreshChatKitSessionLegacy", True, "200"),
    }
    for (path, method), (operation_id, deprecated, success) in expected.items():
        operation = spec["paths"][path][method]
        assert operation["operationId"] == operation_id
        assert operation["tags"] == ["Hosted sessions"]
        assert bool(operation.get("deprecated")) is deprecated
        assert success in operation["responses"]
        assert "201" not in operation["responses"]
        assert "application/problem+json" in operation["responses"]["503"]["content"]
        assert operation["security"] == [{"BearerAuth": []}]
    minted = spec["paths"]["/api/chatkit/sessions"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    schema = spec["components"]["schemas"][minted["$ref"].rsplit("/", 1)[1]]
    assert set(schema["properties"]) == SESSION_FIELDS
    assert set(schema["required"]) == SESSION_FIELDS
    assert schema["properties"]["status"]["const"] == "success"


# --- configuration and upstream failures -----------------------------------------------------


@pytest.mark.parametrize(
    ("unset", "named"),
    [
        (("OPENAI_API_KEY", "CHATKIT_WORKFLOW_ID"), ["OPENAI_API_KEY", "CHATKIT_WORKFLOW_ID"]),
        (("CHATKIT_WORKFLOW_ID",), ["CHATKIT_WORKFLOW_ID"]),
        (("OPENAI_API_KEY",), ["OPENAI_API_KEY"]),
    ],
)
async def test_not_configured_is_503_naming_the_missing_variables(
    hosted: Hosted, fake_openai: FakeOpenAI, unset: tuple[str, ...], named: list[str]
) -> None:
    async with hosted(**dict.fromkeys(unset, "")) as (client, app):
        alice = headers_for(app, "alice")
        responses = [
            await client.post("/api/chatkit/sessions", headers=alice),
            await client.post("/api/chatkit/session", headers=alice),
            await client.post("/api/chatkit/sessions/refresh", headers=alice),
            await client.post("/api/chatkit/refresh", headers=alice),
            await client.delete("/api/chatkit/sessions/cksess_x", headers=alice),
        ]
    for response in responses:
        detail = assert_problem(response, 503)["detail"]
        for name in ("OPENAI_API_KEY", "CHATKIT_WORKFLOW_ID"):
            assert (name in detail) is (name in named)
        assert_no_server_secrets(response.text)
    assert fake_openai.requests == []


async def test_rejected_credentials_are_502_and_never_quote_the_key(
    hosted: Hosted, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong_key = "sk-wrong-KeyTheServerHas-987654321zyxw"
    async with hosted(OPENAI_API_KEY=wrong_key) as (client, app):
        response = await client.post("/api/chatkit/sessions", headers=headers_for(app, "alice"))
    body = assert_problem(response, 502)
    assert "credentials were rejected" in body["detail"]
    assert "OPENAI_API_KEY" in body["detail"]
    assert len(fake_openai.creates()) == 1  # a 401 is not retried
    logs = log_text(caplog)
    assert "invalid_api_key" in logs  # the operator can see why
    for blob in (response.text, logs):
        assert wrong_key not in blob
        assert wrong_key[-4:] not in blob  # OpenAI's message quotes a masked key; it is never relayed


async def test_forbidden_is_502_credentials_rejected(hosted: Hosted, fake_openai: FakeOpenAI) -> None:
    fake_openai.fail(
        "create", 403, body=error_body(f"Project may not use {WORKFLOW_ID}", type_="invalid_request_error")
    )
    async with hosted() as (client, app):
        response = await client.post("/api/chatkit/sessions", headers=headers_for(app, "alice"))
    assert "credentials were rejected" in assert_problem(response, 502)["detail"]
    assert_no_server_secrets(response.text)


async def test_upstream_rate_limit_is_503_with_retry_after_and_not_slept_out(
    hosted: Hosted, fake_openai: FakeOpenAI
) -> None:
    fake_openai.fail(
        "create",
        429,
        headers={"retry-after": "7"},
        body=error_body("Rate limit reached", type_="requests", code="rate_limit_exceeded"),
    )
    async with hosted() as (client, app):
        started = time.monotonic()
        response = await client.post("/api/chatkit/sessions", headers=headers_for(app, "alice"))
        elapsed = time.monotonic() - started
    body = assert_problem(response, 503)
    assert response.headers["retry-after"] == "7"
    assert "7 seconds" in body["detail"]
    assert len(fake_openai.creates()) == 1
    assert elapsed < 5


async def test_upstream_retry_after_ms_and_missing_retry_after(hosted: Hosted, fake_openai: FakeOpenAI) -> None:
    fake_openai.fail("create", 429, headers={"retry-after-ms": "2500"})
    fake_openai.fail("create", 429)
    async with hosted() as (client, app):
        alice = headers_for(app, "alice")
        first = await client.post("/api/chatkit/sessions", headers=alice)
        second = await client.post("/api/chatkit/sessions", headers=alice)
    assert_problem(first, 503)
    assert first.headers["retry-after"] == "3"
    assert_problem(second, 503)
    assert second.headers["retry-after"] == "10"


async def test_upstream_quota_exhausted_is_503_without_retry_after(hosted: Hosted, fake_openai: FakeOpenAI) -> None:
    fake_openai.fail(
        "create",
        429,
        body=error_body("You exceeded your current quota", type_="insufficient_quota", code="insufficient_quota"),
    )
    async with hosted() as (client, app):
        response = await client.post("/api/chatkit/sessions", headers=headers_for(app, "alice"))
    assert "quota" in assert_problem(response, 503)["detail"]
    assert "retry-after" not in response.headers


async def test_upstream_server_error_is_retried_once_then_502(hosted: Hosted, fake_openai: FakeOpenAI) -> None:
    async with hosted() as (client, app):
        alice = headers_for(app, "alice")
        fake_openai.fail("create", 500)
        recovered = await client.post("/api/chatkit/sessions", headers=alice)
        assert recovered.status_code == 200
        assert len(fake_openai.creates()) == 2

        fake_openai.fail("create", 500, times=2)
        failed = await client.post("/api/chatkit/sessions", headers=alice)
    assert "retry" in assert_problem(failed, 502)["detail"]
    assert len(fake_openai.creates()) == 4


@pytest.mark.parametrize(
    "body",
    [
        {"id": "cksess_1", "object": "chatkit.session", "expires_at": 1900000000},  # no client_secret
        {"id": "cksess_1", "client_secret": 42, "expires_at": 1900000000},
        {"id": "cksess_1", "client_secret": "ek_1", "expires_at": "tomorrow"},
    ],
)
async def test_a_200_without_a_usable_session_is_502_and_records_nothing(
    hosted_db: Hosted, fake_openai: FakeOpenAI, body: dict[str, object]
) -> None:
    fake_openai.fail("create", 200, body=body)
    # The injected answer serves one request only. With hosted_env's 5 s timeout, a fake thread
    # starved that long on a loaded machine timed the first attempt out after it took the bad
    # body; the SDK's retry then got a real session: 200 and a row (flaky under load).
    async with hosted_db(OPENAI_TIMEOUT_SECONDS="60") as (client, app):
        response = await client.post("/api/chatkit/sessions", headers=headers_for(app, "alice"))
        recorded = await rows(db_url(app))
    problem = assert_problem(response, 502)
    assert "no usable session" in problem["detail"] and "OPENAI_BASE_URL" in problem["detail"]
    assert len(fake_openai.creates()) == 1  # a 200 is not retried, whatever its body
    assert recorded == []


async def test_upstream_bad_request_is_502_without_openais_message(hosted: Hosted, fake_openai: FakeOpenAI) -> None:
    fake_openai.fail(
        "create",
        400,
        body=error_body(f"Workflow {WORKFLOW_ID} has no published version 9", type_="invalid_request_error"),
    )
    async with hosted() as (client, app):
        response = await client.post("/api/chatkit/sessions", headers=headers_for(app, "alice"))
    assert "CHATKIT_WORKFLOW_ID" in assert_problem(response, 502)["detail"]
    assert_no_server_secrets(response.text)


async def test_unknown_workflow_is_502_naming_chatkit_workflow_id_without_quoting_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """OpenAI answers an unknown workflow id (or one from another project than the key's) 404
    "Workflow with id 'wf_…' not found.": the caller is told which variables to check, never the id."""
    caplog.set_level(logging.DEBUG)
    fake = FakeOpenAI(API_KEY, workflows=["wf_the_one_that_exists"])
    try:
        env = hosted_env(fake, DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/hosted.db")
        async with running(Settings.from_env(env)) as (client, app):
            response = await client.post("/api/chatkit/sessions", headers=headers_for(app, "alice"))
            refresh = await client.post("/api/chatkit/refresh", headers=headers_for(app, "alice"))
            recorded = await rows(db_url(app))
    finally:
        fake.stop()
    for answer in (response, refresh):
        detail = assert_problem(answer, 502)["detail"]
        assert "CHATKIT_WORKFLOW_ID" in detail
        assert "OPENAI_API_KEY belongs to the OpenAI project" in detail
        assert "Retrying will not help" in detail
    assert len(fake.creates()) == 2  # a 404 is not retried
    assert recorded == []
    logs = log_text(caplog)
    assert "NotFoundError" in logs  # the operator can see what OpenAI said ...
    assert_no_server_secrets(response.text, refresh.text, logs)  # ... but never the workflow id


async def test_sessions_endpoint_not_found_is_502_naming_openai_base_url(tmp_path: Path) -> None:
    """A 404 that is not about the workflow (an OPENAI_BASE_URL without /v1) points at the base URL too."""
    fake = FakeOpenAI(API_KEY)
    try:
        env = hosted_env(None, DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/hosted.db", OPENAI_BASE_URL=fake.url)
        async with running(Settings.from_env(env)) as (client, app):
            response = await client.post("/api/chatkit/sessions", headers=headers_for(app, "alice"))
    finally:
        fake.stop()
    detail = assert_problem(response, 502)["detail"]
    assert "OPENAI_BASE_URL" in detail and "CHATKIT_WORKFLOW_ID" in detail
    assert "OPENAI_API_KEY belongs" not in detail
    assert [r.path for r in fake.requests] == ["/chatkit/sessions"]
    assert_no_server_secrets(response.text)


async def test_upstream_timeout_is_504(hosted: Hosted, fake_openai: FakeOpenAI) -> None:
    fake_openai.delay(10, times=2)
    async with hosted(OPENAI_TIMEOUT_SECONDS="1") as (client, app):
        started = time.monotonic()
        response = await client.post("/api/chatkit/sessions", headers=headers_for(app, "alice"))
        elapsed = time.monotonic() - started
        recorded = await rows(db_url(app))
    body = assert_problem(response, 504)
    assert "OPENAI_TIMEOUT_SECONDS" in body["detail"]
    assert elapsed < 6  # one timeout, one quick retry, another timeout: never the upstream's 10 s
    assert recorded == []


async def test_unreachable_upstream_is_503(tmp_path: Path) -> None:
    env = hosted_env(
        None,
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/hosted.db",
        OPENAI_BASE_URL=f"http://127.0.0.1:{free_port()}/v1",  # nothing listens there
    )
    async with running(Settings.from_env(env)) as (client, app):
        response = await client.post("/api/chatkit/sessions", headers=headers_for(app, "alice"))
    assert "could not be reached" in assert_problem(response, 503)["detail"]
    assert_no_server_secrets(response.text)


async def test_a_session_whose_record_fails_is_withdrawn(
    hosted: Hosted, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with hosted() as (client, app):
        engine = build_db_config(app.state["services"].settings).get_engine()
        async with engine.begin() as connection:
            await connection.execute(text("DROP TABLE hosted_sessions"))
        await engine.dispose()
        response = await client.post("/api/chatkit/sessions", headers=headers_for(app, "alice"))
    assert_problem(response, 500)
    (created,) = fake_openai.sessions.values()
    assert created["client_secret"] not in response.text
    assert fake_openai.cancels() == [created["id"]]
    logs = log_text(caplog)
    assert "hosted_sessions" in logs  # the failure was logged with its traceback ...
    assert created["client_secret"] not in logs  # ... which never holds the secret
    assert_no_server_secrets(response.text, logs)


# --- per-user rate limit ---------------------------------------------------------------------


async def test_per_user_rate_limit_is_429_with_retry_after(hosted: Hosted, fake_openai: FakeOpenAI) -> None:
    async with hosted(CHATKIT_SESSION_RATE_LIMIT_PER_MINUTE="2") as (client, app):
        alice = headers_for(app, "alice")
        first = await client.post("/api/chatkit/sessions", headers=alice)
        second = await client.post("/api/chatkit/sessions/refresh", headers=alice)
        third = await client.post("/api/chatkit/session", headers=alice)
        fourth = await client.post("/api/chatkit/refresh", headers=alice)
        bob = await client.post("/api/chatkit/sessions", headers=headers_for(app, "bob"))
        cancel = await client.delete(f"/api/chatkit/sessions/{first.json()['session_id']}", headers=alice)
    assert first.status_code == second.status_code == 200
    for limited in (third, fourth):
        body = assert_problem(limited, 429)
        retry_after = int(limited.headers["retry-after"])
        assert 25 <= retry_after <= 30  # two per minute: the next one is admitted 30 s after the first
        assert f"{retry_after} seconds" in body["detail"]
    assert bob.status_code == 200  # the limit is per user
    assert cancel.status_code == 204  # cancelling is never limited
    assert [r.body["user"] for r in fake_openai.creates()] == ["alice", "alice", "bob"]


async def test_rate_limit_zero_is_off(hosted: Hosted, fake_openai: FakeOpenAI) -> None:
    async with hosted(CHATKIT_SESSION_RATE_LIMIT_PER_MINUTE="0") as (client, app):
        alice = headers_for(app, "alice")
        statuses = [(await client.post("/api/chatkit/sessions", headers=alice)).status_code for _ in range(6)]
    assert statuses == [200] * 6


# --- the shared client -----------------------------------------------------------------------


async def test_one_openai_client_per_app_made_lazily_and_closed_on_shutdown(hosted: Hosted) -> None:
    async with hosted() as (client, app):
        hosted_client = app.state["services"].hosted_chatkit
        assert hosted_client._client is None  # no OpenAI client until a session is asked for
        alice = headers_for(app, "alice")
        await client.post("/api/chatkit/sessions", headers=alice)
        openai_client = hosted_client.client()
        await client.post("/api/chatkit/sessions", headers=alice)
        assert hosted_client.client() is openai_client
        assert openai_client.max_retries == 1
        assert openai_client.timeout == 5.0
    assert openai_client.is_closed()
    assert hosted_client._client is None


# --- over real HTTP against a granian process --------------------------------------------------


async def test_the_fakes_failures_go_to_the_requests_that_arrive_after_them(fake_openai: FakeOpenAI) -> None:
    """The hosted page's browser test relies on this: a mint the server gave up on (held by
    `delay`) must not take the failure queued afterwards for the next user's mint."""
    from tests.support.fake_openai import BETA_HEADER

    headers = {"Authorization": f"Bearer {fake_openai.api_key}", "OpenAI-Beta": BETA_HEADER}

    def mint(user: str) -> dict[str, Any]:
        return {"user": user, "workflow": {"id": "wf_fake"}}

    fake_openai.delay(1.0)
    async with httpx.AsyncClient(base_url=fake_openai.base_url, headers=headers, timeout=10) as http:
        held = asyncio.create_task(http.post("/chatkit/sessions", json=mint("gil")))
        while not fake_openai.creates():
            await asyncio.sleep(0.01)
        fake_openai.fail("create", 429, headers={"retry-after": "17"})
        assert (await held).status_code == 200  # answered after the failure was queued: not its
        refused = await http.post("/chatkit/sessions", json=mint("hal"))
        assert refused.status_code == 429 and refused.headers["retry-after"] == "17"
