"""A redirect to another origin carries no credential; one to the same origin keeps them.

Two loopback servers on two ports are two origins. Server A redirects; whichever server the
redirect leads to records the headers and the query it received.
"""

from __future__ import annotations

import json
import logging
import threading
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from hub.builtin import http as http_plugin
from hub.security.netguard import CREDENTIAL_PARAMS_EXTENSION, make_http_client, same_origin
from hub.settings import Settings

LOOPBACK_ALLOWED = Settings(allow_hosts=("127.0.0.1",))

CREDENTIALS = {
    "Authorization": "Bearer secret-token",
    "Proxy-Authorization": "Basic cHJveHk6c2VjcmV0",
    "Cookie": "session=secret-cookie",
    "X-Api-Key": "secret-api-key",
    "X-Custom-Auth": "secret-custom",
}
PLAIN = {"Accept": "application/json", "Accept-Language": "fr"}


@dataclass
class Origin:
    """One loopback server: its base URL and what its /landing received."""

    base: str
    received: list[dict[str, Any]] = field(default_factory=list)


def _handler(origin_of: dict[int, Origin]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            origin = origin_of[self.connection.getsockname()[1]]
            if parts.path == "/redirect":
                self.send_response(int(query.get("status", ["302"])[0]))
                self.send_header("Location", query["to"][0])
                if "set_cookie" in query:
                    self.send_header("Set-Cookie", "tracker=from-a; Path=/")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            origin.received.append(
                {"headers": {k.lower(): v for k, v in self.headers.items()}, "query": query}
            )
            body = json.dumps({"ok": True}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@pytest.fixture(scope="module")
def origins() -> Iterator[tuple[Origin, Origin]]:
    """Two servers on 127.0.0.1, on two ports: two origins."""
    origin_of: dict[int, Origin] = {}
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), _handler(origin_of)) for _ in range(2)]
    for server in servers:
        port = server.server_address[1]
        origin_of[port] = Origin(f"http://127.0.0.1:{port}")
        threading.Thread(target=server.serve_forever, daemon=True).start()
    a, b = (origin_of[s.server_address[1]] for s in servers)
    yield a, b
    for server in servers:
        server.shutdown()
        server.server_close()


def redirect(origin: Origin, to: str, **extra: str) -> str:
    return str(httpx.URL(f"{origin.base}/redirect", params={"to": to, **extra}))


async def landed(origin: Origin, url: str, **kwargs: Any) -> dict[str, Any]:
    """What ``origin``'s /landing received (its ``headers`` and ``query``) from one GET of
    ``url`` through the shared client, the redirects followed to a 200 there."""
    origin.received.clear()
    async with make_http_client(LOOPBACK_ALLOWED) as client:
        response = await client.get(url, **kwargs)
    assert response.status_code == 200
    assert len(origin.received) == 1, origin.received
    return origin.received[0]


@pytest.mark.parametrize("status", ["301", "302", "303", "307", "308"])
async def test_redirect_to_another_origin_drops_every_credential_header(
    origins: tuple[Origin, Origin], status: str
) -> None:
    a, b = origins
    url = redirect(a, f"{b.base}/landing", status=status)
    got = (await landed(b, url, headers={**CREDENTIALS, **PLAIN}))["headers"]
    for name in CREDENTIALS:
        assert name.lower() not in got, f"{name} was carried to another origin"
    assert got["accept"] == "application/json"
    assert got["accept-language"] == "fr"
    assert got["host"] == b.base.removeprefix("http://")


async def test_redirect_within_the_origin_keeps_the_credentials(
    origins: tuple[Origin, Origin],
) -> None:
    a, _ = origins
    got = await landed(
        a,
        redirect(a, "/landing?api_key=secret-query"),
        headers={**CREDENTIALS, **PLAIN},
        extensions={CREDENTIAL_PARAMS_EXTENSION: ["api_key"]},
    )
    for name, value in CREDENTIALS.items():
        assert got["headers"].get(name.lower()) == value, f"{name} was dropped within the origin"
    assert got["query"]["api_key"] == ["secret-query"]


async def test_a_chain_back_to_the_first_origin_does_not_restore_them(
    origins: tuple[Origin, Origin],
) -> None:
    """A -> B -> A: what was dropped on the way out stays dropped."""
    a, b = origins
    got = await landed(a, redirect(a, redirect(b, f"{a.base}/landing")), headers=CREDENTIALS)
    assert not set(got["headers"]) & {name.lower() for name in CREDENTIALS}


async def test_credential_query_parameters_are_not_carried_to_another_origin(
    origins: tuple[Origin, Origin],
) -> None:
    a, b = origins
    got = await landed(
        b,
        redirect(a, f"{b.base}/landing?api_key=secret-query&page=2"),
        extensions={CREDENTIAL_PARAMS_EXTENSION: ["api_key"]},
    )
    assert got["query"] == {"page": ["2"]}


async def test_cookies_a_response_sets_are_not_kept(origins: tuple[Origin, Origin]) -> None:
    """The shared client serves every workspace: no response's cookie reaches a request."""
    a, _ = origins
    a.received.clear()
    async with make_http_client(LOOPBACK_ALLOWED) as client:
        await client.get(redirect(a, "/landing", set_cookie="1"))
        await client.get(f"{a.base}/landing")
    assert [r["headers"].get("cookie") for r in a.received] == [None, None]


async def test_http_request_action_drops_a_custom_credential_header(
    origins: tuple[Origin, Origin],
) -> None:
    """The built-in action goes through the same client, so the same rule."""
    a, b = origins
    b.received.clear()
    async with make_http_client(LOOPBACK_ALLOWED) as client:
        ctx = types.SimpleNamespace(
            http=client,
            settings=LOOPBACK_ALLOWED,
            idempotency_key="run-1:step-a",
            log=logging.getLogger("test.redirects"),
        )
        out = await http_plugin.request(
            ctx,
            {"url": redirect(a, f"{b.base}/landing"), "headers": {"X-Shop-Token": "secret"}},
        )
    assert out["status"] == 200
    assert "x-shop-token" not in b.received[0]["headers"]


@pytest.mark.parametrize(
    ("url", "other", "same"),
    [
        ("http://h/a", "http://h:80/b", True),
        ("https://h/a", "https://h:443/b?x=1", True),
        ("http://h/a", "https://h/a", False),  # an upgrade to https is another origin too
        ("http://h/a", "http://h:8080/a", False),
        ("http://h/a", "http://g/a", False),
    ],
)
def test_same_origin(url: str, other: str, same: bool) -> None:
    assert same_origin(httpx.URL(url), httpx.URL(other)) is same
