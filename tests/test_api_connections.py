"""Connections and connectors through the API: write-only secrets, validation, update that
keeps secrets, the connection test, delete, the catalog, and dynamic options cached by the
action's policy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from hub.settings import Settings
from tests import api_kit
from tests.api_kit import NESTED, PIN, SECRET, Api, started_api

CONNS = "/api/w/default/connections"


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    api_kit.OPTION_LOADS.clear()
    async for value in started_api(settings):
        yield value


async def create_vault(api: Api, name: str = "vault-1", **values: Any) -> dict[str, Any]:
    body = {
        "name": name,
        "connector": "vault",
        "values": {"api_key": SECRET, "pin": PIN, "nested": NESTED, "region": "eu", **values},
    }
    response = await api.call("POST", CONNS, api.editor, json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_secret_fields_are_write_only_and_shown_only_as_set(api: Api) -> None:
    created = await create_vault(api)
    assert created["settings"] == {"region": "eu"}
    assert created["secret_fields"] == ["api_key", "nested", "pin"]
    assert created["secrets_set"] == ["api_key", "nested", "pin"]
    for response in (
        await api.call("GET", f"{CONNS}/vault-1", api.viewer),
        await api.call("GET", CONNS, api.viewer),
    ):
        assert response.status_code == 200
        for value in (SECRET, str(PIN), NESTED["key"]):
            assert value not in response.text
    stored = await api.hub.db.read(
        lambda c: c.exec_driver_sql("SELECT secrets, settings FROM connections").one()
    )
    assert SECRET not in stored[0] and stored[0].startswith("gAAAA")  # Fernet
    assert SECRET not in str(stored[1])


async def test_invalid_values_are_422_with_locations_and_never_echo_a_secret(api: Api) -> None:
    body = {
        "name": "vault-2",
        "connector": "vault",
        "values": {"api_key": SECRET, "pin": f"{SECRET}-as-pin", "region": "mars"},
    }
    response = await api.call("POST", CONNS, api.editor, json=body)
    assert response.status_code == 422
    issues = response.json()["error"]["details"]
    assert {i["location"] for i in issues} == {"values.pin", "values.region"}
    assert SECRET not in response.text
    unknown = await api.call(
        "POST", CONNS, api.editor, json={"name": "x", "connector": "nope", "values": {}}
    )
    assert unknown.status_code == 422
    assert unknown.json()["error"]["details"] == [
        {"location": "connector", "message": "unknown connector"}
    ]
    await create_vault(api, "taken")
    taken = await api.call(
        "POST",
        CONNS,
        api.editor,
        json={**body, "name": "taken", "values": {"api_key": "k" * 8, "region": "eu"}},
    )
    assert taken.status_code == 409


async def test_an_update_keeps_the_secrets_it_does_not_name(api: Api) -> None:
    await create_vault(api)
    updated = await api.call(
        "PATCH", f"{CONNS}/vault-1", api.editor, json={"values": {"region": "us"}, "unset": ["pin"]}
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["settings"] == {"region": "us"}
    assert updated.json()["secrets_set"] == ["api_key", "nested"]
    values = await api.hub.connection_values("vault-1")
    assert values["api_key"] == SECRET and "pin" not in values and values["region"] == "us"
    bad = await api.call("PATCH", f"{CONNS}/vault-1", api.editor, json={"unset": ["api_key"]})
    assert bad.status_code == 422  # api_key is required
    assert (await api.hub.connection_values("vault-1"))["api_key"] == SECRET


async def test_the_connection_test_reports_refusals_redacted(api: Api) -> None:
    await create_vault(api)
    good = await api.call("POST", f"{CONNS}/vault-1/test", api.editor)
    assert good.json() == {"ok": True, "message": "the service accepted the connection"}
    await api.call("PATCH", f"{CONNS}/vault-1", api.editor, json={"values": {"region": "bad"}})
    refused = await api.call("POST", f"{CONNS}/vault-1/test", api.editor)
    assert refused.status_code == 200
    assert refused.json() == {
        "ok": False,
        "message": "the service refused api key [redacted]",
    }
    await api.call(
        "POST", CONNS, api.editor,
        json={"name": "plain", "connector": "test", "values": {"token": "abcdef"}},
    )  # fmt: skip
    untestable = await api.call("POST", f"{CONNS}/plain/test", api.editor)
    assert untestable.status_code == 422


async def test_delete_removes_the_connection_and_the_audit_log_names_fields_only(api: Api) -> None:
    await create_vault(api)
    deleted = await api.call("DELETE", f"{CONNS}/vault-1", api.editor)
    assert deleted.status_code == 204
    assert (await api.call("GET", f"{CONNS}/vault-1", api.viewer)).status_code == 404
    assert (await api.call("DELETE", f"{CONNS}/vault-1", api.editor)).status_code == 404
    audit = await api.call("GET", "/api/w/default/audit", api.owner, params={"target": "vault-1"})
    entries = audit.json()["items"]
    assert [e["action"] for e in entries] == ["connection.delete", "connection.create"]
    assert entries[1]["details"]["fields"] == ["api_key", "nested", "pin", "region"]
    assert SECRET not in audit.text


async def test_the_catalog_lists_connectors_with_actions_schemas_and_icons(api: Api) -> None:
    listed = await api.call("GET", "/api/w/default/connectors", api.viewer)
    assert listed.status_code == 200
    by_name = {c["name"]: c for c in listed.json()}
    assert {"vault", "test", "http", "data", "flow"} <= set(by_name)
    vault = by_name["vault"]
    assert vault["icon"].startswith("<svg")
    assert vault["secret_fields"] == ["api_key", "nested", "pin"]
    lookup = next(a for a in vault["actions"] if a["name"] == "lookup")
    assert lookup["full_name"] == "vault.lookup" and lookup["options"] == ["pipeline"]
    assert lookup["cache"] == {"ttl": 60, "stale_while_revalidate": 0.0}
    http = (await api.call("GET", "/api/w/default/connectors/http", api.viewer)).json()
    request = next(a for a in http["actions"] if a["name"] == "request")
    assert "url" in request["input_schema"]["properties"]
    missing = await api.call("GET", "/api/w/default/connectors/nope", api.viewer)
    assert missing.status_code == 404


async def test_field_options_are_cached_by_the_actions_policy(api: Api) -> None:
    await create_vault(api)
    url = "/api/w/default/connectors/vault/actions/lookup/options/pipeline"
    first = await api.call("POST", url, api.editor, json={"connection": "vault-1"})
    assert first.status_code == 200, first.text
    assert first.json() == {"options": [{"value": "p1", "label": "Pipeline of eu"}]}
    await api.call("POST", url, api.editor, json={"connection": "vault-1"})
    assert len(api_kit.OPTION_LOADS) == 1  # the second answer came from the cache
    await api.call("POST", url, api.editor, json={"connection": "vault-1", "input": {"a": 1}})
    assert api_kit.OPTION_LOADS == [{}, {"a": 1}]  # other input, other entry
    needs = await api.call("POST", url, api.editor, json={})
    assert needs.status_code == 422
    nofield = await api.call(
        "POST", url.replace("pipeline", "stage"), api.editor, json={"connection": "vault-1"}
    )
    assert nofield.status_code == 404
