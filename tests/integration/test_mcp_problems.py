"""The MCP mount answers its refusals through the central error map (`app.http.problems`): the
same status, title, detail, headers and `errors` as a REST route refusing the same request."""

from __future__ import annotations

from pathlib import Path

from litestar.testing import TestClient

from app.asgi import create_app
from tests.conftest import auth_headers, make_settings

PICK = ("status", "title", "detail", "errors")


def _problem(response: object) -> dict[str, object]:
    body = response.json()  # type: ignore[attr-defined]
    return {key: body.get(key) for key in PICK}


def test_mcp_and_rest_refuse_a_bad_token_and_a_bad_zone_alike(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        bad_token = {"Authorization": "Bearer not-a-token"}
        mcp = client.post("/mcp", headers=bad_token, content=b"{}")
        rest = client.get("/api/tasks", headers=bad_token)
        assert mcp.status_code == rest.status_code == 401
        assert _problem(mcp) == _problem(rest)
        assert mcp.headers["www-authenticate"] == rest.headers["www-authenticate"]
        assert mcp.headers["content-type"] == rest.headers["content-type"] == "application/problem+json"

        bad_zone = {**auth_headers(settings, "alice"), "Time-Zone": "Mars/Olympus_Mons"}
        mcp = client.post("/mcp", headers=bad_zone, content=b"{}")
        rest = client.get("/api/tasks", headers=bad_zone)
        assert mcp.status_code == rest.status_code == 400
        assert _problem(mcp) == _problem(rest)


def test_an_oversized_mcp_body_is_a_content_too_large_problem_that_closes_the_connection(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, MAX_REQUEST_BYTES=2048)
    with TestClient(create_app(settings)) as client:
        response = client.post("/mcp", headers=auth_headers(settings, "alice"), content=b"x" * 4096)
    assert response.status_code == 413
    assert response.json()["title"] == "Content Too Large"
    assert response.headers["connection"] == "close"
