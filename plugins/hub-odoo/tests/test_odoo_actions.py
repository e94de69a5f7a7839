"""The Odoo actions over JSON-2 and JSON-RPC, against a local stand-in of Odoo's external API.

No Odoo server is reachable from here: ``odoo_standin`` implements the documented requests and
answers of ``/json/2/<model>/<method>`` and ``/jsonrpc`` (common.authenticate,
object.execute_kw) on 127.0.0.1, checking the API key, the database, the arguments and
required fields. Tests assert what the connector sent as well as what it returned; most run
once per protocol.
"""

from __future__ import annotations

from typing import Any

import odoo_standin
import pytest
from hub_odoo import plugin
from hub_odoo.client import OdooClient
from hub_odoo.plugin import field_options, model_options
from jsonschema import Draft202012Validator

from hub import ActionError
from hub.testing import Settings, check_examples, make_context, registry_of, run_action

REGISTRY = registry_of(plugin)
KEY = odoo_standin.API_KEY


def action(name: str) -> Any:
    found = REGISTRY.action(f"odoo.{name}")
    assert found is not None
    return found


async def call(name: str, data: Any, connection: dict[str, Any], settings: Settings) -> Any:
    return await run_action(action(name), data, connection=connection, settings=settings)


def no_leak(exc: BaseException) -> None:
    assert KEY not in str(exc)
    assert "TRACEBACK-MARKER" not in str(exc)


async def test_json2_search_read_sends_the_key_as_bearer_and_named_arguments(
    odoo: Any, json2: dict[str, Any], loopback: Settings
) -> None:
    odoo.add("Ada", email="ada@example.com")
    odoo.add("Bob", email="bob@example.com")
    out = await call(
        "search_read",
        {
            "model": "res.partner",
            "domain": [["email", "=ilike", "ADA@example.com"]],
            "fields": ["name"],
            "limit": 5,
            "context": {"lang": "fr_FR"},
        },
        {**json2, "database": odoo_standin.DATABASE},
        loopback,
    )
    assert out == {"records": [{"id": 1, "name": "Ada"}], "count": 1}
    [sent] = odoo.requests
    assert (sent.method, sent.path) == ("POST", "/json/2/res.partner/search_read")
    assert sent.headers["authorization"] == f"bearer {KEY}"
    assert sent.headers["x-odoo-database"] == odoo_standin.DATABASE
    assert sent.headers["content-type"].startswith("application/json")
    assert sent.json == {
        "domain": [["email", "=ilike", "ADA@example.com"]],
        "fields": ["name"],
        "limit": 5,
        "context": {"lang": "fr_FR"},
    }


async def test_json2_without_a_database_sends_no_database_header(
    odoo: Any, json2: dict[str, Any], loopback: Settings
) -> None:
    await call("search_read", {"model": "res.partner"}, json2, loopback)
    assert "x-odoo-database" not in odoo.requests[0].headers


async def test_jsonrpc_authenticates_once_then_calls_execute_kw(
    odoo: Any, jsonrpc: dict[str, Any], loopback: Settings
) -> None:
    odoo.add("Ada", is_company=True)
    ctx = make_context(settings=loopback, connection=jsonrpc)
    try:
        data = {"model": "res.partner", "domain": [["is_company", "=", True]], "fields": ["name"]}
        first = await action("search_read").run(ctx, data)
        await action("search_read").run(ctx, data)
    finally:
        await ctx.http.aclose()
    assert first["records"] == [{"id": 1, "name": "Ada"}]
    auth, call1, call2 = (r.json for r in odoo.requests)
    assert all(r.path == "/jsonrpc" for r in odoo.requests)
    assert auth["params"] == {
        "service": "common",
        "method": "authenticate",
        "args": [odoo_standin.DATABASE, odoo_standin.LOGIN, KEY, {}],
    }
    assert call1["params"]["service"] == "object" and call1["params"]["method"] == "execute_kw"
    assert call1["params"]["args"] == [
        odoo_standin.DATABASE,
        odoo_standin.UID,
        KEY,
        "res.partner",
        "search_read",
        [],
        {"domain": [["is_company", "=", True]], "fields": ["name"]},
    ]
    assert call2["params"]["args"] == call1["params"]["args"]  # the uid came from the cache
    assert call1["jsonrpc"] == "2.0" and call1["method"] == "call" and call1["id"] != call2["id"]


