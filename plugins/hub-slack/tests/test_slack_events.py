"""Slack's request signing and the Events API trigger's decisions (pure functions, no I/O).

The first test uses the example Slack documents in "Verifying requests from Slack" (secret,
timestamp, body and the resulting signature), so the base string is proven to be assembled
as Slack assembles it, not merely in agreement with our own signer.
"""

from __future__ import annotations

import json

import pytest
from hub_slack import (
    SignatureError,
    handle_events_request,
    plugin,
    slack_signature,
    verify_slack_signature,
)

from hub.testing import registry_of

DOC_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
DOC_TIMESTAMP = "1531420618"
DOC_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
    b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
    b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands"
    b"%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
    b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
DOC_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
NOW = 1_700_000_000.0
SECRET = "signing-secret-for-tests-0123"


def signed(body: bytes, at: float = NOW, secret: str = SECRET) -> dict[str, str]:
    stamp = str(int(at))
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": slack_signature(secret, stamp, body),
        "Content-Type": "application/json",
    }


def test_slacks_documented_example_verifies() -> None:
    assert slack_signature(DOC_SECRET, DOC_TIMESTAMP, DOC_BODY) == DOC_SIGNATURE
    headers = {"X-Slack-Signature": DOC_SIGNATURE, "X-Slack-Request-Timestamp": DOC_TIMESTAMP}
    verify_slack_signature(DOC_SECRET, headers, DOC_BODY, now=float(DOC_TIMESTAMP) + 30)


def test_header_names_are_matched_in_any_case() -> None:
    headers = {"x-slack-signature": DOC_SIGNATURE, "X-SLACK-REQUEST-TIMESTAMP": DOC_TIMESTAMP}
    verify_slack_signature(DOC_SECRET, headers, DOC_BODY, now=float(DOC_TIMESTAMP))


@pytest.mark.parametrize(
    ("secret", "body", "now", "reason"),
    [
        ("another-secret", DOC_BODY, 1531420618.0, "does not match"),
        (DOC_SECRET, DOC_BODY + b"&x=1", 1531420618.0, "does not match"),
        (DOC_SECRET, DOC_BODY, 1531420618.0 + 301, "more than 300 s"),
        (DOC_SECRET, DOC_BODY, 1531420618.0 - 301, "more than 300 s"),
        ("", DOC_BODY, 1531420618.0, "no signing secret"),
    ],
    ids=["wrong-secret", "altered-body", "replayed", "from-the-future", "no-secret"],
)
def test_a_bad_signature_is_refused_with_its_reason(
    secret: str, body: bytes, now: float, reason: str
) -> None:
    headers = {"X-Slack-Signature": DOC_SIGNATURE, "X-Slack-Request-Timestamp": DOC_TIMESTAMP}
    with pytest.raises(SignatureError, match=reason) as caught:
        verify_slack_signature(secret, headers, body, now=now)
    assert DOC_SECRET not in str(caught.value)


def test_five_minutes_exactly_is_still_accepted() -> None:
    headers = {"X-Slack-Signature": DOC_SIGNATURE, "X-Slack-Request-Timestamp": DOC_TIMESTAMP}
    verify_slack_signature(DOC_SECRET, headers, DOC_BODY, now=float(DOC_TIMESTAMP) + 300)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"X-Slack-Request-Timestamp": DOC_TIMESTAMP}, "header is missing"),
        ({"X-Slack-Signature": DOC_SIGNATURE}, "header is missing"),
        ({"X-Slack-Signature": DOC_SIGNATURE, "X-Slack-Request-Timestamp": "soon"}, "integer"),
        ({"X-Slack-Signature": "v0=00", "X-Slack-Request-Timestamp": DOC_TIMESTAMP}, "match"),
    ],
)
def test_missing_or_malformed_headers_are_refused(headers: dict[str, str], reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        verify_slack_signature(DOC_SECRET, headers, DOC_BODY, now=float(DOC_TIMESTAMP))


def test_url_verification_is_answered_with_the_challenge() -> None:
    body = json.dumps(
        {"token": "t", "challenge": "3eZbrw1aBm2rZgRNFdxV", "type": "url_verification"}
    )
    raw = body.encode()
    reply = handle_events_request({"signing_secret": SECRET}, {}, signed(raw), raw, now=NOW)
    assert reply == {"status": 200, "body": {"challenge": "3eZbrw1aBm2rZgRNFdxV"}, "events": []}


def test_an_unsigned_request_gets_401_and_starts_nothing() -> None:
    raw = json.dumps({"type": "url_verification", "challenge": "x"}).encode()
    headers = signed(raw, secret="not-the-secret")
    reply = handle_events_request({"signing_secret": SECRET}, {}, headers, raw, now=NOW)
    assert reply["status"] == 401
    assert reply["events"] == []
    assert SECRET not in json.dumps(reply)


def _callback(event: dict[str, object], event_id: str = "Ev0PV52K21") -> bytes:
    return json.dumps(
        {
            "token": "t",
            "team_id": "T0001",
            "api_app_id": "A0001",
            "event": event,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": 1700000000,
        }
    ).encode()


def test_an_event_becomes_one_run_keyed_by_its_event_id() -> None:
    event = {
        "type": "app_mention",
        "user": "U1",
        "text": "<@U0BOT> hi",
        "ts": "1.2",
        "channel": "C1",
    }
    raw = _callback(event)
    headers = {**signed(raw), "X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    reply = handle_events_request(
        {"signing_secret": SECRET}, {"event_types": ["app_mention"]}, headers, raw, now=NOW
    )
    assert reply["status"] == 200
    [data] = reply["events"]
    assert data["event"] == event
    assert data["idempotency_key"] == data["event_id"] == "Ev0PV52K21"
    assert data["team_id"] == "T0001" and data["retry_num"] == 1


def test_events_of_other_types_and_bot_events_start_nothing() -> None:
    conn = {"signing_secret": SECRET}
    other = _callback({"type": "reaction_added", "user": "U1"})
    reply = handle_events_request(conn, {"event_types": ["app_mention"]}, signed(other), other, NOW)
    assert reply == {"status": 200, "body": None, "events": []}
    bot = _callback({"type": "message", "bot_id": "B0001", "text": "my own reply"})
    assert handle_events_request(conn, {}, signed(bot), bot, NOW)["events"] == []
    kept = handle_events_request(conn, {"ignore_bots": False}, signed(bot), bot, NOW)
    assert len(kept["events"]) == 1


def test_a_body_that_is_not_json_gets_400() -> None:
    raw = b"payload=%7B%7D"
    reply = handle_events_request({"signing_secret": SECRET}, {}, signed(raw), raw, NOW)
    assert reply["status"] == 400


def test_the_trigger_is_registered_as_a_webhook_trigger() -> None:
    trigger = registry_of(plugin).triggers["slack.events"]
    assert trigger.kind == "webhook"
    assert set(trigger.config_schema["properties"]) == {
        "event_types",
        "ignore_bots",
        "tolerance_seconds",
    }
