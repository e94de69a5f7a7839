"""Sessions that end, throttled password guesses, bounded argon2, Secure cookies, and API
tokens with an expiry and scopes (issue 14).

Everything runs in-process against the real app, real SQLite and real argon2; browsers are
httpx clients with their own cookie jars. Time is moved by rewriting a session's stored
times (a session "last seen 13 hours ago"), not by sleeping.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from hub.api.proxy import client_address, client_key, is_https
from hub.app import create_app
from hub.db import accounts
from hub.db.models import now_us
from hub.security import accounts as security
from hub.settings import Settings
from tests.api_kit import PASSWORD, Api, add_user, flow_document, started_api
from tests.services import free_port

HOUR_US = 3600 * 1_000_000
LOGIN = "/api/auth/login"


@asynccontextmanager
async def api_with(settings: Settings, **changes: Any) -> AsyncIterator[Api]:
    """An :class:`Api` on settings with ``changes``."""
    async for api in started_api(settings.replace(**changes)):
        yield api


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async with api_with(settings) as value:
        yield value


def browser(api: Api, *, base_url: str = "http://testserver.local", **kwargs: Any) -> Any:
    """A client with its own cookie jar on the app."""
    transport = httpx.ASGITransport(app=api.app, **kwargs)
    return httpx.AsyncClient(transport=transport, base_url=base_url)


async def csrf(client: httpx.AsyncClient) -> str:
    """Fetch the CSRF token (and cookie); send it back on every later request."""
    token = (await client.get("/api/auth/csrf")).json()["token"]
    client.headers["x-csrftoken"] = token
    return str(token)


async def attempt(
    client: httpx.AsyncClient, email: str, password: str, **headers: str
) -> httpx.Response:
    """One login attempt."""
    return await client.post(LOGIN, json={"email": email, "password": password}, headers=headers)


async def logged_in(api: Api, email: str, password: str = PASSWORD) -> httpx.AsyncClient:
    """A browser with a session."""
    client = browser(api)
    await csrf(client)
    response = await attempt(client, email, password)
    assert response.status_code == 200, response.text
    return client


def copy_of(client: httpx.AsyncClient, api: Api) -> httpx.AsyncClient:
    """Another browser holding a copy of ``client``'s session cookie (a stolen cookie)."""
    thief = browser(api)
    thief.cookies.set("hub_session", client.cookies["hub_session"], domain="testserver.local")
    return thief


async def session_rows(api: Api, email: str) -> list[dict[str, Any]]:
    """The stored sessions of a user."""

    def read(conn: Any) -> list[dict[str, Any]]:
        user = accounts.user_by_email(conn, email)
        assert user is not None
        rows = conn.execute(
            accounts.sessions.select().where(accounts.sessions.c.user_id == user["id"])
        )
        return [dict(r._mapping) for r in rows]

    return await api.hub.db.read(read)


async def move_session(api: Api, email: str, **times: int) -> None:
    """Set a user's sessions' stored times (epoch microseconds): travel in time."""

    def write(conn: Any) -> None:
        user = accounts.user_by_email(conn, email)
        assert user is not None
        conn.execute(
            update(accounts.sessions)
            .where(accounts.sessions.c.user_id == user["id"])
            .values(**times)
        )

    await api.hub.db.write(write)


# -- sessions -------------------------------------------------------------------------------


async def test_logout_revokes_the_session_so_a_copied_cookie_stops_working(api: Api) -> None:
    await add_user(api.hub, "ann@example.com", "editor", password=PASSWORD)
    client = await logged_in(api, "ann@example.com")
    thief = copy_of(client, api)
    assert (await thief.get("/api/me")).status_code == 200
    assert (await client.post("/api/auth/logout")).status_code == 204
    assert (await client.get("/api/me")).status_code == 401
    after = await thief.get("/api/me")
    assert after.status_code == 401
    assert [r["revoked_at"] is not None for r in await session_rows(api, "ann@example.com")] == [
        True
    ]
    await client.aclose()
    await thief.aclose()


async def test_the_cookie_carries_only_a_random_session_id(api: Api) -> None:
    await add_user(api.hub, "ann@example.com", "editor", password=PASSWORD)
    first = await logged_in(api, "ann@example.com")
    second = await logged_in(api, "ann@example.com")
    rows = await session_rows(api, "ann@example.com")
    assert len(rows) == 2 and len({r["id"] for r in rows}) == 2  # one row per login
    for client in (first, second):
        cookie = client.cookies["hub_session"]
        assert all(r["id"] not in cookie for r in rows)  # the table holds digests only
        await client.aclose()


