"""Flows through the API: versions, validation with every issue, diff, publish and roll back,
enable and disable, search and pagination, YAML in and out, the audit log."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import yaml

from hub.settings import Settings
from tests.api_kit import Api, flow_document, started_api

BASE = "/api/w/default/flows"


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async for value in started_api(settings):
        yield value


async def test_every_save_is_a_new_version_and_an_unchanged_one_is_not(api: Api) -> None:
    first = await api.call("POST", BASE, api.editor, json={"document": flow_document()})
    assert first.status_code == 201
    assert first.json() == {
        "flow_id": "greet",
        "version": 1,
        "created": True,
        "published": False,
        "changes": [],
    }
    changed = flow_document(name="Greet people")
    second = await api.call("PUT", f"{BASE}/greet", api.editor, json={"document": changed})
    assert second.json()["version"] == 2
    assert second.json()["changes"] == ['name changed: "Greet" -> "Greet people"']
    same = await api.call("PUT", f"{BASE}/greet", api.editor, json={"document": changed})
    assert same.json()["version"] == 2 and same.json()["created"] is False
    versions = await api.call("GET", f"{BASE}/greet/versions", api.viewer)
    assert [v["version"] for v in versions.json()] == [2, 1]
    assert versions.json()[0]["author"] == api.editor.email
    v1 = await api.call("GET", f"{BASE}/greet/versions/1", api.viewer)
    assert v1.json()["document"]["name"] == "Greet"


async def test_creating_an_existing_flow_is_409_and_updating_a_missing_one_404(api: Api) -> None:
    await api.call("POST", BASE, api.editor, json={"document": flow_document()})
    again = await api.call("POST", BASE, api.editor, json={"document": flow_document()})
    assert again.status_code == 409
    missing = await api.call(
        "PUT", f"{BASE}/nope", api.editor, json={"document": flow_document("nope")}
    )
    assert missing.status_code == 404
    other_id = await api.call(
        "PUT", f"{BASE}/greet", api.editor, json={"document": flow_document("x")}
    )
    assert other_id.status_code == 422
    assert other_id.json()["error"]["details"] == [{"location": "id", "message": "must be 'greet'"}]


async def test_an_invalid_flow_is_422_with_every_issue_and_its_location(api: Api) -> None:
    document = {
        "id": "broken",
        "trigger": {"type": "manual"},
        "steps": [
            {"id": "a", "action": "test.nope", "input": {}},
            {"id": "b", "action": "test.echo", "input": {"x": "{{ steps.zzz.output }}"}},
            {"id": "c", "action": "test.use_secret", "input": {}, "connection": "missing"},
        ],
    }
    response = await api.call("POST", BASE, api.editor, json={"document": document})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid"
    locations = {issue["location"] for issue in error["details"]}
    assert {"steps[0].action", "steps[1].input.x", "steps[2].connection"} <= locations
    assert all(issue["message"] for issue in error["details"])
    listed = await api.call("GET", BASE, api.viewer)
    assert listed.json()["items"] == []  # nothing was saved


async def test_yaml_text_is_validated_with_line_and_column(api: Api) -> None:
    response = await api.call(
        "POST", f"{BASE}/_import", api.editor, json={"source": "id: x\nsteps: [\n"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["location"].startswith("line ")
    check = await api.call("POST", f"{BASE}/_validate", api.viewer, json={"document": {"id": 3}})
    assert check.status_code == 200
    assert check.json()["valid"] is False and check.json()["issues"]


async def test_import_then_export_keeps_the_yaml_text(api: Api) -> None:
    source = (
        "# greets whoever comes\n"
        "id: greet\n"
        "trigger: {type: manual}\n"
        "steps:\n"
        "  - id: hello  # the only step\n"
        "    action: test.echo\n"
        "    input: {name: '{{ trigger.name }}'}\n"
    )
    imported = await api.call(
        "POST", f"{BASE}/_import", api.editor, json={"source": source, "publish": True}
    )
    assert imported.status_code == 201, imported.text
    assert imported.json()["published"] is True
    exported = await api.call("GET", f"{BASE}/greet/export", api.viewer)
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("application/yaml")
    assert exported.text == source
    saved_as_data = await api.call(
        "PUT", f"{BASE}/greet", api.editor, json={"document": flow_document(name="Renamed")}
    )
    assert saved_as_data.json()["version"] == 2
    latest = await api.call("GET", f"{BASE}/greet/export", api.viewer, params={"version": 2})
    assert yaml.safe_load(latest.text) == flow_document(name="Renamed")


async def test_diff_between_two_versions_has_summary_and_unified_yaml(api: Api) -> None:
    await api.call("POST", BASE, api.editor, json={"document": flow_document()})
    second = flow_document()
    second["steps"].append({"id": "bye", "action": "test.echo", "input": {}})
    await api.call("PUT", f"{BASE}/greet", api.editor, json={"document": second})
    diff = await api.call("GET", f"{BASE}/greet/diff", api.viewer, params={"from": 1, "to": 2})
    assert diff.status_code == 200
    body = diff.json()
    assert body["changes"] == ["step added: bye (test.echo)"]
    assert "+  - id: bye" in body["unified"] and body["unified"].startswith("--- greet@v1")


async def test_publish_roll_back_and_runs_use_the_published_version(api: Api) -> None:
    await api.call("POST", BASE, api.editor, json={"document": flow_document(), "publish": True})
    warm = await api.call("POST", "/api/w/default/runs", api.editor, json={"flow_id": "greet"})
    assert (await api.hub.wait_for_run(warm.json()["run_id"], 10))["flow_version"] == 1
    await api.call("PUT", f"{BASE}/greet", api.editor, json={"document": flow_document(name="Two")})
    published = await api.call("POST", f"{BASE}/greet/publish", api.editor, json={})
    assert published.json() == {"flow_id": "greet", "published_version": 2, "previous_version": 1}
    run = await api.call("POST", "/api/w/default/runs", api.editor, json={"flow_id": "greet"})
    record = await api.hub.wait_for_run(run.json()["run_id"], 10)
    assert record["flow_version"] == 2
    rolled = await api.call("POST", f"{BASE}/greet/rollback", api.editor, json={})
    assert rolled.json()["published_version"] == 1
    after = await api.call("POST", "/api/w/default/runs", api.editor, json={"flow_id": "greet"})
    assert (await api.hub.wait_for_run(after.json()["run_id"], 10))["flow_version"] == 1
    not_older = await api.call("POST", f"{BASE}/greet/rollback", api.editor, json={"version": 2})
    assert not_older.status_code == 409
    detail = await api.call("GET", f"{BASE}/greet", api.viewer)
    assert detail.json()["version"] == 1 and detail.json()["flow"]["latest_version"] == 2
    missing = await api.call("POST", f"{BASE}/greet/publish", api.editor, json={"version": 9})
    assert missing.status_code == 404
    audit = await api.call("GET", "/api/w/default/audit", api.owner, params={"target": "greet"})
    actions = [(e["action"], e["actor"]) for e in audit.json()["items"]]
    assert actions == [
        ("flow.rollback", api.editor.email),
        ("flow.publish", api.editor.email),
        ("flow.save", api.editor.email),
        ("flow.create", api.editor.email),
    ]


async def test_disabling_a_flow_turns_its_webhook_off(api: Api) -> None:
    document = flow_document("hooked", trigger={"type": "webhook", "config": {}})
    await api.call("POST", BASE, api.editor, json={"document": document, "publish": True})
    assert (await api.client.post("/hooks/default/hooked", json={})).status_code == 202
    disabled = await api.call("POST", f"{BASE}/hooked/disable", api.editor)
    assert disabled.status_code == 200 and disabled.json()["enabled"] is False
    assert (await api.client.post("/hooks/default/hooked", json={})).status_code == 404
    enabled = await api.call("POST", f"{BASE}/hooked/enable", api.editor)
    assert enabled.json()["enabled"] is True
    assert (await api.client.post("/hooks/default/hooked", json={})).status_code == 202


async def test_search_and_keyset_pagination_of_flows(api: Api) -> None:
    for flow_id, name in [("alpha", "Orders"), ("beta", "Leads"), ("gamma", "Order sync")]:
        document = flow_document(flow_id, name=name)
        await api.call("POST", BASE, api.editor, json={"document": document})
    found = await api.call("GET", BASE, api.viewer, params={"q": "order"})
    assert [f["id"] for f in found.json()["items"]] == ["alpha", "gamma"]
    by_id = await api.call("GET", BASE, api.viewer, params={"q": "BET"})
    assert [f["id"] for f in by_id.json()["items"]] == ["beta"]
    literal = await api.call("GET", BASE, api.viewer, params={"q": "%"})
    assert literal.json()["items"] == []
    page1 = await api.call("GET", BASE, api.viewer, params={"limit": 2})
    assert [f["id"] for f in page1.json()["items"]] == ["alpha", "beta"]
    cursor = page1.json()["next_cursor"]
    page2 = await api.call("GET", BASE, api.viewer, params={"limit": 2, "cursor": cursor})
    assert [f["id"] for f in page2.json()["items"]] == ["gamma"]
    assert page2.json()["next_cursor"] is None


# -- delete ---------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_deleting_a_flow_needs_an_editor_and_removes_it_with_its_runs(api: Api) -> None:
    document = flow_document("hooked", trigger={"type": "webhook", "config": {}})
    await api.call("POST", BASE, api.editor, json={"document": document, "publish": True})
    hooked = await api.client.post("/hooks/default/hooked", json={"n": 1})
    assert hooked.status_code == 202
    run_id = hooked.json()["run_id"]
    await api.hub.wait_for_run(run_id, 30)
    kept = await api.call("POST", BASE, api.editor, json={"document": flow_document("kept")})
    assert kept.status_code == 201
    limited = await api.call(
        "POST", "/api/w/default/tokens", api.editor, json={"name": "hook", "flow_id": "hooked"}
    )
    assert limited.status_code == 201, limited.text
    limited_headers = {"authorization": f"Bearer {limited.json()['token']}"}
    assert (await api.client.get(f"{BASE}/hooked", headers=limited_headers)).status_code == 200

    refused = await api.call("DELETE", f"{BASE}/hooked", api.viewer)
    assert refused.status_code == 403
    assert (await api.call("GET", f"{BASE}/hooked", api.viewer)).status_code == 200

    deleted = await api.call("DELETE", f"{BASE}/hooked", api.editor)
    assert deleted.status_code == 204 and deleted.content == b""
    assert (await api.call("GET", f"{BASE}/hooked", api.viewer)).status_code == 404
    assert (await api.call("DELETE", f"{BASE}/hooked", api.editor)).status_code == 404
    # Its runs went with it (documented: runs and steps are deleted with their flow).
    assert (await api.call("GET", f"/api/w/default/runs/{run_id}", api.viewer)).status_code == 404
    listed = await api.call("GET", "/api/w/default/runs", api.viewer, params={"flow_id": "hooked"})
    assert listed.json()["items"] == []
    # Its webhook is gone at once (the enabled state and published version were cached).
    assert (await api.client.post("/hooks/default/hooked", json={})).status_code == 404
    # The other flow is untouched; a token limited to the deleted flow is revoked with it
    # (it would otherwise reach a flow created again with the same id).
    assert (await api.call("GET", f"{BASE}/kept", api.viewer)).status_code == 200
    assert (await api.client.get(f"{BASE}/hooked", headers=limited_headers)).status_code == 401
    audit = await api.call("GET", "/api/w/default/audit", api.owner, params={"target": "hooked"})
    entry = audit.json()["items"][0]
    assert (entry["action"], entry["actor"]) == ("flow.delete", api.editor.email)
    assert entry["details"] == {"versions": 1, "runs": 1, "steps": 1, "tokens": 1}


async def test_a_flow_with_an_unfinished_run_is_not_deleted(api: Api) -> None:
    document = flow_document(
        "slow", steps=[{"id": "wait", "action": "flow.delay", "input": {"seconds": 3600}}]
    )
    await api.call("POST", BASE, api.editor, json={"document": document, "publish": True})
    started = await api.call("POST", "/api/w/default/runs", api.editor, json={"flow_id": "slow"})
    run_id = started.json()["run_id"]
    refused = await api.call("DELETE", f"{BASE}/slow", api.editor)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "runs_active"
    assert refused.json()["error"]["details"] == {"active": 1}
    assert (await api.call("GET", f"{BASE}/slow", api.viewer)).status_code == 200
    assert (await api.call("GET", f"/api/w/default/runs/{run_id}", api.viewer)).status_code == 200
    await api.call("POST", f"/api/w/default/runs/{run_id}/cancel", api.editor)
    assert (await api.call("DELETE", f"{BASE}/slow", api.editor)).status_code == 204


async def test_a_deleted_schedules_state_goes_and_it_fires_no_more(api: Api) -> None:
    import datetime as dt

    from hub.db import trigger_state
    from hub.triggers.schedule import STATE_KEY, fire_due

    document = flow_document(
        "yearly", trigger={"type": "schedule", "config": {"cron": "0 0 1 1 *"}}
    )
    await api.call("POST", BASE, api.editor, json={"document": document, "publish": True})
    now = dt.datetime.now(dt.UTC)
    await fire_due(api.hub, now)  # first sight: the scheduler records where it counts from

    def state(conn: object) -> object:
        return trigger_state.load(conn, "default", "yearly", STATE_KEY)  # type: ignore[arg-type]

    assert await api.hub.db.read(state) is not None
    assert (await api.call("DELETE", f"{BASE}/yearly", api.editor)).status_code == 204
    assert await api.hub.db.read(state) is None
    assert await fire_due(api.hub, now + dt.timedelta(days=400)) == []


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_flow_created_again_after_a_delete_numbers_its_versions_on(api: Api) -> None:
    await api.call("POST", BASE, api.editor, json={"document": flow_document(), "publish": True})
    first = await api.call("POST", "/api/w/default/runs", api.editor, json={"flow_id": "greet"})
    await api.hub.wait_for_run(first.json()["run_id"], 30)
    assert (await api.call("DELETE", f"{BASE}/greet", api.editor)).status_code == 204
    # A poll still running at the delete may save a cursor before its runner stops it.
    from hub.db import trigger_state

    def straggler(conn: Any) -> None:
        trigger_state.save(conn, "default", "greet", "cursor", {"cursor": 41})

    def cursor(conn: Any) -> Any:
        return trigger_state.load(conn, "default", "greet", "cursor")

    await api.hub.db.write(straggler)
    again = flow_document(steps=[{"id": "other", "action": "test.echo", "input": {"again": "yes"}}])
    created = await api.call("POST", BASE, api.editor, json={"document": again, "publish": True})
    assert created.status_code == 201 and created.json()["version"] == 2
    assert await api.hub.db.read(cursor) is None  # the new flow starts afresh
    run = await api.call("POST", "/api/w/default/runs", api.editor, json={"flow_id": "greet"})
    record = await api.hub.wait_for_run(run.json()["run_id"], 30)
    # The new document runs, not the deleted flow's version 1 the engine had compiled.
    assert record["flow_version"] == 2 and record["output"] == {"again": "yes"}
