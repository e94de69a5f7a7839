"""What a request says about its client: its address and whether it came over HTTPS.

The connection's peer is the client unless the peer is one of ``HUB_TRUSTED_PROXIES``
(addresses or networks). Only then are the forwarding headers believed:

- the client's address is the right-most ``X-Forwarded-For`` entry that is not itself a
  trusted proxy (each proxy appends the address it saw; the entries to its left are
  whatever the client sent, so the left-most entry is never believed);
- the request is HTTPS when the right-most ``X-Forwarded-Proto`` value is ``https``.

A request is also HTTPS when the server itself received it over TLS, and every request
counts as HTTPS when ``HUB_PUBLIC_URL`` is an https:// address (the hub is reached through
TLS even if the last hop is plain HTTP). An IPv6 client is identified by its /64 network:
one host normally holds a whole /64, so counting single IPv6 addresses would let it rotate
through 2**64 of them.

``hub serve`` runs uvicorn without its own proxy-header handling, so ``scope["client"]``
is the real peer here.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Any

from hub.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=32)
def _networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    nets = []
    for entry in entries:
        try:
            nets.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            continue  # a host name cannot be matched against a peer address
    return tuple(nets)


def parse_address(text: str) -> IPAddress | None:
    """An address from a peer or a forwarding header entry (``[v6]:port`` and ``v4:port``
    forms included; an IPv4-mapped IPv6 address as its IPv4 address), or None."""
    text = text.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_trusted(address: IPAddress | None, settings: Settings) -> bool:
    """True when ``address`` is one of ``HUB_TRUSTED_PROXIES``."""
    if address is None:
        return False
    return any(address in net for net in _networks(settings.trusted_proxies))


def _header_values(scope: Any, name: bytes) -> list[str]:
    values: list[str] = []
    for key, value in scope.get("headers", ()):
        if key == name:
            values.extend(part.strip() for part in value.decode("latin-1").split(","))
    return [v for v in values if v]


def _peer(scope: Any) -> str:
    client = scope.get("client")
    return str(client[0]) if client else ""


def client_address(scope: Any, settings: Settings) -> IPAddress | None:
    """The client's address (see the module's docstring); None when it is unknown."""
    hop = parse_address(_peer(scope))
    if not is_trusted(hop, settings):
        return hop
    for entry in reversed(_header_values(scope, b"x-forwarded-for")):
        address = parse_address(entry)
        if address is None:
            return hop  # a proxy that forwards garbage: count its requests as its own
        if not is_trusted(address, settings):
            return address
        hop = address
    return hop


def client_key(scope: Any, settings: Settings) -> str:
    """The client as a throttle counts it: its IPv4 address or its IPv6 /64."""
    address = client_address(scope, settings)
    if address is None:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def is_https(scope: Any, settings: Settings) -> bool:
    """True when the client reached the hub over HTTPS (see the module's docstring)."""
    if settings.public_https or scope.get("scheme") in ("https", "wss"):
        return True
    if not settings.trusted_proxies:  # no proxy to believe: nothing to parse per request
        return False
    if not is_trusted(parse_address(_peer(scope)), settings):
        return False
    protos = _header_values(scope, b"x-forwarded-proto")
    return bool(protos) and protos[-1].lower() == "https"
