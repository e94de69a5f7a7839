"""OAuth2 authorization code with PKCE, and token refresh, against a local stand-in server.

The stand-in (a real HTTP server on 127.0.0.1) implements the documented parts of RFC 6749
and RFC 7636 that the hub uses: ``/authorize`` (checks client id, redirect URI and an S256
challenge, redirects back with a single-use code), ``/token`` (``authorization_code`` with the
verifier checked against the challenge; ``refresh_token`` with rotation) and a ``/me``
resource that accepts only a current access token. No SaaS is reachable from the tests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from hub.services import oauth2
from hub.settings import Settings
from tests.api_kit import Api, add_oauthy_connection, started_api

CLIENT_ID = "client-1"
CLIENT_SECRET = "client-s3cret-9000"
CONNS = "/api/w/default/connections"


class StandIn:
    """The state of the stand-in OAuth2 server."""

    def __init__(self) -> None:
        self.codes: dict[str, dict[str, str]] = {}
        self.access: set[str] = set()
        self.refresh: set[str] = set()
        self.token_requests: list[dict[str, str]] = []
        self.expires_in = 3600
        self.base = ""

    def issue(self, scope: str) -> dict[str, Any]:
        access, refresh = f"at-{secrets.token_hex(8)}", f"rt-{secrets.token_hex(8)}"
        self.access.add(access)
        self.refresh.add(refresh)
        return {
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": scope,
        }


def make_handler(state: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def answer(
            self, status: int, body: Any = None, headers: dict[str, str] | None = None
        ) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            if url.path == "/authorize":
                if (
                    query.get("client_id") != CLIENT_ID
                    or query.get("response_type") != "code"
                    or query.get("code_challenge_method") != "S256"
                    or len(query.get("code_challenge", "")) != 43
                ):
                    self.answer(400, {"error": "invalid_request"})
                    return
                code = secrets.token_urlsafe(12)
                state.codes[code] = query
                target = (
                    query["redirect_uri"]
                    + "?"
                    + urllib.parse.urlencode({"code": code, "state": query["state"]})
                )
                self.answer(302, headers={"location": target})
            elif url.path == "/me":
                token = self.headers.get("authorization", "").removeprefix("Bearer ")
                if token in state.access:
                    self.answer(200, {"user": "ann@service"})
                else:
                    self.answer(401, {"error": "invalid_token"})
            else:
                self.answer(404, {})

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
            state.token_requests.append(form)
            if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
                self.answer(401, {"error": "invalid_client"})
                return
            if form.get("grant_type") == "authorization_code":
                asked = state.codes.pop(form.get("code", ""), None)
                verifier = form.get("code_verifier", "")
                digest = hashlib.sha256(verifier.encode()).digest()
                challenge = base64.urlsafe_b64encode(digest).decode().rstrip("=")
                if (
                    asked is None
                    or asked["redirect_uri"] != form.get("redirect_uri")
                    or asked["code_challenge"] != challenge
                ):
                    self.answer(400, {"error": "invalid_grant", "error_description": "bad code"})
                    return
                self.answer(200, state.issue(asked.get("scope", "")))
            elif form.get("grant_type") == "refresh_token":
                old = form.get("refresh_token", "")
                if old not in state.refresh:
                    self.answer(400, {"error": "invalid_grant"})
                    return
                state.refresh.discard(old)  # rotation: a refresh token works once
                state.access.clear()
                self.answer(200, state.issue("contacts"))
            else:
                self.answer(400, {"error": "unsupported_grant_type"})

    return Handler


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    state = StandIn()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
async def api(settings: Settings, stand_in: StandIn) -> AsyncIterator[Api]:
    async for value in started_api(settings.replace(allow_hosts=("127.0.0.1",))):
        provider = {
            "authorize_url": f"{stand_in.base}/authorize",
            "token_url": f"{stand_in.base}/token",
            "scopes": ["contacts"],
        }
        await add_oauthy_connection(value, provider, CLIENT_ID, CLIENT_SECRET)
        yield value


async def authorize(api: Api, caller: Any) -> str:
    """Start at the hub, pass the stand-in's consent; return the callback path and query."""
    start = await api.call("GET", f"{CONNS}/crm/oauth2/authorize", caller)
    assert start.status_code == 302, start.text
    async with httpx.AsyncClient() as browser:
        consent = await browser.get(start.headers["location"])
    assert consent.status_code == 302, consent.text
    back = urllib.parse.urlsplit(consent.headers["location"])
    assert back.path == "/api/oauth2/callback"
    return f"{back.path}?{back.query}"