async def test_a_session_unused_for_the_idle_time_ends(settings: Settings) -> None:
    async with api_with(settings, session_idle_minutes=60.0) as api:
        await add_user(api.hub, "ann@example.com", "editor", password=PASSWORD)
        client = await logged_in(api, "ann@example.com")
        await move_session(api, "ann@example.com", last_seen_at=now_us() - 59 * 60 * 1_000_000)
        assert (await client.get("/api/me")).status_code == 200  # and it is seen again now
        (row,) = await session_rows(api, "ann@example.com")
        assert row["last_seen_at"] > now_us() - 60 * 1_000_000
        await move_session(api, "ann@example.com", last_seen_at=now_us() - 61 * 60 * 1_000_000)
        assert (await client.get("/api/me")).status_code == 401
        await client.aclose()


async def test_a_session_ends_at_its_maximum_age_even_when_used(settings: Settings) -> None:
    async with api_with(settings, session_max_hours=24.0) as api:
        await add_user(api.hub, "ann@example.com", "editor", password=PASSWORD)
        client = await logged_in(api, "ann@example.com")
        (row,) = await session_rows(api, "ann@example.com")
        assert row["expires_at"] - row["created_at"] == 24 * HOUR_US
        await move_session(api, "ann@example.com", created_at=now_us() - 23 * HOUR_US)
        assert (await client.get("/api/me")).status_code == 200
        await move_session(api, "ann@example.com", created_at=now_us() - 25 * HOUR_US)
        assert (await client.get("/api/me")).status_code == 401  # last seen just now
        await client.aclose()


async def test_the_last_use_is_written_at_most_once_a_minute(api: Api) -> None:
    await add_user(api.hub, "ann@example.com", "editor", password=PASSWORD)
    client = await logged_in(api, "ann@example.com")
    recent = now_us() - 30 * 1_000_000
    await move_session(api, "ann@example.com", last_seen_at=recent)
    for _ in range(3):
        assert (await client.get("/api/me")).status_code == 200
    (row,) = await session_rows(api, "ann@example.com")
    assert row["last_seen_at"] == recent  # read, not written
    stale = now_us() - 90 * 1_000_000
    await move_session(api, "ann@example.com", last_seen_at=stale)
    assert (await client.get("/api/me")).status_code == 200
    (row,) = await session_rows(api, "ann@example.com")
    assert row["last_seen_at"] > stale
    await client.aclose()


async def test_a_password_change_revokes_the_other_sessions_on_the_server(api: Api) -> None:
    await add_user(api.hub, "ann@example.com", "editor", password=PASSWORD)
    laptop = await logged_in(api, "ann@example.com")
    phone = await logged_in(api, "ann@example.com")
    stolen = copy_of(phone, api)
    new = "another long passphrase"
    changed = await laptop.post("/api/me/password", json={"current": PASSWORD, "new": new})
    assert changed.status_code == 204
    assert (await laptop.get("/api/me")).status_code == 200
    assert (await phone.get("/api/me")).status_code == 401
    assert (await stolen.get("/api/me")).status_code == 401
    rows = await session_rows(api, "ann@example.com")
    assert sorted(r["revoked_at"] is None for r in rows) == [False, True]
    for client in (laptop, phone, stolen):
        await client.aclose()


async def test_a_login_replaces_the_session_the_browser_had(api: Api) -> None:
    await add_user(api.hub, "ann@example.com", "editor", password=PASSWORD)
    client = await logged_in(api, "ann@example.com")
    before = copy_of(client, api)
    assert (await attempt(client, "ann@example.com", PASSWORD)).status_code == 200
    assert (await before.get("/api/me")).status_code == 401  # no session fixation
    assert (await client.get("/api/me")).status_code == 200
    await client.aclose()
    await before.aclose()


# -- throttling -----------------------------------------------------------------------------


