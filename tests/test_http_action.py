"""http.request and the SSRF guard, against real HTTP servers on loopback addresses.

No test sends traffic to anything but loopback: non-loopback addresses are only classified
by calling the guard directly.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
import types
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from hub.builtin import http as http_plugin
from hub.connectors import ActionError, Registry
from hub.security.netguard import (
    AddressGuard,
    BlockedAddressError,
    GuardedTransport,
    is_forbidden_address,
    make_http_client,
)
from hub.settings import Settings

BIG_TOTAL = 50 * 1024 * 1024
BIG_CHUNK = 64 * 1024


class Handler(BaseHTTPRequestHandler):
    """A tiny test server: each path is one behaviour."""

    server: LocalServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, value: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(value).encode(), "application/json", headers)

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        raw_query = parse_qs(parts.query)
        query: dict[str, Any] = {k: v if len(v) > 1 else v[0] for k, v in raw_query.items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.requests.append((self.command, self.path))
        path = parts.path
        if path == "/json":
            self._json(200, {"hello": "world", "n": 1})
        elif path == "/echo":
            self._json(
                200,
                {
                    "method": self.command,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "query": query,
                    "body": body.decode(),
                    "host": self.headers.get("Host"),
                },
            )
        elif path == "/text":
            self._send(200, "héllo".encode("latin-1"), "text/plain; charset=latin-1")
        elif path == "/notfound":
            self._json(404, {"error": "no such thing"})
        elif path == "/fail":
            self._send(500, b"boom", "text/plain")
        elif path == "/busy":
            self._send(503, b"busy", "text/plain", {"Retry-After": query.get("after", "")})
        elif path == "/ratelimited":
            self._json(429, {"error": "slow down"}, {"Retry-After": query.get("after", "7")})
        elif path == "/slow":
            time.sleep(float(query.get("delay", "2")))
            self._json(200, {"slow": True})
        elif path == "/redirect":
            self.send_response(302)
            self.send_header("Location", query["to"])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/declared-big":
            self.server.big = {"sent": 0, "finished": False, "done": threading.Event()}
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(BIG_TOTAL))
            self.end_headers()
            self._stream_big()
        elif path == "/big":
            # No Content-Length: HTTP/1.0, the body ends when the connection closes.
            self.server.big = {"sent": 0, "finished": False, "done": threading.Event()}
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            self._stream_big()
        else:
            self._json(404, {"error": "unknown path"})

    def _stream_big(self) -> None:
        state = self.server.big  # reset before the headers went out
        chunk = b"x" * BIG_CHUNK
        try:
            while state["sent"] < BIG_TOTAL:
                self.wfile.write(chunk)  # lazily: one chunk at a time, never all at once
                state["sent"] += len(chunk)
            state["finished"] = True
        except OSError:  # the client hung up
            pass
        finally:
            state["done"].set()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class LocalServer(ThreadingHTTPServer):
    """A threaded HTTP server remembering the requests it received."""

    daemon_threads = True

    def __init__(self, host: str) -> None:
        super().__init__((host, 0), Handler)
        self.requests: list[tuple[str, str]] = []
        self.big: dict[str, Any] = {}

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a client that hangs up or fails a TLS handshake is expected here."""

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


@pytest.fixture(scope="module")
def _servers() -> Iterator[dict[str, LocalServer]]:
    servers = {"127.0.0.1": LocalServer("127.0.0.1"), "127.0.0.2": LocalServer("127.0.0.2")}
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers.values()]
    for t in threads:
        t.start()
    yield servers
    for s in servers.values():
        s.shutdown()
        s.server_close()


@pytest.fixture
def server(_servers: dict[str, LocalServer]) -> LocalServer:
    """The server on 127.0.0.1."""
    _servers["127.0.0.1"].requests.clear()
    return _servers["127.0.0.1"]


@pytest.fixture
def server2(_servers: dict[str, LocalServer]) -> LocalServer:
    """The server on 127.0.0.2 (another loopback address)."""
    _servers["127.0.0.2"].requests.clear()
    return _servers["127.0.0.2"]


LOOPBACK_ALLOWED = Settings(allow_hosts=("127.0.0.1",))


def make_ctx(client: httpx.AsyncClient, settings: Settings) -> Any:
    """A minimal action context: what http.request uses."""
    return types.SimpleNamespace(
        http=client,
        settings=settings,
        idempotency_key="run-1:step-a",
        log=logging.getLogger("test.http"),
    )


