"""The HubSpot webhook trigger: v3 request signatures and event filtering.

HubSpot signs each webhook request: ``X-HubSpot-Signature-v3`` is the base64 HMAC-SHA256,
keyed with the app's client secret, of ``method + uri + body + timestamp`` where ``uri`` is
the full URL HubSpot called (scheme, host, path and query, with a few percent-escapes
decoded) and ``timestamp`` is the ``X-HubSpot-Request-Timestamp`` header (epoch
milliseconds). Requests more than five minutes old are refused.

The functions are pure (no I/O, the time passed in), so whatever route receives the requests
can call them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from hub import Trigger

TOLERANCE_SECONDS = 300
SIGNATURE_HEADER = "x-hubspot-signature-v3"
TIMESTAMP_HEADER = "x-hubspot-request-timestamp"
# HubSpot decodes these escapes in the URI before signing (its documented table).
URI_DECODES = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}


class SignatureError(ValueError):
    """A request does not carry a valid HubSpot v3 signature; the message says why."""


def signing_uri(url: str) -> str:
    """The URI as HubSpot signs it: the listed percent-escapes decoded (either letter case)."""
    out = []
    i = 0
    while i < len(url):
        chunk = url[i : i + 3].upper()
        if url[i] == "%" and chunk in URI_DECODES:
            out.append(URI_DECODES[chunk])
            i += 3
        else:
            out.append(url[i])
            i += 1
    return "".join(out)


def hubspot_signature(
    secret: str, method: str, url: str, raw_body: bytes, timestamp: str | int
) -> str:
    """The ``X-HubSpot-Signature-v3`` value HubSpot sends for this request."""
    source = f"{method.upper()}{signing_uri(url)}".encode() + raw_body + str(timestamp).encode()
    digest = hmac.new(secret.encode(), source, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify_hubspot_signature(
    secret: str,
    method: str,
    url: str,
    headers: Mapping[str, str],
    raw_body: bytes,
    now: float | None = None,
    tolerance: float = TOLERANCE_SECONDS,
) -> None:
    """Check a request's v3 signature; raise :class:`SignatureError` unless it is valid.

    ``url`` is the full URL HubSpot called (as configured in the app, e.g.
    ``https://hub.example.com/hooks/default/deals``), ``headers`` any letter case,
    ``raw_body`` the bytes as received, ``now`` epoch seconds. Constant-time comparison.
    """
    if not secret:
        raise SignatureError("no client secret is configured (connection field client_secret)")
    found = {str(k).lower(): str(v) for k, v in headers.items()}
    signature = found.get(SIGNATURE_HEADER, "").strip()
    stamp = found.get(TIMESTAMP_HEADER, "").strip()
    if not signature or not stamp:
        raise SignatureError(
            "the X-HubSpot-Signature-v3 or X-HubSpot-Request-Timestamp header is missing"
        )
    # ASCII digits, bounded: int() also reads '٣' and ' -5', and a 400-digit number
    # overflows the float arithmetic below.
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 15):
        raise SignatureError("X-HubSpot-Request-Timestamp is not an integer (1-15 ASCII digits)")
    sent_ms = int(stamp)
    now = time.time() if now is None else now
    age = abs(now * 1000 - sent_ms) / 1000
    if age > tolerance:
        raise SignatureError(
            f"the request timestamp is {age:.0f} s away from now (more than {tolerance:g} s): "
            "a replay, or a clock out of sync"
        )
    expected = hubspot_signature(secret, method, url, raw_body, stamp)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise SignatureError(
            "the signature does not match (wrong client secret, altered body, or a URL that "
            "differs from the one HubSpot called: set config.public_url)"
        )


def handle_webhook_request(
    connection: Mapping[str, Any],
    config: Mapping[str, Any],
    method: str,
    url: str,
    headers: Mapping[str, str],
    raw_body: bytes,
    now: float | None = None,
) -> dict[str, Any]:
    """Decide the answer to one webhook request from HubSpot.

    Returns ``{"status", "body", "events"}``: the route answers ``status``/``body`` and starts
    one run per event (HubSpot batches up to 100 events per request). Each event carries an
    ``idempotency_key`` (portal, subscription and event ids) so a redelivery starts no
    second run. ``config.public_url`` replaces ``url`` when a proxy changes the URL.
    """
    try:
        verify_hubspot_signature(
            str(connection.get("client_secret") or ""),
            method,
            str(config.get("public_url") or url),
            headers,
            raw_body,
            now,
            float(config.get("tolerance_seconds") or TOLERANCE_SECONDS),
        )
    except SignatureError as exc:
        return {"status": 401, "body": {"error": f"hubspot signature: {exc}"}, "events": []}
    try:
        payload = json.loads(raw_body)
    except ValueError:
        return {"status": 400, "body": {"error": "the body is not JSON"}, "events": []}
    if isinstance(payload, dict):
        payload = [payload]
    if not isinstance(payload, list):
        return {"status": 400, "body": {"error": "the body is not a JSON array"}, "events": []}
    types = set(config.get("subscription_types") or [])
    names = set(config.get("property_names") or [])
    events = []
    for item in payload:
        if not isinstance(item, dict):
            continue
        if types and item.get("subscriptionType") not in types:
            continue
        if names and item.get("propertyName") not in names:
            continue
        key = f"{item.get('portalId')}:{item.get('subscriptionId')}:{item.get('eventId')}"
        events.append({**item, "idempotency_key": key})
    return {"status": 200, "body": None, "events": events}


WEBHOOK_TRIGGER = Trigger(
    name="webhook",
    kind="webhook",
    title="HubSpot webhook",
    description=(
        "Starts a run for each event HubSpot's webhooks deliver (contact.creation, "
        "deal.propertyChange ...), verifying the v3 signature with the connection's "
        "client_secret."
    ),
    config_schema={
        "type": "object",
        "properties": {
            "subscription_types": {
                "type": "array",
                "items": {"type": "string", "pattern": r"^[a-z_]+\.[A-Za-z_]+$"},
                "description": "Subscription types that start a run (contact.creation, "
                "deal.propertyChange ...); empty: all.",
            },
            "property_names": {
                "type": "array",
                "items": {"type": "string"},
                "description": "For propertyChange events: the properties that start a run.",
            },
            "public_url": {
                "type": "string",
                "format": "uri",
                "description": "The URL configured in HubSpot, when a proxy in front of the "
                "hub changes the scheme, host or path (the signature covers it).",
            },
            "tolerance_seconds": {"type": "number", "minimum": 1, "maximum": 300, "default": 300},
        },
        "additionalProperties": False,
    },
    output_schema={
        "type": "object",
        "properties": {
            "eventId": {"type": "integer", "description": "The event's id (not unique alone)."},
            "subscriptionId": {"type": "integer", "description": "The subscription's id."},
            "portalId": {"type": "integer", "description": "The HubSpot account."},
            "occurredAt": {"type": "integer", "description": "Epoch milliseconds."},
            "subscriptionType": {"type": "string", "description": "e.g. contact.creation."},
            "objectId": {"type": "integer", "description": "The record's id."},
            "propertyName": {"type": "string", "description": "propertyChange: the property."},
            "propertyValue": {"type": "string", "description": "propertyChange: its value."},
            "changeSource": {"type": "string", "description": "What made the change (CRM ...)."},
            "attemptNumber": {"type": "integer", "description": "0 for the first delivery."},
            "idempotency_key": {"type": "string", "description": "portal:subscription:event."},
        },
    },
    # The hub's webhook route hands every request here (the flow's trigger.connection holds
    # the client secret); the answer and the events come back from handle_webhook_request.
    handle_request=lambda request: handle_webhook_request(
        request.connection,
        request.config,
        request.method,
        request.url,
        request.headers,
        request.raw_body,
        request.now,
    ),
)