async def test_one_address_spraying_many_emails_once_each_is_throttled(api: Api) -> None:
    limit = api.hub.settings.login_attempts_per_address
    client = browser(api)
    await csrf(client)
    codes = [
        (await attempt(client, f"user{i}@example.com", "guess")).status_code for i in range(30)
    ]
    assert codes[:limit] == [401] * limit
    assert set(codes[limit:]) == {429}
    last = await attempt(client, "user99@example.com", "guess")
    assert last.status_code == 429 and int(last.headers["retry-after"]) >= 1
    assert "address" in last.json()["error"]["message"]
    await client.aclose()


async def test_the_account_throttle_holds_across_addresses(settings: Settings) -> None:
    async with api_with(settings, login_attempts_per_account=3) as api:
        codes = []
        for i in range(4):
            client = browser(api, client=(f"198.51.100.{i}", 1234))
            await csrf(client)
            codes.append((await attempt(client, "victim@example.com", "guess")).status_code)
            await client.aclose()
        assert codes == [401, 401, 401, 429]


async def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(
    settings: Settings,
) -> None:
    async with api_with(settings, login_attempts_per_address=5) as api:
        client = browser(api)  # peer 127.0.0.1, no trusted proxies
        await csrf(client)
        codes = []
        for i in range(7):
            forwarded = {"x-forwarded-for": f"203.0.113.{i}"}
            codes.append((await attempt(client, f"u{i}@example.com", "x", **forwarded)).status_code)
        assert codes == [401] * 5 + [429] * 2
        await client.aclose()


async def test_behind_a_trusted_proxy_the_right_most_untrusted_address_counts(
    settings: Settings,
) -> None:
    async with api_with(
        settings, login_attempts_per_address=5, trusted_proxies=("127.0.0.1", "10.0.0.0/8")
    ) as api:
        client = browser(api)
        await csrf(client)
        # Different real clients behind the proxy are counted apart.
        for i in range(8):
            forwarded = {"x-forwarded-for": f"203.0.113.{i}"}
            response = await attempt(client, f"a{i}@example.com", "x", **forwarded)
            assert response.status_code == 401
        # One client forging the left part of the header is still one client.
        codes = []
        for i in range(7):
            forwarded = {"x-forwarded-for": f"192.0.2.{i}, 198.51.100.7, 10.1.2.3"}
            codes.append((await attempt(client, f"b{i}@example.com", "x", **forwarded)).status_code)
        assert codes == [401] * 5 + [429] * 2
        await client.aclose()


def test_the_client_address_and_https_rules() -> None:
    trusted = Settings(trusted_proxies=("10.0.0.1", "2001:db8::/32"))

    def scope(peer: str, **headers: str) -> dict[str, Any]:
        return {
            "client": (peer, 1),
            "scheme": "http",
            "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
        }

    xff = "1.1.1.1, 203.0.113.9, 10.0.0.1"
    assert str(client_address(scope("10.0.0.1", x_forwarded_for=xff), trusted)) == "203.0.113.9"
    assert str(client_address(scope("192.0.2.1", x_forwarded_for=xff), trusted)) == "192.0.2.1"
    assert str(client_address(scope("10.0.0.1", x_forwarded_for="junk"), trusted)) == "10.0.0.1"
    assert str(client_address(scope("::ffff:192.0.2.4"), trusted)) == "192.0.2.4"
    # A host's IPv6 addresses count as its /64.
    v6a, v6b = scope("2a00:1450::1"), scope("2a00:1450::ffff:1")
    assert client_key(v6a, trusted) == client_key(v6b, trusted) == "2a00:1450::/64"
    proto = {"x_forwarded_proto": "https"}
    assert is_https(scope("10.0.0.1", **proto), trusted)
    assert not is_https(scope("192.0.2.1", **proto), trusted)
    assert not is_https(scope("10.0.0.1"), trusted)
    assert is_https(scope("192.0.2.1"), trusted.replace(public_url="https://hub.example.com"))


async def test_password_changes_are_throttled(settings: Settings) -> None:
    async with api_with(settings, login_attempts_per_account=3) as api:
        await add_user(api.hub, "ann@example.com", "editor", password=PASSWORD)
        client = await logged_in(api, "ann@example.com")
        body = {"current": "a wrong guess", "new": "another long passphrase"}
        codes = [(await client.post("/api/me/password", json=body)).status_code for _ in range(4)]
        assert codes == [422, 422, 422, 429]
        right = {"current": PASSWORD, "new": "another long passphrase"}
        refused = await client.post("/api/me/password", json=right)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        await client.aclose()


