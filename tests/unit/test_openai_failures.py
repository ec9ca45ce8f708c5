"""The one OpenAI error ladder (`app.ops.openai_failures`): each SDK failure gets one kind, one
metric label, and the words of whoever called OpenAI."""

from __future__ import annotations

import httpx2
import openai
import pytest

from app.agents.assistant import describe_model_error
from app.ops.metrics import error_kind
from app.ops.openai_failures import describe_openai_failure

REQUEST = httpx2.Request("POST", "http://127.0.0.1/v1/responses")


def _status(
    cls: type[openai.APIStatusError], status: int, *, code: str | None = None, **headers: str
) -> openai.APIStatusError:
    body = {"message": "OpenAI's own words", "code": code}  # the "error" object, as the client passes it
    return cls("OpenAI's own words", response=httpx2.Response(status, request=REQUEST, headers=headers), body=body)


CASES = [
    (openai.APITimeoutError(request=REQUEST), "timeout", "timeout"),
    (openai.APIConnectionError(request=REQUEST), "unreachable", "unreachable"),
    (_status(openai.AuthenticationError, 401), "auth", "auth"),
    (_status(openai.PermissionDeniedError, 403), "auth", "auth"),
    (_status(openai.RateLimitError, 429, code="insufficient_quota"), "quota", "rate_limit"),
    (_status(openai.RateLimitError, 429, **{"retry-after": "7"}), "rate_limit", "rate_limit"),
    (_status(openai.NotFoundError, 404), "not_found", "not_found"),
    (_status(openai.BadRequestError, 400), "bad_request", "bad_request"),
    (_status(openai.InternalServerError, 503), "server_error", "server_error"),
    (_status(openai.ConflictError, 409), "refused", "other"),
    (openai.APIResponseValidationError(httpx2.Response(200, request=REQUEST), body=None), "unreadable", "other"),
]


@pytest.mark.parametrize(("exc", "kind", "label"), CASES, ids=[kind for _, kind, _ in CASES])
def test_each_failure_has_one_kind_and_the_metric_label_dashboards_read(
    exc: openai.OpenAIError, kind: str, label: str
) -> None:
    failure = describe_openai_failure(exc)
    assert failure is not None
    assert failure.kind == kind
    assert error_kind(exc) == label
    assert "OpenAI's own words" not in str(failure.log_fields)


def test_a_rate_limit_carries_openais_wait_and_a_caller_fills_it_in() -> None:
    failure = describe_openai_failure(_status(openai.RateLimitError, 429, **{"retry-after": "7"}))
    assert failure is not None
    error = failure.upstream_error({"rate_limit": "wait {retry_after} s", "refused": "no"})
    assert (error.detail, error.retry_after, error.failure) == ("wait 7 s", 7, "unavailable")


def test_what_is_not_openais_has_no_kind() -> None:
    assert describe_openai_failure(ValueError("x")) is None
    assert error_kind(ValueError("x")) == "other"


def test_the_assistant_words_a_spent_quota_as_a_rate_limit_and_a_bad_key_as_final() -> None:
    message, retry = describe_model_error(_status(openai.RateLimitError, 429, code="insufficient_quota"))
    assert "rate-limited" in message and retry
    message, retry = describe_model_error(_status(openai.AuthenticationError, 401))
    assert "credentials" in message and not retry
