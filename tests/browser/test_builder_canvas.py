"""The builder's canvas and its graph commands in a real browser, by keyboard alone: a step
reached with Tab and the arrow keys, duplicated with ``d``, the copy renamed with ``r``,
another step deleted with Delete; Ctrl+Z three times gives back the saved document (the
draft is not dirty: nothing to save), Ctrl+Shift+Z three times gives back the edited one (saved, and
read through the API: exactly what the commands compute). The zoom buttons change the
drawing's viewBox, the layout toggle lays it out top to bottom, the list view moves a step
after confirming what changes. The kit fails the test on any CSP violation or script
error."""

from __future__ import annotations

import copy
import re
from typing import Any

import jsonpatch

from hub.web.builder import commands
from tests.browser.conftest import OpenPage
from tests.browser.kit import HubServer, expect, focused, screenshot, settle

FLOW = "canvas-keys"
BUILD = f"/w/default/flows/{FLOW}/build"


def four_steps() -> dict[str, Any]:
    """fetch -> format -> notify -> log (each needing the one before it, implicitly)."""
    return {
        "id": FLOW,
        "name": "Canvas by keyboard",
        "trigger": {"type": "manual"},
        "steps": [
            {"id": "fetch", "action": "data.set", "input": {"value": "{{ trigger.n }}"}},
            {"id": "format", "action": "data.set", "input": {"value": "{{ steps.fetch.output }}"}},
            {"id": "notify", "action": "data.set", "input": {"value": "{{ steps.format.output }}"}},
            {"id": "log", "action": "data.set", "input": {"value": "{{ steps.fetch.output }}"}},
        ],
    }


def saved(hub_server: HubServer) -> tuple[int, dict[str, Any]]:
    """The flow's latest version and its document, read through the API."""
    with hub_server.api() as api:
        versions = api.get(f"/api/w/default/flows/{FLOW}/versions")
        assert versions.status_code == 200, versions.text
        latest = int(versions.json()[0]["version"])
        answer = api.get(f"/api/w/default/flows/{FLOW}/versions/{latest}")
    assert answer.status_code == 200, answer.text
    return latest, answer.json()["document"]


def node(page: Any, step_id: str) -> Any:
    return page.locator(f'#builder-canvas a.node[data-step="{step_id}"]')


def idle(page: Any) -> None:
    """Wait until htmx has no request in flight and nothing swapping or settling (a button
    swapped in is live only once settled)."""
    page.wait_for_function(
        "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')"
    )


def expect_focus_on(page: Any, step_id: str) -> None:
    expect(node(page, step_id)).to_be_focused()