# -- argon2 ---------------------------------------------------------------------------------


class HashSpy:
    """Stands in for the argon2 hasher: records each verification's hash and can hold
    verifications until released; the real hasher does the work."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, hold: bool = False) -> None:
        self.hashes: list[str] = []
        self.started = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.real = security._hasher
        monkeypatch.setattr(security, "_hasher", self)

    def hash(self, password: str) -> str:
        """The real hash."""
        return str(self.real.hash(password))

    def verify(self, password_hash: str, password: str) -> bool:
        """Record, wait while held, then verify for real."""
        self.hashes.append(password_hash)
        self.started.set()
        self.release.wait(30)
        return bool(self.real.verify(password_hash, password))


async def test_an_unknown_email_is_checked_against_the_dummy_hash(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_user(api.hub, "ann@example.com", "editor", password=PASSWORD)
    spy = HashSpy(monkeypatch)
    client = browser(api)
    await csrf(client)
    assert (await attempt(client, "nobody@example.com", PASSWORD)).status_code == 401
    assert (await attempt(client, "ann@example.com", "wrong password")).status_code == 401
    stored = await api.hub.db.read(lambda c: accounts.user_by_email(c, "ann@example.com"))
    assert spy.hashes == [security.dummy_hash(), stored["password_hash"]]
    # the same algorithm and cost: the same time
    assert security.dummy_hash().split("$")[:4] == stored["password_hash"].split("$")[:4]
    await client.aclose()


async def test_logins_beyond_the_hash_limit_are_refused_at_once_and_the_loop_answers(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with api_with(settings, max_concurrent_hashes=1) as api:
        spy = HashSpy(monkeypatch, hold=True)
        first, second = browser(api), browser(api)
        await csrf(first)
        await csrf(second)
        held = asyncio.ensure_future(attempt(first, "a@example.com", "guess"))
        deadline = time.monotonic() + 10
        while not spy.started.is_set():  # the first login's argon2 runs (held) in a thread
            assert time.monotonic() < deadline and not held.done()
            await asyncio.sleep(0.01)
        health = await asyncio.wait_for(api.client.get("/healthz"), 2.0)  # the loop answers
        assert health.status_code == 200
        started = time.monotonic()
        refused = await attempt(second, "b@example.com", "guess")
        assert refused.status_code == 429, refused.text
        assert time.monotonic() - started < 1.0  # at once, not queued behind the first
        assert refused.headers["retry-after"] == "1"
        assert len(spy.hashes) == 1
        spy.release.set()
        assert (await asyncio.wait_for(held, 10)).status_code == 401
        assert login_guards_busy(api) == 0
        assert (await attempt(second, "b@example.com", "guess")).status_code == 401
        await first.aclose()
        await second.aclose()


def login_guards_busy(api: Api) -> int:
    """How many argon2 computations the app runs now."""
    guards = api.app.state["login_guards"]
    return int(guards.gate.busy)


async def test_a_cancelled_check_gives_its_slot_back(monkeypatch: pytest.MonkeyPatch) -> None:
    gate = security.HashGate(1)
    release = threading.Event()
    task = asyncio.ensure_future(gate.run(release.wait, 30))
    deadline = time.monotonic() + 10
    while gate.busy == 0:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    with pytest.raises(security.HashesBusy):
        await gate.run(lambda: True)
    task.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    while gate.busy:  # the thread gives the slot back when it ends
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    assert await gate.run(lambda: 42) == 42


# -- cookies --------------------------------------------------------------------------------


def cookie_attributes(response: httpx.Response) -> dict[str, list[str]]:
    """Each Set-Cookie's name and its lower-cased attributes."""
    found = {}
    for header in response.headers.get_list("set-cookie"):
        name = header.split("=", 1)[0]
        found[name] = [part.strip().lower() for part in header.split(";")[1:]]
    return found


async def login_cookies(api: Api, client: httpx.AsyncClient, **headers: str) -> dict[str, Any]:
    """The attributes of the CSRF cookie and of the session cookie a login sets."""
    await add_user(api.hub, "ann@example.com", "editor", password=PASSWORD)
    got = await client.get("/api/auth/csrf", headers=headers)
    token = got.json()["token"]
    csrf_cookie = got.cookies["csrftoken"]
    response = await client.post(
        LOGIN,
        json={"email": "ann@example.com", "password": PASSWORD},
        headers={**headers, "x-csrftoken": token, "cookie": f"csrftoken={csrf_cookie}"},
    )
    assert response.status_code == 200, response.text
    return {**cookie_attributes(got), **cookie_attributes(response)}


