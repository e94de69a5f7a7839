"""The Connections pages (issue 15): list, create and edit through the generated form, test,
"Connect" for OAuth2, delete after listing the flows that use the connection; the secret
never reaches a page or a fragment; the viewer sees no write control and its forged writes
answer 403.

In-process against the real app (real SQLite, the real engine), with the ``vault``
connector (secrets of every type) and the ``oauthy`` OAuth2 connector of tests/api_kit.py.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from hub.services import oauth2
from hub.services.connections import connection_places
from hub.settings import Settings
from tests.api_kit import NESTED, PIN, Api, add_oauthy_connection, flow_document, started_api
from tests.test_api_oauth2 import CLIENT_ID, CLIENT_SECRET, StandIn, stand_in  # noqa: F401
from tests.test_web_forms import submitted
from tests.web_kit import csrf_token, htmx_headers, post_form, signed_in, write_controls

KEY = "vault-KEY-9f8e7d6c5b4a"  # the secret typed into the form
BASE = "/w/default/connections"


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async for value in started_api(settings):
        yield value


def form_of(html: str, **typed: str) -> list[tuple[str, str]]:
    """What a browser submits for the page's connection form, with ``typed`` values (by
    field name) typed in."""
    match = re.search(r'<form[^>]*id="connection-form".*?</form>', html, re.S)
    assert match, html
    pairs = [(k, v) for k, v in submitted(match.group(0)) if k != "_csrf_token"]
    names = {k for k, _ in pairs}
    out = [(k, typed.get(k, v)) for k, v in pairs]
    out += [(k, v) for k, v in typed.items() if k not in names]
    return out


async def post_pairs(
    client: httpx.AsyncClient, path: str, pairs: list[tuple[str, str]], **kwargs: Any
) -> httpx.Response:
    """Post a form of multi-valued pairs, with the CSRF field."""
    body = [*pairs, ("_csrf_token", csrf_token(client))]
    return await client.post(
        path,
        content=httpx.QueryParams(body).__str__().encode(),
        headers={"content-type": "application/x-www-form-urlencoded", **kwargs.pop("headers", {})},
        **kwargs,
    )


async def create_vault(
    client: httpx.AsyncClient, name: str = "vault-main", region: str = "eu"
) -> None:
    page = await client.get(f"{BASE}/new?connector=vault")
    assert page.status_code == 200, page.text
    pairs = form_of(
        page.text,
        name=name,
        **{
            "v.api_key": KEY,
            "v.pin": str(PIN),
            "v.nested": '{"user": "svc-account", "key": "nested-s3cret-v4lue"}',
            "v.region": region,
        },
    )
    answer = await post_pairs(client, f"{BASE}/new", pairs)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == f"{BASE}/{name}?notice=created"


def vault_fields(api: Api, **fields: Any) -> None:
    """Give this hub's ``vault`` connector more (or other) connection fields."""
    connector = api.hub.registry.connectors["vault"]
    schema = copy.deepcopy(connector.connection_schema or {})
    schema["properties"].update(fields)
    connector.connection_schema = schema


def assert_no_secret(html: str) -> None:
    for secret in (KEY, str(PIN), NESTED["key"]):
        assert secret not in html


async def test_the_list_says_what_to_do_when_empty_and_lists_connections(api: Api) -> None:
    client = await signed_in(api, api.editor)
    empty = await client.get(BASE)
    assert "No connections yet" in empty.text and f'href="{BASE}/new"' in empty.text
    await create_vault(client)
    listed = await client.get(BASE)
    assert '<a href="/w/default/connections/vault-main">vault-main</a>' in listed.text
    assert "api_key, nested, pin" in listed.text  # the secrets stored, by name only
    assert "<time datetime=" in listed.text
    assert_no_secret(listed.text)


async def test_choosing_a_connector_lists_those_that_take_a_connection(api: Api) -> None:
    client = await signed_in(api, api.editor)
    page = await client.get(f"{BASE}/new")
    assert "connector=vault" in page.text and "connector=oauthy" in page.text
    assert 'connector=http"' not in page.text and 'connector=flow"' not in page.text


