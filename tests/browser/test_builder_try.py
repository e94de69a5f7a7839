"""The builder's try-it in a real browser: a sample pasted, a step tested against a loopback
stand-in, its output pinned, and a test run up to a later step that does not call the
pinned step (the stand-in's own count) and reads the pinned output; the test run's page is
marked as one."""

from __future__ import annotations

import re
from typing import Any

from tests.browser.conftest import OpenPage
from tests.browser.kit import (
    HubServer,
    StandIn,
    assert_accessible,
    expect,
    screenshot,
    settle,
    wait_for,
)

FLOW = "try-pin"
BUILD = f"/w/default/flows/{FLOW}/build"
#: The axe rules the try-it's parts answer for (the canvas's own are its tests').
AXE_RULES = [
    "label",
    "button-name",
    "link-name",
    "select-name",
    "color-contrast",
    "list",
    "listitem",
    "aria-allowed-attr",
    "aria-valid-attr-value",
    "aria-prohibited-attr",
    "duplicate-id-aria",
]


def fetch_flow(base: str) -> dict[str, Any]:
    """fetch (http.request to the stand-in) -> use (reads fetch's output and the trigger)."""
    return {
        "id": FLOW,
        "name": "Try and pin",
        "trigger": {"type": "manual"},
        "steps": [
            {
                "id": "fetch",
                "action": "http.request",
                "input": {"method": "GET", "url": base + "/thing"},
            },
            {
                "id": "use",
                "action": "data.set",
                "input": {"value": "{{ steps.fetch.output.json.call * 100 + trigger.add }}"},
                "needs": ["fetch"],
            },
        ],
    }


def test_a_pinned_step_is_not_called_by_a_test_run_up_to_a_later_step(
    open_page: OpenPage, owner_state: dict[str, Any], hub_server: HubServer
) -> None:
    with StandIn() as service:
        hub_server.save_flow(fetch_flow(service.base))
        page, _ = open_page(storage_state=owner_state)

        # The sample trigger data, pasted in the "Try the flow" panel.
        page.goto(f"{BUILD}?panel=try")
        settle(page)
        page.get_by_label("Sample (JSON)").fill('{"add": 5}')
        page.get_by_role("button", name="Keep as sample").click()
        expect(page.get_by_text("The sample is kept.")).to_be_visible()
        screenshot(page, "builder-try-panel")
        assert_accessible(page, "builder try panel", AXE_RULES)

        # Test the step "fetch": the stand-in is called once; pin its output.
        page.goto(f"{BUILD}?step=fetch")
        page.get_by_role("button", name="Test this step").click()
        pin = page.get_by_role("button", name="Pin this output of fetch")
        expect(pin).to_be_visible()
        assert service.count("/thing") == 1
        pin.click()
        expect(page.locator("#step-try .try-pinned")).to_have_text(re.compile("Pinned"))
        expect(page.get_by_role("button", name="Unpin the output of fetch")).to_be_visible()
        screenshot(page, "builder-try-pinned")

        # A test run up to "use": "fetch" is pinned, not called; "use" reads the pin.
        page.goto(f"{BUILD}?step=use")
        page.get_by_role("button", name="Run the flow up to here").click()
        run = page.locator("#try-run")
        expect(run).to_have_attribute("data-status", "succeeded", timeout=30_000)
        expect(run.get_by_label("Step fetch")).to_contain_text("pinned: not called")
        expect(run.get_by_label("Step use")).to_contain_text("105")
        assert service.count("/thing") == 1
        screenshot(page, "builder-try-run")
        assert_accessible(page, "builder step with a test run", AXE_RULES)
        run_id = run.get_attribute("data-run")
        assert run_id

        # The test run's page says what it is.
        run.get_by_role("link", name=re.compile(r"^Test run ")).click()
        page.wait_for_url(re.compile(rf"/runs/{run_id}$"))
        expect(page.get_by_text("Test run (from the builder)")).to_be_visible()
        screenshot(page, "builder-try-run-page")
        wait_for(lambda: hub_server.run(run_id)["status"] == "succeeded", "succeeded")
        assert service.count("/thing") == 1

        # The runs list leaves it out, unless "Test runs" is ticked.
        page.goto("/w/default/runs")
        expect(page.get_by_role("link", name=run_id, exact=True)).to_have_count(0)
        page.get_by_label("Test runs").check()
        page.get_by_role("button", name="Filter").click()
        page.wait_for_url(re.compile(r"/runs\?.*trial=true"))
        expect(page.get_by_role("link", name=run_id, exact=True)).to_be_visible()
        screenshot(page, "runs-test-runs")
