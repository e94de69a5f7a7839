"""HubSpot's v3 webhook signature and the webhook trigger's decisions (pure functions).

The expected signatures are computed here independently, straight from HubSpot's description
(base64 of HMAC-SHA256 over method + decoded URI + body + millisecond timestamp, keyed with the
client secret), not with the connector's own signer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from hub_hubspot import (
    SignatureError,
    handle_webhook_request,
    hubspot_signature,
    plugin,
    verify_hubspot_signature,
)
from hub_hubspot.webhooks import signing_uri

from hub.testing import registry_of

SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
URL = "https://hub.example.com/hooks/default/hubspot-deals"
NOW = 1_700_000_000.0
NOW_MS = str(int(NOW * 1000))
EVENTS = [
    {
        "eventId": 100,
        "subscriptionId": 7,
        "portalId": 62515,
        "appId": 54321,
        "occurredAt": 1699999990000,
        "subscriptionType": "contact.propertyChange",
        "attemptNumber": 0,
        "objectId": 123,
        "propertyName": "email",
        "propertyValue": "ada@example.com",
        "changeSource": "CRM",
    },
    {
        "eventId": 101,
        "subscriptionId": 8,
        "portalId": 62515,
        "appId": 54321,
        "occurredAt": 1699999991000,
        "subscriptionType": "deal.creation",
        "attemptNumber": 0,
        "objectId": 456,
        "changeSource": "CRM",
    },
]
BODY = json.dumps(EVENTS).encode()


def independent(method: str, uri: str, body: bytes, stamp: str, secret: str = SECRET) -> str:
    source = method + uri + body.decode() + stamp
    mac = hmac.new(secret.encode(), source.encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def headers(signature: str, stamp: str = NOW_MS) -> dict[str, str]:
    return {
        "X-HubSpot-Signature-v3": signature,
        "X-HubSpot-Request-Timestamp": stamp,
        "Content-Type": "application/json",
    }


def test_a_signed_request_verifies() -> None:
    signature = independent("POST", URL, BODY, NOW_MS)
    assert hubspot_signature(SECRET, "POST", URL, BODY, NOW_MS) == signature
    verify_hubspot_signature(SECRET, "POST", URL, headers(signature), BODY, now=NOW + 10)


def test_the_documented_escapes_are_decoded_before_signing() -> None:
    url = "https://hub.example.com/hooks/x?next=a%3Ab%2Fc%3fd%40e%21%24%27%28%29%2a%2C%3B&q=a%20b"
    assert signing_uri(url) == "https://hub.example.com/hooks/x?next=a:b/c?d@e!$'()*,;&q=a%20b"
    signature = independent("POST", signing_uri(url), BODY, NOW_MS)
    verify_hubspot_signature(SECRET, "POST", url, headers(signature), BODY, now=NOW)


@pytest.mark.parametrize(
    ("secret", "method", "url", "body", "now", "reason"),
    [
        ("other-secret", "POST", URL, BODY, NOW, "does not match"),
        (SECRET, "POST", URL, BODY + b" ", NOW, "does not match"),
        (SECRET, "GET", URL, BODY, NOW, "does not match"),
        (SECRET, "POST", URL + "x", BODY, NOW, "public_url"),
        (SECRET, "POST", URL, BODY, NOW + 301, "more than 300 s"),
        (SECRET, "POST", URL, BODY, NOW - 301, "more than 300 s"),
        ("", "POST", URL, BODY, NOW, "no client secret"),
    ],
    ids=["secret", "body", "method", "url", "replayed", "future", "unset"],
)
def test_a_bad_signature_is_refused_with_its_reason(
    secret: str, method: str, url: str, body: bytes, now: float, reason: str
) -> None:
    signature = independent("POST", URL, BODY, NOW_MS)
    with pytest.raises(SignatureError, match=reason) as caught:
        verify_hubspot_signature(secret, method, url, headers(signature), body, now=now)
    assert SECRET not in str(caught.value)


def test_the_timestamp_is_in_milliseconds() -> None:
    seconds = str(int(NOW))  # a timestamp in seconds is fifty years off, not "now"
    signature = independent("POST", URL, BODY, seconds)
    with pytest.raises(SignatureError, match="away from now"):
        verify_hubspot_signature(SECRET, "POST", URL, headers(signature, seconds), BODY, now=NOW)


def test_missing_headers_are_refused() -> None:
    with pytest.raises(SignatureError, match="header is missing"):
        verify_hubspot_signature(SECRET, "POST", URL, {}, BODY, now=NOW)


def test_each_event_of_a_batch_becomes_a_run_with_an_idempotency_key() -> None:
    reply = handle_webhook_request(
        {"client_secret": SECRET},
        {},
        "POST",
        URL,
        headers(independent("POST", URL, BODY, NOW_MS)),
        BODY,
        now=NOW,
    )
    assert reply["status"] == 200
    assert [e["objectId"] for e in reply["events"]] == [123, 456]
    assert [e["idempotency_key"] for e in reply["events"]] == ["62515:7:100", "62515:8:101"]


def test_subscription_types_and_property_names_filter_the_events() -> None:
    sig = headers(independent("POST", URL, BODY, NOW_MS))
    conn = {"client_secret": SECRET}
    only_deals = handle_webhook_request(
        conn, {"subscription_types": ["deal.creation"]}, "POST", URL, sig, BODY, NOW
    )
    assert [e["eventId"] for e in only_deals["events"]] == [101]
    only_phone = handle_webhook_request(
        conn, {"property_names": ["phone"]}, "POST", URL, sig, BODY, NOW
    )
    assert only_phone["events"] == []


def test_public_url_replaces_the_url_seen_behind_a_proxy() -> None:
    sig = headers(independent("POST", URL, BODY, NOW_MS))
    inner = "http://10.0.0.5:8000/hooks/default/hubspot-deals"
    conn = {"client_secret": SECRET}
    assert handle_webhook_request(conn, {}, "POST", inner, sig, BODY, NOW)["status"] == 401
    reply = handle_webhook_request(conn, {"public_url": URL}, "POST", inner, sig, BODY, NOW)
    assert reply["status"] == 200 and len(reply["events"]) == 2


def test_a_bad_signature_gets_401_and_no_events() -> None:
    sig = headers(independent("POST", URL, BODY, NOW_MS, secret="attacker"))
    reply = handle_webhook_request({"client_secret": SECRET}, {}, "POST", URL, sig, BODY, NOW)
    assert reply["status"] == 401 and reply["events"] == []
    assert SECRET not in json.dumps(reply)


def test_the_trigger_is_registered_as_a_webhook_trigger() -> None:
    trigger = registry_of(plugin).triggers["hubspot.webhook"]
    assert trigger.kind == "webhook"
    assert "public_url" in trigger.config_schema["properties"]