async def test_a_created_connection_stores_its_values_and_no_page_shows_the_secret(
    api: Api,
) -> None:
    client = await signed_in(api, api.editor)
    await create_vault(client)
    stored = await api.call("GET", f"/api{BASE}/vault-main", api.editor)
    assert stored.json()["settings"] == {"region": "eu"}
    assert stored.json()["secrets_set"] == ["api_key", "nested", "pin"]
    values, _ = await api.hub.engine.connection_values("default", "vault-main")
    assert values == {"api_key": KEY, "pin": PIN, "nested": NESTED, "region": "eu"}
    pages = [BASE, f"{BASE}/vault-main", f"{BASE}/vault-main/edit", f"{BASE}/vault-main/delete",
             f"{BASE}/new?connector=vault", f"{BASE}/vault-main?notice=created"]  # fmt: skip
    for path in pages:
        answer = await client.get(path)
        assert answer.status_code == 200, (path, answer.status_code)
        assert_no_secret(answer.text)
    edit = await client.get(f"{BASE}/vault-main/edit")
    assert edit.text.count("Stored — leave empty to keep it.") == 3
    fragment = await post_pairs(
        client, f"{BASE}/vault-main/edit", form_of(edit.text, **{"_form_op": "refresh"}),
        headers=htmx_headers(client, f"{BASE}/vault-main/edit"),
    )  # fmt: skip
    assert fragment.status_code == 200 and fragment.text.lstrip().startswith("<form")
    assert_no_secret(fragment.text)
    tested = await client.post(
        f"{BASE}/vault-main/test", headers=htmx_headers(client, f"{BASE}/vault-main")
    )
    assert "The test passed" in tested.text
    assert_no_secret(tested.text)


async def test_editing_keeps_secrets_left_empty_and_changes_the_rest(api: Api) -> None:
    client = await signed_in(api, api.editor)
    await create_vault(client)
    edit = await client.get(f"{BASE}/vault-main/edit")
    assert 'value="eu" selected' in edit.text
    pin = re.search(r'<input type="password" id="f-v-pin"[^>]*>', edit.text)
    assert pin and "required" not in pin.group(0) and 'value=""' in pin.group(0)
    answer = await post_pairs(
        client, f"{BASE}/vault-main/edit", form_of(edit.text, **{"v.region": "us", "v.pin": "1234"})
    )
    assert answer.status_code == 303 and answer.headers["location"].endswith("?notice=updated")
    values, _ = await api.hub.engine.connection_values("default", "vault-main")
    assert values == {"api_key": KEY, "pin": 1234, "nested": NESTED, "region": "us"}
    edit = await client.get(f"{BASE}/vault-main/edit")
    cleared = await post_pairs(
        client, f"{BASE}/vault-main/edit", form_of(edit.text, **{"v.nested.__clear__": "1"})
    )
    assert cleared.status_code == 303
    values, _ = await api.hub.engine.connection_values("default", "vault-main")
    assert values == {"api_key": KEY, "pin": 1234, "region": "us"}


async def test_invalid_values_come_back_with_errors_on_their_fields(api: Api) -> None:
    client = await signed_in(api, api.editor)
    page = await client.get(f"{BASE}/new?connector=vault")
    pairs = form_of(
        page.text, name="bad name!", **{"v.api_key": KEY, "v.pin": "twelve", "v.region": ""}
    )
    answer = await post_pairs(client, f"{BASE}/new", pairs)
    assert answer.status_code == 422
    assert "Enter a name: a letter or digit first" in answer.text
    assert re.search(r'id="f-v-pin"[^>]*aria-invalid="true"', answer.text)
    assert "Pin: enter a whole number" in answer.text  # never the text typed in a secret
    assert "type them again" in answer.text
    assert_no_secret(answer.text)
    assert (await api.call("GET", f"/api{BASE}", api.editor)).json() == []
    missing = await post_pairs(
        client, f"{BASE}/new", form_of(page.text, name="v2", **{"v.region": "eu"})
    )
    assert missing.status_code == 422
    assert re.search(r'id="f-v-api_key"[^>]*aria-invalid="true"', missing.text)
    assert re.search(r'id="f-v-api_key-error"><p>required: fill this in</p>', missing.text)


async def test_a_name_taken_is_said_on_the_name_field(api: Api) -> None:
    client = await signed_in(api, api.editor)
    await create_vault(client)
    page = await client.get(f"{BASE}/new?connector=vault")
    again = await post_pairs(
        client,
        f"{BASE}/new",
        form_of(page.text, name="vault-main", **{"v.api_key": KEY, "v.region": "eu"}),
    )
    assert again.status_code == 422
    assert "A connection named &#39;vault-main&#39; exists already" in again.text
    assert_no_secret(again.text)


