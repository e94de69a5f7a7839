"""The HubSpot CRM actions against a local stand-in of the HubSpot API.

api.hubapi.com cannot be reached from here: ``hubspot_standin`` implements the documented
requests and answers of the CRM v3 objects and search, v4 associations, pipelines, owners and
OAuth2 token endpoints (checking the bearer token, bodies, search limits, unique emails) on
127.0.0.1. Each test asserts what the connector sent as well as what it returned.
"""

from __future__ import annotations

from typing import Any

import hubspot_standin
import pytest
from hub_hubspot import plugin
from hub_hubspot.crm import owner_options, pipeline_options, stage_options
from jsonschema import Draft202012Validator

from hub import ActionError
from hub.testing import Settings, check_examples, make_context, registry_of, run_action

REGISTRY = registry_of(plugin)


def action(name: str) -> Any:
    found = REGISTRY.action(f"hubspot.{name}")
    assert found is not None, name
    return found


async def call(name: str, data: Any, connection: dict[str, Any], settings: Settings) -> Any:
    return await run_action(action(name), data, connection=connection, settings=settings)


async def test_create_contact_posts_the_properties_with_the_token(
    hubspot_api: Any, connection: dict[str, Any], loopback: Settings
) -> None:
    out = await call(
        "create_contact",
        {"properties": {"email": "ada@example.com", "firstname": "Ada"}, "owner_id": 1001},
        connection,
        loopback,
    )
    [sent] = hubspot_api.requests
    assert (sent.method, sent.path) == ("POST", "/crm/v3/objects/contacts")
    assert sent.headers["authorization"] == f"Bearer {hubspot_standin.TOKEN}"
    assert sent.headers["content-type"] == "application/json"
    assert sent.json == {
        "properties": {"email": "ada@example.com", "firstname": "Ada", "hubspot_owner_id": "1001"}
    }
    assert out["id"] in hubspot_api.records["contacts"]
    assert out["properties"]["email"] == "ada@example.com"


async def test_a_duplicate_contact_fails_without_retry_naming_the_existing_id(
    hubspot_api: Any, connection: dict[str, Any], loopback: Settings
) -> None:
    existing = hubspot_api.add("contacts", {"email": "ada@example.com"})
    with pytest.raises(ActionError) as caught:
        await call(
            "create_contact", {"properties": {"email": "ada@example.com"}}, connection, loopback
        )
    assert not caught.value.retryable
    assert f"HTTP 409: Contact already exists. Existing ID: {existing}" in str(caught.value)


async def test_create_deal_merges_pipeline_stage_and_owner_into_properties(
    hubspot_api: Any, connection: dict[str, Any], loopback: Settings
) -> None:
    out = await call(
        "create_deal",
        {
            "properties": {"dealname": "Big one", "amount": 1200},
            "pipeline": "default",
            "dealstage": "appointmentscheduled",
            "owner_id": "1002",
        },
        connection,
        loopback,
    )
    assert hubspot_api.requests[0].json["properties"] == {
        "dealname": "Big one",
        "amount": 1200,
        "pipeline": "default",
        "dealstage": "appointmentscheduled",
        "hubspot_owner_id": "1002",
    }
    assert out["properties"]["amount"] == "1200"


async def test_a_deal_without_its_required_properties_is_a_clear_validation_error(
    hubspot_api: Any, connection: dict[str, Any], loopback: Settings
) -> None:
    with pytest.raises(
        ActionError, match=r"hubspot\.create_deal: HubSpot answered HTTP 400"
    ) as caught:
        await call("create_deal", {"properties": {"amount": 5}}, connection, loopback)
    assert "dealname" in str(caught.value)
    assert not caught.value.retryable


async def test_get_by_id_by_email_and_not_found(
    hubspot_api: Any, connection: dict[str, Any], loopback: Settings
) -> None:
    rid = hubspot_api.add("contacts", {"email": "bo@example.com", "firstname": "Bo"})
    by_id = await call("get_contact", {"id": rid}, connection, loopback)
    assert by_id == {"found": True, "record": hubspot_api.records["contacts"][rid]}
    by_email = await call(
        "get_contact",
        {"id": "bo@example.com", "id_property": "email", "properties": ["firstname"]},
        connection,
        loopback,
    )
    assert by_email["record"]["properties"] == {"firstname": "Bo"}
    sent = hubspot_api.requests[1]
    assert (sent.method, sent.raw_path) == ("GET", "/crm/v3/objects/contacts/bo%40example.com")
    assert sent.query == {"idProperty": "email", "properties": "firstname"}
    missing = await call("get_company", {"id": 424242}, connection, loopback)
    assert missing == {"found": False, "record": None}


