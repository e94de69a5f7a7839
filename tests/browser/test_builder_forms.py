"""The builder's step panel in a real browser: every construct of an action's input schema
filled through the form by its labels (a text switched to an expression, numbers, a
checkbox, an enum, a multi-line text, list rows, key-value rows with an expression value, a
nested object, a oneOf alternative, options listed by the connector) and the step's
settings; saved with the toolbar's Save and read back through the API: exactly what was
typed. And by keyboard alone: Tab to a field, type, and the draft changes while the field
keeps its focus and caret.

The hub runs ``tests.forms_plugin`` (``HUB_PLUGIN_MODULES``): the ``forms.every`` action has
every construct. The kit fails a test on any CSP violation or script error.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import OpenPage
from tests.browser.kit import (
    ARTIFACTS,
    AXE,
    ROOT,
    HubServer,
    expect,
    hub_serve,
    screenshot,
    settle,
    tab_to,
)

FLOW = "forms-flow"
BUILD = f"/w/default/flows/{FLOW}/build"
EXPRESSION = "{{ trigger.base }}/items?q={{ trigger.q | urlencode }}"


@pytest.fixture(scope="module")
def hub_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    """A hub of this module's own, with the test plugin of every construct."""
    with hub_serve(
        tmp_path_factory.mktemp("hub"),
        examples=False,
        HUB_PLUGIN_MODULES="tests.forms_plugin",
        PYTHONPATH=str(ROOT),
    ) as server:
        with server.api() as api:
            made = api.post(
                "/api/w/default/connections",
                json={"name": "main", "connector": "forms", "values": {"region": "eu"}},
            )
            assert made.status_code == 201, made.text
        yield server


def document(flow_id: str) -> dict[str, Any]:
    return {
        "id": flow_id,
        "name": "Forms",
        "trigger": {"type": "manual"},
        "steps": [
            {"id": "first", "action": "data.set", "input": {"value": 1}},
            {
                "id": "every",
                "action": "forms.every",
                "connection": "main",
                "input": {"url": "https://example.com/"},
            },
            {"id": "rescue", "name": "Rescue", "action": "data.set", "input": {"value": 0}},
        ],
    }


def latest(hub_server: HubServer, flow_id: str) -> tuple[int, dict[str, Any]]:
    """The flow's latest version and its document, through the API."""
    with hub_server.api() as api:
        versions = api.get(f"/api/w/default/flows/{flow_id}/versions")
        assert versions.status_code == 200, versions.text
        number = int(versions.json()[0]["version"])
        answer = api.get(f"/api/w/default/flows/{flow_id}/versions/{number}")
    assert answer.status_code == 200, answer.text
    return number, answer.json()["document"]


def type_expression(page: Any, label: str, text: str) -> None:
    """Type ``text`` into the expression field ``label`` as a person does: focused, the
    builder's code editor takes its place (its text is written back to the field)."""
    field = page.locator("#builder-panel").get_by_label(label, exact=True)
    field_id = field.get_attribute("id")
    field.click()
    field = page.locator(f"#{field_id}")
    editor = page.get_by_role("textbox", name=label, exact=True)
    expect(editor).to_be_focused()
    page.keyboard.press("Control+A")
    page.keyboard.type(text)
    page.keyboard.press("Escape")  # closes the completion list, if open
    expect(field).to_have_value(text)


PANEL_AXE = """async () => {
  const result = await window.axe.run(document.querySelector("#step-form"),
                                      {resultTypes: ["violations"]});
  return result.violations.filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => v.id + ": " + v.nodes.map((n) => n.target.join(" ")).join(", "));
}"""


