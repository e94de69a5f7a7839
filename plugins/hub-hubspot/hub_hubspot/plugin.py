"""The ``hubspot`` connector: CRM contacts, companies and deals, associations, webhooks.

Every request goes through ``ctx.http`` (the hub's shared client behind the SSRF guard) to
``base_url`` (``https://api.hubapi.com`` unless the connection says otherwise).
"""

from __future__ import annotations

from typing import Any

import httpx

from hub import Connector, hookimpl
from hub_hubspot.client import DEFAULT_BASE_URL, TOKEN_PATH, HubSpotClient
from hub_hubspot.crm import crm_actions
from hub_hubspot.webhooks import WEBHOOK_TRIGGER

SCOPES = [
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
    "crm.objects.companies.read",
    "crm.objects.companies.write",
    "crm.objects.deals.read",
    "crm.objects.deals.write",
    "crm.objects.owners.read",
]

OAUTH2: dict[str, Any] = {
    "authorize_url": "https://app.hubspot.com/oauth/authorize",
    "token_url": DEFAULT_BASE_URL + TOKEN_PATH,
    "scopes": SCOPES,
    "scope_separator": " ",
    "client_auth": "request_body",  # client_id and client_secret go in the form body
    "fields": {
        "access_token": "access_token",
        "refresh_token": "refresh_token",
        "client_id": "client_id",
        "client_secret": "client_secret",
    },
}

CONNECTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "auth": {
            "enum": ["private_app", "oauth2"],
            "default": "private_app",
            "description": "private_app: a private app's access token; oauth2: a public app's "
            "OAuth2 tokens.",
        },
        "access_token": {
            "type": "string",
            "writeOnly": True,
            "description": "The private app access token (pat-...), or the OAuth2 access token.",
        },
        "refresh_token": {
            "type": "string",
            "writeOnly": True,
            "description": "OAuth2: the refresh token (the connector refreshes access tokens).",
        },
        "client_id": {"type": "string", "description": "OAuth2: the app's client id."},
        "client_secret": {
            "type": "string",
            "writeOnly": True,
            "description": "The app's client secret: refreshes OAuth2 tokens, and verifies "
            "webhook signatures (v3).",
        },
        "base_url": {
            "type": "string",
            "format": "uri",
            "default": DEFAULT_BASE_URL,
            "description": "The API's base URL.",
        },
    },
    "additionalProperties": False,
    "if": {"properties": {"auth": {"const": "oauth2"}}, "required": ["auth"]},
    "then": {
        "anyOf": [
            {"required": ["access_token"]},
            {"required": ["refresh_token", "client_id", "client_secret"]},
        ]
    },
    "else": {"required": ["access_token"]},
}

NOTES = """\
- **Authentication.** A private app's access token (`auth: private_app`, the default), or
  OAuth2 (`auth: oauth2`) with the `oauth2` block's URLs and scopes. An OAuth2 connection
  holding `refresh_token`, `client_id` and `client_secret` refreshes its access token itself
  (when it has none, or HubSpot answers 401) and keeps the fresh one in process memory only.
- **Errors.** 401: HubSpot refused the credentials (not retried); 403: a missing scope;
  409 (e.g. a contact with that email exists; HubSpot's message names the existing id) and
  400 validation errors are not retried and carry HubSpot's message; 429 is retried after
  `Retry-After` (10 s for the ten-secondly limit when HubSpot sends no header); 5xx and
  connection errors are retried.
- **Rate limits.** 100 requests / 10 s per connection (private apps on Free and Starter;
  higher tiers allow more), and 5 requests / s for the search endpoints.
- **Idempotency.** HubSpot's CRM API takes no idempotency key: a create retried after a
  timeout may create a second record (contacts are protected by the unique email: the retry
  fails with 409 and the existing id). Updates and associations are idempotent.
- **Search.** `filters` is one group of filters that must all match; `filter_groups` is
  HubSpot's `filterGroups` (any group may match). At most 5 groups, 6 filters per group,
  18 filters in all; `limit` up to 200; page with `after` = the previous `next_after`.
- **Webhook trigger.** Point the app's webhook target URL at the flow's webhook URL; the v3
  signature is verified with the connection's `client_secret` (5 minutes tolerance). Give
  `config.public_url` when a proxy in front of the hub changes the URL HubSpot calls.
"""


async def test_connection(connection: dict[str, Any], http: httpx.AsyncClient | None = None) -> Any:
    """Read one contact to prove the token works; return ``{"ok": true}``.

    Pass the hub's guarded client as ``http``; without it a plain client is used.
    """
    if http is not None:
        await HubSpotClient(http, connection).request(
            "GET", "/crm/v3/objects/contacts", "hubspot connection test", params={"limit": 1}
        )
    else:
        async with httpx.AsyncClient() as own:
            await HubSpotClient(own, connection).request(
                "GET", "/crm/v3/objects/contacts", "hubspot connection test", params={"limit": 1}
            )
    return {"ok": True}


@hookimpl
def hub_connectors() -> list[Connector]:
    """The ``hubspot`` connector."""
    return [
        Connector(
            name="hubspot",
            title="HubSpot",
            version="1",
            icon="hubspot",
            description="HubSpot CRM: search, read, create, update and associate contacts, "
            "companies and deals; react to HubSpot webhooks.",
            connection_schema=CONNECTION_SCHEMA,
            oauth2=OAUTH2,
            actions=crm_actions(),
            triggers=[WEBHOOK_TRIGGER],
            test_connection=test_connection,
            notes=NOTES,
        )
    ]
