"""The builder's expression editor and data tree in a real browser: in a flow with an
``http.request`` step then a ``data.set`` step, the data.set value switched to an expression
is typed with completion (the http step picked from the list, then a field its output schema
declares), the preview shows under the field, and the saved document holds exactly that
expression; a leaf of the data tree dragged onto a field maps it (the field switches to an
expression); Enter on a leaf inserts it where the caret was."""

from __future__ import annotations

import re
from typing import Any

from tests.browser.conftest import OpenPage
from tests.browser.kit import HubServer, expect, screenshot, settle, wait_for

FLOW = "expr-map"
BUILD = f"/w/default/flows/{FLOW}/build"


def document() -> dict[str, Any]:
    """fetch (http.request, never run here) -> shape (data.set) -> note (data.set)."""
    return {
        "id": FLOW,
        "name": "Map with expressions",
        "trigger": {"type": "manual"},
        "steps": [
            {
                "id": "fetch",
                "action": "http.request",
                "input": {"method": "GET", "url": "http://127.0.0.1:9/thing"},
            },
            {"id": "shape", "action": "data.set", "input": {"value": "x"}},
        ],
    }


def latest_document(hub_server: HubServer) -> tuple[int, dict[str, Any]]:
    with hub_server.api() as api:
        versions = api.get(f"/api/w/default/flows/{FLOW}/versions")
        assert versions.status_code == 200, versions.text
        number = int(versions.json()[0]["version"])
        answer = api.get(f"/api/w/default/flows/{FLOW}/versions/{number}")
    assert answer.status_code == 200, answer.text
    return number, answer.json()["document"]


def idle(page: Any) -> None:
    """No save of the step form pending or in flight."""
    expect(page.locator("form[data-step-form]")).not_to_have_attribute("data-pending", "true")
    settle(page)


def test_complete_preview_save_and_map_from_the_data_tree(
    open_page: OpenPage, owner_state: dict[str, Any], hub_server: HubServer
) -> None:
    hub_server.save_flow(document())
    # Tall enough that the data tree and the fields fit the side panel together (a drag
    # does not scroll it).
    page, _watch = open_page(storage_state=owner_state, viewport={"width": 1280, "height": 2000})
    page.goto(f"{BUILD}?step=shape")
    settle(page)
    panel = page.locator("#builder-panel")

    # The value switched to an expression; the editor moves onto it with the focus.
    panel.get_by_role("switch", name=re.compile(r"Value: Expression")).check()
    field = panel.locator('textarea[data-expression-field][data-pointer="/value"]')
    expect(field).to_be_visible()
    expect(field).to_have_value("x")  # the fixed text became the expression's first text
    # Filled as a script would (focus, select, insert): the editor takes it in place.
    field.fill("{{ trigger }}")
    editor = panel.get_by_role("textbox", name=re.compile(r"Value \(expression\)"))
    expect(editor).to_be_focused()
    expect(field).to_be_hidden()
    expect(field).to_have_value("{{ trigger }}")
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.press("Delete")

    # {{ steps. offers the upstream step; then output. offers its declared fields.
    page.keyboard.type("{{ steps.")
    options = page.locator(".cm-tooltip-autocomplete [role=option]")
    expect(options.filter(has_text="fetch")).to_be_visible()
    screenshot(page, "builder-expressions-steps")
    page.keyboard.press("Escape")  # closes the list, stays in the editor
    expect(options.first).to_be_hidden()
    expect(editor).to_be_focused()
    page.keyboard.press("Control+Space")  # opens it again
    options.filter(has_text="fetch").click()
    page.keyboard.type(".output.")
    expect(options.filter(has_text=re.compile(r"^status"))).to_be_visible()
    expect(options.filter(has_text=re.compile(r"^headers"))).to_be_visible()
    options.filter(has_text=re.compile(r"^status")).click()
    page.keyboard.type(" }}")
    expect(editor).to_have_text("{{ steps.fetch.output.status }}")
    expect(field).to_have_value("{{ steps.fetch.output.status }}")

    # The preview under the field: the schema's example (no pin, no run).
    preview = panel.locator(".expr-preview")
    expect(preview).to_contain_text("Preview (schema example)")
    screenshot(page, "builder-expressions-preview")

    # A misspelt field is linted with the validator's message.
    page.keyboard.press("End")
    for _ in range(len(" }}")):
        page.keyboard.press("ArrowLeft")
    page.keyboard.press("Backspace")  # status -> statu
    expect(preview).to_contain_text("declares no output field 'statu'")
    page.keyboard.type("u")  # statuu: not a field either
    page.keyboard.press("Backspace")
    page.keyboard.type("s")  # back to status
    expect(editor).to_have_text("{{ steps.fetch.output.status }}")
    expect(preview).to_contain_text("Preview (schema example)")

    # Tab leaves the editor; the field's form saves it; the toolbar's Save keeps it.
    page.keyboard.press("Tab")
    expect(editor).not_to_be_focused()
    idle(page)
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#builder-notice")).to_contain_text("Saved as version 2")
    number, saved = latest_document(hub_server)
    assert number == 2
    shape = next(s for s in saved["steps"] if s["id"] == "shape")
    assert shape["input"] == {"value": "{{ steps.fetch.output.status }}"}

    # The data tree: drag fetch's text onto "Run only when" (an expression field).
    page.goto(f"{BUILD}?step=shape")
    settle(page)
    tree = panel.get_by_role("tree")
    expect(tree).to_be_visible()
    output = tree.get_by_role("treeitem", name=re.compile(r"^steps\.fetch\.output "))
    expect(output).to_contain_text("schema example")
    screenshot(page, "builder-expressions-tree")
    text_leaf = tree.get_by_role("treeitem", name=re.compile(r"^steps\.fetch\.output\.text "))
    panel.get_by_text("Step settings", exact=True).click()
    when = panel.locator("#step-when")
    expect(when).to_be_visible()
    text_leaf.drag_to(when)
    expect(when).to_have_value("{{ steps.fetch.output.text }}")
    idle(page)

    # Enter on a leaf inserts at the caret of the last focused field (the when editor).
    status_leaf = tree.get_by_role("treeitem", name=re.compile(r"^steps\.fetch\.output\.status "))
    status_leaf.focus()
    page.keyboard.press("Enter")
    expect(when).to_have_value("{{ steps.fetch.output.text }}{{ steps.fetch.output.status }}")
    idle(page)
    wait_for(
        lambda: "steps.fetch.output.status" in page.locator("#step-when").input_value(),
        "the inserted value",
    )