async def test_a_failed_test_shows_the_services_message_redacted(api: Api) -> None:
    client = await signed_in(api, api.editor)
    await create_vault(client, region="bad")
    answer = await post_form(client, f"{BASE}/vault-main/test")
    assert answer.status_code == 200
    assert (
        "The test failed" in answer.text and "the service refused api key [redacted]" in answer.text
    )
    assert_no_secret(answer.text)


async def test_connect_sends_the_browser_to_the_service_and_back_to_the_page(api: Api) -> None:
    await add_oauthy_connection(
        api, {"authorize_url": "https://id.example/authorize", "token_url": "https://id.example/token"},
        "client-1", "client-secret-value",
    )  # fmt: skip
    client = await signed_in(api, api.editor)
    page = await client.get(f"{BASE}/crm")
    assert f'href="{BASE}/crm/connect"' in page.text and "Not connected yet" in page.text
    answer = await client.get(f"{BASE}/crm/connect")
    assert answer.status_code == 303
    target = urlsplit(answer.headers["location"])
    assert (target.scheme, target.netloc, target.path) == ("https", "id.example", "/authorize")
    query = parse_qs(target.query)
    assert query["client_id"] == ["client-1"]
    assert query["redirect_uri"] == ["http://testserver.local/api/oauth2/callback"]
    assert "client-secret-value" not in answer.headers["location"] + page.text
    assert oauth2.open_state(api.hub, query["state"][0])["t"] == f"{BASE}/crm?notice=connected"


async def test_delete_lists_the_flows_that_use_the_connection_first(api: Api) -> None:
    client = await signed_in(api, api.editor)
    await create_vault(client)
    steps = [{"id": "peek", "action": "vault.reveal", "connection": "vault-main", "input": {}}]
    saved = await api.call("POST", "/api/w/default/flows", api.editor,
                           json={"document": flow_document("uses-vault", steps=steps)})  # fmt: skip
    assert saved.status_code in (200, 201), saved.text
    await api.call(
        "POST", "/api/w/default/flows", api.editor, json={"document": flow_document("other")}
    )
    confirm = await client.get(f"{BASE}/vault-main/delete")
    assert "1 flow uses this connection." in confirm.text
    assert (
        'href="/w/default/flows/uses-vault"' in confirm.text
        and "steps[0].connection" in confirm.text
    )
    assert "/flows/other" not in confirm.text
    assert (await api.call("GET", f"/api{BASE}/vault-main", api.editor)).status_code == 200
    deleted = await post_form(client, f"{BASE}/vault-main/delete")
    assert (
        deleted.status_code == 303 and deleted.headers["location"] == f"{BASE}?deleted=vault-main"
    )
    assert (await api.call("GET", f"/api{BASE}/vault-main", api.editor)).status_code == 404
    listed = await client.get(deleted.headers["location"])
    assert "The connection vault-main was deleted." in listed.text


async def test_rows_are_added_without_javascript_and_nothing_is_saved(api: Api) -> None:
    vault_fields(api, hosts={"type": "array", "items": {"type": "string"}})
    client = await signed_in(api, api.editor)
    page = await client.get(f"{BASE}/new?connector=vault")
    added = await post_pairs(
        client, f"{BASE}/new", form_of(page.text, name="x", **{"_form_op": "add:v.hosts"})
    )
    assert added.status_code == 200
    assert re.search(r'name="v.hosts.0"[^>]*autofocus', added.text)
    assert 'value="x"' in added.text  # the name typed is kept
    assert (await api.call("GET", f"/api{BASE}", api.editor)).json() == []


