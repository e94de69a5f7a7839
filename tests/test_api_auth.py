"""Accounts and keys: sessions with CSRF, tokens, the first owner, the CLI, the secret key.

Browser sessions are driven with cookies as a browser would (httpx keeps the cookie jar);
the CLI runs as a real process on the test's data folder.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from hub.app import create_app
from hub.db import accounts
from hub.runtime import Hub
from hub.security.accounts import token_digest, verify_password
from hub.security.secrets import SecretKeyError
from hub.services.system import OWNER_EMAIL, PASSWORD_FILE
from hub.settings import Settings
from tests import kit
from tests.api_kit import PASSWORD, SECRET, Api, add_user, flow_document, started_api

ROOT = Path(__file__).resolve().parent.parent
HUB = str(Path(sys.executable).parent / "hub")


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async for value in started_api(settings):
        yield value


async def browser_login(api: Api, email: str, password: str) -> httpx.AsyncClient:
    """A client with its own cookie jar, logged in like the UI would: CSRF token, then login."""
    client = httpx.AsyncClient(transport=api.client._transport, base_url="http://testserver.local")
    token = (await client.get("/api/auth/csrf")).json()["token"]
    response = await client.post(
        "/api/auth/login",
        json={"email": email, "password": password},
        headers={"x-csrftoken": token},
    )
    assert response.status_code == 200, response.text
    client.headers["x-csrftoken"] = token
    return client


async def test_login_sets_a_session_cookie_that_authenticates(api: Api) -> None:
    await add_user(api.hub, "ann@example.com", "editor", password=PASSWORD)
    client = await browser_login(api, "Ann@Example.com", PASSWORD)
    cookie = client.cookies.get("hub_session")
    assert cookie and "ann@example.com" not in cookie  # encrypted, not just signed
    me = await client.get("/api/me")
    assert me.status_code == 200
    assert me.json()["via"] == "session"
    assert me.json()["workspaces"] == [{"id": "default", "name": "default", "role": "editor"}]
    await client.aclose()


async def test_a_wrong_password_is_401_and_sets_no_session(api: Api) -> None:
    await add_user(api.hub, "ann@example.com", "editor", password=PASSWORD)
    client = httpx.AsyncClient(transport=api.client._transport, base_url="http://testserver.local")
    token = (await client.get("/api/auth/csrf")).json()["token"]
    for email in ("ann@example.com", "nobody@example.com"):
        response = await client.post(
            "/api/auth/login",
            json={"email": email, "password": "wrong password"},
            headers={"x-csrftoken": token},
        )
        assert response.status_code == 401
        assert response.json()["error"]["message"] == "wrong email or password"
    assert "hub_session" not in client.cookies
    await client.aclose()


async def test_repeated_failed_logins_are_throttled_with_429(api: Api) -> None:
    attempts = api.hub.settings.login_attempts_per_account
    client = httpx.AsyncClient(transport=api.client._transport, base_url="http://testserver.local")
    token = (await client.get("/api/auth/csrf")).json()["token"]
    codes = []
    for _ in range(attempts + 1):
        response = await client.post(
            "/api/auth/login",
            json={"email": "victim@example.com", "password": "guess"},
            headers={"x-csrftoken": token},
        )
        codes.append(response.status_code)
    assert codes[:-1] == [401] * attempts
    assert codes[-1] == 429
    assert int(response.headers["retry-after"]) >= 1
    assert "account" in response.json()["error"]["message"]
    await client.aclose()


async def test_login_without_the_csrf_token_is_refused(api: Api) -> None:
    await add_user(api.hub, "ann@example.com", "editor", password=PASSWORD)
    response = await api.client.post(
        "/api/auth/login", json={"email": "ann@example.com", "password": PASSWORD}
    )
    assert response.status_code == 403
    assert "hub_session" not in response.cookies


async def test_a_cookie_session_needs_the_csrf_header_for_unsafe_requests(api: Api) -> None:
    await add_user(api.hub, "ann@example.com", "editor", password=PASSWORD)
    client = await browser_login(api, "ann@example.com", PASSWORD)
    token = client.headers.pop("x-csrftoken")
    body = {"document": flow_document("from-browser")}
    refused = await client.post("/api/w/default/flows", json=body)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    forged = await client.post(
        "/api/w/default/flows", json=body, headers={"x-csrftoken": "0" * 128}
    )
    assert forged.status_code == 403
    listed = await client.get("/api/w/default/flows")  # a safe request needs no token
    assert listed.status_code == 200 and listed.json()["items"] == []
    accepted = await client.post("/api/w/default/flows", json=body, headers={"x-csrftoken": token})
    assert accepted.status_code == 201, accepted.text
    await client.aclose()


async def test_bearer_token_calls_are_exempt_from_csrf(api: Api) -> None:
    response = await api.call(
        "POST", "/api/w/default/flows", api.editor, json={"document": flow_document()}
    )
    assert response.status_code == 201
    assert "csrftoken" not in response.cookies


async def test_logout_ends_the_session(api: Api) -> None:
    await add_user(api.hub, "ann@example.com", "editor", password=PASSWORD)
    client = await browser_login(api, "ann@example.com", PASSWORD)
    assert (await client.post("/api/auth/logout")).status_code == 204
    assert (await client.get("/api/me")).status_code == 401
    await client.aclose()


async def test_changing_the_password_ends_the_other_sessions(api: Api) -> None:
    await add_user(api.hub, "ann@example.com", "editor", password=PASSWORD)
    laptop = await browser_login(api, "ann@example.com", PASSWORD)
    phone = await browser_login(api, "ann@example.com", PASSWORD)
    new = "a brand new passphrase"
    wrong = await laptop.post("/api/me/password", json={"current": "nope", "new": new})
    assert wrong.status_code == 422
    changed = await laptop.post("/api/me/password", json={"current": PASSWORD, "new": new})
    assert changed.status_code == 204
    assert (await laptop.get("/api/me")).status_code == 200
    assert (await phone.get("/api/me")).status_code == 401
    old = httpx.AsyncClient(transport=api.client._transport, base_url="http://testserver.local")
    token = (await old.get("/api/auth/csrf")).json()["token"]
    relogin = await old.post(
        "/api/auth/login",
        json={"email": "ann@example.com", "password": PASSWORD},
        headers={"x-csrftoken": token},
    )
    assert relogin.status_code == 401
    for client in (laptop, phone, old):
        await client.aclose()


async def test_a_token_is_shown_once_stored_hashed_and_revocable(api: Api) -> None:
    created = await api.call("POST", "/api/w/default/tokens", api.editor, json={"name": "ci"})
    assert created.status_code == 201
    token = created.json()["token"]
    assert token.startswith("hub_") and len(token) > 40
    listed = await api.call("GET", "/api/w/default/tokens", api.editor)
    assert token not in listed.text
    assert {t["name"] for t in listed.json()} == {"editor token", "ci"}
    digest = token_digest(token)
    stored = await api.hub.db.read(
        lambda c: c.exec_driver_sql("SELECT token_hash FROM api_tokens").scalars().all()
    )
    assert digest in stored and token not in stored
    me = await api.client.get("/api/me", headers={"authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json()["via"] == "token"
    token_id = created.json()["id"]
    revoked = await api.call("DELETE", f"/api/w/default/tokens/{token_id}", api.editor)
    assert revoked.status_code == 204
    again = await api.client.get("/api/me", headers={"authorization": f"Bearer {token}"})
    assert again.status_code == 401


async def test_another_members_token_is_not_revocable_by_an_editor(api: Api) -> None:
    owner_tokens = await api.call("GET", "/api/w/default/tokens", api.owner)
    viewer_token = next(t for t in owner_tokens.json() if t["email"] == api.viewer.email)
    response = await api.call("DELETE", f"/api/w/default/tokens/{viewer_token['id']}", api.editor)
    assert response.status_code == 404
    assert (await api.call("GET", "/api/me", api.viewer)).status_code == 200


async def test_removing_a_member_revokes_their_tokens_and_the_last_owner_stays(api: Api) -> None:
    removed = await api.call("DELETE", f"/api/w/default/members/{api.editor.user_id}", api.owner)
    assert removed.status_code == 204
    assert (await api.call("GET", "/api/me", api.editor)).status_code == 401
    last = await api.call("DELETE", f"/api/w/default/members/{api.owner.user_id}", api.owner)
    assert last.status_code == 409
    demote = await api.call(
        "PUT",
        "/api/w/default/members",
        api.owner,
        json={"email": api.owner.email, "role": "viewer"},
    )
    assert demote.status_code == 409


async def test_an_owner_adds_a_member_who_gets_a_one_time_password(api: Api) -> None:
    added = await api.call(
        "PUT",
        "/api/w/default/members",
        api.owner,
        json={"email": "Newbie@Example.com", "role": "viewer", "name": "New"},
    )
    assert added.status_code == 200, added.text
    body = added.json()
    assert body["created_account"] is True and len(body["password"]) >= 20
    client = await browser_login(api, "newbie@example.com", body["password"])
    assert (await client.get("/api/w/default/flows")).status_code == 200
    assert (await client.post("/api/w/default/flows", json={})).status_code == 403
    promoted = await api.call(
        "PUT",
        "/api/w/default/members",
        api.owner,
        json={"email": "newbie@example.com", "role": "editor"},
    )
    assert promoted.json()["password"] is None
    audit = await api.call(
        "GET", "/api/w/default/audit", api.owner, params={"target": "newbie@example.com"}
    )
    assert [e["action"] for e in audit.json()["items"]] == ["member.role", "member.add"]
    await client.aclose()


async def test_a_user_creates_a_workspace_and_owns_it(api: Api) -> None:
    await add_user(api.hub, "ann@example.com", "editor", password=PASSWORD)
    client = await browser_login(api, "ann@example.com", PASSWORD)
    created = await client.post("/api/workspaces", json={"id": "team-b", "name": "Team B"})
    assert created.status_code == 201, created.text
    assert created.json()["role"] == "owner"
    again = await client.post("/api/workspaces", json={"id": "team-b"})
    assert again.status_code == 409
    listed = await client.get("/api/workspaces")
    assert {w["id"] for w in listed.json()} == {"default", "team-b"}
    by_token = await api.call("POST", "/api/workspaces", api.owner, json={"id": "team-c"})
    assert by_token.status_code == 403
    await client.aclose()


async def test_the_dash_workspace_is_the_tokens_own(api: Api) -> None:
    response = await api.call("GET", "/api/w/-/flows", api.stranger)
    assert response.status_code == 200
    await api.call("POST", "/api/w/other/flows", api.stranger, json={"document": flow_document()})
    listed = await api.call("GET", "/api/w/-/flows", api.stranger)
    assert [f["id"] for f in listed.json()["items"]] == ["greet"]
    assert (await api.call("GET", "/api/w/-/flows", api.owner)).json()["items"] == []


# -- the first start, the secret key --------------------------------------------------------


async def test_the_first_start_creates_an_owner_and_tells_how_to_log_in(
    settings: Settings, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    hub = Hub(settings, plugins=[kit], entry_points=False)
    await hub.start(migrate=False)
    try:
        app = create_app(hub, manage_hub=False)
        for hook in app.on_startup:
            await hook()
        path = settings.data_dir / PASSWORD_FILE
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        text = path.read_text()
        password = text.split("password: ", 1)[1].split("\n", 1)[0]
        printed = capsys.readouterr().err
        assert password in printed and OWNER_EMAIL in printed and "/api/auth/login" in printed
        assert all(password not in r.getMessage() for r in caplog.records)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t.local") as client:
            csrf = (await client.get("/api/auth/csrf")).json()["token"]
            login = await client.post(
                "/api/auth/login",
                json={"email": OWNER_EMAIL, "password": password},
                headers={"x-csrftoken": csrf},
            )
            assert login.status_code == 200
            assert login.json()["workspaces"][0]["role"] == "owner"
        for hook in app.on_startup:  # a second start creates nobody
            await hook()
        assert await hub.db.read(accounts.count_users) == 1
        assert path.read_text() == text
    finally:
        await hub.stop(grace=1.0)


async def test_starting_with_a_wrong_secret_key_fails_loudly(settings: Settings) -> None:
    hub = Hub(settings, plugins=[kit], entry_points=False)
    await hub.start(migrate=False)
    await hub.set_connection("main", "test", {"token": SECRET})
    await hub.stop(grace=1.0)
    wrong = Hub(
        settings.replace(secret_key=(Fernet.generate_key().decode(),)),
        plugins=[kit],
        entry_points=False,
    )
    # Any process (serve, worker, CLI) refuses to start: not only the API.
    with pytest.raises(SecretKeyError) as raised:
        await wrong.start(migrate=False)
    message = str(raised.value)
    assert "HUB_SECRET_KEY" in message and "'main'" in message
    assert SECRET not in message
    await wrong.stop(grace=1.0)


# -- the CLI --------------------------------------------------------------------------------


def run_hub(
    data_dir: Path, *args: str, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    """``hub ARGS`` as a process on ``data_dir``, without the caller's HUB_* settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    clean.update({"HUB_DATA_DIR": str(data_dir), **env})
    return subprocess.run(
        [HUB, *args],
        cwd=ROOT,
        env=clean,
        input=stdin,
        capture_output=True,
        encoding="utf-8",
        timeout=60,
    )


