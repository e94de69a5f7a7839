"""The SSRF guard behind ``ctx.http``: which addresses outgoing HTTP may reach.

Flows are written by people who must not be able to reach what the hub's own network position
gives it: the loopback interface (the hub's API, Redis, the database), private networks, and
cloud metadata services (which hand out credentials). The guard refuses those addresses unless
``HUB_ALLOW_HOSTS`` names the host or a network containing the address.

The check is made where it cannot be dodged: in the network backend of the shared httpx
client, for every new TCP connection, after DNS resolution, on the very address the socket
then connects to (the name is never resolved a second time). So a redirect to a forbidden
address, a name that resolves to one (``localtest.me``), or a name whose DNS answer changes
between a check and the connection (DNS rebinding) are all refused. TLS still verifies the
certificate against the original host name: httpcore passes it to ``start_tls`` separately.

An IPv6 address that carries IPv4 addresses (mapped, SIIT, compatible, NAT64, 6to4, Teredo,
ISATAP: :func:`embedded_ipv4`) is judged by the addresses it carries. The shared client
(:class:`GuardedClient`) also keeps credentials where they were sent: a redirect to another
origin carries none of the request's credential headers or named credential parameters, and
no cookie a response sets is kept.

This module belongs to the model layer: it knows httpx and httpcore, nothing of the engine.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import ipaddress
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import anyio
import httpcore
import httpx

from hub.connectors import ActionError

if TYPE_CHECKING:
    from hub.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[Sequence[IPAddress]]]
"""Resolves ``(host, port)`` to addresses; injectable for tests (the default asks the OS)."""

MAX_REDIRECTS = 10
"""How many redirects the shared client follows before giving up."""

DEFAULT_LIMITS = httpx.Limits(
    max_connections=100, max_keepalive_connections=20, keepalive_expiry=30.0
)
"""Connection pool limits of the shared client."""

CALLER_EXTENSION = "hub_caller"
"""A request extension naming who sends the request, used in the refusal message."""

CREDENTIAL_PARAMS_EXTENSION = "hub_credential_params"
"""A request extension listing the query parameters that carry credentials (an API key in
the query): a redirect to another origin removes them from the URL it follows."""

REDIRECT_SAFE_HEADERS = frozenset(
    {
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "cache-control",
        "connection",
        "content-encoding",
        "content-language",
        "content-length",
        "content-type",
        "expect",
        "host",
        "idempotency-key",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "pragma",
        "range",
        "te",
        "transfer-encoding",
        "user-agent",
    }
)
"""The request headers a redirect to another origin keeps: standard ones that carry no
credential. Every other header (``Authorization``, ``Proxy-Authorization``, ``Cookie``,
``X-Api-Key``, any custom header a connection authenticates with) is dropped."""

# Cloud metadata services: AWS/GCP/Azure/OpenStack/Oracle (169.254.169.254), AWS ECS task
# metadata (169.254.170.2), EKS pod identity (169.254.170.23), AWS IPv6 IMDS (fd00:ec2::254,
# fd00:ec2::23), Alibaba Cloud (100.100.100.200).
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "169.254.170.23",
        "100.100.100.200",
        "fd00:ec2::254",
        "fd00:ec2::23",
    )
)


def _nets(*specs: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(s) for s in specs)


_V4_RULES: tuple[tuple[tuple[IPNetwork, ...], str], ...] = (
    # 0.0.0.0/8 is "this network"; connecting to 0.0.0.0 reaches the local host on Linux.
    (_nets("0.0.0.0/8"), "unspecified"),
    (_nets("127.0.0.0/8"), "loopback"),
    (_nets("169.254.0.0/16"), "link-local"),
    (_nets("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"), "private"),
    (_nets("100.64.0.0/10"), "shared address space"),
    (_nets("224.0.0.0/4"), "multicast"),
    (
        _nets(
            "240.0.0.0/4",  # reserved, and 255.255.255.255 (broadcast)
            "192.0.0.0/24",  # IETF protocol assignments
            "192.0.2.0/24",  # documentation
            "198.51.100.0/24",
            "203.0.113.0/24",
            "198.18.0.0/15",  # benchmarking
            "192.88.99.0/24",  # 6to4 relay anycast (deprecated)
        ),
        "reserved",
    ),
)

_V6_RULES: tuple[tuple[tuple[IPNetwork, ...], str], ...] = (
    (_nets("fe80::/10"), "link-local"),
    (_nets("fc00::/7", "fec0::/10"), "private"),  # unique local; site-local (deprecated)
    (_nets("ff00::/8"), "multicast"),
    (_nets("100::/64", "2001:db8::/32"), "reserved"),
)

_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
"""The only IPv6 block allocated for global unicast; outside it nothing is publicly routable."""

_V4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_SIIT = ipaddress.IPv6Network("::ffff:0:0:0/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_SIXTOFOUR = ipaddress.IPv6Network("2002::/16")
_TEREDO = ipaddress.IPv6Network("2001::/32")

# Where RFC 6052 puts the IPv4 address behind a NAT64 prefix of each length that fits inside
# the local-use prefix 64:ff9b:1::/48: the byte ranges of the 16-byte address (byte 8, the "u"
# octet, is always skipped).
_RFC6052_LAYOUTS: tuple[tuple[slice, ...], ...] = (
    (slice(12, 16),),  # /96, the usual one: its reading is judged first
    (slice(9, 13),),  # /64
    (slice(7, 8), slice(9, 12)),  # /56
    (slice(6, 8), slice(9, 11)),  # /48
)

# Forms that lead to their IPv4 address (a dual-stack socket, a NAT64 gateway, a 6to4 relay,
# a Teredo relay): with a public embedded address they are as public as it is.
_DESCRIPTIONS = {
    "loopback": "a loopback address",
    "private": "a private address",
    "link-local": "a link-local address",
    "metadata": "a cloud metadata address",
    "multicast": "a multicast address",
    "reserved": "a reserved (not publicly routable) address",
    "unspecified": "an unspecified (0.0.0.0 or ::) address",
    "shared address space": "in the shared address space (100.64.0.0/10, carrier-grade NAT)",
}

_FORWARDING_FORMS = frozenset({"IPv4-mapped", "NAT64", "NAT64 local-use", "6to4", "Teredo"})
# Deprecated forms with no legitimate public use: refused even with a public embedded address,
# unless HUB_ALLOW_HOSTS allows the address they carry.
_DEPRECATED_FORMS = frozenset({"IPv4-compatible", "IPv4-translated (SIIT)"})


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """Every IPv4 address that ``ip`` carries, each with the name of the form carrying it.

    The forms: ``IPv4-mapped`` (``::ffff:a.b.c.d``), ``IPv4-translated (SIIT)``
    (``::ffff:0:a.b.c.d``), ``IPv4-compatible`` (``::a.b.c.d``), ``NAT64``
    (``64:ff9b::a.b.c.d``), ``NAT64 local-use`` (``64:ff9b:1::/48``: the prefix length is the
    operator's choice, so every RFC 6052 layout that fits is read, one address each),
    ``6to4`` (``2002:AABB:CCDD::/48``), ``Teredo`` (``2001:0::/32``: the server's address and
    the obfuscated client's), and ``ISATAP`` (an interface identifier ``0:5efe:a.b.c.d`` or
    ``200:5efe:a.b.c.d`` under any prefix). An empty list when it carries none.
    """
    found: list[tuple[str, ipaddress.IPv4Address]] = []
    packed = ip.packed
    low32 = ipaddress.IPv4Address(packed[12:])
    if ip.ipv4_mapped is not None:
        found.append(("IPv4-mapped", ip.ipv4_mapped))
    elif ip in _SIIT:
        found.append(("IPv4-translated (SIIT)", low32))
    elif ip in _V4_COMPATIBLE:
        found.append(("IPv4-compatible", low32))
    elif ip in _NAT64:
        found.append(("NAT64", low32))
    elif ip in _NAT64_LOCAL:
        for layout in _RFC6052_LAYOUTS:
            raw = b"".join(packed[part] for part in layout)
            found.append(("NAT64 local-use", ipaddress.IPv4Address(raw)))
    elif ip in _SIXTOFOUR:
        found.append(("6to4", ipaddress.IPv4Address(packed[2:6])))
    elif ip in _TEREDO:
        server, client = ip.teredo or (low32, low32)
        found += [("Teredo", server), ("Teredo", client)]
    # ISATAP: bytes 8-11 are 00-00-5E-FE, with the universal/local and group bits free.
    if packed[8] & 0xFC == 0 and packed[9] == 0 and packed[10:12] == b"\x5e\xfe":
        found.append(("ISATAP", low32))
    return found


def is_forbidden_address(
    ip: IPAddress | str, allowed_networks: Sequence[IPNetwork] = ()
) -> str | None:
    """Why outgoing requests must not reach ``ip``, or None when it may be reached.

    The reasons: ``"loopback"``, ``"private"``, ``"link-local"``, ``"metadata"``,
    ``"multicast"``, ``"reserved"``, ``"unspecified"``, ``"shared address space"``. An address
    inside one of ``allowed_networks`` (from ``HUB_ALLOW_HOSTS``) may be reached.

    An IPv6 address that carries IPv4 addresses (every form of :func:`embedded_ipv4`) is
    refused when any address it carries would be refused on its own, for the same reason. With
    only public (or allowed) addresses inside: the mapped, NAT64, 6to4 and Teredo forms may be
    reached; the deprecated IPv4-compatible and SIIT forms count as ``"reserved"`` unless every
    address they carry is allowed; an ISATAP address is then judged by its prefix. Anything
    else outside the global unicast block ``2000::/3``, or not globally routable, counts as
    ``"reserved"``.
    """
    if isinstance(ip, str):
        ip = ipaddress.ip_address(ip)
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        ip = ipaddress.IPv6Address(int(ip))  # drop the %zone: compare the address only
    if any(ip in net for net in allowed_networks):
        return None
    if ip in METADATA_ADDRESSES:
        return "metadata"
    if isinstance(ip, ipaddress.IPv4Address):
        for networks, reason in _V4_RULES:
            if any(ip in net for net in networks):
                return reason
        return None if ip.is_global else "reserved"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    carried = embedded_ipv4(ip)
    for _form, embedded in carried:
        embedded_reason = is_forbidden_address(embedded, allowed_networks)
        if embedded_reason is not None:
            return embedded_reason
    forms = {form for form, _ in carried}
    if forms & _DEPRECATED_FORMS:
        every_allowed = all(
            any(embedded in net for net in allowed_networks) for _, embedded in carried
        )
        return None if every_allowed else "reserved"
    if forms & _FORWARDING_FORMS:
        return None  # what it reaches is the IPv4 address judged above
    for networks, reason in _V6_RULES:
        if any(ip in net for net in networks):
            return reason
    if ip not in _GLOBAL_UNICAST:
        return "reserved"
    return None if ip.is_global else "reserved"


def describe_reason(reason: str) -> str:
    """The phrase for a reason in messages: ``"loopback"`` -> ``"a loopback address"``."""
    return _DESCRIPTIONS.get(reason, f"a {reason} address")


def display_url(url: httpx.URL | str) -> str:
    """A URL fit for messages and logs: no user info, no query string, no fragment."""
    url = httpx.URL(url)
    return str(url.copy_with(query=None, fragment=None, userinfo=b""))


def _rebuild_blocked(
    host: str, ip: str, reason: str, url: str | None, caller: str
) -> BlockedAddressError:
    return BlockedAddressError(host, ipaddress.ip_address(ip), reason, url=url, caller=caller)


class BlockedAddressError(ActionError):
    """An outgoing request was refused by the SSRF guard (never retryable).

    ``host`` is the host name of the request, ``ip`` the address it resolved to, ``reason``
    one of the reasons of :func:`is_forbidden_address`, ``url`` the refused URL (without its
    query) when known.
    """

    def __init__(
        self,
        host: str,
        ip: IPAddress,
        reason: str,
        *,
        url: str | None = None,
        caller: str = "request",
    ) -> None:
        self.host = host
        self.ip = ip
        self.reason = reason
        self.url = url
        self.caller = caller
        target = url or host
        super().__init__(
            f"{caller} refused {target}: {ip} is {describe_reason(reason)} "
            "(allow it with HUB_ALLOW_HOSTS)",
            retryable=False,
        )

    def __reduce__(self) -> Any:
        """Pickle by the constructor's arguments (the default would pass only the message)."""
        return (_rebuild_blocked, (self.host, str(self.ip), self.reason, self.url, self.caller))


def _normalise_host(host: str) -> str:
    return host.strip().strip("[]").lower().rstrip(".")


class AddressGuard:
    """Decides whether a connection to ``ip`` for the host name ``host`` may be made.

    ``allowed_networks`` (addresses or networks) and ``allowed_hostnames`` come from
    ``HUB_ALLOW_HOSTS``. A host name in ``allowed_hostnames`` may reach whatever it resolves
    to; a name written ``*.example.internal`` allows every subdomain of ``example.internal``.
    An address inside an allowed network may be reached whatever the host name.
    """

    def __init__(
        self,
        allowed_networks: Iterable[IPNetwork | str] = (),
        allowed_hostnames: Iterable[str] = (),
    ) -> None:
        self.allowed_networks: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(n, strict=False) if isinstance(n, str) else n
            for n in allowed_networks
        )
        names = {_normalise_host(h) for h in allowed_hostnames}
        self.allowed_hostnames: frozenset[str] = frozenset(
            n for n in names if not n.startswith("*.")
        )
        self._allowed_suffixes: tuple[str, ...] = tuple(n[1:] for n in names if n.startswith("*."))

    @classmethod
    def from_settings(cls, settings: Settings) -> AddressGuard:
        """The guard configured by ``HUB_ALLOW_HOSTS``."""
        return cls(settings.allowed_networks, settings.allowed_hostnames)

    def host_allowed(self, host: str) -> bool:
        """True when ``HUB_ALLOW_HOSTS`` names this host (exactly or by ``*.`` suffix)."""
        name = _normalise_host(host)
        return name in self.allowed_hostnames or any(
            name.endswith(suffix) for suffix in self._allowed_suffixes
        )

    def address_allowed(self, ip: IPAddress) -> bool:
        """True when ``ip`` is inside an allowed network (an IPv6 address that carries IPv4
        addresses: also when every address it carries is)."""
        if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
            ip = ipaddress.IPv6Address(int(ip))
        if any(ip in net for net in self.allowed_networks):
            return True
        if isinstance(ip, ipaddress.IPv4Address):
            return False
        carried = embedded_ipv4(ip)
        return bool(carried) and all(
            any(embedded in net for net in self.allowed_networks) for _, embedded in carried
        )

    def refusal(self, host: str, ip: IPAddress) -> str | None:
        """The reason a connection to ``ip`` for ``host`` is refused, or None if allowed."""
        if self.host_allowed(host):
            return None
        return is_forbidden_address(ip, self.allowed_networks)

    def check(self, host: str, ip: IPAddress) -> None:
        """Raise :class:`BlockedAddressError` unless a connection to ``ip`` is allowed."""
        reason = self.refusal(host, ip)
        if reason is not None:
            raise BlockedAddressError(host, ip, reason)


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Resolve ``host`` with the operating system's resolver (``getaddrinfo``)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(info[4][0]) for info in infos]


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that resolves, checks, then connects to the checked address.

    ``connect_tcp`` resolves the host itself (a literal address is used as it is), drops every
    address the guard refuses, and connects to the remaining ones in order, by address, so
    nothing is resolved twice. If no address is allowed it raises
    :class:`BlockedAddressError` for the first one. Unix sockets are refused.
    """

    def __init__(
        self,
        guard: AddressGuard,
        *,
        resolver: Resolver | None = None,
        backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.guard = guard
        self.resolver: Resolver = resolver or system_resolver
        self._backend = backend or httpcore.AnyIOBackend()

    async def _resolve(self, host: str, port: int) -> list[IPAddress]:
        name = host.strip("[]")
        try:
            return [ipaddress.ip_address(name)]
        except ValueError:
            pass
        try:
            found = await self.resolver(name, port)
        except OSError as exc:  # socket.gaierror: the name does not resolve
            raise httpcore.ConnectError(f"cannot resolve {name!r}: {exc}") from exc
        unique = list(dict.fromkeys(found))
        if not unique:
            raise httpcore.ConnectError(f"cannot resolve {name!r}: no address")
        return unique

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Resolve ``host``, refuse forbidden addresses, connect to the first allowed one."""
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            with anyio.fail_after(timeout):
                addresses = await self._resolve(host, port)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host!r} timed out") from exc
        allowed: list[IPAddress] = []
        first_refusal: BlockedAddressError | None = None
        for ip in addresses:
            try:
                self.guard.check(host, ip)
            except BlockedAddressError as exc:
                first_refusal = first_refusal or exc
                continue
            allowed.append(ip)
        if not allowed:
            assert first_refusal is not None
            raise first_refusal
        last_error: Exception | None = None
        for ip in allowed:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return await self._backend.connect_tcp(
                    str(ip),
                    port,
                    timeout=remaining,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Refused: the guarded client only makes TCP connections."""
        raise httpcore.ConnectError("unix sockets are not allowed by the SSRF guard")

    async def sleep(self, seconds: float) -> None:
        """Sleep (used by httpcore between connection retries)."""
        await self._backend.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """An httpx transport whose every connection goes through :class:`GuardedNetworkBackend`.

    Proxies are not supported (through a proxy the guard could not see the address that is
    finally reached); HTTP/1.1 only.
    """

    def __init__(
        self,
        guard: AddressGuard,
        *,
        resolver: Resolver | None = None,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits = DEFAULT_LIMITS,
    ) -> None:
        ssl_context = httpx.create_ssl_context(verify=verify, trust_env=True)
        super().__init__(verify=ssl_context, limits=limits, trust_env=True)
        self.guard = guard
        self.network_backend = GuardedNetworkBackend(guard, resolver=resolver)
        # httpx has no public way to pass a network backend: replace the pool it built with one
        # configured the same way, plus the guarded backend.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=self.network_backend,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send the request; a refusal is reported with the URL that was refused."""
        try:
            return await super().handle_async_request(request)
        except BlockedAddressError as exc:
            if exc.url is not None:
                raise
            caller = str(request.extensions.get(CALLER_EXTENSION) or "request")
            raise BlockedAddressError(
                exc.host, exc.ip, exc.reason, url=display_url(request.url), caller=caller
            ) from None


def same_origin(url: httpx.URL, other: httpx.URL) -> bool:
    """True when both URLs have the same scheme, host and port (default ports filled in)."""
    defaults = {"http": 80, "https": 443}
    return (
        url.scheme == other.scheme
        and url.host == other.host
        and (url.port or defaults.get(url.scheme)) == (other.port or defaults.get(other.scheme))
    )


def without_credentials(previous: httpx.Request, redirect: httpx.Request) -> httpx.Request:
    """The request that follows a redirect from ``previous``, with no credential it should
    not carry.

    To the same origin (scheme, host and port) it keeps every header of ``previous``,
    ``Cookie`` included (httpx drops it: the client's cookie jar would rebuild it, and the
    hub's shared client keeps no cookies). To another origin, an upgrade from http to https
    included, it keeps only :data:`REDIRECT_SAFE_HEADERS` and drops the query parameters
    named by the request's :data:`CREDENTIAL_PARAMS_EXTENSION`.
    """
    if same_origin(previous.url, redirect.url):
        cookie = previous.headers.get("cookie")
        if cookie is not None:
            redirect.headers["Cookie"] = cookie
        return redirect
    for name in list(redirect.headers.keys()):
        if name.lower() not in REDIRECT_SAFE_HEADERS:
            del redirect.headers[name]
    params = redirect.extensions.get(CREDENTIAL_PARAMS_EXTENSION) or ()
    for param in params:
        if param in redirect.url.params:
            redirect.url = redirect.url.copy_remove_param(param)
    return redirect


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """A cookie policy that neither stores nor sends any cookie."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False

    def return_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False


class GuardedClient(httpx.AsyncClient):
    """The hub's shared client: redirects never carry credentials to another origin, and no
    cookie is kept between requests (the client is shared by every flow of every workspace).

    Redirects are followed by httpx; the one change is :func:`without_credentials` applied to
    each request it builds to follow one.
    """

    def _build_redirect_request(
        self, request: httpx.Request, response: httpx.Response
    ) -> httpx.Request:
        return without_credentials(request, super()._build_redirect_request(request, response))


def make_http_client(
    settings: Settings,
    *,
    resolver: Resolver | None = None,
    verify: ssl.SSLContext | bool = True,
) -> httpx.AsyncClient:
    """The shared httpx client behind ``ctx.http``, guarded against SSRF.

    Timeouts come from ``HUB_HTTP_TIMEOUT``; redirects are followed (at most
    :data:`MAX_REDIRECTS`), each new connection checked by the guard, and a redirect to
    another origin carries no credential (:class:`GuardedClient`). The environment's proxy
    variables and ``.netrc`` are ignored (``trust_env=False``). ``resolver`` and ``verify``
    exist for tests and for private certificate authorities.
    """
    # httpx logs every request URL at INFO, query strings included: API keys passed in a
    # query would reach the logs. Keep it to warnings.
    logging.getLogger("httpx").setLevel(max(logging.getLogger("httpx").level, logging.WARNING))
    guard = AddressGuard.from_settings(settings)
    return GuardedClient(
        transport=GuardedTransport(guard, resolver=resolver, verify=verify),
        cookies=http.cookiejar.CookieJar(policy=_NoCookies()),
        timeout=httpx.Timeout(settings.http_timeout),
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        trust_env=False,
        headers={"User-Agent": "hub"},
    )