async def test_the_viewer_sees_no_write_control_and_its_forged_writes_answer_403(api: Api) -> None:
    editor = await signed_in(api, api.editor)
    await create_vault(editor)
    viewer = await signed_in(api, api.viewer)
    for path in (BASE, f"{BASE}/vault-main"):
        answer = await viewer.get(path)
        assert answer.status_code == 200
        assert write_controls(answer.text) == []
        assert (
            "/edit" not in answer.text
            and "/delete" not in answer.text
            and "/new" not in answer.text
        )
        assert_no_secret(answer.text)
    pages = ("new?connector=vault", "vault-main/edit", "vault-main/delete", "vault-main/connect")
    for path in (f"{BASE}/{p}" for p in pages):
        assert (await viewer.get(path)).status_code == 403, path
    for path in (
        f"{BASE}/new",
        f"{BASE}/vault-main/edit",
        f"{BASE}/vault-main/test",
        f"{BASE}/vault-main/refresh",
        f"{BASE}/vault-main/delete",
    ):
        forged = await post_pairs(
            viewer, path, [("name", "x"), ("connector", "vault"), ("v.region", "us")]
        )
        assert forged.status_code == 403, path
    assert (await api.call("GET", f"/api{BASE}/vault-main", api.editor)).json()["settings"] == {
        "region": "eu"
    }


async def test_names_and_values_are_escaped(api: Api) -> None:
    client = await signed_in(api, api.editor)
    payload = "<script>alert(1)</script>"
    values = {"api_key": KEY, "region": "eu", "pin": 1}
    body = {"name": "xss", "connector": "vault", "values": values}
    created = await api.call("POST", f"/api{BASE}", api.editor, json=body)
    assert created.status_code == 201
    vault_fields(api, region={"type": "string", "description": payload, "title": payload})
    for path in (BASE, f"{BASE}/xss", f"{BASE}/xss/edit"):
        answer = await client.get(path)
        assert "<script>alert" not in answer.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in answer.text or path != f"{BASE}/xss/edit"


async def test_connect_completes_the_authorization_and_returns_to_the_page(
    settings: Settings,
    stand_in: StandIn,  # noqa: F811 - the fixture of tests/test_api_oauth2.py
) -> None:
    async for api in started_api(settings.replace(allow_hosts=("127.0.0.1",))):
        provider = {"authorize_url": f"{stand_in.base}/authorize",
                    "token_url": f"{stand_in.base}/token", "scopes": ["contacts"]}  # fmt: skip
        await add_oauthy_connection(api, provider, CLIENT_ID, CLIENT_SECRET)
        client = await signed_in(api, api.editor)
        start = await client.get(f"{BASE}/crm/connect")
        assert start.status_code == 303
        async with httpx.AsyncClient() as outside:
            consent = await outside.get(start.headers["location"])
        assert consent.status_code == 302
        back = urlsplit(consent.headers["location"])
        returned = await client.get(f"{back.path}?{back.query}")
        assert returned.status_code == 303
        assert returned.headers["location"] == f"{BASE}/crm?notice=connected"
        page = await client.get(returned.headers["location"])
        assert "The service authorized the connection." in page.text
        assert "Connected" in page.text and "Connect again" in page.text
        first, _ = await api.hub.engine.connection_values("default", "crm")
        refreshed = await post_form(client, f"{BASE}/crm/refresh")
        assert refreshed.headers["location"] == f"{BASE}/crm?notice=refreshed"
        values, _ = await api.hub.engine.connection_values("default", "crm")
        assert values["access_token"] != first["access_token"]
        page = await client.get(refreshed.headers["location"])
        assert "The access token was refreshed." in page.text
        for secret in (first["access_token"], values["access_token"], CLIENT_SECRET):
            assert secret not in page.text
            assert secret not in (await client.get(BASE)).text


