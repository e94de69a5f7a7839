"""The Profile page (issue 15): a password change through the API's throttled check (wrong
current password shown on the form; other sessions ended, this one kept), API tokens
created and shown once, working against the API, revoked with a 401 after, for every role;
names escaped.

In-process against the real app (real SQLite, real argon2); no browser.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from hub.db import accounts
from hub.settings import Settings
from tests.api_kit import PASSWORD, Api, started_api
from tests.web_kit import browser, csrf_token, post_form, set_name, signed_in

PROFILE = "/w/default/profile"
NEW_PASSWORD = "a much longer new password 7"
TOKEN = re.compile(r"hub_[A-Za-z0-9_\-]{20,}")


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async for value in started_api(settings):
        yield value


async def sign_in_with(api: Api, email: str, password: str) -> int:
    """The status of a sign-in through the form (303: signed in)."""
    client = browser(api)
    await client.get("/login")
    answer = await client.post(
        "/login", data={"email": email, "password": password, "_csrf_token": csrf_token(client)}
    )
    return answer.status_code


async def test_the_profile_shows_who_you_are_and_escapes_your_name(api: Api) -> None:
    evil = "<script>alert('x')</script>"
    await set_name(api, api.viewer, evil)
    client = await signed_in(api, api.viewer)
    page = await client.get(PROFILE)
    assert page.status_code == 200
    assert api.viewer.email in page.text
    assert evil not in page.text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page.text
    assert 'action="/w/default/profile/password"' in page.text  # viewers change theirs too


async def test_a_wrong_current_password_is_shown_on_the_form(api: Api) -> None:
    client = await signed_in(api, api.editor)
    answer = await post_form(
        client,
        f"{PROFILE}/password",
        {"current": "not my password", "new": NEW_PASSWORD, "confirm": NEW_PASSWORD},
    )
    assert answer.status_code == 422
    assert "That is not your current password." in answer.text
    assert 'id="pw-current"' in answer.text and 'aria-invalid="true"' in answer.text
    assert "not my password" not in answer.text and NEW_PASSWORD not in answer.text
    assert await sign_in_with(api, api.editor.email, PASSWORD) == 303  # unchanged


@pytest.mark.parametrize(
    ("new", "confirm", "message"),
    [
        ("too short", "too short", "at least 12 characters"),
        (NEW_PASSWORD, NEW_PASSWORD + "!", "The two new passwords differ"),
    ],
)
async def test_a_new_password_is_checked_before_anything_changes(
    api: Api, new: str, confirm: str, message: str
) -> None:
    client = await signed_in(api, api.editor)
    answer = await post_form(
        client, f"{PROFILE}/password", {"current": PASSWORD, "new": new, "confirm": confirm}
    )
    assert answer.status_code == 422
    assert message in answer.text
    assert await sign_in_with(api, api.editor.email, PASSWORD) == 303


async def test_a_password_change_ends_other_sessions_and_keeps_this_one(api: Api) -> None:
    other = await signed_in(api, api.editor)
    client = await signed_in(api, api.editor)
    answer = await post_form(
        client,
        f"{PROFILE}/password",
        {"current": PASSWORD, "new": NEW_PASSWORD, "confirm": NEW_PASSWORD},
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == f"{PROFILE}?notice=password"
    landed = await client.get(answer.headers["location"])
    assert landed.status_code == 200
    assert "Your password was changed" in landed.text
    assert (await other.get(PROFILE)).status_code == 303  # signed out: to the sign-in page
    assert await sign_in_with(api, api.editor.email, PASSWORD) == 401
    assert await sign_in_with(api, api.editor.email, NEW_PASSWORD) == 303


async def test_wrong_current_passwords_are_throttled_like_logins(api: Api) -> None:
    client = await signed_in(api, api.editor)
    limit = api.hub.settings.login_attempts_per_account
    for _ in range(limit):
        answer = await post_form(
            client,
            f"{PROFILE}/password",
            {"current": "wrong wrong", "new": NEW_PASSWORD, "confirm": NEW_PASSWORD},
        )
        assert answer.status_code == 422
    refused = await post_form(
        client,
        f"{PROFILE}/password",
        {"current": PASSWORD, "new": NEW_PASSWORD, "confirm": NEW_PASSWORD},
    )
    assert refused.status_code == 429
    assert "retry-after" in refused.headers
    assert "too many failed password checks" in refused.text
    assert await sign_in_with(api, api.editor.email, PASSWORD) == 303  # not changed


async def test_a_token_is_shown_once_works_and_is_revoked(api: Api) -> None:
    client = await signed_in(api, api.viewer)
    created = await post_form(
        client, f"{PROFILE}/tokens", {"name": "nightly <export>", "scope": "full", "expires": ""}
    )
    assert created.status_code == 200
    found = TOKEN.findall(created.text)
    assert len(set(found)) == 1
    token = found[0]
    assert 'data-copy="new-token"' in created.text
    assert created.headers["cache-control"] == "no-store"  # never kept by the browser
    assert "nightly &lt;export&gt;" in created.text and "nightly <export>" not in created.text
    me = await api.client.get("/api/me", headers={"authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json()["user"]["email"] == api.viewer.email
    again = await client.get(PROFILE)
    assert token not in again.text and "nightly &lt;export&gt;" in again.text
    assert TOKEN.search(again.text) is None
    rows = await api.hub.db.read(lambda c: accounts.list_tokens(c, "default", api.viewer.user_id))
    token_id = next(r["id"] for r in rows if r["name"] == "nightly <export>")
    assert f"/profile/tokens/{token_id}/revoke" in again.text
    revoked = await post_form(client, f"{PROFILE}/tokens/{token_id}/revoke")
    assert revoked.status_code == 303
    assert revoked.headers["location"] == f"{PROFILE}?notice=revoked"
    assert "The token was revoked" in (await client.get(revoked.headers["location"])).text
    refused = await api.client.get("/api/me", headers={"authorization": f"Bearer {token}"})
    assert refused.status_code == 401


async def test_a_token_carries_the_limits_chosen_on_the_form(api: Api) -> None:
    await api.hub.save_flow(
        {"id": "greet", "name": "Greet", "steps": [{"id": "a", "action": "flow.noop"}]}
    )
    client = await signed_in(api, api.editor)
    created = await post_form(
        client,
        f"{PROFILE}/tokens",
        {"name": "ci", "scope": "read", "flow_id": "greet", "expires": "7"},
    )
    assert created.status_code == 200, created.text
    token = TOKEN.findall(created.text)[0]
    rows = await api.hub.db.read(lambda c: accounts.list_tokens(c, "default", api.editor.user_id))
    row = next(r for r in rows if r["name"] == "ci")
    assert row["scope"] == "read" and row["flow_id"] == "greet"
    days = (row["expires_at"] - row["created_at"]) / 86_400e6
    assert 6.99 < days < 7.01
    bearer = {"authorization": f"Bearer {token}"}
    flow = await api.client.get("/api/w/default/flows/greet", headers=bearer)
    assert flow.status_code == 200
    write = await api.client.post("/api/w/default/flows/greet/disable", headers=bearer)
    assert write.status_code == 403  # read-only


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"name": "", "scope": "full", "expires": ""}, "Give the token a name"),
        ({"name": "x", "scope": "admin", "expires": ""}, "Choose one of the scopes"),
        ({"name": "x", "scope": "full", "expires": "1000"}, "Choose one of the lifetimes"),
        ({"name": "x", "scope": "full", "flow_id": "Bad Id", "expires": ""}, "A flow id is"),
        (
            {"name": "x", "scope": "full", "flow_id": "nope", "expires": ""},
            "no flow &#39;nope&#39;",
        ),
    ],
)
async def test_a_wrong_token_form_says_what_is_wrong_and_makes_no_token(
    api: Api, form: dict[str, str], message: str
) -> None:
    client = await signed_in(api, api.editor)
    answer = await post_form(client, f"{PROFILE}/tokens", form)
    assert answer.status_code == 422
    assert message in answer.text
    assert TOKEN.search(answer.text) is None
    rows = await api.hub.db.read(lambda c: accounts.list_tokens(c, "default", api.editor.user_id))
    assert [r["name"] for r in rows] == ["editor token"]


async def test_an_owner_lists_and_revokes_only_their_own_tokens_here(api: Api) -> None:
    client = await signed_in(api, api.owner)
    page = await client.get(PROFILE)
    assert "owner token" in page.text and "editor token" not in page.text
    rows = await api.hub.db.read(lambda c: accounts.list_tokens(c, "default", api.editor.user_id))
    answer = await post_form(client, f"{PROFILE}/tokens/{rows[0]['id']}/revoke")
    assert answer.status_code == 404
    assert (await api.call("GET", "/api/me", api.editor)).status_code == 200


async def test_forged_profile_posts_are_refused(api: Api) -> None:
    client = await signed_in(api, api.viewer)
    no_csrf = await client.post(f"{PROFILE}/tokens", data={"name": "x", "scope": "full"})
    assert no_csrf.status_code == 403
    stranger = await signed_in(api, api.stranger)
    elsewhere = await post_form(stranger, f"{PROFILE}/tokens", {"name": "x", "scope": "full"})
    assert elsewhere.status_code == 404  # not a member of default
    bearer = await api.client.post(
        f"{PROFILE}/tokens", data={"name": "x", "scope": "full"}, headers=api.viewer.headers
    )
    assert bearer.status_code in (303, 401)  # pages are for sessions, not tokens
    rows = await api.hub.db.read(lambda c: accounts.list_tokens(c, "default", None))
    assert "x" not in [r["name"] for r in rows]
