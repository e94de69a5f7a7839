"""The example flows validate and run with no outside service."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hub.flows import parse_document
from hub.runtime import Hub
from tests.conftest import ROOT

EXAMPLES = ROOT / "examples"
FILES = sorted(EXAMPLES.glob("*.yaml"))


async def apply_examples(hub: Hub) -> None:
    for path in FILES:
        await hub.save_flow(parse_document(path.read_text(), str(path)), publish=True)


def test_there_are_at_least_three_examples() -> None:
    assert len(FILES) >= 3


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
async def test_example_validates(hub: Hub, path: Path) -> None:
    await hub.validate_flow(parse_document(path.read_text(), str(path)))


async def test_new_order_prices_lines_and_flags_review(hub: Hub) -> None:
    await apply_examples(hub)
    order = json.loads((EXAMPLES / "inputs" / "order.json").read_text())
    run_id = await hub.start_run(
        "new-order", {"method": "POST", "body": order}, trigger_type="webhook"
    )
    record = await hub.wait_for_run(run_id, 10)
    assert record["status"] == "succeeded", record["error"]
    expected = round(sum(line["quantity"] * line["unit_price"] for line in order["lines"]), 2)
    assert record["output"]["total"] == expected
    assert record["output"]["customer"] == "Ada Lovelace"
    assert [line["sku"] for line in record["output"]["lines"]] == ["KB-01", "MS-02", "MN-27"]
    assert "needs review" in record["output"]["review"]


async def test_lead_intake_normalises_scores_and_routes(hub: Hub) -> None:
    await apply_examples(hub)
    lead = json.loads((EXAMPLES / "inputs" / "lead.json").read_text())
    record = await hub.wait_for_run(await hub.start_run("lead-intake", lead), 10)
    assert record["status"] == "succeeded", record["error"]
    out = record["output"]
    assert out["lead"]["email"] == "grace.hopper@navy.example"
    assert out["lead"]["phone"] == "+15551234"
    assert out["score"] == 100
    assert out["route"] == {"owner": "enterprise-team", "domain": "navy.example"}


async def test_invoice_reminders_calls_the_sub_flow_per_overdue_invoice(hub: Hub) -> None:
    await apply_examples(hub)
    record = await hub.wait_for_run(await hub.start_run("invoice-reminders", {}), 10)
    assert record["status"] == "succeeded", record["error"]
    assert record["output"] == {"reminded": ["INV-1", "INV-3"]}
    children = await hub.list_runs(flow_id="send-reminder")
    assert len(children) == 2 and all(c["parent_run_id"] == record["id"] for c in children)


async def test_retry_and_recover_retries_then_handles_the_failure(hub: Hub) -> None:
    await apply_examples(hub)
    record = await hub.wait_for_run(
        await hub.start_run("retry-and-recover", {"delay": 0.05, "customer": "bob"}), 15
    )
    assert record["status"] == "succeeded", record["error"]
    run = await hub.get_run(record["id"])
    charges = [s for s in run["steps"] if s["key"] == "charge"]
    assert [c["attempt"] for c in charges] == [1, 2, 3]
    handler = next(s for s in run["steps"] if s["key"] == "refund:charge")
    assert handler["output"] == {"recovered": True, "reason": "payment provider said no to bob"}
    assert record["output"] == "charge step counted as done; its output is None"