def panel_axe(page: Any) -> list[str]:
    """axe-core's serious and critical violations inside the step panel's form (evaluated by the
    driver: the page's CSP is never loosened)."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(f"() => {{ {AXE.read_text()}\n }}")
    found: list[str] = page.evaluate(PANEL_AXE)
    return found


def idle(page: Any) -> None:
    """Wait until the panel has no save pending (typing saves after a pause) or in flight."""
    expect(page.locator("form[data-step-form]")).not_to_have_attribute("data-pending", "true")
    settle(page)


def test_every_construct_typed_lands_in_the_saved_document(
    open_page: OpenPage, owner_state: dict[str, Any], hub_server: HubServer
) -> None:
    hub_server.save_flow(document(FLOW))
    page, _watch = open_page(storage_state=owner_state, viewport={"width": 1280, "height": 3200})
    page.goto(f"{BUILD}?step=every")
    settle(page)
    panel = page.locator("#builder-panel")
    expect(panel.get_by_role("heading", name="every")).to_be_visible()

    # A text switched to an expression, typed with its template characters.
    panel.get_by_role("switch", name="Url: Expression").check()
    type_expression(page, "Url (expression)", EXPRESSION)
    panel.get_by_label("Count", exact=True).fill("7")
    panel.get_by_label("Ratio", exact=True).fill("0.25")
    # Each field saves a moment after it is typed in and its issues are placed above the
    # next fields: the checkbox is clicked once the panel is still (a click aimed while an
    # issue slot above it changes lands elsewhere).
    idle(page)
    panel.get_by_label("Enabled", exact=True).check()
    panel.get_by_label("Method", exact=True).select_option("POST")
    panel.get_by_label("Note", exact=True).fill("line one\nline two")
    panel.get_by_role("textbox", name="City", exact=True).fill("Oslo")
    idle(page)

    # A list row (the panel is drawn again with the new row focused).
    panel.get_by_role("button", name="Add an item to Tags").click()
    row = panel.get_by_label("Tags 1", exact=True)
    expect(row).to_be_focused()
    row.fill("alpha")
    # A key-value row whose value is an expression.
    panel.get_by_role("button", name="Add an entry to Headers").click()
    panel.get_by_label("Key 1", exact=True).fill("X-Trace")
    panel.get_by_role("switch", name="Value 1: Expression").check()
    type_expression(page, "Value 1 (expression)", "{{ trigger.id }}")
    idle(page)
    # Another alternative of the oneOf: its fields are drawn.
    panel.get_by_label("Kind of content", exact=True).select_option(label="Inline text")
    text = panel.get_by_role("textbox", name="Text", exact=True)
    expect(text).to_be_visible()
    text.fill("hi")
    # Options listed by the connector with the step's connection.
    expect(panel.get_by_role("status").filter(has_text="2 options listed")).to_be_visible()
    pipeline = panel.get_by_label("Pipeline", exact=True)
    pipeline.select_option(label="Sales (eu)")
    idle(page)
    # A connection made in another tab: Refresh lists it; choosing it lists the options
    # again, with it; back to the first.
    with hub_server.api() as api:
        made = api.post(
            "/api/w/default/connections",
            json={"name": "second", "connector": "forms", "values": {"region": "us"}},
        )
        assert made.status_code == 201, made.text
    panel.get_by_role("button", name="Refresh the connections").click()
    connection = panel.get_by_label("Connection", exact=True)
    expect(connection.locator("option", has_text="second")).to_have_count(1)
    connection.select_option("second")
    expect(pipeline.locator("option:checked")).to_have_text("Sales (us)")
    connection.select_option("main")
    expect(pipeline.locator("option:checked")).to_have_text("Sales (eu)")
    idle(page)

    # The settings.
    panel.get_by_text("Step settings", exact=True).click()
    panel.get_by_label("Starts from the trigger (waits for no step)").check()
    panel.get_by_label("Attempts at most").fill("3")
    panel.get_by_label("Backoff").select_option("constant")
    panel.get_by_label("First wait").fill("2s")
    panel.get_by_label("Timeout", exact=True).fill("30s")
    panel.get_by_label("When it fails").select_option(label="Run Rescue (rescue)")
    idle(page)
    expect(panel.locator("#step-issues")).to_be_empty()
    panel.screenshot(path=str(ARTIFACTS / "builder-forms-panel.png"))
    assert not panel_axe(page), panel_axe(page)

    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#builder-state")).to_contain_text("Saved as version 2")
    expect(page.locator("#builder-notice")).to_contain_text("Saved as version 2")
    number, saved = latest(hub_server, FLOW)
    assert number == 2
    every = next(s for s in saved["steps"] if s["id"] == "every")
    assert every == {
        "id": "every",
        "action": "forms.every",
        "connection": "main",
        "input": {
            "url": EXPRESSION,
            "count": 7,
            "ratio": 0.25,
            "enabled": True,
            "method": "POST",
            "note": "line one\nline two",
            "tags": ["alpha"],
            "headers": {"X-Trace": "{{ trigger.id }}"},
            "address": {"city": "Oslo"},
            "content": {"kind": "inline", "text": "hi"},
            "pipeline": "sales",
        },
        "needs": [],
        "retry": {"max_attempts": 3, "backoff": "constant", "initial": "2s"},
        "timeout": "30s",
        "on_error": "rescue",
    }
    # Drawn again from the saved draft: the expression is shown as typed, in its mode.
    page.reload()
    settle(page)
    expect(panel.get_by_role("switch", name="Url: Expression")).to_be_checked()
    expect(panel.get_by_label("Url (expression)", exact=True)).to_have_value(EXPRESSION)


def test_keyboard_only_tab_to_a_field_type_and_the_draft_changes(
    open_page: OpenPage, owner_state: dict[str, Any], hub_server: HubServer
) -> None:
    flow_id = "forms-keys"
    hub_server.save_flow(document(flow_id))
    page, _watch = open_page(storage_state=owner_state)
    page.goto(f"/w/default/flows/{flow_id}/build?step=every")
    settle(page)
    page.locator("#builder-panel").focus()
    tab_to(page, "input", "Name")
    page.keyboard.type("Fetch it")
    title = page.locator("#step-title")
    expect(title).to_have_text("Fetch it")  # saved: the heading came back out of band
    expect(page.locator("#builder-state")).to_contain_text("Unsaved changes")
    # The field kept its focus and its caret: typing on appends.
    name = page.get_by_label("Name", exact=True)
    expect(name).to_be_focused()
    page.keyboard.type(" all")
    expect(title).to_have_text("Fetch it all")
    expect(name).to_have_value("Fetch it all")
    # The switch of a field by keyboard: Space turns the URL into an expression.
    tab_to(page, "input", "Url: Expression")
    page.keyboard.press("Space")
    expect(page.get_by_label("Url (expression)", exact=True)).to_have_value("https://example.com/")
    page.keyboard.press("Tab")
    expect(page.get_by_role("textbox", name="Url (expression)", exact=True)).to_be_focused()
    page.keyboard.press("End")
    page.keyboard.type("{{ trigger.path }}")
    page.keyboard.press("Tab")  # leaving the editor saves at once
    idle(page)
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#builder-state")).to_contain_text("Saved as version 2")
    _number, saved = latest(hub_server, flow_id)
    every = next(s for s in saved["steps"] if s["id"] == "every")
    assert every["name"] == "Fetch it all"
    assert every["input"] == {"url": "https://example.com/{{ trigger.path }}"}
    # Undo takes the URL's edit back, and the panel shows the value it gives back.
    page.get_by_role("button", name="Undo").click()
    expect(page.locator("#f-v-url-text")).not_to_have_value(
        "https://example.com/{{ trigger.path }}"
    )
    expect(page.locator("#builder-panel [data-selected-step=every]")).to_be_visible()
    screenshot(page, "builder-forms-keyboard")
