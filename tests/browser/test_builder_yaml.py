"""The builder's YAML view in a real browser: a step typed into the code editor (with a
comment) reaches the draft, the canvas draws it and its step panel shows the typed values;
YAML that does not read is marked at its line, with an alert under the editor, and the
canvas is refused until it is fixed; the document saved from the canvas is the document
typed (read back through the API); Undo from the toolbar brings the editor's text back with
the draft. The kit fails the test on any CSP violation or script error."""

from __future__ import annotations

import re
from typing import Any

import yaml

from tests.browser.conftest import OpenPage
from tests.browser.kit import HubServer, assert_accessible, expect, screenshot, settle

FLOW = "yaml-typed"
BUILD = f"/w/default/flows/{FLOW}/build"
ADDED = (
    "\n"
    "  # typed in the YAML view\n"
    "  - id: second\n"
    "    action: data.set\n"
    "    needs: [first]\n"
    "    input:\n"
    "      value: typed in YAML\n"
)


def one_step() -> dict[str, Any]:
    return {
        "id": FLOW,
        "name": "Typed in YAML",
        "trigger": {"type": "manual"},
        "steps": [{"id": "first", "action": "data.set", "input": {"value": "hello"}}],
    }


def idle(page: Any) -> None:
    """Wait until htmx has no request in flight and nothing swapping or settling."""
    page.wait_for_function(
        "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')"
    )


def editor_text(page: Any) -> str:
    """The text of the YAML view's editor (the textarea it keeps in step)."""
    return str(page.locator("#builder-yaml-text").input_value())


def type_at_end(page: Any, text: str) -> None:
    """Put the caret at the end of the editor's text and type ``text`` (inserted as typed
    text, without the editor's indentation of new lines)."""
    content = page.locator("#builder-yaml .cm-content")
    content.click()
    page.keyboard.press("Control+End")
    page.keyboard.insert_text(text)


