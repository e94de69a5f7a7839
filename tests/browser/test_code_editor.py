"""The code editor (CodeMirror 6, vendored as ui/static/vendor/codemirror/hub-editor.js) on
the flow editor page: it takes the textarea's place (the textarea stays the form's field),
the server's issue about what was typed shows as a diagnostic at its line, the fixed text is
saved, and the strict CSP reports nothing (the editor's styles are adopted stylesheets)."""

from __future__ import annotations

import importlib.util
import json
import re
from typing import Any

from tests.browser.conftest import OpenPage
from tests.browser.kit import (
    ROOT,
    WORKSPACE,
    HubServer,
    expect,
    screenshot,
    settle,
    wait_for,
)

FLOW = """\
# Written in the code editor.
id: code-editor
name: Code editor flow
trigger: {type: manual}
steps:
  - id: greet
    action: data.set
    input:
      value: "Hello {{ trigger.name }}"
"""
LABEL = "Flow document (YAML or JSON)"


def test_typed_yaml_gets_the_servers_issue_at_its_line_then_is_saved(
    open_page: OpenPage, owner_state: dict[str, Any], hub_server: HubServer
) -> None:
    page, watch = open_page(storage_state=owner_state)
    page.goto(f"/w/{WORKSPACE}/flows/_new")
    settle(page)
    editor = page.get_by_role("textbox", name=LABEL)
    expect(editor).to_be_visible()
    expect(page.locator("textarea#flow-source")).to_be_hidden()
    # CodeMirror's styles are constructed stylesheets, not <style> elements the CSP refuses.
    assert page.evaluate("document.adoptedStyleSheets.length") > 0
    assert page.evaluate("document.querySelectorAll('style').length") == 0
    assert (
        page.evaluate("getComputedStyle(document.querySelector('.cm-gutters')).borderRightStyle")
        == "solid"
    ), "the editor's theme is not applied"

    editor.fill(FLOW)
    # Type on line 7 ("    action: data.set"), as a person would: data.set -> data.sett.
    page.locator(".cm-line").nth(6).click()
    page.keyboard.press("End")
    page.keyboard.type("t")
    assert page.locator("textarea#flow-source").input_value() == FLOW.replace(
        "data.set", "data.sett"
    ), "the textarea (the form's field) does not follow the editor"

    # The server's validation runs once typing stops: its issue is a diagnostic at line 7.
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("data.sett")
    expect(page.get_by_role("button", name=re.compile(r"^Line 7"))).to_be_visible()
    marked = page.locator(".cm-line").nth(6).locator(".cm-lintRange-error")
    expect(marked).to_have_count(1)
    expect(page.locator(".cm-lint-marker-error")).to_have_count(1)
    # The diagnostic's message, as the lint panel (Ctrl-Shift-M) reads it out.
    editor.focus()
    page.keyboard.press("Control+Shift+KeyM")
    panel = page.locator(".cm-panel-lint")
    expect(panel).to_contain_text("data.sett")
    screenshot(page, "code-editor-diagnostic")
    page.keyboard.press("Escape")

    # Fixed: the diagnostic goes once the server says the flow is valid.
    page.locator(".cm-line").nth(6).click()
    page.keyboard.press("End")
    page.keyboard.press("Backspace")
    expect(page.get_by_text("The flow is valid")).to_be_visible()
    expect(page.locator(".cm-lintRange-error")).to_have_count(0)
    assert watch.violations() == [], watch.violations()

    page.get_by_label("What changed").fill("From the code editor")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r"/w/default/flows/code-editor$"))
    settle(page)
    expect(page.get_by_role("heading", level=1)).to_have_text("Code editor flow")
    with hub_server.api() as api:
        exported = api.get(f"/api/w/{WORKSPACE}/flows/code-editor/export")
    assert exported.status_code == 200, exported.text
    # The text typed, its comment included (a form posts a textarea's lines with CRLF).
    assert exported.text.replace("\r\n", "\n") == FLOW