async def test_cookies_are_secure_with_an_https_public_address(settings: Settings) -> None:
    async with api_with(settings, public_url="https://hub.example.com") as api:
        cookies = await login_cookies(api, browser(api))
        assert "secure" in cookies["csrftoken"]
        assert "secure" in cookies["hub_session"]
        assert "httponly" in cookies["hub_session"] and "samesite=lax" in cookies["hub_session"]


async def test_cookies_are_secure_when_a_trusted_proxy_says_https(settings: Settings) -> None:
    async with api_with(settings, trusted_proxies=("127.0.0.1",)) as api:
        cookies = await login_cookies(api, browser(api), **{"x-forwarded-proto": "https"})
        assert "secure" in cookies["csrftoken"] and "secure" in cookies["hub_session"]


async def test_cookies_are_secure_on_a_direct_https_request(api: Api) -> None:
    cookies = await login_cookies(api, browser(api, base_url="https://testserver.local"))
    assert "secure" in cookies["csrftoken"] and "secure" in cookies["hub_session"]


async def test_cookies_are_not_secure_over_plain_http_or_an_untrusted_forwarded_proto(
    api: Api,
) -> None:
    cookies = await login_cookies(api, browser(api), **{"x-forwarded-proto": "https"})
    assert "secure" not in cookies["csrftoken"] and "secure" not in cookies["hub_session"]
    assert "httponly" in cookies["hub_session"]


# -- API tokens with limits -----------------------------------------------------------------

TOKENS = "/api/w/default/tokens"


async def limited_token(api: Api, **limits: Any) -> dict[str, str]:
    """Bearer headers of a new token of the editor with ``limits``."""
    made = await api.call("POST", TOKENS, api.editor, json={"name": "limited", **limits})
    assert made.status_code == 201, made.text
    return {"authorization": f"Bearer {made.json()['token']}"}


async def publish_two_flows(api: Api) -> None:
    for flow_id in ("greet", "other"):
        saved = await api.call(
            "POST",
            "/api/w/default/flows",
            api.editor,
            json={"document": flow_document(flow_id), "publish": True},
        )
        assert saved.status_code in (200, 201), saved.text


async def test_an_expired_token_is_401_and_a_past_expiry_is_refused(api: Api) -> None:
    soon = time.time() + 1.5
    expiry = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(soon)) + f".{int(soon % 1 * 1e6):06d}Z"
    headers = await limited_token(api, expires_at=expiry)
    assert (await api.client.get("/api/me", headers=headers)).status_code == 200
    listed = (await api.call("GET", TOKENS, api.editor)).json()
    assert [t["expires_at"] is not None for t in listed if t["name"] == "limited"] == [True]
    deadline = time.monotonic() + 10
    while (await api.client.get("/api/me", headers=headers)).status_code == 200:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    expired = await api.client.get("/api/me", headers=headers)
    assert expired.status_code == 401 and "expired" in expired.json()["error"]["message"]
    past = await api.call(
        "POST", TOKENS, api.editor, json={"name": "x", "expires_at": "2020-01-01T00:00:00Z"}
    )
    assert past.status_code == 422


async def test_a_read_only_token_reads_and_changes_nothing(api: Api) -> None:
    await publish_two_flows(api)
    headers = await limited_token(api, scope="read")
    assert (await api.client.get("/api/w/default/flows", headers=headers)).status_code == 200
    refused = await api.client.post(
        "/api/w/default/runs", json={"flow_id": "greet"}, headers=headers
    )
    assert refused.status_code == 403 and "read-only" in refused.json()["error"]["message"]
    body = {"current": PASSWORD, "new": "another long passphrase"}
    password = await api.client.post("/api/me/password", json=body, headers=headers)
    assert password.status_code == 403
    assert (await api.client.post(TOKENS, json={"name": "y"}, headers=headers)).status_code == 403


