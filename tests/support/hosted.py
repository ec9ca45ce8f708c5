"""Hosted mode under test: the key and workflow the fake OpenAI knows, a hosted environment, and the
app in-process on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.asgi import create_app
from app.settings import Settings
from app.store.db import build_db_config
from app.store.models import Base
from tests.support.fake_openai import FakeOpenAI
from tests.support.schema import copy_empty_sqlite_schema

API_KEY = "sk-test-TaskPilotServerKey-0123456789abcdef"
WORKFLOW_ID = "wf_6946b383d368819081b556e6e5fa66330d48d0c9ea4fccd8"


def hosted_env(fake: FakeOpenAI | None, **overrides: Any) -> dict[str, str]:
    env = {
        "APP_ENV": "development",
        "MODEL_PROVIDER": "offline",
        "LOG_LEVEL": "debug",
        "OPENAI_API_KEY": API_KEY,
        "CHATKIT_WORKFLOW_ID": WORKFLOW_ID,
        "OPENAI_TIMEOUT_SECONDS": "5",
    }
    if fake is not None:
        env["OPENAI_BASE_URL"] = fake.base_url
    env.update({k: str(v) for k, v in overrides.items()})
    return {k: v for k, v in env.items() if v != ""}


@asynccontextmanager
async def running(
    settings: Settings, *, create_schema: bool = True
) -> AsyncIterator[tuple[AsyncTestClient[Litestar], Litestar]]:
    if create_schema and not copy_empty_sqlite_schema(settings.database_url):
        engine = build_db_config(settings).get_engine()
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.drop_all)
            await connection.run_sync(Base.metadata.create_all)
        await engine.dispose()
    app = create_app(settings)
    async with AsyncTestClient(app=app) as client:
        yield client, app


SESSION_FIELDS = {"client_secret", "session_id", "expires_at", "status"}


def assert_no_server_secrets(*texts: str) -> None:
    """The API key (whole or its tail) and the workflow id appear in none of `texts`."""
    for blob in texts:
        assert API_KEY not in blob
        assert API_KEY[-12:] not in blob
        assert WORKFLOW_ID not in blob