def test_the_edit_page_shows_the_saved_flows_text_in_the_editor(
    open_page: OpenPage, owner_state: dict[str, Any], hub_server: HubServer
) -> None:
    hub_server.save_flow(
        {
            "id": "code-editor-edit",
            "name": "Edit me",
            "trigger": {"type": "manual"},
            "steps": [{"id": "a", "action": "data.set", "input": {"value": 1}}],
        }
    )
    page, _watch = open_page(storage_state=owner_state, color_scheme="dark")
    page.goto(f"/w/{WORKSPACE}/flows/code-editor-edit/edit")
    settle(page)
    editor = page.get_by_role("textbox", name=LABEL)
    expect(editor).to_contain_text("id: code-editor-edit")
    # The label names the editor and a click on it moves the focus there.
    page.locator("label", has_text=LABEL).click()
    expect(editor).to_be_focused()
    screenshot(page, "code-editor-dark")


def test_the_bundle_names_every_package_in_it_at_the_locked_version() -> None:
    """hub-editor.js is built from scripts/codemirror's lockfile: its LICENSE and VERSION name
    each bundled package at the version locked there (scripts/vendor_ui.py's BUNDLES)."""
    lock = json.loads((ROOT / "scripts/codemirror/package-lock.json").read_text())
    target = ROOT / "ui/static/vendor/codemirror"
    assert (target / "hub-editor.js").read_text().startswith("/* hub-editor.js: CodeMirror 6")
    licence = (target / "LICENSE").read_text()
    version = (target / "VERSION").read_text()
    wanted = ["state", "view", "commands", "language", "autocomplete", "lint", "search"]
    for name in [f"@codemirror/{n}" for n in [*wanted, "lang-yaml", "lang-json"]]:
        locked = lock["packages"][f"node_modules/{name}"]
        assert f"\n{name} {locked['version']}\n" in licence, name
        assert f"{name} {locked['version']} MIT\nintegrity {locked['integrity']}" in version
    assert "Permission is hereby granted, free of charge" in licence
    spec = importlib.util.spec_from_file_location("vendor_ui", ROOT / "scripts/vendor_ui.py")
    assert spec and spec.loader
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.BUNDLES["codemirror"] == (ROOT / "scripts/codemirror", target)


COMPLETE = """() => {
  const holder = document.createElement("div");
  document.querySelector("main").append(holder);
  window.__changes = [];
  window.__expression = HubEditor.create(holder, {
    doc: "{{ tr",
    language: "expression",
    label: "Expression",
    singleLine: true,
    onChange: (text) => window.__changes.push(text),
    complete: async (text, pos) => {
      const word = /[A-Za-z_]*$/.exec(text.slice(0, pos))[0];
      if (!word || text.slice(0, pos - word.length).endsWith(".")) return null;
      return {from: pos - word.length, options: [
        {label: "trigger", type: "variable", detail: "the trigger's data"},
        {label: "steps", type: "variable", detail: "earlier steps"},
      ]};
    },
  });
}"""


def test_a_single_line_expression_editor_completes_and_never_takes_a_newline(
    open_page: OpenPage, owner_state: dict[str, Any]
) -> None:
    page, watch = open_page(storage_state=owner_state)
    page.goto(f"/w/{WORKSPACE}/flows/_new")  # a page that loads hub-editor.js
    settle(page)
    page.evaluate(COMPLETE)
    field = page.get_by_role("textbox", name="Expression")
    expect(field).to_have_attribute("aria-multiline", "false")
    field.click()
    page.keyboard.press("End")
    page.keyboard.press("Control+Space")
    option = page.get_by_role("option", name=re.compile("^trigger"))
    expect(option).to_be_visible()
    # Enter accepts the completion (CodeMirror ignores it for 75 ms after the list opens,
    # against accidental picks: pressed until it takes).
    accepted = "window.__expression.getText() === '{{ trigger'"

    def accept() -> bool:
        page.keyboard.press("Enter")
        return bool(page.evaluate(accepted))

    wait_for(accept, "the completion accepted", page=page)
    page.keyboard.type(".name }}")
    page.keyboard.press("Enter")  # inserts nothing in a single-line editor
    page.keyboard.insert_text(" and\nmore")  # a newline pasted or inserted becomes a space
    text = page.evaluate("window.__expression.getText()")
    assert text == "{{ trigger.name }} and more"
    assert page.evaluate("window.__changes.at(-1)") == text
    page.evaluate("window.__expression.setText('{{ steps }}')")
    assert page.evaluate("window.__changes.at(-1)") == text, "setText called onChange"
    page.evaluate("window.__expression.setDiagnostics([{line: 1, column: 4, message: 'no'}])")
    expect(page.locator(".cm-lintRange-error")).to_have_text("steps }}")
    assert watch.violations() == []
