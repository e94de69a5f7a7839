"""The built-in ``flow`` connector: noop, fail, delay and call (sub-flows).

These actions use only the public action context, like any outside plugin.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hub import Action, ActionError, Connector, StepContext, hookimpl, to_epoch


async def noop(ctx: StepContext, data: Any) -> Any:
    """Return the input unchanged."""
    return data


async def fail(ctx: StepContext, data: dict[str, Any]) -> Any:
    """Fail the step with ``message``; ``retryable: true`` lets its retry policy apply."""
    raise ActionError(
        str(data.get("message") or "flow.fail"), retryable=bool(data.get("retryable"))
    )


async def delay(ctx: StepContext, data: dict[str, Any]) -> dict[str, Any]:
    """Wait durably for ``seconds`` or ``until`` (ISO 8601): the step holds no worker.

    The wake-up time is kept in the step's persisted state, so a restart during the wait
    neither shortens nor lengthens it.
    """
    if "until" not in ctx.state:
        if data.get("until") is not None:
            try:
                ctx.state["until"] = to_epoch(str(data["until"]))
            except ValueError as exc:
                raise ActionError(f"until: {data['until']!r} is not an ISO 8601 time") from exc
        else:
            ctx.state["until"] = ctx.now() + float(data.get("seconds") or 0)
    until = float(ctx.state["until"])
    if ctx.now() < until:
        ctx.suspend_until(until)
    return {"waited_until": dt.datetime.fromtimestamp(until, dt.UTC).isoformat()}


async def call(ctx: StepContext, data: dict[str, Any]) -> Any:
    """Run the published version of another flow; with ``wait``, return its output."""
    return await ctx.start_flow(data["flow"], data.get("input"), bool(data.get("wait", True)))


@hookimpl
def hub_connectors() -> list[Connector]:
    """The ``flow`` connector."""
    return [
        Connector(
            name="flow",
            title="Flow control",
            version="1",
            icon="git-branch",
            description="Control the flow: pass, fail, wait, call another flow.",
            actions=[
                Action(
                    name="noop",
                    run=noop,
                    title="Do nothing",
                    description="Output the input unchanged.",
                    idempotent=True,
                ),
                Action(
                    name="fail",
                    run=fail,
                    title="Fail",
                    description="Fail the step (and, by default, the run) with a message.",
                    input_schema={
                        "type": "object",
                        "properties": {
                            "message": {"type": "string"},
                            "retryable": {"type": "boolean", "default": False},
                        },
                        "required": ["message"],
                        "additionalProperties": False,
                    },
                ),
                Action(
                    name="delay",
                    run=delay,
                    title="Delay",
                    description="Wait durably; a long delay holds no worker and survives restarts.",
                    input_schema={
                        "type": "object",
                        "properties": {
                            "seconds": {"type": "number", "minimum": 0},
                            "until": {"type": "string"},
                        },
                        "oneOf": [{"required": ["seconds"]}, {"required": ["until"]}],
                        "additionalProperties": False,
                    },
                    output_schema={
                        "type": "object",
                        "properties": {"waited_until": {"type": "string"}},
                        "required": ["waited_until"],
                    },
                    idempotent=True,
                ),
                Action(
                    name="call",
                    run=call,
                    title="Call a flow",
                    description="Run another flow as a sub-flow and use its output.",
                    input_schema={
                        "type": "object",
                        "properties": {
                            "flow": {"type": "string"},
                            "input": {},
                            "wait": {"type": "boolean", "default": True},
                        },
                        "required": ["flow"],
                        "additionalProperties": False,
                    },
                    idempotent=True,
                ),
            ],
        )
    ]
