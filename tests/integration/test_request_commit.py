"""A REST write is acknowledged only once it is committed.

Advanced Alchemy's `autocommit` before-send handler commits as the response starts and, when the
COMMIT fails, logs it at debug level and sends the 2xx anyway. After a primary died mid-commit
(tests/load/test_primary_failover.py) two tasks answered 201 were not on the promoted standby. The
tasks and hosted-session routes commit in their dependency's cleanup instead, before the
response: a failed COMMIT is the 503 of a database outage.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy.exc import DBAPIError

from app.asgi import create_app
from app.store.connections import ReconnectingSession
from app.store.models import Base
from tests.conftest import auth_headers, make_settings


async def test_a_write_whose_commit_fails_is_a_503_not_a_201(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = make_settings(tmp_path)
    app = create_app(settings)
    async with app.state.services.db_config.get_engine().begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    headers = auth_headers(settings, "committer")
    async with AsyncTestClient(app) as client:
        kept = await client.post("/api/tasks", json={"title": "Committed"}, headers=headers)
        assert kept.status_code == 201, kept.text

        async def commit_fails(self: ReconnectingSession) -> None:
            raise DBAPIError("COMMIT", None, ConnectionResetError("primary gone"), connection_invalidated=True)

        with monkeypatch.context() as patch:
            patch.setattr(ReconnectingSession, "commit", commit_fails)
            lost = await client.post("/api/tasks", json={"title": "Never committed"}, headers=headers)
        assert lost.status_code == 503, lost.text
        assert lost.headers["content-type"].startswith("application/problem+json")
        assert "retry" in lost.json()["detail"].lower()

        listed = await client.get("/api/tasks", headers=headers)
        assert [t["title"] for t in listed.json()["items"]] == ["Committed"]
