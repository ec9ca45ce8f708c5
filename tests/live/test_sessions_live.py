"""A hosted session minted end to end through a real `taskpilot serve` process and the real
`openai` SDK against the local fake of OpenAI (the in-process cases: tests/integration/test_sessions.py).
"""

from __future__ import annotations

from typing import Any

import httpx

from app.settings import Settings
from tests.conftest import auth_headers
from tests.support.fake_openai import FakeOpenAI
from tests.support.hosted import API_KEY, SESSION_FIELDS, WORKFLOW_ID, assert_no_server_secrets

# `status` is always "success": the field the TaskPilotAI deployment guide checks.


def test_mint_end_to_end_through_a_live_server(live_server_factory: Any, fake_openai: FakeOpenAI) -> None:
    # A server of its own: its environment names this test's fake OpenAI port, and the test stops it
    # to read its whole log for secrets.
    server = live_server_factory(
        {
            "OPENAI_API_KEY": API_KEY,
            "OPENAI_BASE_URL": fake_openai.base_url,
            "CHATKIT_WORKFLOW_ID": WORKFLOW_ID,
            "MODEL_PROVIDER": "offline",
            "LOG_LEVEL": "debug",
        }
    )
    settings = Settings.from_env(server.env)
    alice = auth_headers(settings, "alice")
    with httpx.Client(base_url=server.base_url, timeout=15) as client:
        response = client.post("/api/chatkit/sessions", headers=alice)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == SESSION_FIELDS
        refreshed = client.post("/api/chatkit/refresh", headers=alice, json={"session_id": body["session_id"]})
        assert refreshed.status_code == 200
        cancelled = client.delete(f"/api/chatkit/sessions/{refreshed.json()['session_id']}", headers=alice)
        assert cancelled.status_code == 204
    (first, _second) = fake_openai.creates()
    assert first.body["user"] == "alice"
    assert first.body["workflow"] == {"id": WORKFLOW_ID}
    assert fake_openai.cancels() == [body["session_id"], refreshed.json()["session_id"]]
    server.stop()
    log = server.log()
    assert "hosted session minted" in log
    header_text = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    assert_no_server_secrets(response.text, header_text, log)
    assert body["client_secret"] not in log
