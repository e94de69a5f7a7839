"""The Slack Events API trigger: request signing, the URL check and event filtering.

Slack signs each request it sends: ``X-Slack-Signature`` is ``v0=`` followed by the hex
HMAC-SHA256, keyed with the app's signing secret, of ``v0:{timestamp}:{raw body}``, where the
timestamp is the ``X-Slack-Request-Timestamp`` header (epoch seconds). A request older (or
newer) than five minutes is refused, so a captured request cannot be replayed.

The functions here are pure (no I/O, the time passed in), so whatever route receives Slack's
requests can call them: :func:`verify_slack_signature` checks one request,
:func:`handle_events_request` decides the whole answer (refusal, the ``url_verification``
challenge, or the events that start runs).

Refusals are answered in the hub's one error shape, ``{"error": {"code", "message",
"details"}}``, with the hub's codes and statuses (docs/webhooks.md): ``invalid_signature``
(401, ``details.reason``: ``missing``, ``malformed``, ``expired`` or ``mismatch``, as the
hub's built-in verification says them), ``unavailable`` (503, no signing secret
configured) and ``invalid_json`` (400); the hub counts them in ``/metrics`` by code and
reason.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from hub import Trigger

TOLERANCE_SECONDS = 300
SIGNATURE_HEADER = "x-slack-signature"
TIMESTAMP_HEADER = "x-slack-request-timestamp"
VERSION = "v0"


class SignatureError(ValueError):
    """A request does not carry a valid Slack signature; the message says why (no secrets),
    ``reason`` in one word (``missing``, ``malformed``, ``expired``, ``mismatch``, or
    ``unconfigured`` when there is no signing secret)."""

    def __init__(self, message: str, reason: str = "mismatch") -> None:
        super().__init__(message)
        self.reason = reason


def refusal(status: int, code: str, message: str, reason: str | None = None) -> dict[str, Any]:
    """A refusing answer of :func:`handle_events_request` in the hub's error shape."""
    details = {"reason": reason} if reason else None
    error = {"code": code, "message": message, "details": details}
    return {"status": status, "body": {"error": error}, "events": []}


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in headers.items()}


def slack_signature(secret: str, timestamp: str | int, raw_body: bytes) -> str:
    """The ``X-Slack-Signature`` value Slack sends for ``raw_body`` at ``timestamp``."""
    base = f"{VERSION}:{timestamp}:".encode() + raw_body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return f"{VERSION}={digest}"


def verify_slack_signature(
    secret: str,
    headers: Mapping[str, str],
    raw_body: bytes,
    now: float | None = None,
    tolerance: float = TOLERANCE_SECONDS,
) -> None:
    """Check a request's Slack signature; raise :class:`SignatureError` unless it is valid.

    ``headers`` may use any letter case; ``raw_body`` must be the bytes exactly as received
    (not re-encoded JSON); ``now`` is the current epoch time (default: the clock). The
    comparison is constant-time.
    """
    if not secret:
        raise SignatureError(
            "no signing secret is configured (connection field signing_secret)", "unconfigured"
        )
    found = _lower(headers)
    signature = found.get(SIGNATURE_HEADER, "").strip()
    stamp = found.get(TIMESTAMP_HEADER, "").strip()
    if not signature or not stamp:
        raise SignatureError(
            "the X-Slack-Signature or X-Slack-Request-Timestamp header is missing", "missing"
        )
    # ASCII digits, bounded: int() also reads '٣' and ' -5', and a 400-digit number
    # overflows the float arithmetic below.
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
        raise SignatureError(
            "X-Slack-Request-Timestamp is not an integer (1-12 ASCII digits)", "malformed"
        )
    sent_at = int(stamp)
    now = time.time() if now is None else now
    if abs(now - sent_at) > tolerance:
        raise SignatureError(
            f"the request timestamp is {abs(now - sent_at):.0f} s away from now "
            f"(more than {tolerance:g} s): a replay, or a clock out of sync",
            "expired",
        )
    expected = slack_signature(secret, stamp, raw_body)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise SignatureError(
            "the signature does not match (wrong signing secret, or altered body)", "mismatch"
        )