def test_hub_users_create_and_tokens_create(tmp_path: Path) -> None:
    made = run_hub(tmp_path, "users", "create", "Ops@Example.com", "--role", "owner")
    assert made.returncode == 0, made.stderr
    assert "ops@example.com created: owner of workspace default" in made.stdout
    password = made.stdout.split("password: ", 1)[1].strip()
    assert len(password) >= 20
    twice = run_hub(tmp_path, "users", "create", "ops@example.com")
    assert twice.returncode != 0 and "exists already" in twice.stderr
    piped = run_hub(
        tmp_path, "users", "create", "dev@example.com", "--password-stdin", stdin="x" * 16 + "\n"
    )
    assert piped.returncode == 0 and "password:" not in piped.stdout
    token = run_hub(tmp_path, "tokens", "create", "--email", "ops@example.com", "--name", "ci")
    assert token.returncode == 0, token.stderr
    value = token.stdout.strip()
    assert value.startswith("hub_")
    stranger = run_hub(
        tmp_path, "tokens", "create", "--email", "ops@example.com", "--name", "x",
        "--workspace", "elsewhere",
    )  # fmt: skip
    assert stranger.returncode != 0 and "not a member" in stranger.stderr
    import sqlite3

    db = sqlite3.connect(tmp_path / "hub.db")
    hashes = [r[0] for r in db.execute("SELECT token_hash FROM api_tokens")]
    users = dict(db.execute("SELECT email, password_hash FROM users"))
    db.close()
    assert hashes == [token_digest(value)]
    assert verify_password(users["ops@example.com"], password)
    assert verify_password(users["dev@example.com"], "x" * 16)