async def test_no_log_record_carries_the_secret(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = await signed_in(api, api.editor)
    await create_vault(client, region="bad")
    edit = await client.get(f"{BASE}/vault-main/edit")
    await post_pairs(client, f"{BASE}/vault-main/edit", form_of(edit.text, **{"v.pin": "oops"}))
    await post_form(client, f"{BASE}/vault-main/test")
    # Today these pages log nothing at all: this guards against a log line that would.
    for record in caplog.records:
        text = record.getMessage() + str(record.__dict__)
        assert_no_secret(text)


async def test_a_write_only_field_of_any_widget_is_kept_when_not_given_again(api: Api) -> None:
    vault_fields(api, tier={"enum": ["gold", "silver"], "writeOnly": True})
    values = {"api_key": KEY, "region": "eu", "tier": "gold"}
    body = {"name": "tiered", "connector": "vault", "values": values}
    assert (await api.call("POST", f"/api{BASE}", api.editor, json=body)).status_code == 201
    client = await signed_in(api, api.editor)
    edit = await client.get(f"{BASE}/tiered/edit")
    assert "gold" not in re.sub(r"<option[^>]*>gold</option>", "", edit.text)  # not selected
    saved = await post_pairs(
        client, f"{BASE}/tiered/edit", form_of(edit.text, **{"v.region": "us"})
    )
    assert saved.status_code == 303, saved.text
    stored, _ = await api.hub.engine.connection_values("default", "tiered")
    assert stored == {"api_key": KEY, "region": "us", "tier": "gold"}


def test_the_places_a_flow_names_a_connection() -> None:
    document = {
        "trigger": {
            "type": "webhook",
            "connection": "crm",
            "config": {"signature": {"secret_ref": "crm"}, "sender": {"secret_ref": "other"}},
        },
        "steps": [{"id": "a", "connection": "crm"}, {"id": "b", "connection": "crm-2"}, "junk"],
    }
    assert connection_places(document, "crm") == [
        "trigger.connection",
        "trigger.config.signature.secret_ref",
        "steps[0].connection",
    ]
    assert connection_places(document, "other") == ["trigger.config.sender.secret_ref"]
    assert connection_places(None, "crm") == []


async def test_with_htmx_the_form_is_swapped_in_place_and_a_save_redirects(api: Api) -> None:
    client = await signed_in(api, api.editor)
    page = await client.get(f"{BASE}/new?connector=vault")
    assert 'hx-post="/w/default/connections/new" hx-target="this"' in page.text
    headers = htmx_headers(client, f"{BASE}/new?connector=vault")
    invalid = await post_pairs(client, f"{BASE}/new", form_of(page.text, name="h"), headers=headers)
    assert invalid.status_code == 422 and invalid.text.lstrip().startswith("<form")
    typed = {"v.api_key": KEY, "v.region": "us"}
    saved = await post_pairs(
        client, f"{BASE}/new", form_of(page.text, name="h", **typed), headers=headers
    )
    assert saved.status_code == 200 and saved.headers["hx-redirect"] == f"{BASE}/h?notice=created"


async def test_the_new_form_is_titled_by_the_connectors_title_and_says_required_first(
    api: Api,
) -> None:
    """The form's title uses the connector's title (its name when it has none), and the
    note on required fields comes before the first field (the connection's name), once."""
    api.hub.registry.connectors["vault"].title = "Vault <Pro>"
    client = await signed_in(api, api.editor)
    html = (await client.get(f"{BASE}/new?connector=vault")).text
    assert "<h1>New Vault &lt;Pro&gt; connection</h1>" in html
    note = "Fields marked with an asterisk"
    assert html.count(note) == 1
    assert html.index(note) < html.index('<label for="connection-name">')
    untitled = (await client.get(f"{BASE}/new?connector=oauthy")).text
    assert "<h1>New oauthy connection</h1>" in untitled
    await create_vault(client)
    edit = (await client.get(f"{BASE}/vault-main/edit")).text
    assert edit.count(note) == 1  # editing: the generated fields' own note


async def test_a_connection_with_its_own_access_token_is_not_shown_as_waiting_for_oauth2(
    api: Api,
) -> None:
    """An OAuth2 connector whose connections may also hold an access token of their own
    (HubSpot's private app token): such a connection shows no pending OAuth2 state and no
    "Connect"; one without it still does."""
    connector = api.hub.registry.connectors["oauthy"]
    schema = copy.deepcopy(connector.connection_schema or {})
    schema["properties"]["access_token"] = {"type": "string", "writeOnly": True}
    schema["required"] = []
    connector.connection_schema = schema
    token = "pat-na1-0f1e2d3c"
    for name, values in (("own", {"access_token": token}), ("bare", {"client_id": "abc"})):
        body = {"name": name, "connector": "oauthy", "values": values}
        created = await api.call("POST", f"/api{BASE}", api.editor, json=body)
        assert created.status_code == 201, created.text
    client = await signed_in(api, api.editor)
    own = (await client.get(f"{BASE}/own")).text
    assert f'href="{BASE}/own/connect"' not in own and "Not connected yet" not in own
    assert "It uses the access token stored with its values" in own
    assert token not in own
    bare = (await client.get(f"{BASE}/bare")).text
    assert f'href="{BASE}/bare/connect"' in bare and "Not connected yet" in bare
