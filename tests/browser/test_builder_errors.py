"""The builder's errors in a real browser: a required field left empty, a misspelt output
field and an expression that does not parse each show their error under their own field as
the person types (the server's validation, debounced), and the toolbar's Save is refused
with the very messages the API's ``_validate`` gives for the same document; nothing is
saved."""

from __future__ import annotations

import copy
import re
from typing import Any

from tests.browser.conftest import OpenPage
from tests.browser.kit import HubServer, expect, screenshot, settle

FLOW = "errors-at-fields"
BUILD = f"/w/default/flows/{FLOW}/build"


def document() -> dict[str, Any]:
    """fetch (http.request, never run) -> shape (data.set reading fetch's status) -> note."""
    return {
        "id": FLOW,
        "name": "Errors at their fields",
        "trigger": {"type": "manual"},
        "steps": [
            {
                "id": "fetch",
                "action": "http.request",
                "input": {"method": "GET", "url": "http://127.0.0.1:9/thing"},
            },
            {
                "id": "shape",
                "action": "data.set",
                "input": {"value": "{{ steps.fetch.output.status }}"},
            },
            {"id": "note", "action": "data.set", "input": {"value": "{{ steps.shape.output }}"}},
        ],
    }


def idle(page: Any) -> None:
    """No save of the step form pending or in flight."""
    expect(page.locator("form[data-step-form]")).not_to_have_attribute("data-pending", "true")
    settle(page)


def issues_of(panel: Any, control: Any) -> Any:
    """The issue slot of the step field of ``control`` (``<id>-issues``; an expression's
    text area is ``<id>-text``)."""
    field_id = re.sub(r"-text$", "", str(control.get_attribute("id")))
    return panel.locator(f"#{field_id}-issues")


def type_expression(page: Any, panel: Any, text: str) -> None:
    """Replace the value's expression with ``text`` in the editor, then leave the field."""
    field = panel.locator('textarea[data-expression-field][data-pointer="/value"]')
    field.fill(text)
    editor = panel.get_by_role("textbox", name=re.compile(r"Value \(expression\)"))
    expect(editor).to_be_focused()
    page.keyboard.press("Tab")
    idle(page)


def test_errors_show_at_their_fields_and_save_gives_the_apis_messages(
    open_page: OpenPage, owner_state: dict[str, Any], hub_server: HubServer
) -> None:
    hub_server.save_flow(document())
    page, _watch = open_page(storage_state=owner_state, viewport={"width": 1280, "height": 1400})
    panel = page.locator("#builder-panel")

    # 1. A required field left empty: the http step's URL.
    page.goto(f"{BUILD}?step=fetch")
    settle(page)
    url = panel.get_by_role("textbox", name=re.compile(r"^Url"))
    url.fill("")
    page.keyboard.press("Tab")
    idle(page)
    expect(issues_of(panel, url)).to_contain_text("required")

    # 2. A misspelt output field: shape reads fetch's "statsu".
    page.goto(f"{BUILD}?step=shape")
    settle(page)
    value = panel.locator('textarea[data-expression-field][data-pointer="/value"]')
    type_expression(page, panel, "{{ steps.fetch.output.statsu }}")
    expect(issues_of(panel, value)).to_contain_text("declares no output field 'statsu'")
    expect(issues_of(panel, value)).to_contain_text("did you mean 'status'")

    # 3. An expression that does not parse: note's value.
    page.goto(f"{BUILD}?step=note")
    settle(page)
    type_expression(page, panel, "{{ steps.shape.output. }}")
    expect(issues_of(panel, value)).not_to_be_empty()
    screenshot(page, "builder-errors-at-fields")

    # The toolbar says how many; Save is refused with the API's messages for this document.
    expect(page.locator("#builder-state")).to_contain_text("3 issues")
    page.get_by_role("button", name="Save", exact=True).click()
    refusal = panel.get_by_role("alert")
    expect(refusal).to_contain_text("The flow has issues")
    broken = copy.deepcopy(document())
    del broken["steps"][0]["input"]["url"]
    broken["steps"][1]["input"]["value"] = "{{ steps.fetch.output.statsu }}"
    broken["steps"][2]["input"]["value"] = "{{ steps.shape.output. }}"
    with hub_server.api() as api:
        answer = api.post("/api/w/default/flows/_validate", json={"document": broken})
        assert answer.status_code == 200, answer.text
        issues = answer.json()["issues"]
        versions = api.get(f"/api/w/default/flows/{FLOW}/versions").json()
    assert len(issues) == 3, issues
    shown = refusal.inner_text()
    for issue in issues:
        assert issue["message"] in shown, (issue, shown)
    assert len(versions) == 1, "a refused save wrote a version"
    screenshot(page, "builder-errors-save-refused")
