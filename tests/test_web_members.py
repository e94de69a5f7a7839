"""The Members and Audit log pages (issue 15): owners add a person by e-mail with a role (a
new account's one-time password shown once), change a role, remove a member; the last owner
is kept and the page says why; the audit log's filters live in the URL and it pages 50 at a
time both ways; non-owners get a 403 page and their forged posts a 403; everything escaped.

In-process against the real app (real SQLite, real argon2); no browser.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select, update

from hub.db import accounts, audit
from hub.settings import Settings
from tests.api_kit import SECRET, Api, started_api
from tests.web_kit import browser, csrf_token, post_form, set_name, signed_in

MEMBERS = "/w/default/members"
AUDIT = "/w/default/audit"
EVIL = "<script>alert(1)</script>"


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async for value in started_api(settings):
        yield value


async def role_of(api: Api, user_id: str) -> str | None:
    """The user's role in ``default`` as stored."""
    return await api.hub.db.read(lambda c: accounts.role_of(c, "default", user_id))


def one_time_password(html: str) -> str:
    """The one-time password shown on the page."""
    found = re.search(r'<code id="one-time-password" class="secret-once">([^<]+)</code>', html)
    assert found, html
    return found.group(1)


async def test_the_members_page_lists_members_and_escapes_them(api: Api) -> None:
    await set_name(api, api.editor, EVIL)
    client = await signed_in(api, api.owner)
    page = await client.get(MEMBERS)
    assert page.status_code == 200
    for caller in (api.owner, api.editor, api.viewer):
        assert caller.email in page.text
        assert f"/members/{caller.user_id}/role" in page.text
    assert api.stranger.email not in page.text
    assert EVIL not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "The hub sends no e-mail" in page.text


async def test_a_new_person_gets_a_one_time_password_shown_once(api: Api) -> None:
    client = await signed_in(api, api.owner)
    added = await post_form(
        client, MEMBERS, {"email": "new@example.com", "name": "New Person", "role": "editor"}
    )
    assert added.status_code == 200, added.text
    password = one_time_password(added.text)
    assert 'data-copy="one-time-password"' in added.text
    assert "The hub sends no e-mail" in added.text
    listed = await client.get(MEMBERS)
    assert "new@example.com" in listed.text and password not in listed.text
    newcomer = browser(api)
    await newcomer.get("/login")
    signed = await newcomer.post(
        "/login",
        data={
            "email": "new@example.com",
            "password": password,
            "_csrf_token": csrf_token(newcomer),
        },
    )
    assert signed.status_code == 303
    assert (await newcomer.get("/w/default/flows")).status_code == 200
    rows = await api.hub.db.read(lambda c: audit.list_audit(c, "default", action="member.add"))
    assert rows[0]["target"] == "new@example.com"
    assert password not in str(rows)


async def test_adding_an_existing_account_shows_no_password(api: Api) -> None:
    client = await signed_in(api, api.owner)
    added = await post_form(client, MEMBERS, {"email": api.stranger.email, "role": "viewer"})
    assert added.status_code == 303
    assert added.headers["location"] == f"{MEMBERS}?notice=added"
    landed = await client.get(added.headers["location"])
    assert "The member was added" in landed.text and api.stranger.email in landed.text
    assert "one-time-password" not in landed.text
    assert await role_of(api, api.stranger.user_id) == "viewer"


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"email": "not an address", "role": "viewer"}, "Enter an e-mail address"),
        ({"email": "a@example.com", "role": "king"}, "Choose one of the roles"),
    ],
)
async def test_a_wrong_add_form_says_what_is_wrong(
    api: Api, form: dict[str, str], message: str
) -> None:
    client = await signed_in(api, api.owner)
    answer = await post_form(client, MEMBERS, form)
    assert answer.status_code == 422
    assert message in answer.text and 'aria-invalid="true"' in answer.text
    members = await api.hub.db.read(lambda c: accounts.members(c, "default"))
    assert len(members) == 3


async def test_an_owner_changes_a_role_and_removes_a_member(api: Api) -> None:
    client = await signed_in(api, api.owner)
    changed = await post_form(client, f"{MEMBERS}/{api.viewer.user_id}/role", {"role": "editor"})
    assert changed.status_code == 303
    assert changed.headers["location"] == f"{MEMBERS}?notice=role"
    assert await role_of(api, api.viewer.user_id) == "editor"
    assert "The role was changed." in (await client.get(changed.headers["location"])).text
    removed = await post_form(client, f"{MEMBERS}/{api.editor.user_id}/remove")
    assert removed.status_code == 303
    assert removed.headers["location"] == f"{MEMBERS}?notice=removed"
    assert await role_of(api, api.editor.user_id) is None
    assert (await api.call("GET", "/api/w/default/flows", api.editor)).status_code == 401
    page = await client.get(removed.headers["location"])
    assert "The member was removed" in page.text and api.editor.email not in page.text
    gone = await post_form(client, f"{MEMBERS}/{api.editor.user_id}/remove")
    assert gone.status_code == 404 and "Not found" in gone.text