async def test_update_patches_only_the_given_properties(
    hubspot_api: Any, connection: dict[str, Any], loopback: Settings
) -> None:
    rid = hubspot_api.add("companies", {"name": "Old name", "domain": "acme.test"})
    out = await call(
        "update_company", {"id": rid, "properties": {"name": "Acme"}}, connection, loopback
    )
    [sent] = hubspot_api.requests
    assert (sent.method, sent.path) == ("PATCH", f"/crm/v3/objects/companies/{rid}")
    assert sent.json == {"properties": {"name": "Acme"}}
    assert out["properties"]["name"] == "Acme" and out["properties"]["domain"] == "acme.test"
    with pytest.raises(ActionError, match="HTTP 404"):
        await call("update_company", {"id": "1", "properties": {"name": "x"}}, connection, loopback)


async def test_search_sends_filter_groups_and_pages_with_after(
    hubspot_api: Any, connection: dict[str, Any], loopback: Settings
) -> None:
    for i in range(3):
        hubspot_api.add("contacts", {"email": f"p{i}@corp.test", "lifecyclestage": "lead"})
    hubspot_api.add("contacts", {"email": "x@other.test", "lifecyclestage": "customer"})
    first = await call(
        "search_contacts",
        {
            "filters": [{"propertyName": "lifecyclestage", "operator": "EQ", "value": "lead"}],
            "properties": ["email"],
            "sorts": [{"propertyName": "email", "direction": "ASCENDING"}],
            "limit": 2,
        },
        connection,
        loopback,
    )
    sent = hubspot_api.requests[0]
    assert (sent.method, sent.path) == ("POST", "/crm/v3/objects/contacts/search")
    assert sent.json == {
        "filterGroups": [
            {"filters": [{"propertyName": "lifecyclestage", "operator": "EQ", "value": "lead"}]}
        ],
        "limit": 2,
        "properties": ["email"],
        "sorts": [{"propertyName": "email", "direction": "ASCENDING"}],
    }
    assert first["total"] == 3 and len(first["results"]) == 2
    assert first["next_after"] == "2"
    second = await call(
        "search_contacts",
        {
            "filter_groups": [
                {"filters": [{"propertyName": "lifecyclestage", "operator": "EQ", "value": "lead"}]}
            ],
            "limit": 2,
            "after": first["next_after"],
        },
        connection,
        loopback,
    )
    assert hubspot_api.requests[1].json["after"] == "2"
    assert len(second["results"]) == 1 and second["next_after"] is None


async def test_search_with_more_than_18_filters_is_refused_before_any_request(
    hubspot_api: Any, connection: dict[str, Any], loopback: Settings
) -> None:
    f = {"propertyName": "email", "operator": "HAS_PROPERTY"}
    groups = [{"filters": [f] * 6} for _ in range(4)]
    with pytest.raises(ActionError, match="24 filters; HubSpot accepts at most 18"):
        await call("search_deals", {"filter_groups": groups}, connection, loopback)
    assert hubspot_api.requests == []