@pytest.fixture
async def ctx() -> AsyncIterator[Any]:
    """A context whose client may reach 127.0.0.1 (and nothing else private)."""
    async with make_http_client(LOOPBACK_ALLOWED) as client:
        yield make_ctx(client, LOOPBACK_ALLOWED)


async def call(ctx: Any, **data: Any) -> dict[str, Any]:
    return await http_plugin.request(ctx, data)


# --- the connector description -------------------------------------------------------------


def test_connector_registers() -> None:
    registry = Registry()
    registry.add("hub.builtin.http", http_plugin.hub_connectors())
    action = registry.action("http.request")
    assert action is not None
    assert action.input_schema["required"] == ["url"]
    assert action.input_schema["properties"]["method"]["default"] == "GET"


def test_input_schema_rejects_json_and_body_together() -> None:
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(http_plugin.INPUT_SCHEMA)
    assert validator.is_valid({"url": "http://x/", "json": {"a": 1}})
    assert validator.is_valid({"url": "http://x/", "body": "a"})
    assert not validator.is_valid({"url": "http://x/", "json": 1, "body": "a"})
    assert not validator.is_valid({"url": "http://x/", "method": "TRACE"})
    assert not validator.is_valid({"method": "GET"})


# --- requests that succeed ----------------------------------------------------------------


async def test_get_json(ctx: Any, server: LocalServer) -> None:
    out = await call(ctx, url=f"{server.url}/json")
    assert out["status"] == 200
    assert out["json"] == {"hello": "world", "n": 1}
    assert json.loads(out["text"]) == out["json"]
    assert out["headers"]["content-type"] == "application/json"


async def test_get_sends_query_and_no_idempotency_key(ctx: Any, server: LocalServer) -> None:
    out = await call(ctx, url=f"{server.url}/echo?a=1", query={"b": "two", "c": [1, 2]})
    echoed = out["json"]
    assert echoed["method"] == "GET"
    assert echoed["query"] == {"a": "1", "b": "two", "c": ["1", "2"]}
    assert "idempotency-key" not in echoed["headers"]


async def test_post_json_sends_idempotency_key(ctx: Any, server: LocalServer) -> None:
    out = await call(
        ctx, method="POST", url=f"{server.url}/echo", json={"name": "Ada"}, headers={"X-A": "1"}
    )
    echoed = out["json"]
    assert echoed["method"] == "POST"
    assert json.loads(echoed["body"]) == {"name": "Ada"}
    assert echoed["headers"]["content-type"] == "application/json"
    assert echoed["headers"]["idempotency-key"] == "run-1:step-a"
    assert echoed["headers"]["x-a"] == "1"


async def test_user_idempotency_key_wins(ctx: Any, server: LocalServer) -> None:
    out = await call(
        ctx,
        method="PUT",
        url=f"{server.url}/echo",
        body="plain",
        headers={"idempotency-key": "mine", "Content-Type": "text/plain"},
    )
    echoed = out["json"]
    assert echoed["body"] == "plain"
    assert echoed["headers"]["idempotency-key"] == "mine"
    assert echoed["headers"]["content-type"] == "text/plain"


async def test_text_response_decoded_with_its_charset(ctx: Any, server: LocalServer) -> None:
    out = await call(ctx, url=f"{server.url}/text")
    assert out == {
        "status": 200,
        "headers": out["headers"],
        "json": None,
        "text": "héllo",
    }


async def test_head_has_no_body(ctx: Any, server: LocalServer) -> None:
    out = await call(ctx, method="HEAD", url=f"{server.url}/json")
    assert out["status"] == 200
    assert out["text"] == ""
    assert out["json"] is None


async def test_4xx_is_returned(ctx: Any, server: LocalServer) -> None:
    out = await call(ctx, method="DELETE", url=f"{server.url}/notfound")
    assert out["status"] == 404
    assert out["json"] == {"error": "no such thing"}


# --- retryable failures --------------------------------------------------------------------


async def test_500_is_retryable(ctx: Any, server: LocalServer) -> None:
    with pytest.raises(ActionError) as info:
        await call(ctx, url=f"{server.url}/fail")
    assert info.value.retryable
    assert info.value.retry_after is None
    assert "500" in str(info.value) and "boom" in str(info.value)