async def test_the_last_owner_is_kept_and_the_page_says_why(api: Api) -> None:
    client = await signed_in(api, api.owner)
    page = await client.get(MEMBERS)
    assert "The only owner: cannot be demoted or removed." in page.text
    demoted = await post_form(client, f"{MEMBERS}/{api.owner.user_id}/role", {"role": "viewer"})
    assert demoted.status_code == 409
    assert "The last owner of a workspace cannot be demoted." in demoted.text
    assert "Make another member an owner first." in demoted.text
    removed = await post_form(client, f"{MEMBERS}/{api.owner.user_id}/remove")
    assert removed.status_code == 409
    assert "The last owner of a workspace cannot be removed." in removed.text
    assert await role_of(api, api.owner.user_id) == "owner"
    promoted = await post_form(client, f"{MEMBERS}/{api.editor.user_id}/role", {"role": "owner"})
    assert promoted.status_code == 303
    stepped_down = await post_form(
        client, f"{MEMBERS}/{api.owner.user_id}/role", {"role": "editor"}
    )
    assert stepped_down.status_code == 303
    assert stepped_down.headers["location"] == "/w/default/"  # no longer sees this page
    assert (await client.get(MEMBERS)).status_code == 403


@pytest.mark.parametrize("who", ["editor", "viewer"])
async def test_non_owners_get_403_pages_and_their_forged_posts_are_refused(
    api: Api, who: str
) -> None:
    caller = getattr(api, who)
    client = await signed_in(api, caller)
    for path in (MEMBERS, AUDIT, f"{AUDIT}?actor=x"):
        answer = await client.get(path)
        assert answer.status_code == 403, path
        assert answer.headers["content-type"].startswith("text/html")
        assert "ask an owner" in answer.text
    home = await client.get("/w/default/")
    assert 'href="/w/default/members"' not in home.text
    forged: list[tuple[str, dict[str, str]]] = [
        (MEMBERS, {"email": "x@example.com", "role": "owner"}),
        (f"{MEMBERS}/{caller.user_id}/role", {"role": "owner"}),
        (f"{MEMBERS}/{api.owner.user_id}/remove", {}),
    ]
    for path, form in forged:
        assert (await post_form(client, path, form)).status_code == 403, path
    assert await role_of(api, caller.user_id) == who
    assert await role_of(api, api.owner.user_id) == "owner"
    users = await api.hub.db.read(lambda c: accounts.user_by_email(c, "x@example.com"))
    assert users is None


async def test_a_post_without_its_csrf_token_is_refused(api: Api) -> None:
    client = await signed_in(api, api.owner)
    answer = await client.post(f"{MEMBERS}/{api.viewer.user_id}/remove", data={})
    assert answer.status_code == 403
    assert await role_of(api, api.viewer.user_id) == "viewer"


async def record(api: Api, count: int, **entry: Any) -> None:
    """Append ``count`` audit entries to ``default`` (``at`` in epoch microseconds)."""
    at = entry.pop("at", None)

    def write(conn: Any) -> None:
        for i in range(count):
            values = {"actor": "a@example.com", "action": "flow.publish", "target": f"f{i}"}
            values.update(entry)
            audit.record(conn, "default", **values)
            if at is not None:
                newest = select(func.max(audit.audit_log.c.id)).scalar_subquery()
                conn.execute(
                    update(audit.audit_log).where(audit.audit_log.c.id == newest).values(at=at)
                )

    await api.hub.db.write(write)


def targets(html: str) -> list[str]:
    """The targets of the audit rows on a page, in order."""
    return re.findall(r'title="Only entries about this target">([^<]*)</a>', html)


def link_to(html: str, label: str) -> str:
    """The href of the pager's link labelled ``label``."""
    found = re.search(r'<a class="button" href="([^"]+)" rel="\w+">' + re.escape(label), html)
    assert found, label
    return found.group(1).replace("&amp;", "&")