async def test_associate_default_and_labelled(
    hubspot_api: Any, connection: dict[str, Any], loopback: Settings
) -> None:
    deal = hubspot_api.add("deals", {"dealname": "d", "dealstage": "closedwon"})
    contact = hubspot_api.add("contacts", {"email": "c@example.com"})
    out = await call(
        "associate",
        {"from_type": "deals", "from_id": deal, "to_type": "contacts", "to_id": int(contact)},
        connection,
        loopback,
    )
    assert out == {
        "from_type": "deals",
        "from_id": deal,
        "to_type": "contacts",
        "to_id": contact,
        "association_type_id": None,
    }
    labelled = await call(
        "associate",
        {
            "from_type": "contacts",
            "from_id": contact,
            "to_type": "deals",
            "to_id": deal,
            "association_type_id": 4,
        },
        connection,
        loopback,
    )
    first, second = hubspot_api.requests
    assert (first.method, first.path) == (
        "PUT",
        f"/crm/v4/objects/deals/{deal}/associations/default/contacts/{contact}",
    )
    assert first.body == b""
    assert (second.method, second.path) == (
        "PUT",
        f"/crm/v4/objects/contacts/{contact}/associations/deals/{deal}",
    )
    assert second.json == [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 4}]
    assert labelled["association_type_id"] == 4
    assert hubspot_api.associations == [
        ("deals", deal, "contacts", contact, 0),
        ("contacts", contact, "deals", deal, 4),
    ]


async def test_pipelines_and_owners_and_their_options(
    hubspot_api: Any, connection: dict[str, Any], loopback: Settings
) -> None:
    pipelines = await call("list_pipelines", {}, connection, loopback)
    assert [p["id"] for p in pipelines["pipelines"]] == ["default", "renewals"]  # display order
    owners = await call("list_owners", {}, connection, loopback)
    assert len(owners["owners"]) == 120
    pages = hubspot_api.calls("GET", "/crm/v3/owners")
    assert [p.query for p in pages] == [{"limit": "100"}, {"limit": "100", "after": "100"}]

    assert set(action("create_deal").options) == {"owner_id", "pipeline", "dealstage"}
    assert set(action("update_contact").options) == {"owner_id"}
    hubspot_api.reset()
    ctx = make_context(settings=loopback, connection=connection)
    try:
        assert await pipeline_options(ctx) == [
            {"value": "default", "label": "Sales Pipeline"},
            {"value": "renewals", "label": "Renewals"},
        ]
        stages = await stage_options(ctx)
        owners_opts = await owner_options(ctx)
    finally:
        await ctx.http.aclose()
    assert {"value": "closedwon", "label": "Sales Pipeline / Closed Won"} in stages
    assert owners_opts[0] == {"value": "1000", "label": "Owner0 Example <owner0@example.com>"}
    assert len(hubspot_api.calls("GET", "/crm/v3/pipelines")) == 1  # cached for both options


async def test_a_refused_token_fails_without_retry_and_without_the_token(
    hubspot_api: Any, connection: dict[str, Any], loopback: Settings
) -> None:
    wrong = "pat-na1-not-a-valid-token-000000"
    with pytest.raises(ActionError) as caught:
        await call("get_deal", {"id": "1"}, {**connection, "access_token": wrong}, loopback)
    assert "HubSpot refused the credentials (HTTP 401)" in str(caught.value)
    assert not caught.value.retryable
    assert wrong not in str(caught.value)
    assert hubspot_api.requests[0].headers["authorization"] == f"Bearer {wrong}"


async def test_429_is_retryable_after_retry_after(
    hubspot_api: Any, connection: dict[str, Any], loopback: Settings
) -> None:
    limited = {
        "status": "error",
        "message": "You have reached your ten_secondly_rolling limit.",
        "errorType": "RATE_LIMIT",
        "policyName": "TEN_SECONDLY_ROLLING",
    }
    hubspot_api.force(429, limited, {"Retry-After": "3"})
    with pytest.raises(ActionError) as caught:
        await call("get_contact", {"id": "1"}, connection, loopback)
    assert caught.value.retryable and caught.value.retry_after == 3.0
    hubspot_api.force(429, limited)  # no Retry-After: the ten-second window
    with pytest.raises(ActionError) as caught:
        await call("get_contact", {"id": "1"}, connection, loopback)
    assert caught.value.retryable and caught.value.retry_after == 10.0
    assert "TEN_SECONDLY_ROLLING" in str(caught.value)


async def test_5xx_is_retryable(
    hubspot_api: Any, connection: dict[str, Any], loopback: Settings
) -> None:
    hubspot_api.force(502, b"Bad gateway")
    with pytest.raises(ActionError) as caught:
        await call("search_companies", {}, connection, loopback)
    assert caught.value.retryable
    assert "HTTP 502" in str(caught.value)


