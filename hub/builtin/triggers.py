"""The built-in triggers: manual, webhook and schedule (cron with a time zone)."""

from __future__ import annotations

import zoneinfo
from typing import Any

from hub.connectors import Connector, Trigger
from hub.hookspecs import hookimpl

WEBHOOK_CONFIG: dict[str, Any] = {
    "type": "object",
    "properties": {
        "methods": {
            "type": "array",
            "items": {"enum": ["GET", "POST", "PUT", "PATCH", "DELETE"]},
        },
        "max_body_bytes": {"type": "integer", "minimum": 1},
        "signature": {
            "type": "object",
            "properties": {
                "secret_ref": {"type": "string"},
                "header": {"type": "string"},
            },
        },
    },
    "additionalProperties": False,
}

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


@hookimpl
def hub_connectors() -> list[Connector]:
    """The ``core`` connector: the built-in trigger types."""
    return [
        Connector(
            name="core",
            title="Core triggers",
            version="1",
            description="Start flows by hand, from a webhook, or on a schedule.",
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
