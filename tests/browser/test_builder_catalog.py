"""The builder's catalog, trigger panel and flow panel in a real browser: a new flow opened
through the UI, a webhook trigger chosen, ``http.request`` added from the catalog by
searching, ``data.set`` added after it, the flow named (typing keeps the focus: the answer
is out of band only), saved from the toolbar, and the saved document read back through the
API."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.browser.conftest import OpenPage
from tests.browser.kit import HubServer, axe_violations, expect, focused, screenshot, settle

FLOW = "catalog-built"
BUILD = f"/w/default/flows/{FLOW}/build"


PANEL_AXE = """async () => {
  const result = await window.axe.run("#builder-panel", {resultTypes: ["violations"]});
  return result.violations.filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => v.id + ": " + v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", "));
}"""


def panel_accessible(page: Any, name: str) -> None:
    """No serious or critical axe violation in the side panel (the panels of this part;
    the canvas beside it is checked by its own tests)."""
    axe_violations(page, ["region"])  # loads axe-core into the page (evaluated, not a tag)
    found = page.evaluate(PANEL_AXE)
    assert not found, f"axe ({name}): {found}"


def set_input(page: Any, step: str, value: dict[str, Any]) -> None:
    """Set a step's input through the builder's edit endpoint (the step panel's form is
    another part's, tested on its own), with the page's cookies and CSRF token."""
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    index = {"http_request": 0, "data_set": 1}[step]
    ops = [{"op": "replace", "path": f"/steps/{index}/input", "value": value}]
    answer = page.request.post(
        BUILD + "/edit",
        form={"ops": json.dumps(ops), "label": f"input of {step}"},
        headers={"x-csrftoken": token, "hx-request": "true"},
    )
    assert answer.ok, answer.text()


def test_a_flow_built_from_the_catalog_saves_what_was_chosen(
    open_page: OpenPage, owner_state: dict[str, Any], hub_server: HubServer
) -> None:
    page, _ = open_page(storage_state=owner_state)

    # A new flow, named through the UI.
    page.goto("/w/default/flows/_build")
    page.get_by_label("Name").fill("Catalog built")
    page.get_by_label(re.compile("^Id")).fill(FLOW)
    page.get_by_role("button", name="Open the builder").click()
    page.wait_for_url(re.compile(rf"{BUILD}$"))
    settle(page)

    # The trigger: a webhook, chosen among every trigger the registry offers.
    page.locator("#builder-panel").get_by_role("link", name="trigger").click()
    panel = page.locator("#builder-panel")
    expect(panel.locator('[data-panel="trigger"]')).to_be_visible()
    panel.locator('input[name="type"][value="webhook"]').check()
    panel.get_by_role("button", name="Use this trigger").click()
    expect(panel.locator("#trigger-webhook-url")).to_have_text(
        re.compile(rf"/hooks/default/{FLOW}$")
    )
    expect(panel.get_by_role("button", name="Copy the URL")).to_be_visible()
    panel.locator("#trigger-webhook-url").scroll_into_view_if_needed()
    screenshot(page, "builder-trigger-webhook")
    panel_accessible(page, "builder-trigger")

    # http.request from the catalog, found by searching.
    page.get_by_role("link", name="Add a step").first.click()
    search = panel.get_by_label("Search the actions")
    expect(search).to_be_visible()
    search.press_sequentially("http req")
    expect(panel.locator('button[data-action="data.set"]')).to_have_count(0)
    expect(panel.locator("#catalog-count")).to_contain_text("match")
    screenshot(page, "builder-catalog-search")
    panel_accessible(page, "builder-catalog")
    panel.locator('button[data-action="http.request"]').click()
    expect(panel.locator('[data-selected-step="http_request"]')).to_be_visible()
    expect(page).to_have_url(re.compile(r"\?step=http_request$"))

    # data.set right after it (the catalog opened as the step's "Add after" opens it).
    page.goto(f"{BUILD}?panel=catalog&after=http_request")
    expect(
        panel.get_by_role("heading", name=re.compile("Add a step after http_request"))
    ).to_be_visible()
    panel.get_by_label("Search the actions").fill("set")
    panel.locator('button[data-action="data.set"]').focus()
    page.keyboard.press("Enter")  # keyboard operable
    expect(panel.locator('[data-selected-step="data_set"]')).to_be_visible()

    # The flow's name, typed in the flow panel: the field keeps the focus.
    page.goto(f"{BUILD}?panel=flow")
    name = panel.get_by_label("Name", exact=True)
    name.fill("")
    name.press_sequentially("Built from the catalog")
    expect(page.locator("#builder-toolbar h1")).to_contain_text("Built from the catalog")
    now = focused(page)
    assert now and now["tag"] == "input", now
    assert page.evaluate("document.activeElement.id") == "flow-name"
    screenshot(page, "builder-flow-panel")
    panel_accessible(page, "builder-flow-panel")

    # The steps' inputs (the step panel's part), then save from the toolbar.
    set_input(page, "http_request", {"method": "GET", "url": "http://127.0.0.1:9/x"})
    set_input(page, "data_set", {"value": "{{ steps.http_request.output.status }}"})
    page.reload()
    settle(page)
    expect(page.locator("#builder-toolbar")).to_contain_text("Valid")
    page.locator("#builder-toolbar").get_by_role("button", name="Save").click()
    expect(page.locator("#builder-notice")).to_contain_text("Saved as version 1")

    with hub_server.api() as api:
        answer = api.get(f"/api/w/default/flows/{FLOW}")
    assert answer.status_code == 200, answer.text
    document = answer.json()["document"]
    assert document == {
        "id": FLOW,
        "name": "Built from the catalog",
        "trigger": {"type": "webhook"},
        "steps": [
            {
                "id": "http_request",
                "name": "HTTP request",
                "action": "http.request",
                "input": {"method": "GET", "url": "http://127.0.0.1:9/x"},
            },
            {
                "id": "data_set",
                "name": "Set a value",
                "action": "data.set",
                "input": {"value": "{{ steps.http_request.output.status }}"},
            },
        ],
    }


def test_a_schedule_shows_its_errors_at_the_field_and_its_next_runs(
    open_page: OpenPage, owner_state: dict[str, Any], hub_server: HubServer
) -> None:
    flow = "catalog-schedule"
    build = f"/w/default/flows/{flow}/build"
    hub_server.save_flow(
        {
            "id": flow,
            "trigger": {"type": "schedule", "config": {"cron": "0 * * * *"}},
            "steps": [{"id": "noop", "action": "flow.noop"}],
        },
        publish=False,
    )
    page, _ = open_page(storage_state=owner_state, color_scheme="dark")
    page.goto(f"{build}?panel=trigger")
    panel = page.locator("#builder-panel")
    expect(panel.locator("#trigger-schedule li")).to_have_count(5)

    # A bad cron: the server's error under the field, the focus still in it.
    cron = panel.get_by_label(re.compile("^Cron"))
    cron.fill("")
    cron.press_sequentially("every day")
    error = panel.locator("#f-v-cron-error")
    expect(error).to_contain_text("not a valid cron expression")
    expect(cron).to_have_attribute("aria-invalid", "true")
    expect(panel.locator("#trigger-schedule")).to_contain_text("cannot be read")
    assert page.evaluate("document.activeElement.id") == "f-v-cron"
    screenshot(page, "builder-trigger-bad-cron")
    panel_accessible(page, "builder-trigger-schedule")

    # A preset fixes it; a time zone from the select; the next runs follow.
    panel.get_by_role("button", name=re.compile("^Weekdays at 09:00")).click()
    expect(panel.get_by_label(re.compile("^Cron"))).to_have_value("0 9 * * 1-5")
    expect(panel.locator("#f-v-cron-error")).to_have_count(0)
    panel.get_by_label("Timezone").select_option("Asia/Tokyo")
    expect(panel.locator("#trigger-schedule li")).to_have_count(5)
    expect(panel.locator("#trigger-schedule li").first).to_contain_text("09:00 JST")
    panel.locator("#trigger-schedule").scroll_into_view_if_needed()
    screenshot(page, "builder-trigger-schedule")
    # The draft kept both (one edit each: the toolbar's undo names the last).
    page.reload()
    expect(panel.get_by_label(re.compile("^Cron"))).to_have_value("0 9 * * 1-5")
    expect(panel.get_by_label("Timezone")).to_have_value("Asia/Tokyo")
    expect(page.locator("[data-builder-undo]")).to_contain_text("trigger settings")
