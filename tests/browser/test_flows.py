"""Writing a flow in the browser: the YAML editor's validation (the hub's own, through htmx)
points at the line of each issue and selects it in the editor; the fixed flow is saved,
published, and opens on its page."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

from tests.browser.conftest import OpenPage
from tests.browser.kit import ROOT, HubServer, expect, screenshot, settle, sign_in

BROKEN = """id: hello-ui
name: Hello from the editor
trigger: {type: manual}
steps:
  - id: greet
    action: data.nope
    input: {value: hi}
"""
LINE_OF_SELECTION = """() => {
  const editor = document.getElementById("flow-source");
  return editor.value.slice(0, editor.selectionStart).split("\\n").length;
}"""


def test_a_flow_written_in_the_editor_is_checked_at_its_line_then_saved(
    open_page: OpenPage, owner_state: dict[str, Any]
) -> None:
    page, _ = open_page(storage_state=owner_state)
    page.goto("/w/default/flows")
    settle(page)
    page.get_by_role("link", name="Write YAML").click()
    settle(page)
    editor = page.get_by_label("Flow document (YAML or JSON)")
    editor.fill(BROKEN)
    page.get_by_role("button", name="Validate").click()
    issue = page.get_by_role("button", name=re.compile(r"^Line 6"))
    expect(issue).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("data.nope")
    page.locator("main").evaluate("(main) => window.scrollTo(0, main.offsetTop)")
    screenshot(page, "flow-editor-issue")
    issue.click()
    assert page.evaluate(LINE_OF_SELECTION) == 6, "the issue's line is not selected"

    editor.fill(BROKEN.replace("data.nope", "data.set"))
    page.get_by_role("button", name="Validate").click()
    expect(page.get_by_text("The flow is valid")).to_be_visible()
    page.get_by_label("What changed").fill("First version, from the browser")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r"/w/default/flows/hello-ui"))
    settle(page)
    expect(page.get_by_role("heading", level=1)).to_have_text("Hello from the editor")
    expect(page.get_by_role("cell", name="First version, from the browser")).to_be_visible()


TOGGLE = {
    "id": "toggle-me",
    "name": "Toggle me",
    "trigger": {"type": "webhook"},
    "steps": [{"id": "noop", "action": "data.set", "input": {"value": 1}}],
}


def test_disabling_a_flow_swaps_its_state_in_place_and_stops_its_webhook(
    open_page: OpenPage, owner_state: dict[str, Any], hub_server: HubServer
) -> None:
    hub_server.save_flow(TOGGLE)
    page, _ = open_page(storage_state=owner_state)
    page.goto("/w/default/flows/toggle-me")
    settle(page)
    page.evaluate("window.__notReloaded = true")
    toggle = page.locator("#enabled-toggle")
    expect(toggle).to_contain_text("enabled")
    toggle.get_by_role("button", name="Disable").click()
    expect(toggle).to_contain_text("disabled")
    expect(toggle.get_by_role("button", name="Enable")).to_be_visible()
    assert page.evaluate("window.__notReloaded === true"), "the page was reloaded"
    refused = httpx.post(hub_server.url("/hooks/default/toggle-me"), json={})
    assert refused.status_code != 202, refused.text
    toggle.get_by_role("button", name="Enable").click()
    expect(toggle.get_by_role("button", name="Disable")).to_be_visible()
    assert httpx.post(hub_server.url("/hooks/default/toggle-me"), json={}).status_code == 202


def test_an_htmx_request_after_the_session_ended_goes_to_sign_in_and_back(
    open_page: OpenPage, hub_server: HubServer
) -> None:
    hub_server.save_flow({**TOGGLE, "id": "toggle-me-too", "name": "Toggle me too"})
    page, _ = open_page()
    sign_in(page, hub_server.base, hub_server.owner_email, hub_server.owner_password)
    page.goto("/w/default/flows/toggle-me-too")
    settle(page)
    other = page.context.new_page()  # another tab of the same browser signs out
    other.goto("/w/default/")
    other.locator(".account summary").last.click()
    other.get_by_role("button", name="Sign out").click()
    other.wait_for_url("**/login")
    other.close()

    page.locator("#enabled-toggle").get_by_role("button", name="Disable").click()
    page.wait_for_url(re.compile(r"/login\?next=/w/default/flows/toggle-me-too$"))
    page.get_by_label("E-mail address").fill(hub_server.owner_email)
    page.get_by_label("Password").fill(hub_server.owner_password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/w/default/flows/toggle-me-too$"))
    expect(page.locator("#enabled-toggle")).to_contain_text("enabled")  # nothing was changed


def test_a_flow_file_is_imported_from_the_browser_and_exported_back(
    open_page: OpenPage, owner_state: dict[str, Any], tmp_path: Path
) -> None:
    source = (
        (ROOT / "examples" / "send-reminder.yaml")
        .read_text()
        .replace("id: send-reminder", "id: imported-reminder")
    )
    upload = tmp_path / "imported-reminder.yaml"
    upload.write_text(source)
    page, _ = open_page(storage_state=owner_state)
    page.goto("/w/default/flows")
    settle(page)
    page.get_by_role("link", name="Import a file").click()
    settle(page)
    page.get_by_label("Flow file (.yaml, .yml or .json)").set_input_files(str(upload))
    page.get_by_role("button", name="Import").click()
    page.wait_for_url(re.compile(r"/w/default/flows/imported-reminder"))
    settle(page)
    with page.expect_download() as download:
        page.get_by_role("link", name="Export YAML").click()
    exported = Path(download.value.path()).read_text()
    assert "id: imported-reminder" in exported