def test_canvas_commands_by_keyboard_and_undo_redo_restore_exactly(
    open_page: OpenPage, owner_state: dict[str, Any], hub_server: HubServer
) -> None:
    original = four_steps()
    hub_server.save_flow(original)
    first_version, first_document = saved(hub_server)
    page, _ = open_page(storage_state=owner_state)
    page.goto(BUILD)
    settle(page)

    # Tab from the "Keys" button onto the drawing, then into its steps: the trigger first,
    # the arrow key to the next layer.
    page.get_by_role("button", name="Keys").focus()
    page.keyboard.press("Tab")
    expect(page.locator("#builder-canvas-svg")).to_be_focused()
    page.keyboard.press("Tab")
    assert (focused(page) or {}).get("label", "").startswith("Trigger")
    page.keyboard.press("ArrowRight")
    expect_focus_on(page, "fetch")
    page.keyboard.press("ArrowRight")
    expect_focus_on(page, "format")

    # d: a copy of format, right after it, on its own branch; the focus is on the copy.
    page.keyboard.press("d")
    expect(node(page, "format_copy")).to_be_visible()
    expect_focus_on(page, "format_copy")
    expect(page.locator("#step-commands[data-commands-step=format_copy]")).to_be_visible()

    # r: the step panel's id field; type the new id, Enter; back on the canvas.
    idle(page)
    page.keyboard.press("r")
    rename = page.get_by_label("Id", exact=True)
    expect(rename).to_be_focused()
    page.keyboard.press("Control+A")
    page.keyboard.type("shape")
    page.keyboard.press("Enter")
    expect(node(page, "shape")).to_be_visible()
    expect(node(page, "format_copy")).to_have_count(0)
    expect_focus_on(page, "shape")
    screenshot(page, "builder-canvas-renamed")

    # Delete on notify (arrow keys across the layers), after the question.
    idle(page)
    page.keyboard.press("ArrowRight")
    expect_focus_on(page, "notify")
    page.once("dialog", lambda dialog: dialog.accept())
    idle(page)
    page.keyboard.press("Delete")
    expect(node(page, "notify")).to_have_count(0)
    expect(page.locator("[data-builder-undo]")).to_contain_text("delete step notify")

    edited = copy.deepcopy(original)
    ops, _ = commands.duplicate_step(edited, "format")
    edited = _apply(edited, ops)
    edited = _apply(edited, commands.rename_step(edited, "format_copy", "shape"))
    edited = _apply(edited, commands.delete_step(edited, "notify"))

    # Ctrl+Z three times: the document as saved.
    labels = ["delete step notify", "rename step format_copy to shape", "duplicate step format"]
    for label in labels:
        undo = page.locator("[data-builder-undo]")
        expect(undo).to_have_attribute("title", re.compile(re.escape(label)))
        idle(page)
        page.keyboard.press("Control+z")
        expect(undo).not_to_have_attribute("title", re.compile(re.escape(label) + r" \("))
    expect(page.locator("[data-builder-undo]")).to_be_disabled()
    for step_id in ("fetch", "format", "notify", "log"):
        expect(node(page, step_id)).to_have_count(1)
    expect(node(page, "shape")).to_have_count(0)
    # The draft is the saved version again: nothing to save.
    expect(page.locator("#builder-state")).to_contain_text(f"Saved as version {first_version}")
    expect(page.get_by_role("button", name="Save")).to_be_disabled()
    assert saved(hub_server) == (first_version, first_document)

    # Ctrl+Shift+Z three times: the edited document again, saved as a new version.
    idle(page)
    node(page, "fetch").focus()
    for _ in range(3):
        redo = page.locator("[data-builder-redo]")
        expect(redo).to_be_enabled()
        idle(page)
        title = redo.get_attribute("title")
        page.keyboard.press("Control+Shift+Z")
        expect(redo).not_to_have_attribute("title", title or "")
    expect(page.locator("[data-builder-redo]")).to_be_disabled()
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#builder-notice")).to_contain_text("Saved as version")
    version, document = saved(hub_server)
    assert version == first_version + 1
    assert document == edited
    screenshot(page, "builder-canvas-after-redo")