def test_hub_tokens_create_with_limits(tmp_path: Path) -> None:
    made = run_hub(tmp_path, "users", "create", "ops@example.com", "--role", "owner")
    assert made.returncode == 0, made.stderr
    token = run_hub(
        tmp_path, "tokens", "create", "--email", "ops@example.com", "--name", "ci",
        "--expires-in-days", "7", "--scope", "runs", "--flow", "nightly",
    )  # fmt: skip
    assert token.returncode == 0, token.stderr
    bad = run_hub(
        tmp_path, "tokens", "create", "--email", "ops@example.com", "--name", "x",
        "--scope", "admin",
    )  # fmt: skip
    assert bad.returncode != 0
    import sqlite3
    import time

    db = sqlite3.connect(tmp_path / "hub.db")
    rows = list(db.execute("SELECT token_hash, expires_at, scope, flow_id FROM api_tokens"))
    db.close()
    ((digest, expires_at, scope, flow_id),) = rows
    assert digest == token_digest(token.stdout.strip())
    assert (scope, flow_id) == ("runs", "nightly")
    assert abs(expires_at / 1e6 - (time.time() + 7 * 86400)) < 600


async def test_hub_secrets_rotate_reencrypts_with_the_newest_key(settings: Settings) -> None:
    old, new, unrelated = (Fernet.generate_key().decode() for _ in range(3))
    hub = Hub(settings.replace(secret_key=(old,)), plugins=[kit], entry_points=False)
    await hub.start(migrate=False)
    await hub.set_connection("main", "test", {"token": SECRET})
    await hub.stop(grace=1.0)
    data_dir = settings.data_dir
    refused = run_hub(data_dir, "secrets", "rotate", HUB_SECRET_KEY=f"{new},{unrelated}")
    assert refused.returncode != 0
    assert "HUB_SECRET_KEY" in refused.stderr and "nothing was changed" in refused.stderr
    rotated = run_hub(data_dir, "secrets", "rotate", HUB_SECRET_KEY=f"{new},{old}")
    assert rotated.returncode == 0, rotated.stderr
    assert "1 connection(s)" in rotated.stdout
    only_new = Hub(settings.replace(secret_key=(new,)), plugins=[kit], entry_points=False)
    await only_new.start(migrate=False)
    try:
        assert (await only_new.connection_values("main"))["token"] == SECRET
    finally:
        await only_new.stop(grace=1.0)
