"""The lean transport's choice of HTTP transport and its httpcore-to-httpx exception names
(`app.agents.net`; its sockets are tested against real servers in tests/integration/test_model_net.py)."""

from __future__ import annotations

import httpcore
import httpx
import pytest

from app.agents.net import AsyncioTransport, httpx_error
from app.agents.transport import Transport


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
