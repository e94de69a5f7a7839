"""Calling one action or poll trigger in a test, as the hub would, without a run.

:func:`run_action` validates the input, calls the action and validates its output (the
engine's step call); :func:`run_poll` calls a poll trigger once and validates its events;
:func:`check_examples` checks an action's declared examples against its schemas;
:func:`make_context` builds the context the engine would pass, for calling an action's
function directly.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from hub.cache import Cache
from hub.connectors import Action, Trigger
from hub.context import StepContext
from hub.engine.step_call import StepFailure, call_step
from hub.schemas import schema_errors
from hub.security.netguard import make_http_client
from hub.settings import Settings


class ActionCheckError(AssertionError):
    """An action's input, output or example breaks its schema."""


class _NoServices:
    async def start_child_run(self, ctx: StepContext, flow_id: str, input: Any, wait: bool) -> Any:
        raise RuntimeError("start_flow is not available in run_action; test it in a flow run")


def make_context(
    *,
    settings: Settings | None = None,
    connection: dict[str, Any] | None = None,
    step_key: str = "test",
    attempt: int = 1,
    state: dict[str, Any] | None = None,
) -> StepContext:
    """A context like the engine's, for calling an action directly in a test.

    Close ``ctx.http`` when done (``await ctx.http.aclose()``); :func:`run_action` does.
    """
    settings = settings or Settings()
    return StepContext(
        run_id=uuid.uuid4().hex,
        flow_id="test",
        workspace_id="default",
        step_key=step_key,
        step_id=step_key,
        attempt=attempt,
        connection=connection,
        http=make_http_client(settings),
        cache=Cache(),
        log=logging.getLogger("hub.step"),
        state=state if state is not None else {},
        settings=settings,
        services=_NoServices(),
    )


async def run_action(
    action: Action,
    input: Any,
    *,
    connection: dict[str, Any] | None = None,
    settings: Settings | None = None,
    attempt: int = 1,
) -> Any:
    """Validate ``input``, call the action, validate and return its output.

    The engine's step call (:func:`hub.engine.step_call.call_step`) does it, without a time
    limit (a test sets its own). Raises :class:`ActionCheckError` when the input or the
    output breaks its schema; errors the action raises (such as :class:`hub.ActionError`)
    pass through unchanged.
    """
    ctx = make_context(settings=settings, connection=connection, attempt=attempt)
    try:
        return await call_step(action, ctx, input, timeout=None)
    except StepFailure as failure:  # only the schema checks fail without data or a timeout
        raise ActionCheckError(str(failure)) from None
    finally:
        await ctx.http.aclose()


async def run_poll(
    trigger: Trigger,
    config: dict[str, Any] | None = None,
    cursor: Any = None,
    *,
    connection: dict[str, Any] | None = None,
    settings: Settings | None = None,
) -> tuple[list[Any], Any]:
    """Call a poll trigger once, as the hub's trigger runner would; return (events, cursor).

    The config is validated against the trigger's ``config_schema`` and every event against
    its ``output_schema`` (:class:`ActionCheckError` names the place otherwise).
    """
    if trigger.kind != "poll" or trigger.poll is None:
        raise ActionCheckError(f"trigger {trigger.name}: not a poll trigger ({trigger.kind})")
    config = {} if config is None else config
    errors = schema_errors(trigger.config_schema, config, "config")
    if errors:
        raise ActionCheckError("; ".join(errors))
    ctx = make_context(settings=settings, connection=connection, step_key="trigger")
    try:
        events, new_cursor = await trigger.poll(ctx, config, cursor)
    finally:
        await ctx.http.aclose()
    problems: list[str] = []
    for i, event in enumerate(events):
        problems += schema_errors(trigger.output_schema, event, f"events[{i}]")
    if problems:
        raise ActionCheckError(f"trigger {trigger.name}: " + "; ".join(problems))
    return list(events), new_cursor


def check_examples(action: Action) -> None:
    """Check that every declared example's input and output validate against the schemas."""
    for i, example in enumerate(action.examples):
        problems = schema_errors(action.input_schema, example.get("input"), f"examples[{i}].input")
        if "output" in example:
            problems += schema_errors(
                action.output_schema, example["output"], f"examples[{i}].output"
            )
        if problems:
            raise ActionCheckError(f"action {action.name}: " + "; ".join(problems))
