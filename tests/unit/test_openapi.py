"""The checked-in OpenAPI document is exactly what the code generates, and every route is named."""

from __future__ import annotations

import json
import re

from app.__main__ import OPENAPI_PATH, render_openapi


def test_checked_in_spec_is_fresh() -> None:
    assert OPENAPI_PATH.exists(), "run `make openapi` and commit openapi/openapi.json"
    assert OPENAPI_PATH.read_text() == render_openapi(), "openapi/openapi.json is stale: run `make openapi`"


def test_every_operation_has_a_pascal_case_operation_id_and_tag() -> None:
    spec = json.loads(render_openapi())
    seen: set[str] = set()
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            operation_id = operation.get("operationId", "")
            assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", operation_id), f"{method.upper()} {path}: {operation_id!r}"
            assert operation_id not in seen, f"duplicate operationId {operation_id}"
            seen.add(operation_id)
            assert operation.get("tags"), f"{method.upper()} {path} has no tag"
    assert spec["components"]["securitySchemes"]["BearerAuth"]["scheme"] == "bearer"
