"""Schemathesis against a real server process: every REST operation of the checked-in spec.

Each operation gets bounded, derandomised examples (valid and invalid inputs) sent over real
HTTP to granian with PostgreSQL, authenticated with a development token. Every answer must be
documented by `openapi/openapi.json` — status code, content type, body schema, headers — and
none may be a 5xx the spec does not declare for a dependency (OpenAI, for hosted sessions).
The spec is the one clients generate from, so a mismatch here is a bug in either the route
declaration or the handler.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.http.auth import mint_dev_token
from app.settings import Settings
from tests.conftest import REQUIRE_POSTGRES, _drop_database, _postgres_database, create_schema
from tests.support import LiveServer, start_live_server

# The checked-in spec, which clients generate from. FUZZ_OPENAPI_PATH checks another file instead
# (a freshly generated spec, before it is checked in).
OPENAPI_PATH = Path(
    os.environ.get("FUZZ_OPENAPI_PATH") or Path(__file__).resolve().parents[1] / "openapi" / "openapi.json"
)
MAX_EXAMPLES = 25

SCHEMA = schemathesis.openapi.from_path(OPENAPI_PATH)
# The security scheme is satisfied by the token sent with every case; generating Authorization
# headers too would only test 401s, which the auth tests cover.
SCHEMA.config.generation.update(max_examples=MAX_EXAMPLES, with_security_parameters=False, deterministic=True)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]
# Hosted sessions depend on OpenAI, which is not configured here: their documented answer is a
# 503 naming the variables to set. Every other 5xx is a failure.
UPSTREAM_TAG = "Hosted sessions"


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server (PostgreSQL, one worker) for every operation of this module."""
    url = asyncio.run(_postgres_database())
    if url is None:
        if REQUIRE_POSTGRES:
            pytest.fail("PostgreSQL unreachable and REQUIRE_POSTGRES=1", pytrace=False)
        pytest.skip("PostgreSQL unreachable; set TEST_POSTGRES_URL to run the API fuzzing")
    asyncio.run(create_schema(url))  # the migrations have tests of their own; this is faster
    server = start_live_server(
        tmp_path_factory.mktemp("fuzz-openapi"),
        {
            "DATABASE_URL": url,
            # Fuzzing sends hundreds of requests from one address and one user in seconds.
            "RATE_LIMIT_CHAT_PER_MINUTE": "0",
            "RATE_LIMIT_ANONYMOUS_PER_MINUTE": "0",
            "CHATKIT_SESSION_RATE_LIMIT_PER_MINUTE": "0",
            "LOG_LEVEL": "warning",
        },
        migrate=False,
    )
    try:
        yield server
    finally:
        server.stop()
        asyncio.run(_drop_database(url))


@pytest.fixture(scope="module")
def fuzz_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_dev_token(Settings(), 'fuzz-openapi-user')}"}


@SCHEMA.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_every_operation_answers_as_documented(
    case: schemathesis.Case, fuzz_server: LiveServer, fuzz_headers: dict[str, str]
) -> None:
    response = case.call(base_url=fuzz_server.base_url, headers=fuzz_headers, timeout=15)
    checks: list[Any] = list(CHECKS)
    if UPSTREAM_TAG in (case.operation.tags or []) and response.status_code == 503:
        assert "OPENAI_API_KEY" in response.json()["detail"], response.text
        checks.remove(not_a_server_error)
    case.validate_response(response, checks=checks)