def _apply(document: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = jsonpatch.apply_patch(document, ops)
    return result


def viewbox(page: Any) -> list[float]:
    value = page.locator("#builder-canvas-svg").get_attribute("viewBox") or ""
    return [float(v) for v in value.split()]


def test_zoom_buttons_layout_toggle_and_moving_in_the_list(
    open_page: OpenPage, owner_state: dict[str, Any], hub_server: HubServer
) -> None:
    document = four_steps()
    document["id"] = FLOW + "-2"
    hub_server.save_flow(document)
    build = f"/w/default/flows/{FLOW}-2/build"
    page, _ = open_page(storage_state=owner_state)
    page.goto(build)
    settle(page)

    start = viewbox(page)
    page.get_by_role("button", name="Zoom in").click()
    page.wait_for_function(
        "(w) => +document.getElementById('builder-canvas-svg').getAttribute('viewBox')"
        ".split(' ')[2] < w",
        arg=start[2],
    )
    page.get_by_role("button", name="Zoom out").click()
    page.get_by_role("button", name="Zoom out").click()
    page.wait_for_function(
        "(w) => +document.getElementById('builder-canvas-svg').getAttribute('viewBox')"
        ".split(' ')[2] > w",
        arg=start[2],
    )
    page.get_by_role("button", name="Fit the flow in view").click()
    page.wait_for_function(
        "(v) => document.getElementById('builder-canvas-svg').getAttribute('viewBox') === v",
        arg=" ".join(str(round(v)) for v in start),
    )

    # Keys: the help shows and hides.
    keys = page.get_by_role("button", name="Keys")
    keys.click()
    expect(page.locator("#builder-canvas-keys")).to_be_visible()
    expect(keys).to_have_attribute("aria-expanded", "true")
    screenshot(page, "builder-canvas-keys")
    keys.click()
    expect(page.locator("#builder-canvas-keys")).to_be_hidden()

    # Top to bottom: the page says so, and an edit (d on a step) keeps the layout.
    page.get_by_role("link", name="Lay out top to bottom").click()
    page.wait_for_url(re.compile(r"direction=TB"))
    expect(page.locator("#builder-canvas")).to_have_attribute("data-direction", "TB")
    steps_tab = page.get_by_role("link", name="Steps list")
    expect(steps_tab).to_have_attribute("href", re.compile(r"direction=TB"))
    expect(node(page, "format")).to_have_attribute("href", re.compile(r"direction=TB"))
    idle(page)
    node(page, "format").focus()
    page.keyboard.press("d")
    expect(node(page, "format_copy")).to_be_visible()
    expect(page.locator("#builder-canvas")).to_have_attribute("data-direction", "TB")
    screenshot(page, "builder-canvas-top-to-bottom")

    # a and b open the catalog to add after, or beside, the focused step.
    idle(page)
    node(page, "notify").focus()
    page.keyboard.press("a")
    expect(page.get_by_role("heading", name="Add a step after notify")).to_be_visible()
    idle(page)
    node(page, "notify").focus()
    page.keyboard.press("b")
    expect(page.get_by_role("heading", name="Add a step as a branch from notify")).to_be_visible()

    # c: connect from; a cycle is refused with the validator's words, the field kept.
    idle(page)
    node(page, "fetch").focus()
    page.keyboard.press("c")
    source = page.get_by_label("Connect from…")
    expect(source).to_be_focused()
    page.keyboard.type("log")
    expect(source).to_have_value("log")
    idle(page)
    page.keyboard.press("Enter")
    expect(page.locator("#step-commands-error")).to_contain_text(
        "needs form a cycle: fetch -> log -> notify -> format -> fetch"
    )
    expect(page.get_by_label("Connect from…")).to_be_focused()
    expect(page.get_by_label("Connect from…")).to_have_value("log")
    screenshot(page, "builder-commands-refused")
    page.keyboard.press("Escape")
    expect(node(page, "fetch")).to_be_focused()
    idle(page)
    node(page, "log").focus()
    idle(page)
    page.keyboard.press("c")
    expect(page.get_by_label("Connect from…")).to_be_focused()
    page.keyboard.type("format_copy")
    idle(page)
    page.keyboard.press("Enter")
    expect(node(page, "log")).to_be_focused()
    expect(node(page, "log")).to_have_attribute(
        "aria-label", re.compile("needs notify, format_copy")
    )
    idle(page)
    page.keyboard.press("Control+z")
    expect(node(page, "log")).to_have_attribute("aria-label", re.compile("needs notify$"))

    # The list view: move log up above notify after the question, keeping dependencies.
    page.goto(build + "?view=list")
    settle(page)
    idle(page)
    page.get_by_role("button", name="Move log up").focus()
    idle(page)
    page.keyboard.press("Enter")
    confirm = page.locator(".move-confirm")
    expect(confirm).to_contain_text("'log' will need 'format_copy' instead of 'notify'")
    screenshot(page, "builder-list-move-confirm")
    expect(page.get_by_role("button", name="Move", exact=True)).to_be_focused()
    idle(page)
    page.keyboard.press("Tab")
    keep = page.get_by_role("button", name="Keep explicit dependencies")
    expect(keep).to_be_focused()
    keep.press("Enter")
    expect(page.locator("#builder-steps li.builder-step").nth(3)).to_have_attribute(
        "data-step", "log"
    )
    expect(page.get_by_role("button", name="Move log up")).to_be_focused()
    steps = page.locator("#builder-steps li.builder-step")
    expect(steps.nth(3)).to_contain_text("needs notify")  # as before the move
    expect(steps.nth(4)).to_have_attribute("data-step", "notify")
    expect(steps.nth(4)).to_contain_text("needs format")