async def test_create_write_unlink_on_both_protocols(
    odoo: Any, connection: dict[str, Any], loopback: Settings
) -> None:
    one = await call(
        "create", {"model": "res.partner", "values": {"name": "Ada"}}, connection, loopback
    )
    many = await call(
        "create",
        {"model": "res.partner", "values": [{"name": "Bob"}, {"name": "Cy", "is_company": True}]},
        connection,
        loopback,
    )
    assert one == {"id": 1, "ids": [1]}
    assert many == {"id": 2, "ids": [2, 3]}
    written = await call(
        "write",
        {"model": "res.partner", "ids": [1, 2], "values": {"email": "x@example.com"}},
        connection,
        loopback,
    )
    assert written == {"ok": True, "ids": [1, 2]}
    assert odoo.partners[2]["email"] == "x@example.com"
    gone = await call("unlink", {"model": "res.partner", "ids": 3}, connection, loopback)
    assert gone == {"ok": True, "ids": [3]}
    assert sorted(odoo.partners) == [1, 2]
    found = await call(
        "search_read",
        {
            "model": "res.partner",
            "domain": ["|", ["name", "=", "Ada"], ["name", "=", "Bob"]],
            "fields": ["name", "email"],
            "order": "name desc",
        },
        connection,
        loopback,
    )
    assert found["records"] == [
        {"id": 2, "name": "Bob", "email": "x@example.com"},
        {"id": 1, "name": "Ada", "email": "x@example.com"},
    ]


async def test_the_wire_format_of_create_write_unlink(
    odoo: Any, json2: dict[str, Any], jsonrpc: dict[str, Any], loopback: Settings
) -> None:
    model = {"model": "res.partner"}
    for conn in (json2, jsonrpc):
        await call("create", {**model, "values": {"name": "Ada"}}, conn, loopback)
        await call("write", {**model, "ids": [1], "values": {"name": "A"}}, conn, loopback)
        await call("unlink", {**model, "ids": [1]}, conn, loopback)
        odoo.next_id = 1
    bodies = [r.json for r in odoo.requests]
    assert [r.path for r in odoo.requests[:3]] == [
        "/json/2/res.partner/create",
        "/json/2/res.partner/write",
        "/json/2/res.partner/unlink",
    ]
    assert bodies[:3] == [
        {"vals_list": [{"name": "Ada"}]},
        {"vals": {"name": "A"}, "ids": [1]},
        {"ids": [1]},
    ]
    rpc = [b["params"]["args"][4:] for b in bodies[3:] if b["params"]["service"] == "object"]
    assert rpc == [
        ["create", [[{"name": "Ada"}]], {}],  # vals_list by position (its name changed)
        ["write", [[1]], {"vals": {"name": "A"}}],
        ["unlink", [[1]], {}],
    ]


async def test_a_refused_api_key_is_a_clear_non_retryable_error(
    odoo: Any, connection: dict[str, Any], loopback: Settings
) -> None:
    wrong = {**connection, "api_key": "not-the-key-0000000000"}
    with pytest.raises(ActionError) as caught:
        await call("search_read", {"model": "res.partner"}, wrong, loopback)
    assert "Odoo refused the credentials" in str(caught.value)
    assert not caught.value.retryable
    assert "not-the-key-0000000000" not in str(caught.value)
    no_leak(caught.value)


async def test_a_validation_error_carries_odoos_message_but_not_its_traceback(
    odoo: Any, connection: dict[str, Any], loopback: Settings
) -> None:
    with pytest.raises(ActionError) as caught:
        await call(
            "create", {"model": "res.partner", "values": {"email": "x"}}, connection, loopback
        )
    message = str(caught.value)
    assert message.startswith("odoo.create: Odoo refused the values: The operation cannot be")
    assert "Field: Name (name)" in message
    assert not caught.value.retryable
    no_leak(caught.value)


async def test_missing_records_and_denied_access_are_not_retried(
    odoo: Any, connection: dict[str, Any], loopback: Settings
) -> None:
    with pytest.raises(ActionError, match="does not exist") as missing:
        await call(
            "write",
            {"model": "res.partner", "ids": [99], "values": {"name": "x"}},
            connection,
            loopback,
        )
    with pytest.raises(ActionError, match="Odoo denied access") as denied:
        await call("search_read", {"model": "res.users"}, connection, loopback)
    for caught in (missing, denied):
        assert not caught.value.retryable
        no_leak(caught.value)


async def test_an_unknown_model_is_named(
    odoo: Any, json2: dict[str, Any], loopback: Settings
) -> None:
    with pytest.raises(ActionError, match="no model 'x_nothing' or method 'search_read'"):
        await call("search_read", {"model": "x_nothing"}, json2, loopback)


async def test_429_is_retryable_after_retry_after(
    odoo: Any, connection: dict[str, Any], loopback: Settings
) -> None:
    if connection["protocol"] == "jsonrpc":
        odoo.force(200, {"jsonrpc": "2.0", "id": 1, "result": odoo_standin.UID})  # authenticate
    odoo.force(429, b"Too Many Requests", {"Retry-After": "12"})
    with pytest.raises(ActionError) as caught:
        await call("search_read", {"model": "res.partner"}, connection, loopback)
    assert caught.value.retryable and caught.value.retry_after == 12.0


