"""The built-in triggers: manual, webhook and schedule (cron with a time zone)."""

from __future__ import annotations

import zoneinfo
from typing import Any

from hub import Connector, Trigger, hookimpl

# The presets of hub.triggers.senders (a test checks that the two lists agree).
SENDER_PRESETS = ("github", "stripe", "shopify", "svix", "slack")

DURATION: dict[str, Any] = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": r"^\s*(\d+(\.\d+)?\s*(ms|s|m|h|d)\s*)+$"},
    ]
}

WEBHOOK_CONFIG: dict[str, Any] = {
    "type": "object",
    "properties": {
        "methods": {
            "type": "array",
            "items": {"enum": ["GET", "POST", "PUT", "PATCH", "DELETE"]},
            "description": "The HTTP methods accepted (default POST); others answer 405.",
        },
        "max_body_bytes": {
            "type": "integer",
            "minimum": 1,
            "description": "A lower body cap than HUB_WEBHOOK_MAX_BODY_BYTES (413 above it).",
        },
        "signature": {
            "type": "object",
            "description": "Verify a signature over the raw body (docs/webhooks.md); 401 if not.",
            "properties": {
                "scheme": {
                    "enum": ["hmac", "stripe", "slack", "svix"],
                    "default": "hmac",
                    "description": "hmac: one header with the digest; stripe: Stripe-Signature "
                    "t=...,v1=...; slack: X-Slack-Signature v0=... with its timestamp; svix: "
                    "svix-signature v1,<base64> with svix-id and svix-timestamp.",
                },
                "secret_ref": {
                    "type": "string",
                    "minLength": 1,
                    "description": "A connection of the core connector: its secret (or "
                    "secrets, during a rotation) is the signing key.",
                },
                "header": {
                    "type": "string",
                    "minLength": 1,
                    "description": "The signature header (default X-Signature for hmac; "
                    "Stripe-Signature, X-Slack-Signature).",
                },
                "algorithm": {
                    "enum": ["sha256", "sha1", "sha512"],
                    "default": "sha256",
                    "description": "hmac only.",
                },
                "encoding": {
                    "enum": ["hex", "base64"],
                    "default": "hex",
                    "description": "hmac only: how the digest is written.",
                },
                "prefix": {
                    "type": "string",
                    "description": "hmac only: text before the digest, such as sha256=.",
                },
                "tolerance": {
                    **DURATION,
                    "description": "stripe, slack and svix: how far the signed timestamp may "
                    "be from now (default 300 s); a signature is accepted once in that window.",
                },
            },
            "required": ["secret_ref"],
            "additionalProperties": False,
        },
        "sender": {
            "type": "object",
            "description": "A common sender's signature scheme and delivery id together "
            "(docs/webhooks.md); an explicit signature or dedup beside it wins.",
            "properties": {
                "preset": {"enum": list(SENDER_PRESETS)},
                "secret_ref": {
                    "type": "string",
                    "minLength": 1,
                    "description": "A connection of the core connector holding the signing key.",
                },
                "tolerance": {**DURATION, "description": "stripe, slack and svix presets."},
            },
            "required": ["preset", "secret_ref"],
            "additionalProperties": False,
        },
        "dedup": {
            "type": "object",
            "description": "Where the sender's delivery id is: a repeat of it answers the first "
            "run (200, Idempotent-Replayed) instead of starting another; a request without it "
            "is refused (400 missing_dedup_key). Exactly one of header, field, expression.",
            "properties": {
                "header": {"type": "string", "minLength": 1, "description": "X-GitHub-Delivery"},
                "field": {
                    "anyOf": [
                        {"type": "string", "minLength": 1},
                        {"type": "array", "items": {"type": "string", "minLength": 1}},
                    ],
                    "description": "A dotted path in the decoded body (id, data.object.id); a "
                    "list takes the first one present.",
                },
                "expression": {
                    "type": "string",
                    "pattern": "\\{\\{",
                    "description": "An expression over trigger (headers, body, query).",
                },
            },
            "minProperties": 1,
            "maxProperties": 1,
            "additionalProperties": False,
        },
        "response": {
            "type": "object",
            "description": "async (default): 202 with the run id at once; sync: 200 with the "
            "flow's output if the run ends within timeout, else 202.",
            "properties": {
                "mode": {"enum": ["async", "sync"], "default": "async"},
                "timeout": {
                    **DURATION,
                    "description": "sync only: how long to wait (default 10 s, at most 60 s).",
                },
            },
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}

SECRET_CONNECTION: dict[str, Any] = {
    "type": "object",
    "title": "Webhook signing secret",
    "description": "The key of a webhook's signature (trigger.config.signature.secret_ref).",
    "properties": {
        "secret": {
            "type": "string",
            "minLength": 1,
            "writeOnly": True,
            "description": "The signing key (Stripe's whsec_..., Slack's signing secret ...).",
        },
        "secrets": {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "writeOnly": True,
            "description": "During a rotation: the other keys still accepted beside secret.",
        },
    },
    "required": ["secret"],
    "additionalProperties": False,
}

NOTES = """\
A connection of this connector holds the key of a webhook's signature, named by the flow's
`trigger.config.signature.secret_ref`:

```sh
hub connections set stripe-endpoint --connector core -v secret=whsec_...
hub connections set stripe-endpoint --connector core -v secret=whsec_new... \\
  -v 'secrets=["whsec_old..."]'
```

During a rotation `secret` and every key of `secrets` are accepted. For the common senders,
`sender: {preset: github, secret_ref: github}` (or `stripe`, `shopify`, `svix`, `slack`) sets
the signature scheme and the delivery id the hub dedups on together. The signature schemes,
delivery ids, `Idempotency-Key`, form bodies, the synchronous answer and the body limits are
described in `docs/webhooks.md`.
"""

SCHEDULE_CONFIG: dict[str, Any] = {
    "type": "object",
    "properties": {
        "cron": {"type": "string", "description": "A cron expression (5 or 6 fields)."},
        "timezone": {"type": "string", "default": "UTC"},
    },
    "required": ["cron"],
    "additionalProperties": False,
}


def valid_timezone(name: str) -> bool:
    """True when ``name`` is a known IANA time zone."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def check_webhook(config: dict[str, Any]) -> list[tuple[str, str]]:
    """A webhook's dedup expression parses (its sandbox compiles it again when the flow is
    published; a syntax error is told here, where the field is)."""
    from jinja2 import Environment, TemplateSyntaxError

    dedup = config.get("dedup")
    expression = dedup.get("expression") if isinstance(dedup, dict) else None
    if not isinstance(expression, str):
        return []
    try:
        Environment().parse(expression)
    except TemplateSyntaxError as exc:
        return [("dedup.expression", f"{exc.message} (line {exc.lineno})")]
    return []


def check_schedule(config: dict[str, Any]) -> list[tuple[str, str]]:
    """A schedule's cron expression parses and its time zone exists."""
    from croniter import croniter

    problems = []
    if not croniter.is_valid(str(config.get("cron", ""))):
        problems.append(("cron", f"{config.get('cron')!r} is not a valid cron expression"))
    timezone = str(config.get("timezone", "UTC"))
    if not valid_timezone(timezone):
        problems.append(
            ("timezone", f"unknown time zone {timezone!r} (an IANA name: Europe/Paris)")
        )
    return problems


@hookimpl
def hub_connectors() -> list[Connector]:
    """The ``core`` connector: the built-in trigger types."""
    return [
        Connector(
            name="core",
            title="Core triggers",
            version="1",
            description="Start flows by hand, from a webhook, or on a schedule.",
            connection_schema=SECRET_CONNECTION,
            notes=NOTES,
            triggers=[
                Trigger(
                    name="manual",
                    kind="manual",
                    title="Manual",
                    description="Started from the CLI, the API or the UI with an input.",
                ),
                Trigger(
                    name="webhook",
                    kind="webhook",
                    title="Webhook",
                    description="An HTTP request to /hooks/{workspace}/{flow}.",
                    config_schema=WEBHOOK_CONFIG,
                    check_config=check_webhook,
                    output_schema={
                        "type": "object",
                        "properties": {
                            "method": {"type": "string"},
                            "path": {"type": "string"},
                            "headers": {"type": "object"},
                            "query": {"type": "object"},
                            "body": {},
                        },
                    },
                ),
                Trigger(
                    name="schedule",
                    kind="schedule",
                    title="Schedule",
                    description="Fires on a cron schedule in a time zone.",
                    config_schema=SCHEDULE_CONFIG,
                    check_config=check_schedule,
                    output_schema={
                        "type": "object",
                        "properties": {
                            "scheduled_at": {"type": "string"},
                            "fired_at": {"type": "string"},
                        },
                    },
                ),
            ],
        )
    ]