def test_a_leaf_dropped_on_a_fixed_field_maps_it(
    open_page: OpenPage, owner_state: dict[str, Any], hub_server: HubServer
) -> None:
    """A leaf dropped on a field in Fixed mode switches it to an expression holding exactly
    the leaf's expression (the fixed text is not kept), and the step saves it."""
    flow = document()
    flow["id"] = "expr-drop"
    flow["steps"].append(
        {
            "id": "send",
            "action": "http.request",
            "input": {"method": "POST", "url": "http://127.0.0.1:9/fixed"},
        }
    )
    hub_server.save_flow(flow)
    page, _watch = open_page(storage_state=owner_state, viewport={"width": 1280, "height": 2400})
    page.goto("/w/default/flows/expr-drop/build?step=send")
    settle(page)
    panel = page.locator("#builder-panel")
    switch = panel.get_by_role("switch", name=re.compile(r"^Url: Expression"))
    expect(switch).not_to_be_checked()
    field_id = str(switch.get_attribute("id")).removesuffix("-expr")
    fixed = panel.locator(f"#{field_id}-fixed input")
    expect(fixed).to_have_value("http://127.0.0.1:9/fixed")
    tree = panel.get_by_role("tree")
    # fetch is upstream of send; so is shape (data.set: nothing declared, no value known).
    leaf = tree.get_by_role("treeitem", name=re.compile(r"^steps\.fetch\.output\.status "))
    leaf.drag_to(fixed)
    expect(switch).to_be_checked()
    url = panel.locator('textarea[data-expression-field][data-pointer="/url"]')
    expect(url).to_have_value("{{ steps.fetch.output.status }}")
    expect(panel.locator(".expr-preview")).to_contain_text("Preview (schema example)")
    screenshot(page, "builder-expressions-dropped")
    idle(page)
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#builder-notice")).to_contain_text("Saved as version 2")
    with hub_server.api() as api:
        answer = api.get("/api/w/default/flows/expr-drop/versions/2")
    assert answer.status_code == 200, answer.text
    send = next(s for s in answer.json()["document"]["steps"] if s["id"] == "send")
    assert send["input"] == {"method": "POST", "url": "{{ steps.fetch.output.status }}"}

    # Its needs changed (from the trigger only): the data tree follows, fetch is not upstream.
    panel.get_by_text("Step settings", exact=True).click()
    panel.get_by_label("Starts from the trigger (waits for no step)").check()
    expect(tree.get_by_role("treeitem", name=re.compile(r"^steps\.fetch\.output "))).to_have_count(
        0
    )
    expect(tree.get_by_role("treeitem", name=re.compile(r"^trigger"))).to_be_visible()
