"""The lean transport's choice of HTTP transport and its httpcore-to-httpx exception names
(`app.agents.net`; its sockets are tested against real servers in tests/integration/test_model_net.py)."""

from __future__ import annotations

from typing import Any, cast

import httpcore
import httpx
import openai
import pytest

from app.agents.net import AsyncioTransport, httpx_error
from app.agents.transport import Transport, transport_failure


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (httpcore.ConnectTimeout("t"), httpx.ConnectTimeout),
        (httpcore.ReadTimeout("t"), httpx.ReadTimeout),
        (httpcore.WriteTimeout("t"), httpx.WriteTimeout),
        (httpcore.PoolTimeout("t"), httpx.PoolTimeout),
        (httpcore.ConnectError("t"), httpx.ConnectError),
        (httpcore.ReadError("t"), httpx.ReadError),
        (httpcore.WriteError("t"), httpx.WriteError),
        (httpcore.RemoteProtocolError("t"), httpx.RemoteProtocolError),
        (httpcore.LocalProtocolError("t"), httpx.LocalProtocolError),
        (httpcore.UnsupportedProtocol("t"), httpx.UnsupportedProtocol),
        (httpcore.ProxyError("t"), httpx.ProxyError),
    ],
)
def test_httpcore_failures_get_httpxs_most_specific_name_and_keep_their_message(
    raised: Exception, expected: type[Exception]
) -> None:
    mapped = httpx_error(raised)
    assert type(mapped) is expected and str(mapped) == "t"
    assert httpx_error(ValueError("not httpcore's")) is None


def _client_transport(monkeypatch: pytest.MonkeyPatch, **env: str) -> object:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    transport = Transport(base_url=None, api_key="k", timeout_seconds=5, max_retries=0)
    client = transport.client
    assert client.timeout == httpx.Timeout(5)
    return client._transport


def test_direct_connections_use_our_sockets_and_a_configured_proxy_keeps_httpxs_transport(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert isinstance(_client_transport(monkeypatch), AsyncioTransport)
    # httpx honours proxy variables only for a client it builds the transport of.
    for name in ("HTTPS_PROXY", "all_proxy"):
        chosen = _client_transport(monkeypatch, **{name: "http://proxy.test:3128"})
        assert isinstance(chosen, httpx.AsyncHTTPTransport)


@pytest.mark.parametrize(
    ("raised", "expected", "cause"),
    [
        (httpcore.ConnectTimeout("t"), openai.APITimeoutError, httpx.ConnectTimeout),
        (httpcore.ReadTimeout("t"), openai.APITimeoutError, httpx.ReadTimeout),
        (httpcore.PoolTimeout("t"), openai.APITimeoutError, httpx.PoolTimeout),
        (httpcore.ConnectError("t"), openai.APIConnectionError, httpx.ConnectError),
        (httpcore.ReadError("t"), openai.APIConnectionError, httpx.ReadError),
        (httpcore.RemoteProtocolError("t"), openai.APIConnectionError, httpx.RemoteProtocolError),
        (httpcore.UnsupportedProtocol("t"), openai.APIConnectionError, httpx.UnsupportedProtocol),
        (httpcore.ProxyError("t"), openai.APIConnectionError, httpx.ProxyError),
        (httpx.ReadTimeout("t"), openai.APITimeoutError, httpx.ReadTimeout),
        (httpx.ConnectError("t"), openai.APIConnectionError, httpx.ConnectError),
    ],
)
def test_a_failure_in_transit_is_the_openai_packages_exception_its_cause_httpxs(
    raised: Exception, expected: type[Exception], cause: type[Exception]
) -> None:
    """One rule for both ways to send (httpcore's failures on the direct path, httpx's through its
    client): the openai exception, with the request, its cause httpx's exception."""
    request = httpx.Request("POST", "http://model.test/v1/responses")
    failure = transport_failure(raised, lambda: request)
    assert failure is not None and failure.request is request
    assert type(failure) is expected
    assert type(failure.__cause__) is cause
    if isinstance(raised, httpx.HTTPError):
        assert failure.__cause__ is raised  # (httpx's client gave it its request already)
    else:
        mapped = cast(httpx.RequestError, failure.__cause__)
        assert mapped.__cause__ is raised and mapped.request is request


def test_anything_else_is_not_a_failure_in_transit() -> None:
    for other in (
        ValueError("x"),
        openai.APIError("m", cast(Any, httpx.Request("GET", "http://x")), body=None),
        KeyError("k"),
    ):
        assert transport_failure(other, lambda: httpx.Request("GET", "http://x")) is None
