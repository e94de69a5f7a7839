"""Writing a flow in the browser: the YAML editor's validation (the hub's own, through htmx)
points at the line of each issue and selects it in the editor; the fixed flow is saved,
published, and opens on its page."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import OpenPage
from tests.browser.kit import screenshot, settle

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
    page.get_by_role("link", name="New flow").click()
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
