"""The route table: who may call what.

Every route of the app is enumerated from ``app.routes`` (so a new route is covered the day
it is added): without credentials it answers 401 unless it is in the explicit public list;
given another workspace's ids (or another workspace's path) it answers 404, exactly like a
missing thing; a viewer can read but cannot create, edit, run, retry, test or authorize.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.routes import HTTPRoute

from hub.settings import Settings
from tests.api_kit import SECRET, Api, add_user, flow_document, started_api

PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/api/auth/csrf"),
    ("POST", "/api/auth/login"),
}
PUBLIC_PREFIXES = ("/schema", "/hooks/")
# The web UI's routes: pages authenticate by session in their own guard (tests/test_web_shell.py
# checks that every one of them sends a visitor without a session to the sign-in page).
WEB_PREFIXES = ("/w/", "/static")
WEB_PATHS = {"/", "/login", "/logout"}
PARAM = re.compile(r"{(\w+):\w+}")


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async for value in started_api(settings):
        yield value


def routes(api: Api) -> list[tuple[str, str, Any]]:
    """(method, path template, handler) of every API route (the web UI's pages aside),
    OPTIONS (CORS pre-flight) aside."""
    found = []
    for route in api.app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        if route.path.startswith(WEB_PREFIXES) or route.path in WEB_PATHS:
            continue
        for handler in route.route_handlers:
            for method in sorted(handler.http_methods):
                if method != "OPTIONS":
                    found.append((method, route.path, handler))
    return found


def fill(template: str, values: dict[str, Any]) -> str:
    """A concrete path from a template such as ``/api/w/{workspace:str}/runs/{run_id:str}``."""
    return PARAM.sub(lambda m: str(values[m.group(1)]), template)


def workspace_routes(api: Api) -> list[tuple[str, str, Any]]:
    """The routes under ``/api/w/{workspace}/``."""
    return [r for r in routes(api) if r[1].startswith("/api/w/{workspace")]


def is_public(method: str, path: str) -> bool:
    return (method, path) in PUBLIC or path.startswith(PUBLIC_PREFIXES)


# Bodies that would be accepted in the right workspace, so that a 404 is about the workspace.
BODIES: dict[str, Any] = {
    "flows_create": {"document": flow_document("fresh")},
    "flows_import": {"source": "id: fresh\nsteps: [{id: a, action: data.set, input: {}}]\n"},
    "flows_validate": {"document": flow_document("fresh")},
    "flows_update": {"document": flow_document("elsewhere", name="renamed")},
    "flows_publish": {},
    "flows_rollback": {},
    "runs_start": {"flow_id": "greet"},
    "step_test": {"action": "test.echo", "input": {"a": 1}},
    "connections_create": {"name": "fresh", "connector": "test", "values": {"token": "abcd"}},
    "connections_update": {"values": {"region": "us"}},
    "connectors_options": {"connection": "their-conn"},
    "members_put": {"email": "new@example.com", "role": "viewer"},
    "tokens_create": {"name": "fresh"},
    "workspaces_create": {"id": "fresh"},
    "me_password": {"current": "x", "new": "a-new-password-long-enough"},
    "auth_login": {"email": "x@example.com", "password": "x"},
}
QUERIES: dict[str, Any] = {"flows_diff": {"from": 1}}


async def seed_other(api: Api) -> dict[str, Any]:
    """Things of workspace ``other`` (the stranger's): a flow, a run, a connection, a member,
    a token; and ``greet`` plus a connection in ``default``."""
    hub = api.hub
    other = api.stranger
    member = await add_user(hub, "member-of-other@example.com", "editor", workspace="other")

    async def in_workspace(workspace: str) -> None:
        hub.workspace = workspace  # the CLI-style hub methods act on hub.workspace
        try:
            await hub.set_connection("their-conn", "test", {"token": SECRET})
            await hub.save_flow(flow_document("elsewhere"), publish=True)
        finally:
            hub.workspace = "default"

    await in_workspace("other")
    run_id = await hub.engine.start_run("other", "elsewhere", {"name": "x"})
    await hub.wait_for_run(run_id, 10)
    await hub.save_flow(flow_document("greet"), publish=True)
    return {
        "workspace": "default",
        "flow_id": "elsewhere",
        "version": 1,
        "run_id": run_id,
        "name": "their-conn",
        "user_id": member.user_id,
        "token_id": await token_id_of(api, other),
        "connector": "vault",
        "action": "lookup",
        "field": "pipeline",
    }


async def token_id_of(api: Api, caller: Any) -> str:
    response = await api.call("GET", f"/api/w/{caller.workspace}/tokens", caller)
    return str(response.json()[0]["id"])


async def test_every_route_but_the_public_ones_answers_401_without_credentials(
    api: Api,
) -> None:
    values = {"workspace": "default", "version": 1}
    checked = 0
    for method, template, handler in routes(api):
        path = fill(template, {**dict.fromkeys(PARAM.findall(template), "x"), **values})
        if is_public(method, template):
            continue
        checked += 1
        for headers in ({}, {"authorization": "Bearer hub_not-a-real-token"}):
            response = await api.client.request(method, path, headers=headers)
            assert response.status_code == 401, (method, template, response.text)
            assert response.json()["error"]["code"] == "unauthorized"
        assert not handler.opt.get("exclude_from_auth"), (method, template)
    assert checked >= 40


async def test_the_public_routes_are_exactly_the_listed_ones(api: Api) -> None:
    public = {
        (method, template)
        for method, template, handler in routes(api)
        if handler.opt.get("exclude_from_auth") and not template.startswith(PUBLIC_PREFIXES)
    }
    assert public == PUBLIC


async def test_a_malformed_authorization_header_is_401_even_with_a_session(api: Api) -> None:
    response = await api.client.get("/api/me", headers={"authorization": "Basic dXNlcjpwYXNz"})
    assert response.status_code == 401
    assert "Bearer hub_" in response.json()["error"]["message"]


async def test_every_workspace_route_given_another_workspaces_ids_answers_404(api: Api) -> None:
    ids = await seed_other(api)
    checked = 0
    for method, template, handler in workspace_routes(api):
        if handler.operation_id == "connectors_get":
            continue  # connectors are installed for every workspace: a name, not an id
        if handler.operation_id == "trials_start":
            # A trial runs the document it is given, in the caller's workspace, under the id
            # the document names (the flow need not exist: a draft's): no other workspace's
            # thing is named. Its run's id, read back, is checked like any run's below.
            continue
        names = PARAM.findall(template)
        # Routes without an id of their own are tried on the other workspace's path.
        values = {**ids, "workspace": "default" if len(names) > 1 else "other"}
        path = fill(template, values)
        body = BODIES.get(handler.operation_id)
        response = await api.call(
            method,
            path,
            api.owner,
            json=body if method in ("POST", "PUT", "PATCH") else None,
            params=QUERIES.get(handler.operation_id),
        )
        assert response.status_code == 404, (method, template, response.text)
        assert response.json()["error"]["code"] == "not_found"
        checked += 1
    assert checked >= 35


async def test_the_same_requests_in_the_own_workspace_are_served(api: Api) -> None:
    """The counterpart of the 404 test: the read routes answer 200 with own ids."""
    await seed_other(api)
    await api.call("POST", "/api/w/default/connections", api.owner, json={
        "name": "mine", "connector": "vault", "values": {"api_key": SECRET, "region": "eu"},
    })  # fmt: skip
    run = await api.call("POST", "/api/w/default/runs", api.owner, json={"flow_id": "greet"})
    await api.hub.wait_for_run(run.json()["run_id"], 10)
    own = {
        "workspace": "default",
        "flow_id": "greet",
        "version": 1,
        "run_id": run.json()["run_id"],
        "name": "mine",
        "connector": "vault",
    }
    trial = await api.call(
        "POST",
        "/api/w/default/flows/greet/trials",
        api.owner,
        json={"document": flow_document("greet")},
    )
    assert trial.status_code == 202, trial.text
    for method, template, handler in workspace_routes(api):
        if method != "GET" or "oauth2" in template:
            continue
        params = QUERIES.get(handler.operation_id)
        values = own
        if handler.operation_id == "trials_get":
            values = {**own, "run_id": trial.json()["run_id"]}
        response = await api.call("GET", fill(template, values), api.owner, params=params)
        assert response.status_code == 200, (template, response.text)


async def test_a_member_of_one_workspace_gets_404_for_another_by_session_too(api: Api) -> None:
    """Membership, not only the token's workspace: the stranger's session sees no default."""
    response = await api.call("GET", "/api/w/default/flows", api.stranger)
    assert response.status_code == 404
    response = await api.call("GET", "/api/w/other/flows", api.stranger)
    assert response.status_code == 200


async def test_a_viewer_cannot_create_edit_run_retry_or_test(api: Api) -> None:
    ids = await seed_other(api)
    own = {**ids, "flow_id": "greet", "run_id": ids["run_id"], "name": "their-conn"}
    refused = []
    for method, template, handler in workspace_routes(api):
        if handler.opt.get("role", "viewer") == "viewer":
            continue
        body = BODIES.get(handler.operation_id)
        response = await api.call(
            method,
            fill(template, own),
            api.viewer,
            json=body if method in ("POST", "PUT", "PATCH") else None,
        )
        assert response.status_code == 403, (method, template, response.text)
        assert "editor" in response.json()["error"]["message"] or "owner" in response.text
        refused.append(handler.operation_id)
    for needed in (
        "flows_create",
        "flows_update",
        "flows_publish",
        "flows_rollback",
        "flows_enable",
        "flows_disable",
        "flows_import",
        "runs_start",
        "runs_retry",
        "runs_replay",
        "runs_cancel",
        "step_test",
        "connections_create",
        "connections_update",
        "connections_delete",
        "connections_test",
        "connections_oauth2_authorize",
        "connections_oauth2_refresh",
        "members_put",
        "members_delete",
        "audit_list",
    ):
        assert needed in refused, f"{needed} is open to viewers"


async def test_every_unsafe_workspace_route_needs_a_role_above_viewer(api: Api) -> None:
    """Structural: a new POST/PUT/PATCH/DELETE route must say who may call it."""
    open_to_viewers = {
        handler.operation_id
        for method, _template, handler in workspace_routes(api)
        if method != "GET" and handler.opt.get("role", "viewer") == "viewer"
    }
    # A viewer manages their own API tokens and may check a document without saving it.
    assert open_to_viewers == {"tokens_create", "tokens_delete", "flows_validate"}


async def test_a_viewer_reads_and_never_sees_a_secret(api: Api) -> None:
    created = await api.call("POST", "/api/w/default/connections", api.editor, json={
        "name": "vault-1", "connector": "vault",
        "values": {"api_key": SECRET, "pin": 1234567, "region": "eu"},
    })  # fmt: skip
    assert created.status_code == 201, created.text
    response = await api.call("GET", "/api/w/default/connections/vault-1", api.viewer)
    assert response.status_code == 200
    body = response.json()
    assert body["secrets_set"] == ["api_key", "pin"]
    assert body["settings"] == {"region": "eu"}
    assert SECRET not in response.text and "1234567" not in response.text
