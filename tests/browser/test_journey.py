"""A newcomer's journey in a real browser, against a real ``hub serve``.

Sign in with the first owner's password, see the example flows, copy a flow's webhook URL
from its page and send an order to it (as the shop would), watch the run appear and finish
on the runs list and on its page without a reload, read a step's output. Then a flow whose
``http.request`` steps call a loopback stand-in (500 on the first call of one path, 200
after) fails, is retried from the failed step with the run page's button, and succeeds; the
stand-in's counts show that the step before it was not called again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.browser.conftest import OpenPage
from tests.browser.kit import (
    DEADLINE,
    ROOT,
    HubServer,
    StandIn,
    expect,
    screenshot,
    settle,
    sign_in,
)

ORDER = json.loads((ROOT / "examples" / "inputs" / "order.json").read_text())
TIMEOUT = DEADLINE * 1000  # Playwright counts milliseconds
MARK = "window.__notReloaded = true"
NOT_RELOADED = "window.__notReloaded === true"


@pytest.fixture(scope="module")
def stand_in() -> Iterator[StandIn]:
    """A stand-in whose ``/flaky`` answers 500 once, then 200; ``/first`` always 200."""
    with StandIn(fail_first={"/flaky": 1}) as server:
        yield server


def mark_page(page: Any) -> None:
    """Mark the document: a reload (or a navigation) would forget the mark."""
    page.evaluate(MARK)


def still_the_same_document(page: Any) -> bool:
    return bool(page.evaluate(NOT_RELOADED))


def test_a_newcomer_signs_in_triggers_an_example_and_watches_it_live(
    open_page: OpenPage, hub_server: HubServer
) -> None:
    page, _ = open_page()
    sign_in(page, hub_server.base, hub_server.owner_email, hub_server.owner_password)

    # The example flows, on the Flows page.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Flows").click()
    settle(page)
    expect(page.get_by_role("heading", name="Flows", level=1)).to_be_visible()
    for name in ("New order -> priced lines, total, review flag", "Retry, time out, and recover"):
        expect(page.get_by_role("link", name=name)).to_be_visible()
    screenshot(page, "journey-flows")

    # The flow's page shows its webhook URL: copy it, as a person would.
    page.get_by_role("link", name="New order -> priced lines, total, review flag").click()
    settle(page)
    webhook = page.locator("#webhook-url").inner_text().strip()
    assert webhook.endswith("/hooks/default/new-order"), webhook
    path = webhook[webhook.index("/hooks/") :]

    # The order comes in; the run is on the Runs page, and it has finished.
    answer = httpx.post(hub_server.url(path), json=ORDER)
    assert answer.status_code == 202, answer.text
    run_id = answer.json()["run_id"]
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Runs").click()
    settle(page)
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=run_id, exact=True))
    expect(row).to_contain_text("succeeded", timeout=TIMEOUT)
    screenshot(page, "journey-runs")

    # The run, and a step's output.
    row.get_by_role("link", name=run_id, exact=True).click()
    page.wait_for_load_state("load")
    expect(page.get_by_role("heading", level=1)).to_contain_text("succeeded")
    total = page.locator("#step-total")
    expect(total).to_contain_text("1113.97")
    screenshot(page, "journey-run")


def test_a_running_run_finishes_live_on_its_page(
    open_page: OpenPage, owner_state: dict[str, Any], hub_server: HubServer
) -> None:
    hub_server.save_flow(
        {
            "id": "slow-order",
            "name": "A slow order",
            "trigger": {"type": "webhook"},
            "steps": [
                {"id": "wait", "action": "flow.delay", "input": {"seconds": 2}},
                {"id": "done", "action": "data.set", "input": {"value": "done waiting"}},
            ],
        }
    )
    page, _ = open_page(storage_state=owner_state)
    run_id = hub_server.webhook("slow-order", {"n": 1})
    with page.expect_response(lambda r: r.url.endswith(f"/runs/{run_id}/live")) as stream:
        answer = page.goto(f"/w/default/runs/{run_id}")
    heading = page.get_by_role("heading", level=1)
    expect(heading).not_to_contain_text("succeeded")  # it is still running
    mark_page(page)
    expect(heading).to_contain_text("succeeded", timeout=TIMEOUT)
    expect(page.locator("#step-done")).to_contain_text("done waiting", timeout=TIMEOUT)
    assert still_the_same_document(page), "the run's page was reloaded"
    # The page is compressed; its event stream is not (gzip would hold its events back).
    assert answer is not None and answer.headers.get("content-encoding") == "gzip"
    assert stream.value.headers["content-type"].startswith("text/event-stream")
    assert "content-encoding" not in stream.value.headers


def calling_flow(stand_in: StandIn) -> dict[str, Any]:
    """A flow of two ``http.request`` steps on the stand-in: ``/first``, then ``/flaky``."""
    return {
        "id": "call-the-stand-in",
        "name": "Call the stand-in",
        "trigger": {"type": "webhook"},
        "steps": [
            {"id": "first", "action": "http.request", "input": {"url": f"{stand_in.base}/first"}},
            {"id": "flaky", "action": "http.request", "input": {"url": f"{stand_in.base}/flaky"}},
        ],
    }


def test_a_failed_run_is_retried_from_its_failed_step_in_the_page(
    open_page: OpenPage, owner_state: dict[str, Any], hub_server: HubServer, stand_in: StandIn
) -> None:
    flow_id = hub_server.save_flow(calling_flow(stand_in))
    run_id = hub_server.webhook(flow_id, {"order": 7})
    assert hub_server.wait_run(run_id)["status"] == "failed"
    assert (stand_in.count("/first"), stand_in.count("/flaky")) == (1, 1)

    page, _ = open_page(storage_state=owner_state)
    page.goto(f"/w/default/runs?flow={flow_id}&status=failed")
    settle(page)
    page.get_by_role("link", name=run_id, exact=True).click()
    page.wait_for_load_state("load")
    expect(page.get_by_role("heading", level=1)).to_contain_text("failed")
    expect(page.locator("#step-flaky")).to_contain_text("500")
    screenshot(page, "journey-failed-run")

    page.get_by_role("button", name="Retry from the failed step").click()
    page.wait_for_url(re.compile(re.escape(run_id)))
    expect(page.get_by_role("heading", level=1)).to_contain_text("succeeded", timeout=TIMEOUT)
    expect(page.locator("#step-flaky")).to_contain_text("200", timeout=TIMEOUT)
    screenshot(page, "journey-retried-run")
    assert stand_in.count("/flaky") == 2, "the failed step ran again once"
    assert stand_in.count("/first") == 1, "the step that had succeeded was called again"


def test_a_new_run_appears_on_the_open_runs_list_without_a_reload(
    open_page: OpenPage, owner_state: dict[str, Any], hub_server: HubServer
) -> None:
    page, _ = open_page(storage_state=owner_state)
    page.goto("/w/default/runs?flow=new-order")
    settle(page)
    mark_page(page)
    run_id = hub_server.webhook("new-order", ORDER)
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=run_id, exact=True))
    expect(row).to_contain_text("succeeded", timeout=TIMEOUT)
    assert still_the_same_document(page), "the runs list was reloaded"


def accept_dialogs(page: Any) -> list[str]:
    """Accept every confirmation the page asks for; return their messages as they come."""
    asked: list[str] = []

    def accept(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    return asked


def test_a_running_run_is_cancelled_and_a_finished_one_replayed_after_confirming(
    open_page: OpenPage, owner_state: dict[str, Any], hub_server: HubServer
) -> None:
    hub_server.save_flow(
        {
            "id": "long-wait",
            "name": "A long wait",
            "trigger": {"type": "webhook"},
            "steps": [{"id": "wait", "action": "flow.delay", "input": {"seconds": 60}}],
        }
    )
    run_id = hub_server.webhook("long-wait", {"n": 1})
    page, _ = open_page(storage_state=owner_state)
    asked = accept_dialogs(page)
    page.goto(f"/w/default/runs/{run_id}")
    page.get_by_role("button", name="Cancel run").click()
    page.wait_for_url(re.compile(rf"{run_id}\?done=cancelled"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("cancelled")
    assert asked and "Cancel this run" in asked[0], asked
    assert hub_server.run(run_id)["status"] == "cancelled"

    done = hub_server.webhook("new-order", ORDER)
    hub_server.wait_run(done)
    page.goto(f"/w/default/runs/{done}")
    page.get_by_role("button", name="Replay").click()
    page.wait_for_url(re.compile(r"\?done=replayed"))
    replayed = page.url.split("/runs/")[1].split("?")[0]
    assert replayed != done
    expect(page.get_by_text("This is a new run with the same trigger data")).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_contain_text("succeeded")
    assert hub_server.run(replayed)["trigger"]["body"] == ORDER


def test_the_runs_list_is_filtered_in_the_url(
    open_page: OpenPage, owner_state: dict[str, Any], hub_server: HubServer
) -> None:
    hub_server.wait_run(hub_server.webhook("new-order", ORDER))
    page, _ = open_page(storage_state=owner_state)
    page.goto("/w/default/runs")
    settle(page)
    page.get_by_label("Flow").fill("new-order")
    page.get_by_label("Status").select_option("succeeded")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(
        re.compile(r"flow=new-order.*status=succeeded|status=succeeded.*flow=new-order")
    )
    settle(page)
    rows = page.locator("#run-rows tr")
    expect(rows.first).to_be_visible()
    for text in rows.all_inner_texts():
        assert "new-order" in text and "succeeded" in text, text
    shared = page.url  # a filtered list is a link to share
    other, _ = open_page(storage_state=owner_state)
    other.goto(shared)
    settle(other)
    expect(other.get_by_label("Flow")).to_have_value("new-order")
    expect(other.get_by_label("Status")).to_have_value("succeeded")


def test_the_runs_list_finds_text_in_the_trigger_data_and_says_what_it_searched(
    open_page: OpenPage, owner_state: dict[str, Any], hub_server: HubServer
) -> None:
    wanted = hub_server.webhook("new-order", {**ORDER, "order_id": "NEEDLE-4242"})
    other = hub_server.webhook("new-order", {**ORDER, "order_id": "HAY-1"})
    for run_id in (wanted, other):
        hub_server.wait_run(run_id)
    page, _ = open_page(storage_state=owner_state)
    page.goto("/w/default/runs")
    settle(page)
    page.get_by_label("Trigger data contains").fill("NEEDLE-4242")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"q=NEEDLE-4242"))
    settle(page)
    expect(page.get_by_role("link", name=wanted, exact=True)).to_be_visible()
    expect(page.get_by_role("link", name=other, exact=True)).to_have_count(0)
    expect(page.locator("#scan-note")).to_contain_text("Searched the trigger data of")


def test_a_run_links_the_runs_its_steps_started(
    open_page: OpenPage, owner_state: dict[str, Any], hub_server: HubServer
) -> None:
    parent = hub_server.start_run("invoice-reminders")
    assert hub_server.wait_run(parent)["status"] == "succeeded"
    page, _ = open_page(storage_state=owner_state)
    page.goto(f"/w/default/runs/{parent}")
    page.wait_for_load_state("load")
    remind = page.locator("#step-remind")
    expect(remind).to_contain_text("Runs it started")
    children = remind.get_by_role("link", name=re.compile(r"^[0-9a-f]{32}$"))
    expect(children).to_have_count(2)  # the two invoices overdue by 7 days or more
    children.first.click()
    page.wait_for_url(re.compile(r"/w/default/runs/[0-9a-f]{32}$"))
    page.wait_for_load_state("load")
    expect(page.get_by_role("link", name="send-reminder")).to_be_visible()