async def test_429_is_retryable_with_retry_after_seconds(ctx: Any, server: LocalServer) -> None:
    with pytest.raises(ActionError) as info:
        await call(ctx, method="POST", url=f"{server.url}/ratelimited?after=7", json={})
    assert info.value.retryable
    assert info.value.retry_after == 7.0
    assert "429" in str(info.value)


async def test_503_retry_after_http_date(ctx: Any, server: LocalServer) -> None:
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=120)
    date = email.utils.format_datetime(when, usegmt=True)
    with pytest.raises(ActionError) as info:
        await call(ctx, url=str(httpx.URL(f"{server.url}/busy", params={"after": date})))
    assert info.value.retryable
    assert info.value.retry_after is not None
    assert 100 < info.value.retry_after <= 120


def test_parse_retry_after() -> None:
    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    parse = http_plugin.parse_retry_after
    assert parse("3", now) == 3.0
    assert parse("-3", now) == 0.0
    assert parse("Wed, 01 Jan 2025 00:01:00 GMT", now) == 60.0
    assert parse("Tue, 31 Dec 2024 00:00:00 GMT", now) == 0.0
    assert parse("soon", now) is None
    assert parse("nan", now) is None
    assert parse(None, now) is None


async def test_timeout_is_retryable(ctx: Any, server: LocalServer) -> None:
    started = time.monotonic()
    with pytest.raises(ActionError) as info:
        await call(ctx, url=f"{server.url}/slow?delay=2", timeout=0.3)
    assert time.monotonic() - started < 1.5
    assert info.value.retryable
    assert "timed out" in str(info.value)


async def test_connection_refused_is_retryable(ctx: Any) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ActionError) as info:
        await call(ctx, url=f"http://127.0.0.1:{port}/")
    assert info.value.retryable


# --- refusals that are not retryable ----------------------------------------------------------


@pytest.mark.parametrize("path", ["/big", "/declared-big"])
async def test_oversized_response_refused_without_reading_it_all(
    server: LocalServer, path: str
) -> None:
    settings = LOOPBACK_ALLOWED.replace(http_max_response_bytes=1_000_000)
    async with make_http_client(settings) as client:
        with pytest.raises(ActionError) as info:
            await http_plugin.request(make_ctx(client, settings), {"url": f"{server.url}{path}"})
    assert not info.value.retryable
    assert "HUB_HTTP_MAX_RESPONSE_BYTES" in str(info.value)
    assert server.big["done"].wait(10), "the server should notice the client hung up"
    assert not server.big["finished"]
    assert server.big["sent"] < BIG_TOTAL // 2


async def test_bad_url_and_scheme(ctx: Any) -> None:
    for url in ["ftp://example.com/x", "not a url", "http://"]:
        with pytest.raises(ActionError) as info:
            await call(ctx, url=url)
        assert not info.value.retryable


async def test_too_many_redirects(ctx: Any, server: LocalServer) -> None:
    with pytest.raises(ActionError) as info:
        await call(ctx, url=f"{server.url}/loop")
    assert not info.value.retryable
    assert "too many redirects" in str(info.value)