async def whoami(api: Api, stand_in: StandIn) -> dict[str, Any]:
    response = await api.call(
        "POST",
        "/api/w/default/step-tests",
        api.editor,
        json={
            "action": "oauthy.whoami",
            "connection": "crm",
            "input": {"url": f"{stand_in.base}/me"},
        },
    )
    result: dict[str, Any] = response.json()
    return result


async def test_authorization_code_with_pkce_stores_encrypted_tokens(
    api: Api, stand_in: StandIn
) -> None:
    start = await api.call("GET", f"{CONNS}/crm/oauth2/authorize", api.editor)
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(start.headers["location"]).query))
    assert query["code_challenge_method"] == "S256" and query["scope"] == "contacts"
    assert query["redirect_uri"] == "http://testserver.local/api/oauth2/callback"
    assert "code_verifier" not in start.headers["location"]
    callback = await authorize(api, api.editor)
    done = await api.call("GET", callback, api.editor)
    assert done.status_code == 200, done.text
    status = done.json()["oauth2"]
    assert status["connected"] is True and status["has_refresh_token"] is True
    assert status["scope"] == "contacts"
    exchange = stand_in.token_requests[-1]
    assert exchange["grant_type"] == "authorization_code" and len(exchange["code_verifier"]) >= 43
    row = await api.hub.db.read(
        lambda c: c.exec_driver_sql("SELECT secrets, oauth_tokens FROM connections").one()
    )
    for token in stand_in.access | stand_in.refresh:
        assert token not in row[0] and token not in row[1]
        assert token not in done.text
    assert CLIENT_SECRET not in done.text
    assert (await whoami(api, stand_in))["output"] == {"user": "ann@service"}
    audit = await api.call("GET", "/api/w/default/audit", api.owner, params={"target": "crm"})
    assert audit.json()["items"][0]["action"] == "connection.oauth2"


async def test_a_code_is_exchanged_once_and_a_forged_state_is_refused(
    api: Api, stand_in: StandIn
) -> None:
    callback = await authorize(api, api.editor)
    assert (await api.call("GET", callback, api.editor)).status_code == 200
    replayed = await api.call("GET", callback, api.editor)
    assert replayed.status_code == 502
    assert "invalid_grant" in replayed.json()["error"]["message"]
    assert CLIENT_SECRET not in replayed.text
    parts = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(callback).query))
    forged = parts["state"][:-4] + ("AAAA" if not parts["state"].endswith("AAAA") else "BBBB")
    response = await api.call(
        "GET", "/api/oauth2/callback", api.editor, params={"code": parts["code"], "state": forged}
    )
    assert response.status_code == 400


async def test_only_the_user_who_started_can_complete_the_authorization(
    api: Api, stand_in: StandIn
) -> None:
    callback = await authorize(api, api.owner)
    response = await api.call("GET", callback, api.editor)
    assert response.status_code == 403
    anonymous = await api.client.get(callback)
    assert anonymous.status_code == 401
    denied = await api.call(
        "GET", "/api/oauth2/callback", api.owner, params={"state": "x", "error": "access_denied"}
    )
    assert denied.status_code == 400 and "access_denied" in denied.text


async def test_refresh_rotates_the_tokens_and_actions_use_the_new_one(
    api: Api, stand_in: StandIn
) -> None:
    await api.call("GET", await authorize(api, api.editor), api.editor)
    assert await oauth2.refresh_due(api.hub) == 0  # an hour left: nothing to do
    refreshed = await api.call("POST", f"{CONNS}/crm/oauth2/refresh", api.editor)
    assert refreshed.status_code == 200, refreshed.text
    assert stand_in.token_requests[-1]["grant_type"] == "refresh_token"
    assert len(stand_in.access) == 1  # the old access token no longer works at the service
    assert (await whoami(api, stand_in))["output"] == {"user": "ann@service"}


async def test_tokens_about_to_expire_are_refreshed_by_the_refresher(
    api: Api, stand_in: StandIn
) -> None:
    stand_in.expires_in = 60  # inside the refresh margin
    await api.call("GET", await authorize(api, api.editor), api.editor)
    before = set(stand_in.access)
    assert await oauth2.refresh_due(api.hub) == 1
    assert stand_in.access and stand_in.access.isdisjoint(before)
    assert (await whoami(api, stand_in))["ok"] is True


async def test_a_connector_without_oauth2_has_no_authorization(api: Api) -> None:
    await api.call(
        "POST", CONNS, api.editor,
        json={"name": "plain", "connector": "test", "values": {"token": "abcdef"}},
    )  # fmt: skip
    response = await api.call("GET", f"{CONNS}/plain/oauth2/authorize", api.editor)
    assert response.status_code == 422
    open_redirect = await api.call(
        "GET", f"{CONNS}/crm/oauth2/authorize", api.editor, params={"return_to": "//evil.example"}
    )
    assert open_redirect.status_code == 400