async def test_5xx_and_serialization_failures_are_retryable(
    odoo: Any, json2: dict[str, Any], jsonrpc: dict[str, Any], loopback: Settings
) -> None:
    odoo.force(503, b"<html>maintenance</html>")
    with pytest.raises(ActionError) as outage:
        await call("search_read", {"model": "res.partner"}, json2, loopback)
    assert outage.value.retryable and "HTTP 503" in str(outage.value)
    odoo.force(200, {"jsonrpc": "2.0", "id": 1, "result": odoo_standin.UID})
    conflict = {
        "code": 200,
        "message": "Odoo Server Error",
        "data": {
            "name": "psycopg2.errors.SerializationFailure",
            "message": "could not serialize access due to concurrent update",
            "debug": "TRACEBACK-MARKER",
        },
    }
    odoo.force(200, {"jsonrpc": "2.0", "id": 2, "error": conflict})
    with pytest.raises(ActionError) as caught:
        await call("write", {"model": "res.partner", "ids": [1], "values": {}}, jsonrpc, loopback)
    assert "input.values is empty" in str(caught.value)  # refused before any request
    with pytest.raises(ActionError) as caught:
        await call(
            "write",
            {"model": "res.partner", "ids": [1], "values": {"name": "x"}},
            jsonrpc,
            loopback,
        )
    assert caught.value.retryable
    assert "transient database error" in str(caught.value)
    no_leak(caught.value)


async def test_a_revoked_key_drops_the_cached_uid(
    odoo: Any, jsonrpc: dict[str, Any], loopback: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = make_context(settings=loopback, connection=jsonrpc)
    data = {"model": "res.partner"}
    try:
        await action("search_read").run(ctx, data)
        monkeypatch.setattr(odoo_standin, "API_KEY", "rotated-key")
        with pytest.raises(ActionError, match="refused the credentials"):
            await action("search_read").run(ctx, data)
        monkeypatch.setattr(odoo_standin, "API_KEY", KEY)
        await action("search_read").run(ctx, data)
    finally:
        await ctx.http.aclose()
    methods = [r.json["params"]["method"] for r in odoo.requests]
    assert methods == ["authenticate", "execute_kw", "execute_kw", "authenticate", "execute_kw"]


async def test_names_that_are_not_odoo_names_never_reach_the_server(
    odoo: Any, json2: dict[str, Any], loopback: Settings
) -> None:
    ctx = make_context(settings=loopback, connection=json2)
    try:
        client = OdooClient.of(ctx)
        with pytest.raises(ActionError, match="not an Odoo model name"):
            await client.execute("../web/session", "search_read")
        with pytest.raises(ActionError, match="not a public Odoo method"):
            await client.execute("res.partner", "_private")
    finally:
        await ctx.http.aclose()
    assert odoo.requests == []


async def test_model_and_field_options(
    odoo: Any, connection: dict[str, Any], loopback: Settings
) -> None:
    ctx = make_context(settings=loopback, connection=connection)
    try:
        models = await model_options(ctx)
        assert await field_options(ctx) == []  # no model in the input yet
        ctx.input = {"model": "res.partner"}
        fields = await field_options(ctx)
        again = await model_options(ctx)
    finally:
        await ctx.http.aclose()
    assert (
        models
        == again
        == [
            {"value": "res.partner", "label": "Contact (res.partner)"},
            {"value": "sale.order", "label": "Sales Order (sale.order)"},
        ]
    )
    assert {"value": "email", "label": "Email (email, char)"} in fields
    executed = [r for r in odoo.requests if "authenticate" not in r.body.decode()]
    assert len(executed) == 2  # ir.model once (cached), fields_get once
    assert action("search_read").options.keys() == {"model", "fields"}


async def test_test_connection(odoo: Any, connection: dict[str, Any], loopback: Settings) -> None:
    ctx = make_context(settings=loopback)
    try:
        found = await plugin.test_connection(connection, ctx.http)
        with pytest.raises(ActionError, match="refused the credentials") as caught:
            await plugin.test_connection({**connection, "api_key": "wrong-key-123456"}, ctx.http)
    finally:
        await ctx.http.aclose()
    assert found in (
        {"uid": odoo_standin.UID},
        {"context": {"lang": "en_US", "tz": "Europe/Brussels", "uid": 7}},
    )
    no_leak(caught.value)


async def test_requests_go_through_the_hubs_ssrf_guard(odoo: Any, json2: dict[str, Any]) -> None:
    with pytest.raises(ActionError) as caught:
        await call("search_read", {"model": "res.partner"}, json2, Settings())
    assert not caught.value.retryable
    assert odoo.requests == []


def test_the_connection_schema_and_examples() -> None:
    connector = REGISTRY.connectors["odoo"]
    valid = Draft202012Validator(connector.connection_schema).is_valid
    assert valid({"url": "https://x.odoo.com", "api_key": "k"})
    assert not valid({"url": "https://x.odoo.com", "api_key": "k", "protocol": "jsonrpc"})
    assert valid(
        {
            "url": "https://x",
            "api_key": "k",
            "protocol": "jsonrpc",
            "database": "d",
            "username": "u",
        }
    )
    assert not valid({"api_key": "k"})
    assert connector.connection_schema["properties"]["api_key"]["writeOnly"]
    for act in connector.actions:
        check_examples(act)