# --- the SSRF guard: classification (no traffic) --------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "unspecified"),
        ("::", "unspecified"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("fc00::1", "private"),
        ("::ffff:10.0.0.1", "private"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("::ffff:169.254.169.254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("100.64.0.1", "shared address space"),
        ("100.127.255.254", "shared address space"),
        ("255.255.255.255", "reserved"),
        ("240.0.0.1", "reserved"),
        ("192.0.2.1", "reserved"),
        ("2001:db8::1", "reserved"),
        ("2002:7f00:1::", "loopback"),  # 6to4 embedding 127.0.0.1
        ("2002:a00:1::", "private"),  # 6to4 embedding 10.0.0.1
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 embedding 127.0.0.1
        ("64:ff9b::a9fe:a9fe", "metadata"),  # NAT64 embedding 169.254.169.254
        ("::127.0.0.1", "loopback"),  # IPv4-compatible (deprecated)
    ],
)
def test_forbidden_addresses(address: str, reason: str) -> None:
    assert is_forbidden_address(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "172.32.0.1",
        "100.128.0.1",
        "2606:4700:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::",
    ],
)
def test_public_addresses_allowed(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert is_forbidden_address(ip) is None
    AddressGuard().check("example.com", ip)  # does not raise


def test_guard_check_and_allow_lists() -> None:
    guard = AddressGuard()
    with pytest.raises(BlockedAddressError) as info:
        guard.check("internal", ipaddress.ip_address("10.0.0.1"))
    assert info.value.reason == "private"
    assert not info.value.retryable
    assert isinstance(info.value, ActionError)
    assert "HUB_ALLOW_HOSTS" in str(info.value)

    settings = Settings(allow_hosts=("10.1.0.0/16", "db.internal.", "*.corp.example", "::1"))
    guard = AddressGuard.from_settings(settings)
    guard.check("anything", ipaddress.ip_address("10.1.2.3"))
    guard.check("anything", ipaddress.ip_address("::ffff:10.1.2.3"))
    guard.check("DB.internal", ipaddress.ip_address("10.9.9.9"))
    guard.check("api.corp.example", ipaddress.ip_address("192.168.0.1"))
    guard.check("x", ipaddress.ip_address("::1"))
    with pytest.raises(BlockedAddressError):
        guard.check("anything", ipaddress.ip_address("10.2.0.1"))
    with pytest.raises(BlockedAddressError):
        guard.check("corp.example", ipaddress.ip_address("192.168.0.1"))
    with pytest.raises(BlockedAddressError):
        guard.check("anything", ipaddress.ip_address("169.254.169.254"))


def test_blocked_error_pickles() -> None:
    import pickle

    exc = BlockedAddressError("h", ipaddress.ip_address("127.0.0.1"), "loopback", url="http://h/")
    copy = pickle.loads(pickle.dumps(exc))
    assert str(copy) == str(exc)
    assert copy.reason == "loopback"


# --- the SSRF guard: real refusals, loopback only -------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        "[::1]",
        "2130706433",
        "0x7f.1",
        "127.1",
        "[::ffff:127.0.0.1]",
        "0.0.0.0",
        "LOCALHOST",
    ],
)
async def test_default_settings_refuse_loopback(server: LocalServer, host: str) -> None:
    port = server.server_address[1]
    settings = Settings()
    async with make_http_client(settings) as client:
        with pytest.raises(BlockedAddressError) as info:
            await http_plugin.request(
                make_ctx(client, settings), {"url": f"http://{host}:{port}/json"}
            )
    assert info.value.reason in {"loopback", "unspecified"}
    assert not info.value.retryable
    message = str(info.value)
    assert message.startswith(f"http.request refused http://{host.lower()}")
    assert "(allow it with HUB_ALLOW_HOSTS)" in message
    assert server.requests == []


async def test_refusal_message(server: LocalServer) -> None:
    port = server.server_address[1]
    async with make_http_client(Settings()) as client:
        with pytest.raises(BlockedAddressError) as info:
            await http_plugin.request(
                make_ctx(client, Settings()),
                {"url": f"http://user:pw@127.0.0.1:{port}/json?token=secret"},
            )
    assert str(info.value) == (
        f"http.request refused http://127.0.0.1:{port}/json: 127.0.0.1 is a loopback address "
        "(allow it with HUB_ALLOW_HOSTS)"
    )


async def test_the_client_itself_is_guarded(server: LocalServer) -> None:
    """Other plugins use ctx.http directly: the guard is in the client, not the action."""
    async with make_http_client(Settings()) as client:
        with pytest.raises(BlockedAddressError) as info:
            await client.get(f"{server.url}/json")
    assert str(info.value).startswith("request refused")
    assert server.requests == []


async def test_redirect_to_a_forbidden_address_is_refused(
    server: LocalServer, server2: LocalServer
) -> None:
    settings = Settings(allow_hosts=("127.0.0.2/32",))
    target = f"{server.url}/json"  # 127.0.0.1: not allowed
    async with make_http_client(settings) as client:
        ctx = make_ctx(client, settings)
        ok = await http_plugin.request(ctx, {"url": f"{server2.url}/json"})
        assert ok["status"] == 200
        with pytest.raises(BlockedAddressError) as info:
            await http_plugin.request(
                ctx, {"url": str(httpx.URL(f"{server2.url}/redirect", params={"to": target}))}
            )
    assert info.value.url == target
    assert str(info.value).startswith(f"http.request refused {target}: 127.0.0.1 is a loopback")
    assert [p for _, p in server2.requests if p.startswith("/redirect")]
    assert server.requests == []


async def test_redirect_to_an_allowed_address_is_followed(
    server: LocalServer, server2: LocalServer
) -> None:
    settings = Settings(allow_hosts=("127.0.0.0/30",))
    async with make_http_client(settings) as client:
        out = await http_plugin.request(
            make_ctx(client, settings),
            {"url": str(httpx.URL(f"{server2.url}/redirect", params={"to": f"{server.url}/json"}))},
        )
    assert out["json"] == {"hello": "world", "n": 1}


