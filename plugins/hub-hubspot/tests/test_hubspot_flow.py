"""The HubSpot actions inside real hub flow runs, against the local HubSpot stand-in.

api.hubapi.com cannot be reached from here: the connection points at ``hubspot_standin`` (the
documented CRM endpoints on 127.0.0.1). The hub runs on a fresh SQLite data folder with only
this plugin loaded; the connection is stored encrypted like any other.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import hubspot_standin
import pytest
import yaml
from hub_hubspot import plugin

from hub.testing import Hub, Settings, check_flow_file, run_flow, started_hub

EXAMPLE = (
    Path(__file__).resolve().parents[3] / "examples" / "connectors" / "hubspot-lead-to-deal.yaml"
)


@pytest.fixture
async def hub(tmp_path: Path, hubspot_api: Any) -> AsyncIterator[Hub]:
    settings = Settings(data_dir=tmp_path, allow_hosts=("127.0.0.1",), sweep_interval=0.2)
    async with started_hub(settings, [plugin]) as instance:
        await instance.set_connection(
            "hubspot-main",
            "hubspot",
            {"access_token": hubspot_standin.TOKEN, "base_url": hubspot_api.base_url},
        )
        yield instance


def step(id: str, action: str, input: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": id, "action": action, "connection": "hubspot-main", "input": input, **extra}


def text(record: dict[str, Any]) -> str:
    return json.dumps(record, default=str)


async def test_the_example_flow_creates_then_finds_the_contact(hub: Hub, hubspot_api: Any) -> None:
    document = yaml.safe_load(EXAMPLE.read_text())
    document["trigger"] = {"type": "manual"}  # a manual run gets the webhook's data as input
    lead = {"body": {"email": " Ada@Example.com ", "firstname": "Ada", "amount": 1200}}
    first = await run_flow(hub, document, lead)
    assert first["status"] == "succeeded", first
    contact_id = first["output"]["contact_id"]
    assert hubspot_api.records["contacts"][contact_id]["properties"]["email"] == "ada@example.com"
    second = await run_flow(hub, document, lead)
    assert second["status"] == "succeeded", second
    assert second["output"]["contact_id"] == contact_id  # found, not created again
    assert len(hubspot_api.records["contacts"]) == 1
    assert len(hubspot_api.records["deals"]) == 2
    assert [a[3] for a in hubspot_api.associations] == [contact_id, contact_id]
    for record in (first, second):
        assert hubspot_standin.TOKEN not in text(record)


async def test_every_other_action_runs_in_a_flow(hub: Hub, hubspot_api: Any) -> None:
    document = {
        "id": "hubspot-tour",
        "steps": [
            step(
                "company",
                "hubspot.create_company",
                {"properties": {"name": "Acme", "domain": "acme.test"}},
            ),
            step(
                "rename",
                "hubspot.update_company",
                {"id": "{{ steps.company.output.id }}", "properties": {"name": "Acme Ltd"}},
            ),
            step("get", "hubspot.get_company", {"id": "acme.test", "id_property": "domain"}),
            step(
                "search",
                "hubspot.search_companies",
                {"filters": [{"propertyName": "name", "operator": "EQ", "value": "Acme Ltd"}]},
            ),
            step(
                "deal",
                "hubspot.create_deal",
                {"properties": {"dealname": "D"}, "dealstage": "closedwon"},
            ),
            step(
                "update_deal",
                "hubspot.update_deal",
                {"id": "{{ steps.deal.output.id }}", "properties": {"amount": 10}},
            ),
            step("find_deal", "hubspot.search_deals", {"query": "D"}),
            step("get_deal", "hubspot.get_deal", {"id": "{{ steps.deal.output.id }}"}),
            step("contact", "hubspot.create_contact", {"properties": {"email": "e@acme.test"}}),
            step(
                "edit_contact",
                "hubspot.update_contact",
                {"id": "{{ steps.contact.output.id }}", "properties": {"firstname": "E"}},
            ),
            step("find_contact", "hubspot.search_contacts", {"query": "acme"}),
            step(
                "link",
                "hubspot.associate",
                {
                    "from_type": "contacts",
                    "from_id": "{{ steps.contact.output.id }}",
                    "to_type": "companies",
                    "to_id": "{{ steps.company.output.id }}",
                },
            ),
            step("pipelines", "hubspot.list_pipelines", {}),
            step("owners", "hubspot.list_owners", {"email": "owner7@example.com"}),
        ],
        "output": {
            "name": "{{ steps.get.output.record.properties.name }}",
            "found": "{{ steps.search.output.total }}",
            "amount": "{{ steps.get_deal.output.record.properties.amount }}",
            "firstname": "{{ steps.edit_contact.output.properties.firstname }}",
            "pipelines": "{{ steps.pipelines.output.pipelines | map(attribute='id') | list }}",
            "owner": "{{ steps.owners.output.owners[0].id }}",
        },
    }
    record = await run_flow(hub, document)
    assert record["status"] == "succeeded", record
    assert record["output"] == {
        "name": "Acme Ltd",
        "found": 1,
        "amount": "10",
        "firstname": "E",
        "pipelines": ["default", "renewals"],
        "owner": "1007",
    }
    assert len(hubspot_api.associations) == 1
    assert hubspot_standin.TOKEN not in text(record)


async def test_an_oauth2_run_keeps_the_refreshed_token_out_of_the_record(
    hub: Hub, hubspot_api: Any
) -> None:
    await hub.set_connection(
        "hubspot-main",
        "hubspot",
        {
            "auth": "oauth2",
            "refresh_token": hubspot_standin.REFRESH_TOKEN,
            "client_id": hubspot_standin.CLIENT_ID,
            "client_secret": hubspot_standin.CLIENT_SECRET,
            "base_url": hubspot_api.base_url,
        },
    )
    document = {"id": "hubspot-oauth", "steps": [step("p", "hubspot.list_pipelines", {})]}
    record = await run_flow(hub, document)
    assert record["status"] == "succeeded", record
    assert hubspot_api.requests[-1].headers["authorization"] == "Bearer standin-access-token-0001"
    for secret in ("standin-access-token-0001", hubspot_standin.REFRESH_TOKEN,
                   hubspot_standin.CLIENT_SECRET):  # fmt: skip
        assert secret not in text(record)


async def test_a_refused_token_fails_the_run_once(hub: Hub, hubspot_api: Any) -> None:
    wrong = "pat-na1-revoked-0000-1111"
    await hub.set_connection(
        "hubspot-main", "hubspot", {"access_token": wrong, "base_url": hubspot_api.base_url}
    )
    document = {
        "id": "hubspot-refused",
        "steps": [step("g", "hubspot.get_contact", {"id": "1"}, retry={"max_attempts": 3})],
    }
    record = await run_flow(hub, document)
    assert record["status"] == "failed"
    assert "HubSpot refused the credentials" in text(record["error"])
    assert len(hubspot_api.requests) == 1
    assert wrong not in text(record)


def test_the_example_flow_validates() -> None:
    flow = check_flow_file(EXAMPLE, plugin)
    assert list(flow.steps) == ["find", "create", "contact", "deal", "link"]
