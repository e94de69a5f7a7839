"""The Odoo actions and poll trigger inside a real hub, against the local Odoo stand-in.

No Odoo server is reachable from here: the connections point at ``odoo_standin`` (the
documented JSON-2 and JSON-RPC endpoints on 127.0.0.1). The hub runs on a fresh SQLite data
folder with only this plugin loaded; connections are stored encrypted like any other.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import odoo_standin
import pytest
import yaml
from hub_odoo import plugin
from odoo_standin import connection_for

from hub.testing import Hub, Settings, check_flow_file, poll_once, run_flow, started_hub

EXAMPLE = (
    Path(__file__).resolve().parents[3]
    / "examples"
    / "connectors"
    / "odoo-clean-partner-emails.yaml"
)


@pytest.fixture
async def hub(tmp_path: Path, odoo: Any) -> AsyncIterator[Hub]:
    settings = Settings(data_dir=tmp_path, allow_hosts=("127.0.0.1",), sweep_interval=0.2)
    async with started_hub(settings, [plugin]) as instance:
        await instance.set_connection("odoo-main", "odoo", connection_for("json2", odoo.url))
        await instance.set_connection("odoo-rpc", "odoo", connection_for("jsonrpc", odoo.url))
        yield instance


def text(record: dict[str, Any]) -> str:
    return json.dumps(record, default=str)


@pytest.mark.parametrize("conn", ["odoo-main", "odoo-rpc"])
async def test_every_action_runs_in_a_flow_and_the_record_holds_no_key(
    hub: Hub, odoo: Any, conn: str
) -> None:
    def step(id: str, action: str, input: dict[str, Any]) -> dict[str, Any]:
        return {"id": id, "action": action, "connection": conn, "input": input}

    model = {"model": "res.partner"}
    document = {
        "id": f"odoo-tour-{conn}",
        "steps": [
            step("create", "odoo.create", {**model, "values": {"name": "{{ trigger.name }}"}}),
            step(
                "write",
                "odoo.write",
                {**model, "ids": "{{ steps.create.output.ids }}", "values": {"email": "a@b.c"}},
            ),
            step(
                "read",
                "odoo.search_read",
                {**model, "domain": [["email", "=", "a@b.c"]], "fields": ["name", "email"]},
            ),
            step("remove", "odoo.unlink", {**model, "ids": "{{ steps.create.output.id }}"}),
        ],
        "output": {"read": "{{ steps.read.output.records }}", "gone": "{{ steps.remove.output }}"},
    }
    record = await run_flow(hub, document, {"name": "Ada"})
    assert record["status"] == "succeeded", record
    assert record["output"] == {
        "read": [{"id": 1, "name": "Ada", "email": "a@b.c"}],
        "gone": {"ok": True, "ids": [1]},
    }
    assert odoo.partners == {}
    assert odoo_standin.API_KEY not in text(record)


async def test_a_refused_key_fails_the_run_once_without_the_key(hub: Hub, odoo: Any) -> None:
    wrong = "revoked-odoo-key-12345678"
    await hub.set_connection(
        "odoo-main", "odoo", {**connection_for("json2", odoo.url), "api_key": wrong}
    )
    document = {
        "id": "odoo-refused",
        "steps": [
            {
                "id": "read",
                "action": "odoo.search_read",
                "connection": "odoo-main",
                "input": {"model": "res.partner"},
                "retry": {"max_attempts": 3, "initial": "10ms"},
            }
        ],
    }
    record = await run_flow(hub, document)
    assert record["status"] == "failed"
    assert "Odoo refused the credentials" in text(record["error"])
    assert len(odoo.requests) == 1
    assert wrong not in text(record) and "TRACEBACK-MARKER" not in text(record)


async def test_the_example_flow_cleans_emails_from_the_poll_trigger_without_looping(
    hub: Hub, odoo: Any
) -> None:
    document = yaml.safe_load(EXAMPLE.read_text())
    await hub.save_flow(document, publish=True)
    minute_ago = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=60)
    odoo.add("Before", email="before@example.com", at=minute_ago)
    assert await poll_once(hub, document["id"]) == []  # start: now
    odoo.add("Ada", email="  Ada@Example.COM ", at=minute_ago + dt.timedelta(seconds=10))
    odoo.add("No email", at=minute_ago + dt.timedelta(seconds=10))
    odoo.clock = lambda: minute_ago + dt.timedelta(seconds=20)  # when the flow writes
    [first] = await poll_once(hub, document["id"])
    record = await hub.wait_for_run(first, 10)
    assert record["status"] == "succeeded", record
    assert odoo.partners[2]["email"] == "ada@example.com"
    [again] = await poll_once(hub, document["id"])  # the write changed write_date
    record = await hub.wait_for_run(again, 10)
    assert record["output"] == {"id": 2, "email": "ada@example.com"}
    steps = {s["key"]: s["status"] for s in (await hub.get_run(again))["steps"]}
    assert steps["save"] == "skipped"
    assert await poll_once(hub, document["id"]) == []
    writes = [r for r in odoo.requests if r.path.endswith("/write")]
    assert len(writes) == 1


def test_the_example_flow_validates() -> None:
    flow = check_flow_file(EXAMPLE, plugin)
    assert flow.trigger.type == "odoo.changes"