async def test_dns_rebinding_is_refused_at_connect_time(
    server: LocalServer, server2: LocalServer
) -> None:
    """The name first resolves to an allowed address, then to a forbidden one."""
    answers = iter(["127.0.0.2", "127.0.0.1"])
    asked: list[str] = []

    async def resolver(host: str, port: int) -> list[Any]:
        asked.append(host)
        return [ipaddress.ip_address(next(answers))]

    settings = Settings(allow_hosts=("127.0.0.2",))
    port2 = server2.server_address[1]
    async with make_http_client(settings, resolver=resolver) as client:
        ctx = make_ctx(client, settings)
        # The name does not exist in real DNS: success proves the checked address is used.
        first = await http_plugin.request(ctx, {"url": f"http://rebind.test:{port2}/echo"})
        assert first["json"]["host"] == f"rebind.test:{port2}"
        # HTTP/1.0 server: the connection closed, the next request connects (and resolves) anew.
        with pytest.raises(BlockedAddressError) as info:
            await http_plugin.request(ctx, {"url": f"http://rebind.test:{port2}/echo"})
    assert info.value.reason == "loopback"
    assert info.value.host == "rebind.test"
    assert asked == ["rebind.test", "rebind.test"]
    assert server.requests == []


async def test_resolver_answer_with_any_allowed_address(server2: LocalServer) -> None:
    """Forbidden answers are dropped; the request goes to the allowed one."""

    async def resolver(host: str, port: int) -> list[Any]:
        return [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("127.0.0.2")]

    settings = Settings(allow_hosts=("127.0.0.2",))
    async with make_http_client(settings, resolver=resolver) as client:
        out = await client.get(f"http://mixed.test:{server2.server_address[1]}/json")
    assert out.status_code == 200


async def test_rebinding_name_refused_with_default_settings() -> None:
    async def resolver(host: str, port: int) -> list[Any]:
        return [ipaddress.ip_address("127.0.0.1")]

    async with make_http_client(Settings(), resolver=resolver) as client:
        with pytest.raises(BlockedAddressError) as info:
            await http_plugin.request(make_ctx(client, Settings()), {"url": "http://rebind.test/x"})
    assert "rebind.test" in str(info.value)


async def test_unresolvable_name_is_a_retryable_connect_error() -> None:
    async def resolver(host: str, port: int) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async with make_http_client(Settings(), resolver=resolver) as client:
        with pytest.raises(ActionError) as info:
            await http_plugin.request(make_ctx(client, Settings()), {"url": "http://nx.test/"})
    assert info.value.retryable
    assert not isinstance(info.value, BlockedAddressError)


def test_transport_is_guarded() -> None:
    client = make_http_client(Settings())
    assert isinstance(client._transport, GuardedTransport)


# --- TLS still verifies the original host name ----------------------------------------------


def _self_signed(tmp_path: Any, name: str) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


@pytest.fixture
def tls_server(tmp_path: Any) -> Iterator[tuple[LocalServer, str]]:
    """An HTTPS server on 127.0.0.2 with a certificate for ``secure.test``."""
    cert, key = _self_signed(tmp_path, "secure.test")
    srv = LocalServer("127.0.0.2")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    srv.socket = context.wrap_socket(srv.socket, server_side=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv, cert
    srv.shutdown()
    srv.server_close()


async def test_tls_verifies_the_original_host_name(tls_server: tuple[LocalServer, str]) -> None:
    srv, cert = tls_server
    port = srv.server_address[1]

    async def resolver(host: str, port: int) -> list[Any]:
        return [ipaddress.ip_address("127.0.0.2")]

    settings = Settings(allow_hosts=("127.0.0.2",))
    verify = ssl.create_default_context(cafile=cert)
    async with make_http_client(settings, resolver=resolver, verify=verify) as client:
        ctx = make_ctx(client, settings)
        out = await http_plugin.request(ctx, {"url": f"https://secure.test:{port}/json"})
        assert out["json"] == {"hello": "world", "n": 1}
        # Same address, another name: the certificate does not match it.
        with pytest.raises(ActionError) as info:
            await http_plugin.request(ctx, {"url": f"https://other.test:{port}/json"})
    assert "certificate" in str(info.value).lower() or "hostname" in str(info.value).lower()
    assert not info.value.retryable
