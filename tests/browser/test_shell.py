"""The shell in a real browser: signing in by keyboard, the way back to the page asked for,
a wrong password, signing out, and the sign-in page's accessibility."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import OpenPage
from tests.browser.kit import (
    HubServer,
    assert_accessible,
    expect,
    focused,
    missing,
    screenshot,
    settle,
    sign_in,
    tab_to,
)

SIGN_IN = re.compile(r"/login\?next=")


def test_sign_in_by_keyboard_with_a_visible_focus(
    open_page: OpenPage, hub_server: HubServer
) -> None:
    page, _ = open_page()
    page.goto("/login")
    settle(page)
    screenshot(page, "sign-in")
    assert_accessible(page, "sign-in")
    start = focused(page)
    assert start is not None and start["tag"] == "input", start  # the address has the focus
    page.keyboard.type(hub_server.owner_email)
    page.keyboard.press("Tab")
    now = focused(page)
    assert now is not None and now["tag"] == "input" and now["label"] == "Password", now
    assert now["visible"], "the password field's focus is not visible"
    page.keyboard.type(hub_server.owner_password)
    button = tab_to(page, "button", "Sign in", limit=3)
    assert button["visible"], "the Sign in button's focus is not visible"
    page.keyboard.press("Enter")
    page.wait_for_url("**/w/default/")
    settle(page)
    link = tab_to(page, "a", "Flows")  # the menu, by keyboard
    assert link["visible"], "the menu's focus is not visible"
    page.keyboard.press("Enter")
    page.wait_for_url("**/w/default/flows")
    settle(page)
    action = tab_to(page, "a", "New flow")  # the page's main action, by keyboard
    assert action["visible"], "the New flow button's focus is not visible"
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/w/default/flows/_build$"))  # the builder's first form
    expect(page.get_by_label("Name")).to_be_visible()


def test_a_wrong_password_says_so_and_keeps_the_address(
    open_page: OpenPage, hub_server: HubServer
) -> None:
    page, _ = open_page()
    page.goto("/login")
    page.get_by_label("E-mail address").fill(hub_server.owner_email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "Wrong e-mail address or password" in alert.inner_text()
    assert page.get_by_label("E-mail address").input_value() == hub_server.owner_email
    screenshot(page, "sign-in-error")


def test_a_signed_out_page_comes_back_after_signing_in_and_signing_out_ends_it(
    open_page: OpenPage, hub_server: HubServer
) -> None:
    page, _ = open_page()
    page.goto("/w/default/runs?status=failed")
    page.wait_for_url(SIGN_IN)
    page.get_by_label("E-mail address").fill(hub_server.owner_email)
    page.get_by_label("Password").fill(hub_server.owner_password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/w/default/runs\?status=failed$"))
    settle(page)
    page.locator(".account summary").last.click()  # the menu of the person signed in
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login")
    page.goto("/w/default/flows")
    page.wait_for_url(SIGN_IN)


def test_sign_in_helper_lands_on_home(open_page: OpenPage, hub_server: HubServer) -> None:
    page, _ = open_page()
    sign_in(page, hub_server.base, hub_server.owner_email, hub_server.owner_password)
    assert page.url.endswith("/w/default/")


def test_a_missing_browser_fails_under_ci_and_is_skipped_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="make tools"):
        missing("/usr/bin/chromium is missing")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="make tools"):
        missing("/usr/bin/chromium is missing")
