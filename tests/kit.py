"""A test plugin: actions whose behaviour the engine tests control."""

from __future__ import annotations

import asyncio
import collections
from typing import Any

from hub import Action, ActionError, Connector, Trigger, hookimpl

CALLS: collections.Counter[str] = collections.Counter()
EVENTS: list[Any] = []  # what the poll trigger finds, in order
FEED: asyncio.Queue[Any] | None = None  # what the subscribe trigger receives
ACKED: list[Any] = []
IN_FLIGHT = {"now": 0, "max": 0}
GATES: dict[str, asyncio.Event] = {}


def reset() -> None:
    """Forget calls and gates between tests."""
    global FEED
    CALLS.clear()
    IN_FLIGHT.update(now=0, max=0)
    GATES.clear()
    EVENTS.clear()
    ACKED.clear()
    FEED = None


async def poll_events(ctx: Any, config: dict[str, Any], cursor: Any) -> tuple[list[Any], Any]:
    """Everything in EVENTS after the cursor (an index)."""
    start = cursor or 0
    return EVENTS[start:], len(EVENTS)


async def subscribe_feed(ctx: Any, config: dict[str, Any], emit: Any) -> None:
    """Consume FEED; acknowledge a message only once its run is recorded."""
    global FEED
    FEED = FEED or asyncio.Queue()
    while True:
        message = await FEED.get()
        key = message.get("id") if isinstance(message, dict) else None
        run_id = await emit(message, dedup_key=key) if key else await emit(message)
        ACKED.append((message, run_id))


async def echo(ctx: Any, data: Any) -> Any:
    CALLS[f"echo:{ctx.step_key}"] += 1
    return data


async def flaky(ctx: Any, data: dict[str, Any]) -> Any:
    """Fails (retryable) until attempt ``succeed_on``."""
    CALLS[f"flaky:{ctx.step_key}"] += 1
    if ctx.attempt < data.get("succeed_on", 10**9):
        raise ActionError(f"flaky failure on attempt {ctx.attempt}", retryable=True)
    return {"attempt": ctx.attempt}


async def boom(ctx: Any, data: Any) -> Any:
    CALLS[f"boom:{ctx.step_key}"] += 1
    raise RuntimeError("kaboom")


async def sleep(ctx: Any, data: dict[str, Any]) -> Any:
    IN_FLIGHT["now"] += 1
    IN_FLIGHT["max"] = max(IN_FLIGHT["max"], IN_FLIGHT["now"])
    try:
        await asyncio.sleep(float(data.get("seconds", 0)))
    finally:
        IN_FLIGHT["now"] -= 1
    return data.get("value")


async def gate(ctx: Any, data: dict[str, Any]) -> Any:
    """Waits until the test opens the gate named ``name``."""
    event = GATES.setdefault(data["name"], asyncio.Event())
    CALLS[f"gate:{data['name']}"] += 1
    await event.wait()
    return data.get("value")


async def bad_output(ctx: Any, data: Any) -> Any:
    return {"count": "not a number"}


async def use_secret(ctx: Any, data: Any) -> Any:
    token = ctx.connection["token"]
    ctx.log.warning("calling with token %s", token)
    if data.get("fail"):
        raise ActionError(f"service refused token {token}")
    return {"echoed": f"Bearer {token}", "region": ctx.connection.get("region")}


async def count_key(ctx: Any, data: Any) -> Any:
    CALLS[f"key:{ctx.idempotency_key}"] += 1
    return {"key": ctx.idempotency_key}


@hookimpl
def hub_connectors() -> list[Connector]:
    obj: dict[str, Any] = {"type": "object"}
    return [
        Connector(
            name="test",
            connection_schema={
                "type": "object",
                "properties": {
                    "token": {"type": "string", "writeOnly": True},
                    "region": {"type": "string"},
                },
                "required": ["token"],
            },
            actions=[
                Action(name="echo", run=echo),
                Action(
                    name="flaky",
                    run=flaky,
                    input_schema={
                        "type": "object",
                        "properties": {"succeed_on": {"type": "integer"}},
                    },
                ),
                Action(name="boom", run=boom),
                Action(
                    name="sleep",
                    run=sleep,
                    input_schema={
                        "type": "object",
                        "properties": {"seconds": {"type": "number"}},
                        "required": ["seconds"],
                    },
                ),
                Action(name="gate", run=gate, input_schema=obj),
                Action(
                    name="bad_output",
                    run=bad_output,
                    output_schema={
                        "type": "object",
                        "properties": {"count": {"type": "integer"}},
                    },
                ),
                Action(name="use_secret", run=use_secret, needs_connection=True),
                Action(name="count_key", run=count_key, idempotent=True),
            ],
            triggers=[
                Trigger(name="events", kind="poll", poll=poll_events, interval=0.05),
                Trigger(name="feed", kind="subscribe", subscribe=subscribe_feed),
            ],
        )
    ]