async def test_oauth2_refreshes_a_missing_token_once_and_reuses_it(
    hubspot_api: Any, oauth_connection: dict[str, Any], loopback: Settings
) -> None:
    await call("list_pipelines", {}, oauth_connection, loopback)
    await call("get_deal", {"id": "1"}, oauth_connection, loopback)
    token_call, first, second = hubspot_api.requests
    assert (token_call.method, token_call.path) == ("POST", "/oauth/v1/token")
    assert token_call.headers["content-type"] == "application/x-www-form-urlencoded"
    assert token_call.form == {
        "grant_type": "refresh_token",
        "client_id": hubspot_standin.CLIENT_ID,
        "client_secret": hubspot_standin.CLIENT_SECRET,
        "refresh_token": hubspot_standin.REFRESH_TOKEN,
    }
    assert "authorization" not in token_call.headers
    assert first.headers["authorization"] == "Bearer standin-access-token-0001"
    assert second.headers["authorization"] == "Bearer standin-access-token-0001"


async def test_oauth2_refreshes_an_expired_token_and_retries_once(
    hubspot_api: Any, oauth_connection: dict[str, Any], loopback: Settings
) -> None:
    hubspot_api.expired_tokens.add("old-access-token-1234")
    conn = {**oauth_connection, "access_token": "old-access-token-1234"}
    out = await call("list_owners", {"email": "owner3@example.com"}, conn, loopback)
    assert [o["id"] for o in out["owners"]] == ["1003"]
    paths = [(r.path, r.headers.get("authorization")) for r in hubspot_api.requests]
    assert paths == [
        ("/crm/v3/owners", "Bearer old-access-token-1234"),
        ("/oauth/v1/token", None),
        ("/crm/v3/owners", "Bearer standin-access-token-0001"),
    ]


async def test_a_refused_refresh_token_is_a_clear_credentials_error(
    hubspot_api: Any, oauth_connection: dict[str, Any], loopback: Settings
) -> None:
    conn = {**oauth_connection, "refresh_token": "revoked-refresh-token-999"}
    with pytest.raises(ActionError) as caught:
        await call("get_contact", {"id": "1"}, conn, loopback)
    message = str(caught.value)
    assert "refused the credentials (HTTP 400): missing or unknown token" in message
    assert not caught.value.retryable
    for secret in ("revoked-refresh-token-999", hubspot_standin.CLIENT_SECRET):
        assert secret not in message


async def test_test_connection(
    hubspot_api: Any, connection: dict[str, Any], loopback: Settings
) -> None:
    ctx = make_context(settings=loopback)
    try:
        assert await plugin.test_connection(connection, ctx.http) == {"ok": True}
        with pytest.raises(ActionError, match="refused the credentials"):
            await plugin.test_connection({**connection, "access_token": "nope-nope-nope"}, ctx.http)
    finally:
        await ctx.http.aclose()
    assert hubspot_api.requests[0].query == {"limit": "1"}


def test_the_connection_schema_requires_a_token_or_refresh_credentials() -> None:
    schema = REGISTRY.connectors["hubspot"].connection_schema
    valid = Draft202012Validator(schema).is_valid
    assert valid({"access_token": "pat-x"})
    assert not valid({})
    assert valid({"auth": "oauth2", "refresh_token": "r", "client_id": "c", "client_secret": "s"})
    assert not valid({"auth": "oauth2", "refresh_token": "r"})
    secrets = {k for k, v in schema["properties"].items() if v.get("writeOnly")}
    assert secrets == {"access_token", "refresh_token", "client_secret"}
    oauth2 = REGISTRY.connectors["hubspot"].oauth2
    assert oauth2["authorize_url"] == "https://app.hubspot.com/oauth/authorize"
    assert oauth2["token_url"] == "https://api.hubapi.com/oauth/v1/token"
    assert "crm.objects.deals.write" in oauth2["scopes"]


def test_declared_examples_validate_and_policies_are_set() -> None:
    for act in REGISTRY.connectors["hubspot"].actions:
        check_examples(act)
        assert act.rate_limit is not None, act.name
    assert action("search_contacts").rate_limit.requests == 5  # type: ignore[union-attr]
    assert action("get_contact").rate_limit.per_seconds == 10.0  # type: ignore[union-attr]
    assert action("list_owners").cache is not None