def test_a_step_typed_in_yaml_reaches_the_canvas_and_the_save(
    open_page: OpenPage, owner_state: dict[str, Any], hub_server: HubServer
) -> None:
    hub_server.save_flow(one_step())
    page, _ = open_page(storage_state=owner_state)
    page.goto(BUILD)
    settle(page)

    # The YAML tab: the draft's text in the code editor.
    page.locator("nav.tabs").get_by_role("link", name="YAML").click()
    page.wait_for_url(re.compile(r"\?view=yaml$"))
    editor = page.locator("#builder-yaml .cm-content")
    expect(editor).to_be_visible()
    expect(editor).to_have_attribute("aria-label", "The flow as YAML")
    expect(page.locator("#builder-yaml-text")).to_be_hidden()
    assert yaml.safe_load(editor_text(page)) == one_step()

    # A step typed at the end, with a comment: applied to the draft as one types.
    type_at_end(page, ADDED)
    expect(page.locator("#builder-toolbar")).to_contain_text("Unsaved changes")
    expect(page.locator("#builder-yaml-status")).to_contain_text("the flow is valid")
    idle(page)
    typed = editor_text(page)
    assert "# typed in the YAML view" in typed
    screenshot(page, "builder-yaml-typed")
    assert_accessible(page, "builder-yaml")

    # The canvas draws the new step; its panel shows the values typed.
    page.locator("nav.tabs").get_by_role("link", name="Canvas").click()
    page.wait_for_url(re.compile(r"\?view=canvas"))
    node = page.locator('#builder-canvas a.node[data-step="second"]')
    expect(node).to_be_visible()
    node.click()
    panel = page.locator("#builder-panel")
    expect(panel.locator('[data-selected-step="second"]')).to_be_visible()
    value = panel.locator('[data-step="second"][data-pointer="/value"]')
    expect(value).to_have_value("typed in YAML")

    # Back in YAML, the text is as typed (the comment kept). Broken YAML: marked at its
    # line, an alert under the editor, the draft unchanged, the canvas refused.
    page.locator("nav.tabs").get_by_role("link", name="YAML").click()
    page.wait_for_url(re.compile(r"\?view=yaml"))
    expect(page.locator("#builder-yaml .cm-content")).to_be_visible()
    assert editor_text(page) == typed
    revision = page.locator("#builder-toolbar").get_attribute("data-revision")
    type_at_end(page, "  - id: [broken\n")
    alert = page.locator("#builder-yaml-status [role=alert]")
    expect(alert).to_contain_text("Not applied")
    line = len(typed.splitlines()) + 2  # the unclosed [ is found after the last line
    expect(alert.get_by_role("button", name=re.compile(r"^Line \d+$"))).to_have_count(1)
    shown = alert.get_by_role("button", name=re.compile(r"^Line \d+$")).inner_text()
    assert abs(int(shown.split()[1]) - line) <= 1, (shown, line)
    # Marked where it is found (the end) and where the unclosed [ opened.
    expect(page.locator("#builder-yaml .cm-lintRange-error")).to_have_text("[broken")
    expect(page.locator("#builder-yaml .cm-lintPoint-error")).to_have_count(1)
    expect(page.locator("#builder-yaml .cm-lint-marker-error")).to_have_count(2)
    assert page.locator("#builder-toolbar").get_attribute("data-revision") == revision
    page.locator("nav.tabs").get_by_role("link", name="Canvas").click()
    blocked = page.locator("#builder-yaml-blocked")
    expect(blocked).to_contain_text("fix the error first")
    assert page.url.endswith("?view=yaml")
    screenshot(page, "builder-yaml-invalid")

    # Fixed (the broken line taken out with the editor's own undo): the canvas opens.
    page.locator("#builder-yaml .cm-content").click()
    page.keyboard.press("Control+z")
    expect(page.locator("#builder-yaml-status")).not_to_contain_text("Not applied")
    expect(blocked).to_be_empty()
    assert editor_text(page) == typed
    page.locator("nav.tabs").get_by_role("link", name="Canvas").click()
    page.wait_for_url(re.compile(r"\?view=canvas"))
    expect(page.locator('#builder-canvas a.node[data-step="second"]')).to_be_visible()

    # Saved from the canvas: the document typed, read back through the API.
    page.locator("#builder-toolbar").get_by_role("button", name="Save").click()
    expect(page.locator("#builder-notice")).to_contain_text("Saved as version 2")
    with hub_server.api() as api:
        answer = api.get(f"/api/w/default/flows/{FLOW}/versions/2")
    assert answer.status_code == 200, answer.text
    assert answer.json()["document"] == yaml.safe_load(typed)

    # Undo from the toolbar in the YAML view: the editor shows the draft's text again.
    page.locator("nav.tabs").get_by_role("link", name="YAML").click()
    page.wait_for_url(re.compile(r"\?view=yaml"))
    expect(page.locator("#builder-yaml .cm-content")).to_contain_text("id: second")
    page.locator("#builder-toolbar").get_by_role("button", name=re.compile("^Undo")).click()
    expect(page.locator("#builder-yaml .cm-content")).not_to_contain_text("id: second")
    expect(page.locator("#builder-yaml .cm-content")).to_contain_text("id: first")
    assert yaml.safe_load(editor_text(page)) == one_step()

    # A step's panel open beside the editor is drawn anew once the editor loses the focus.
    page.goto(f"{BUILD}?view=yaml&step=first")
    value = page.locator('#builder-panel [data-step="first"][data-pointer="/value"]')
    expect(value).to_have_value("hello")
    shown_revision = page.locator("#builder-toolbar").get_attribute("data-revision")
    page.locator("#builder-yaml .cm-content").click()
    page.keyboard.press("Control+End")
    page.keyboard.press("Backspace")  # the last line's newline: the caret after "hello"
    for _ in "hello":
        page.keyboard.press("Backspace")
    page.keyboard.type("bye")
    expect(page.locator("#builder-toolbar")).not_to_have_attribute("data-revision", shown_revision)
    expect(value).to_have_value("hello")  # not while typing
    page.locator("#builder-toolbar h1").click()
    expect(value).to_have_value("bye")


def test_without_javascript_the_textarea_posts_and_an_error_comes_back(
    open_page: OpenPage, owner_state: dict[str, Any], hub_server: HubServer
) -> None:
    flow = "yaml-plain"
    build = f"/w/default/flows/{flow}/build"
    hub_server.save_flow({**one_step(), "id": flow})
    page, _ = open_page(storage_state=owner_state, java_script_enabled=False)
    page.goto(f"{build}?view=yaml")
    area = page.get_by_label("The flow as YAML")
    expect(area).to_be_visible()
    text = area.input_value()
    broken = text + "  - id: [broken\n"
    area.fill(broken)
    page.get_by_role("button", name="Apply to the draft").click()
    expect(page.locator("#builder-yaml-status [role=alert]")).to_contain_text("Not applied")
    expect(page.get_by_label("The flow as YAML")).to_have_value(broken)  # kept as typed
    fixed = text.replace("value: hello", "value: plain  # typed without scripts")
    page.get_by_label("The flow as YAML").fill(fixed)
    page.get_by_role("button", name="Apply to the draft").click()
    page.wait_for_url(re.compile(r"\?view=yaml$"))
    expect(page.get_by_label("The flow as YAML")).to_have_value(fixed)
    expect(page.locator("#builder-toolbar")).to_contain_text("Unsaved changes")
    screenshot(page, "builder-yaml-no-script")
