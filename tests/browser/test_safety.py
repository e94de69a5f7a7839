"""The pages' safety in a real browser: user-supplied text renders as text, the content
security policy is never violated (and the watch that says so does see a violation), and a
viewer sees no write control and has every forged write refused."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import pytest

from tests.browser.conftest import OpenPage, signed_in_state
from tests.browser.kit import CSP_CONSOLE, HubServer, expect, settle, sign_in

# Markup that would run script (or add an element) if a page ever wrote it unescaped.
PAYLOAD = "<script>alert(1)</script><img src=x onerror=alert(2)><svg onload=alert(3)>"
VISIBLE = "<script>alert(1)</script>"  # what a person must read on the page, as text
INJECTED = """() => {
  const handlers = [...document.querySelectorAll("*")].filter(
    (e) => [...e.attributes].some((a) => a.name.toLowerCase().startsWith("on")));
  const scripts = [...document.scripts].filter((s) => !s.src);
  return {
    handlers: handlers.map((e) => e.outerHTML.slice(0, 80)),
    inline_scripts: scripts.map((s) => s.outerHTML.slice(0, 80)),
    images: document.querySelectorAll("img[src='x']").length,
    svgs: document.querySelectorAll("svg[onload]").length,
  };
}"""

CLEAN = {"handlers": [], "inline_scripts": [], "images": 0, "svgs": 0}


@pytest.fixture(scope="module")
def hostile_run(hub_server: HubServer) -> dict[str, str]:
    """A flow named with the payload whose run got it as trigger data, put it in a step's
    output, and failed with it in the error message."""
    flow_id = hub_server.save_flow(
        {
            "id": "hostile",
            "name": f"Hostile {PAYLOAD}",
            "description": f"Described as {PAYLOAD}",
            "trigger": {"type": "webhook"},
            "steps": [
                {"id": "echo", "action": "data.set", "input": {"value": "{{ trigger.body.note }}"}},
                {
                    "id": "boom",
                    "action": "flow.fail",
                    "input": {"message": "failed on {{ trigger.body.note }}"},
                },
            ],
        }
    )
    run_id = hub_server.webhook(flow_id, {"note": PAYLOAD})
    record = hub_server.wait_run(run_id)
    assert record["status"] == "failed", record
    return {"flow": flow_id, "run": run_id}


def assert_inert(page: Any, where: str, dialogs: list[str]) -> None:
    """The payload shows as text, and nothing of it became markup."""
    expect(page.get_by_text(VISIBLE).first).to_be_visible()
    found = page.evaluate(INJECTED)
    assert found == CLEAN, (where, found)
    assert not dialogs, f"{where}: a dialog opened: {dialogs}"


def test_hostile_text_renders_as_text_everywhere(
    open_page: OpenPage, owner_state: dict[str, Any], hostile_run: dict[str, str]
) -> None:
    page, _ = open_page(storage_state=owner_state)
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    run = f"/w/default/runs/{hostile_run['run']}"
    for where in (
        "/w/default/flows",  # the flow's name
        f"/w/default/flows/{hostile_run['flow']}",  # its name and description
        run,  # trigger data, a step's output, the error message
        "/w/default/",  # the failed run's flow on the home page
    ):
        page.goto(where)
        settle(page)
        assert_inert(page, where, dialogs)
    for where, field in (  # searches: the text comes back in the search field, as its value
        (f"/w/default/flows?q={quote(PAYLOAD)}", "Search flows"),
        (f"/w/default/runs?q={quote(PAYLOAD)}", "Trigger data contains"),
    ):
        page.goto(where)
        settle(page)
        expect(page.get_by_label(field)).to_have_value(PAYLOAD)
        assert page.evaluate(INJECTED) == CLEAN, where
        assert not dialogs, f"{where}: a dialog opened: {dialogs}"
    page.goto(run)
    settle(page)
    for part in ("#step-echo", "#step-boom"):
        expect(page.locator(part)).to_contain_text(VISIBLE)
    expect(page.locator(".run-error")).to_contain_text(f"failed on {VISIBLE}")


def test_the_csp_watch_sees_a_violation(open_page: OpenPage, owner_state: dict[str, Any]) -> None:
    """The watch that fails every test on a violation is not blind: a script that a page
    would add inline is blocked, and the watch reports it."""
    page, found = open_page(storage_state=owner_state)
    page.goto("/w/default/flows")
    settle(page)
    with page.expect_console_message(lambda message: bool(CSP_CONSOLE.search(message.text))):
        page.evaluate(
            """() => {
              const s = document.createElement("script");
              s.textContent = "window.__ran = true";
              document.body.append(s);
            }"""
        )
    page.wait_for_function("window.__cspViolations.length > 0")
    assert page.evaluate("window.__ran === undefined"), "an inline script ran"
    assert any("script-src" in v for v in found.violations()), found.violations()
    found.csp.clear()  # seen: this one was made on purpose
    page.evaluate("window.__cspViolations = []")


# -- the viewer ---------------------------------------------------------------------------

VIEWER = "viewer@example.com"
READ_PAGES = [
    "/w/default/",
    "/w/default/flows",
    "/w/default/flows/new-order",
    "/w/default/runs",
    "/w/default/runs/{run}",
    "/w/default/connections",
    "/w/default/connectors",
    "/w/default/connectors/http/actions/request",
]
WRITE_CONTROLS = """() => {
  const forms = [...document.querySelectorAll("form")].filter(
    (f) => f.method.toLowerCase() === "post" && !f.action.endsWith("/logout"));
  const htmx = [...document.querySelectorAll("[hx-post],[hx-put],[hx-patch],[hx-delete]")];
  return [...forms, ...htmx].map((e) => e.outerHTML.slice(0, 120));
}"""
WRITE_LINKS = re.compile(
    r"^(New flow|Write YAML|Open in the builder|Import|Edit|Delete|Retry|Replay|Cancel"
    r"|New connection)",
    re.I,
)


@pytest.fixture(scope="module")
def viewer_state(browser: Any, hub_server: HubServer) -> dict[str, Any]:
    """A viewer of the workspace, signed in through the form with their one-time password."""
    password = hub_server.add_member(VIEWER, "viewer", "Vera Viewer")
    return signed_in_state(browser, hub_server, VIEWER, password)


def test_a_viewer_sees_no_write_control(
    open_page: OpenPage,
    owner_state: dict[str, Any],
    viewer_state: dict[str, Any],
    hostile_run: dict[str, str],
) -> None:
    owner, _ = open_page(storage_state=owner_state)
    owner.goto("/w/default/flows/new-order")
    settle(owner)
    assert owner.evaluate(WRITE_CONTROLS), "the check finds no write control even for an owner"
    page, _ = open_page(storage_state=viewer_state)
    for template in READ_PAGES:
        path = template.format(**hostile_run)
        answer = page.goto(path)
        assert answer is not None and answer.status == 200, (path, answer)
        settle(page)
        assert page.evaluate(WRITE_CONTROLS) == [], path
        names = [
            text.strip()
            for text in page.locator("main a.button, main button").all_inner_texts()
            if WRITE_LINKS.match(text.strip())
        ]
        assert names == [], f"{path}: write controls {names}"
    menu = page.get_by_role("navigation", name="Main")
    expect(menu.get_by_role("link", name="Members")).to_have_count(0)
    answer = page.goto("/w/default/members")
    assert answer is not None and answer.status == 403


def test_a_viewer_forged_write_answers_403(
    open_page: OpenPage, viewer_state: dict[str, Any], hub_server: HubServer
) -> None:
    page, _ = open_page(storage_state=viewer_state)
    page.goto("/w/default/flows/new-order")
    settle(page)
    # The page's own CSRF token, sent as the page's forms and htmx would send it.
    statuses = page.evaluate(
        """async () => {
          const token = JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"];
          const form = new URLSearchParams({_csrf_token: token});
          const send = (url, body) => fetch(url, {
            method: "POST", body, headers: {"X-CSRFToken": token}, redirect: "manual",
          }).then((r) => r.status);
          return [
            await send("/w/default/flows/new-order/disable", form),
            await send("/w/default/flows/new-order/delete", form),
            await send("/api/w/default/flows/new-order/disable", null),
          ];
        }"""
    )
    assert statuses == [403, 403, 403], statuses
    with hub_server.api() as api:
        flow = api.get("/api/w/default/flows/new-order").json()
    assert flow["flow"]["enabled"] is True


def test_a_viewer_signs_in_with_the_one_time_password(
    open_page: OpenPage, hub_server: HubServer
) -> None:
    password = hub_server.add_member("second.viewer@example.com", "viewer")
    page, _ = open_page()
    sign_in(page, hub_server.base, "second.viewer@example.com", password)
    expect(page.get_by_role("heading", level=1)).to_be_visible()
