"""A test plugin for the flow builder's step panel: one action whose input schema has every
construct the form draws (``$ref``/``$defs`` as msgspec-typed actions have them, strings
with formats, bounded numbers, booleans, enums, arrays, nested objects, a ``oneOf``,
key-value rows, a secret, defaults, descriptions), and a connector with a connection schema
and dynamic options.

Loaded in-process (``Hub(plugins=[forms_plugin])``) and by the browser tests' ``hub serve``
(``HUB_PLUGIN_MODULES=tests.forms_plugin`` with the checkout on ``PYTHONPATH``).
"""

from __future__ import annotations

from typing import Any

from hub import Action, Connector, hookimpl

EVERY_SCHEMA: dict[str, Any] = {
    "$ref": "#/$defs/Every",
    "$defs": {
        "Every": {
            "title": "Every",
            "type": "object",
            "properties": {
                "url": {"type": "string", "format": "uri", "description": "Where to send it."},
                "count": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
                "ratio": {"type": "number"},
                "enabled": {"type": "boolean", "default": False},
                "method": {"enum": ["GET", "POST", "PUT"], "default": "GET"},
                "note": {"type": "string", "x-multiline": True},
                "tags": {"type": "array", "items": {"type": "string"}},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                "address": {"$ref": "#/$defs/Address"},
                "content": {
                    "title": "Content",
                    "oneOf": [
                        {"$ref": "#/$defs/Template"},
                        {"$ref": "#/$defs/Inline"},
                    ],
                },
                "pipeline": {"type": "string", "description": "Listed by the service."},
                "token": {"type": "string", "writeOnly": True},
            },
            "required": ["url"],
        },
        "Address": {
            "title": "Address",
            "type": "object",
            "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
            "required": ["city"],
        },
        "Template": {
            "title": "A template",
            "type": "object",
            "properties": {"kind": {"const": "template"}, "name": {"type": "string"}},
            "required": ["kind", "name"],
        },
        "Inline": {
            "title": "Inline text",
            "type": "object",
            "properties": {"kind": {"const": "inline"}, "text": {"type": "string"}},
            "required": ["kind", "text"],
        },
    },
}


async def run_every(ctx: Any, data: Any) -> Any:
    """Echo the input (the action exists to exercise the builder's form)."""
    return data


async def pipelines(ctx: Any) -> list[dict[str, Any]]:
    """Dynamic options of ``pipeline``: named after the connection's region."""
    region = (ctx.connection or {}).get("region", "?")
    return [
        {"value": "sales", "label": f"Sales ({region})"},
        {"value": "support", "label": f"Support ({region})"},
    ]


CONNECTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"region": {"type": "string", "enum": ["eu", "us"]}},
    "required": ["region"],
}


@hookimpl
def hub_connectors() -> list[Connector]:
    """The ``forms`` connector and its one action."""
    return [
        Connector(
            name="forms",
            title="Forms",
            connection_schema=CONNECTION_SCHEMA,
            actions=[
                Action(
                    name="every",
                    title="Every field",
                    description="Echo the input.",
                    run=run_every,
                    input_schema=EVERY_SCHEMA,
                    options={"pipeline": pipelines},
                    needs_connection=True,
                )
            ],
        )
    ]