async def test_a_runs_token_only_lists_reads_and_starts_runs(api: Api) -> None:
    await publish_two_flows(api)
    headers = await limited_token(api, scope="runs")
    started = await api.client.post(
        "/api/w/default/runs", json={"flow_id": "greet"}, headers=headers
    )
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    assert (
        await api.client.get(f"/api/w/default/runs/{run_id}", headers=headers)
    ).status_code == 200
    assert (await api.client.get("/api/w/default/runs", headers=headers)).status_code == 200
    flows = await api.client.get("/api/w/default/flows", headers=headers)
    assert flows.status_code == 403 and "runs" in flows.json()["error"]["message"]
    cancel = await api.client.post(f"/api/w/default/runs/{run_id}/cancel", headers=headers)
    assert cancel.status_code == 403
    assert (await api.client.post(TOKENS, json={"name": "y"}, headers=headers)).status_code == 403


async def test_a_flow_token_reaches_only_its_flow_and_its_runs(api: Api) -> None:
    await publish_two_flows(api)
    headers = await limited_token(api, flow_id="greet")
    other_run = await api.call("POST", "/api/w/default/runs", api.editor, json={"flow_id": "other"})
    assert other_run.status_code == 202
    w = "/api/w/default"
    assert (await api.client.get(f"{w}/flows/greet", headers=headers)).status_code == 200
    denied = await api.client.get(f"{w}/flows/other", headers=headers)
    assert denied.status_code == 403 and "'greet'" in denied.json()["error"]["message"]
    assert (await api.client.get(f"{w}/flows", headers=headers)).status_code == 403
    assert (await api.client.get(f"{w}/runs", headers=headers)).status_code == 403
    runs = await api.client.get(f"{w}/runs", params={"flow_id": "greet"}, headers=headers)
    assert runs.status_code == 200
    mine = await api.client.post(f"{w}/runs", json={"flow_id": "greet"}, headers=headers)
    assert mine.status_code == 202
    theirs = await api.client.post(f"{w}/runs", json={"flow_id": "other"}, headers=headers)
    assert theirs.status_code == 403
    run_id = mine.json()["run_id"]
    assert (await api.client.get(f"{w}/runs/{run_id}", headers=headers)).status_code == 200
    foreign = await api.client.get(f"{w}/runs/{other_run.json()['run_id']}", headers=headers)
    assert foreign.status_code == 403


async def test_a_token_without_limits_keeps_its_members_role(api: Api) -> None:
    made = await api.call("POST", TOKENS, api.editor, json={"name": "plain"})
    assert made.json()["scope"] is None and made.json()["expires_at"] is None
    headers = {"authorization": f"Bearer {made.json()['token']}"}
    saved = await api.client.post(
        "/api/w/default/flows", json={"document": flow_document("plain")}, headers=headers
    )
    assert saved.status_code in (200, 201)
    assert (await api.client.post(TOKENS, json={"name": "y"}, headers=headers)).status_code == 201


async def test_with_redis_every_process_shares_the_throttle(
    settings: Settings, redis_server: Any
) -> None:
    """Two apps on one Redis stand for two ``hub serve`` processes: failures counted by one
    throttle the other."""
    changes = {"redis_url": redis_server.url, "login_attempts_per_address": 4}
    async with api_with(settings, **changes) as api:
        other_app = create_app(api.hub, manage_hub=False, bootstrap=False)
        first, second = browser(api), browser(api)
        second._transport = httpx.ASGITransport(app=other_app)
        await csrf(first)
        await csrf(second)
        codes = [(await attempt(first, f"x{i}@example.com", "g")).status_code for i in range(4)]
        assert codes == [401] * 4
        refused = await attempt(second, "y@example.com", "g")
        assert refused.status_code == 429, refused.text
        assert "address" in refused.json()["error"]["message"]
        await first.aclose()
        await second.aclose()


async def test_while_redis_is_down_each_process_counts_on_its_own() -> None:
    import redis.asyncio

    from hub.api.throttle import LoginThrottle, RedisLoginThrottle, Throttled

    port = free_port()  # nothing listens there
    down = redis.asyncio.Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_timeout=2)
    throttle = RedisLoginThrottle(down, LoginThrottle(2, 100, 60.0))
    await throttle.check("a@example.com", "192.0.2.1")
    await throttle.failed("a@example.com", "192.0.2.1")
    await throttle.failed("a@example.com", "192.0.2.1")
    with pytest.raises(Throttled):
        await throttle.check("a@example.com", "192.0.2.1")
    await down.aclose()