async def test_the_audit_log_pages_50_at_a_time_both_ways_keeping_filters(api: Api) -> None:
    await record(api, 120, action="flow.publish")
    await record(api, 5, action="flow.delete")
    client = await signed_in(api, api.owner)
    first = await client.get(AUDIT, params={"action": "flow.publish"})
    assert first.status_code == 200
    page1 = targets(first.text)
    assert page1 == [f"f{i}" for i in range(119, 69, -1)]
    assert "← Newer" not in first.text
    older = link_to(first.text, "Older →")
    assert "action=flow.publish" in older
    second = await client.get(AUDIT + older)
    assert targets(second.text) == [f"f{i}" for i in range(69, 19, -1)]
    third = await client.get(AUDIT + link_to(second.text, "Older →"))
    assert targets(third.text) == [f"f{i}" for i in range(19, -1, -1)]
    assert "Older →" not in third.text
    back = await client.get(AUDIT + link_to(third.text, "← Newer"))
    assert targets(back.text) == targets(second.text)
    top = await client.get(AUDIT + link_to(back.text, "← Newer"))
    assert targets(top.text) == page1
    assert "← Newer" not in top.text


async def test_the_audit_log_filters_by_actor_action_target_and_time(api: Api) -> None:
    day = 86_400_000_000
    base = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
    await record(api, 1, actor="ann@example.com", target="early", at=base)
    await record(api, 1, actor="bob@example.com", target="middle", at=base + day)
    await record(api, 1, actor="ann@example.com", target="late", at=base + 3 * day)
    await record(api, 1, actor="ann@example.com", action="member.add", target="member", at=base)
    client = await signed_in(api, api.owner)

    async def shown(**params: str) -> list[str]:
        answer = await client.get(AUDIT, params=params)
        assert answer.status_code == 200, answer.text
        return targets(answer.text)

    assert await shown(actor="ann@example.com") == ["member", "late", "early"]
    assert await shown(actor="ann@example.com", action="flow.publish") == ["late", "early"]
    assert await shown(target="middle") == ["middle"]
    assert await shown(since="2026-01-02T00:00") == ["late", "middle"]
    assert await shown(since="2026-01-01T12:00", until="2026-01-03T00:00") == ["middle"]
    assert await shown(until="2026-01-01") == ["member", "early"]  # a date: the whole day
    day_end = await client.get(AUDIT, params={"until": "2026-01-01"})
    assert 'value="2026-01-02T00:00"' in day_end.text  # as a datetime-local input holds it
    zoned = await client.get(AUDIT, params={"since": "2026-01-01T02:00+02:00"})
    assert targets(zoned.text) == ["member", "late", "middle", "early"]  # newest id first
    assert 'value="2026-01-01T00:00"' in zoned.text
    assert await shown(actor="nobody@example.com") == []
    empty = await client.get(AUDIT, params={"actor": "nobody@example.com"})
    assert "No entries match these filters" in empty.text
    assert 'value="nobody@example.com"' in empty.text  # the filter stays in the form
    for nonsense in ("yesterday", "9999-12-31", "0001-01-01T00:00+23:59"):
        wrong = await client.get(AUDIT, params={"until": nonsense})
        assert wrong.status_code in (200, 400) and "Something went wrong" not in wrong.text
    wrong = await client.get(AUDIT, params={"since": "yesterday"})
    assert wrong.status_code == 400 and "Not a time" in wrong.text


async def test_audit_entries_are_escaped_and_never_show_a_secret(api: Api) -> None:
    body = {
        "name": "vault-1",
        "connector": "vault",
        "values": {"api_key": SECRET, "pin": 1234, "nested": {"k": SECRET}, "region": "eu"},
    }
    created = await api.call("POST", "/api/w/default/connections", api.editor, json=body)
    assert created.status_code == 201, created.text
    await record(api, 1, actor=EVIL, target=EVIL, details={"note": EVIL, "big": "x" * 3000})
    client = await signed_in(api, api.owner)
    page = await client.get(AUDIT)
    assert page.status_code == 200
    assert "connection.create" in page.text and "vault-1" in page.text
    assert 'href="/w/default/connections/vault-1"' in page.text  # the target's own page
    assert SECRET not in page.text
    assert EVIL not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    folded = re.findall(r'<details class="folded"><summary><code>([^<]*)</code>', page.text)
    assert len(folded) == 1 and folded[0].endswith("…")  # large details start folded
    assert "x" * 60 not in folded[0] and "x" * 3000 in page.text
    by_actor = await client.get(AUDIT, params={"actor": EVIL})
    assert targets(by_actor.text) == ["&lt;script&gt;alert(1)&lt;/script&gt;"]
