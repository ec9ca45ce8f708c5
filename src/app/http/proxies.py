"""The client's address behind a load balancer: `X-Forwarded-For`, believed only from `TRUSTED_PROXIES`.

Behind HAProxy every connection comes from HAProxy, so every client would share one
failed-sign-in budget (`RATE_LIMIT_ANONYMOUS_PER_MINUTE` is per address). HAProxy's
`option forwardfor` appends the address it saw to `X-Forwarded-For`; what is left of that entry
came from the client and may be anything. So, only when the connection's peer is a trusted proxy,
the hops are read from the right and the first one that is not itself a trusted proxy is the
client. From any other peer the header is ignored: a client cannot pick its own budget. (Granian
does not speak the PROXY protocol, so the header is the only carrier.)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# A longer chain is not a real path through proxies; past it the header is not believed.
MAX_HOPS = 16


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, proxies: Sequence[Network]) -> bool:
    return any(address.version == network.version and address in network for network in proxies)


def forwarded_client(peer: str, forwarded_for: Sequence[str], proxies: Sequence[Network]) -> str | None:
    """The client behind `peer`, or None when `peer`'s own address is the one to use.

    `forwarded_for` holds the `X-Forwarded-For` header lines in arrival order (a proxy may add a
    line of its own rather than extend the last one).
    """
    peer_address = _address(peer)
    if peer_address is None or not _trusted(peer_address, proxies):
        return None
    hops = [hop for line in forwarded_for for hop in line.split(",")]
    if not hops or len(hops) > MAX_HOPS:
        return None
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            return None  # a trusted proxy passed on something that is not an address: use the proxy's
        if not _trusted(address, proxies):
            return str(address)
    return str(_address(hops[0]))  # every hop is a trusted proxy: the first one is the origin


def forwarded_client_middleware(proxies: Sequence[str]) -> Callable[[ASGIApp], ASGIApp]:
    """Sets the ASGI scope's `client` to the forwarded client when the peer is a trusted proxy, so
    every reader of the client address (the failed-sign-in budget, `/mcp`) sees the same one.

    `proxies` are `TRUSTED_PROXIES`' networks as settings validated them."""
    trusted = tuple(ipaddress.ip_network(network) for network in proxies)

    def wrap(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            peer = scope.get("client")
            if scope["type"] == ScopeType.HTTP and peer:
                lines = [value.decode("latin-1") for name, value in scope["headers"] if name == b"x-forwarded-for"]
                client = forwarded_client(peer[0], lines, trusted) if lines else None
                if client is not None:
                    scope["client"] = (client, 0)
            await app(scope, receive, send)

        return middleware

    return wrap
