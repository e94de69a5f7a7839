"""An owner's pages in the browser: a member added by e-mail gets a one-time password shown
once, and signs in with it; an API token made on the profile page is shown once, works
against the API, and stops working once revoked (after the confirmation)."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.browser.conftest import OpenPage
from tests.browser.kit import HubServer, expect, screenshot, settle, sign_in

NEWCOMER = "ada.newcomer@example.com"


def test_a_member_added_in_the_page_signs_in_with_the_password_shown_once(
    open_page: OpenPage, owner_state: dict[str, Any], hub_server: HubServer
) -> None:
    page, _ = open_page(storage_state=owner_state)
    page.goto("/w/default/members")
    settle(page)
    page.get_by_label("E-mail address").fill(NEWCOMER)
    page.get_by_label("Name (optional)").fill("Ada Newcomer")
    page.get_by_label("Role", exact=True).select_option("editor")
    page.get_by_role("button", name="Add member").click()
    settle(page)
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"{NEWCOMER} was added")
    password = page.locator("#one-time-password").inner_text().strip()
    assert len(password) >= 12
    screenshot(page, "member-added")
    page.goto("/w/default/members")
    settle(page)
    assert password not in page.content(), "the one-time password is shown again"
    expect(page.get_by_label(f"Role of {NEWCOMER}")).to_have_value("editor")

    newcomer, _ = open_page()
    sign_in(newcomer, hub_server.base, NEWCOMER, password)
    expect(
        newcomer.get_by_role("navigation", name="Main").get_by_role("link", name="Flows")
    ).to_be_visible()
    expect(newcomer.get_by_role("link", name="Members")).to_have_count(0)  # an editor


def test_a_token_made_on_the_profile_page_is_shown_once_and_revoked(
    open_page: OpenPage, owner_state: dict[str, Any], hub_server: HubServer
) -> None:
    page, found = open_page(storage_state=owner_state, record_bodies=True)
    page.goto("/w/default/profile")
    settle(page)
    page.get_by_label("Name", exact=True).fill("nightly export")
    page.get_by_label("Scope").select_option(label="Read only")
    page.get_by_role("button", name="Create token").click()
    settle(page)
    token = page.locator("#new-token").inner_text().strip()
    assert token.startswith("hub_"), token
    screenshot(page, "token-created")
    api = f"{hub_server.base}/api/w/default/flows"
    bearer = {"authorization": f"Bearer {token}"}
    assert httpx.get(api, headers=bearer).status_code == 200
    assert httpx.post(f"{api}/new-order/disable", headers=bearer).status_code == 403  # read only

    page.goto("/w/default/profile")
    settle(page)
    revoke = page.get_by_role("button", name="Revoke the token nightly export")
    dialogs: list[str] = []

    def answer(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss() if len(dialogs) == 1 else dialog.accept()

    page.on("dialog", answer)
    revoke.click()  # dismissed: nothing happens
    assert dialogs and httpx.get(api, headers=bearer).status_code == 200
    revoke.click()  # accepted
    page.wait_for_load_state("load")
    settle(page)
    expect(page.get_by_role("button", name="Revoke the token nightly export")).to_have_count(0)
    assert httpx.get(api, headers=bearer).status_code == 401
    shown = [url for url, text in found.bodies if token in text]
    assert len(shown) == 1, f"the token was sent {len(shown)} times: {shown}"


def test_a_person_in_two_workspaces_switches_between_them(
    open_page: OpenPage, owner_state: dict[str, Any], hub_server: HubServer
) -> None:
    # "zeta" sorts after "default": signing in still lands on default (the first by id),
    # which the other modules of this hub expect.
    with httpx.Client(base_url=hub_server.base) as session:
        csrf = {"x-csrftoken": session.get("/api/auth/csrf").json()["token"]}
        signed = session.post(
            "/api/auth/login",
            json={"email": hub_server.owner_email, "password": hub_server.owner_password},
            headers=csrf,
        )
        assert signed.status_code == 200, signed.text
        made = session.post("/api/workspaces", json={"id": "zeta", "name": "Zeta"}, headers=csrf)
        assert made.status_code in (200, 201), made.text
    page, _ = open_page(storage_state=owner_state)
    page.goto("/w/default/flows")
    settle(page)
    page.get_by_text("Workspace:").click()
    page.get_by_role("link", name=re.compile(r"^Zeta")).click()
    page.wait_for_url(re.compile(r"/w/zeta/$"))
    settle(page)
    menu = page.get_by_role("navigation", name="Main")
    menu.get_by_role("link", name="Flows").click()
    page.wait_for_url(re.compile(r"/w/zeta/flows$"))
    settle(page)
    expect(page.get_by_text("New order -> priced lines")).to_have_count(0)  # default's flows
    expect(page.get_by_role("link", name="New flow").first).to_be_visible()  # what to do next
    screenshot(page, "empty-flows")


def test_a_role_is_changed_in_the_page_and_the_last_owner_is_kept(
    open_page: OpenPage, owner_state: dict[str, Any], hub_server: HubServer
) -> None:
    hub_server.add_member("role.change@example.com", "editor")
    page, _ = open_page(storage_state=owner_state)
    asked: list[str] = []

    def accept(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    page.goto("/w/default/members")
    settle(page)
    role = page.get_by_label("Role of role.change@example.com")
    role.select_option("viewer")
    page.get_by_role("row").filter(has=role).get_by_role("button", name="Change role").click()
    settle(page)
    expect(page.get_by_label("Role of role.change@example.com")).to_have_value("viewer")

    mine = page.get_by_label(f"Role of {hub_server.owner_email}")
    mine.select_option("viewer")
    page.get_by_role("row").filter(has=mine).get_by_role("button", name="Change role").click()
    settle(page)
    assert asked and "your own role" in asked[-1], asked  # asked first, being oneself
    expect(page.get_by_text("the last owner of a workspace cannot be demoted")).to_be_visible()
    page.goto("/w/default/members")
    settle(page)
    expect(page.get_by_label(f"Role of {hub_server.owner_email}")).to_have_value("owner")