def handle_events_request(
    connection: Mapping[str, Any],
    config: Mapping[str, Any],
    headers: Mapping[str, str],
    raw_body: bytes,
    now: float | None = None,
) -> dict[str, Any]:
    """Decide the answer to one request from Slack's Events API.

    Returns ``{"status": int, "body": Any, "events": [...]}``: the route answers with
    ``status`` and ``body`` and starts one run per item of ``events`` (each carries its
    ``idempotency_key``, Slack's ``event_id``, so a retried delivery does not start a second
    run). A bad signature gives 401 with no events; the ``url_verification`` handshake gives
    200 with ``{"challenge": ...}``.
    """
    try:
        verify_slack_signature(
            str(connection.get("signing_secret") or ""),
            headers,
            raw_body,
            now,
            float(config.get("tolerance_seconds") or TOLERANCE_SECONDS),
        )
    except SignatureError as exc:
        if exc.reason == "unconfigured":
            return refusal(503, "unavailable", "the webhook's signing secret is not configured")
        return refusal(401, "invalid_signature", f"slack signature: {exc}", exc.reason)
    try:
        payload = json.loads(raw_body)
    except ValueError:
        return refusal(400, "invalid_json", "the body is not valid JSON")
    if not isinstance(payload, dict):
        return refusal(400, "invalid_json", "the body is not a JSON object")
    kind = payload.get("type")
    if kind == "url_verification":
        return {"status": 200, "body": {"challenge": payload.get("challenge", "")}, "events": []}
    if kind != "event_callback" or not isinstance(payload.get("event"), dict):
        # app_rate_limited notices and unknown envelopes: acknowledge, start nothing.
        return {"status": 200, "body": None, "events": []}
    event = payload["event"]
    wanted = config.get("event_types") or []
    if wanted and event.get("type") not in wanted:
        return {"status": 200, "body": None, "events": []}
    if config.get("ignore_bots", True) and (
        event.get("bot_id") or event.get("subtype") == "bot_message"
    ):
        return {"status": 200, "body": None, "events": []}
    retry = _lower(headers).get("x-slack-retry-num") or ""
    data = {
        "event": event,
        "event_id": payload.get("event_id"),
        "event_time": payload.get("event_time"),
        "team_id": payload.get("team_id"),
        "api_app_id": payload.get("api_app_id"),
        "retry_num": int(retry) if retry.isascii() and retry.isdigit() and len(retry) < 10 else 0,
        "idempotency_key": payload.get("event_id"),
    }
    return {"status": 200, "body": None, "events": [data]}


CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "event_types": {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "description": "Event types that start a run (app_mention, message, "
            "reaction_added ...); empty or absent: every event the app subscribes to.",
        },
        "ignore_bots": {
            "type": "boolean",
            "default": True,
            "description": "Skip events caused by bots (so a flow's own replies do not loop).",
        },
        "tolerance_seconds": {
            "type": "number",
            "minimum": 1,
            "maximum": 300,
            "default": 300,
            "description": "How far a request's timestamp may be from now.",
        },
    },
    "additionalProperties": False,
}

OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "event": {"type": "object", "description": "Slack's inner event (type, user, text ...)."},
        "event_id": {"type": ["string", "null"], "description": "Slack's id of the event."},
        "event_time": {"type": ["integer", "null"], "description": "Epoch seconds."},
        "team_id": {"type": ["string", "null"], "description": "The workspace."},
        "api_app_id": {"type": ["string", "null"], "description": "The Slack app."},
        "retry_num": {"type": "integer", "description": "X-Slack-Retry-Num (0: first delivery)."},
        "idempotency_key": {"type": ["string", "null"], "description": "The event_id."},
    },
    "required": ["event"],
}

EVENTS_TRIGGER = Trigger(
    name="events",
    kind="webhook",
    title="Slack event",
    description=(
        "Starts a run for each event Slack's Events API delivers (signed requests only; "
        "answers the url_verification challenge). Needs the connection's signing_secret."
    ),
    config_schema=CONFIG_SCHEMA,
    output_schema=OUTPUT_SCHEMA,
    # The hub's webhook route hands every request here (the flow's trigger.connection holds
    # the signing secret); the answer and the events come back from handle_events_request.
    handle_request=lambda request: handle_events_request(
        request.connection, request.config, request.headers, request.raw_body, request.now
    ),
)
