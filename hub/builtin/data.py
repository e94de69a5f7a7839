"""The built-in ``data`` connector: ``data.set`` builds a value from expressions."""

from __future__ import annotations

from typing import Any

from hub import Action, Connector, StepContext, hookimpl


async def set_value(ctx: StepContext, data: dict[str, Any]) -> Any:
    """Return ``value``, rendered: the usual way to shape data between steps."""
    return data.get("value")


@hookimpl
def hub_connectors() -> list[Connector]:
    """The ``data`` connector."""
    return [
        Connector(
            name="data",
            title="Data",
            version="1",
            icon="braces",
            description="Build and reshape values with expressions.",
            actions=[
                Action(
                    name="set",
                    run=set_value,
                    title="Set a value",
                    description="Output `value` (usually built with expressions).",
                    input_schema={
                        "type": "object",
                        "properties": {"value": {"description": "Any value."}},
                        "required": ["value"],
                        "additionalProperties": False,
                    },
                    output_schema={},
                    idempotent=True,
                    examples=[{"input": {"value": {"a": 1}}, "output": {"a": 1}}],
                )
            ],
        )
    ]
