"""Calling an action outside a run: a step test on sample data, and the dynamic options of
an action's field (``list the CRM pipelines``).

Both call the action for real, with the workspace's decrypted connection, and redact its
secret values from everything they answer. A step test goes through the engine's step call
(:func:`hub.engine.step_call.call_step`), as a step of a run would.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
import uuid
from typing import Any

import msgspec

from hub.connectors import Action, ActionError
from hub.context import RedactingLogger, StepContext, Suspend
from hub.engine.step_call import StepFailure, call_step, step_logger
from hub.expressions import ExpressionError
from hub.security.secrets import Redactor
from hub.services.errors import Invalid, NotFound, UpstreamFailed
from hub.services.workspace import WorkspaceHub

log = logging.getLogger("hub.api")
MAX_TEST_TIMEOUT = 60.0


class NoChildRuns:
    """The services behind a test step's context: a test never starts other runs."""

    async def start_child_run(
        self, ctx: StepContext, flow_id: str, input: Any, wait: bool
    ) -> dict[str, Any]:
        """Refuse: a step test must not start a sub-flow."""
        raise ActionError("a step test cannot start a sub-flow (flow.call); run the flow")


@dataclasses.dataclass
class StepTestOutcome:
    """The rendered input and the action's output, or the error (secrets redacted)."""

    ok: bool
    input: Any
    output: Any
    error: Any
    duration_ms: float


def _context(
    ws: WorkspaceHub,
    run_id: str,
    key: str,
    connection: dict[str, Any] | None,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
) -> StepContext:
    hub = ws.hub
    return StepContext(
        run_id=run_id,
        flow_id="",
        workspace_id=ws.workspace,
        step_key=key,
        step_id=key,
        attempt=1,
        connection=connection,
        http=hub.http,
        cache=hub.cache,
        log=logger,
        state={},
        settings=hub.settings,
        services=NoChildRuns(),
    )


async def _connection(
    ws: WorkspaceHub, action: Action, name: str | None, needs: str
) -> tuple[dict[str, Any] | None, Redactor]:
    """The named connection's values and redactor (404 if none), or none when the action
    can do without (422 otherwise: ``needs`` says what for)."""
    if name:
        return await ws.connection_values(name)
    if action.needs_connection:
        raise Invalid(needs, [{"location": "connection", "message": "required by the action"}])
    return None, Redactor()


async def try_step(
    ws: WorkspaceHub,
    action_name: str,
    input: Any,
    *,
    connection: str | None = None,
    trigger: Any = None,
    steps: dict[str, Any] | None = None,
    timeout: float | None = None,
) -> StepTestOutcome:
    """Render ``input`` against ``{trigger, steps}`` (``steps`` maps a step id to its
    sample output), validate it, call the action, and validate its output.

    Everything returned is redacted with the connection's secret values. A step test is a
    real call of the action (it may change things in the service).
    """
    hub = ws.hub
    action = hub.registry.action(action_name)
    if action is None:
        raise Invalid(
            f"unknown action {action_name!r} (is its plugin installed?)",
            [{"location": "action", "message": "unknown action"}],
        )
    try:
        compiled = hub.expressions.compile(input, "input")
    except ExpressionError as exc:
        raise Invalid(str(exc), [{"location": exc.location, "message": exc.message}]) from exc
    values, redactor = await _connection(
        ws, action, connection, f"the action {action_name} needs a connection"
    )
    data = {
        "trigger": trigger,
        "steps": {key: {"output": value} for key, value in (steps or {}).items()},
        "run": {"id": "step-test", "flow_id": "", "flow_version": 0},
    }
    run_id = f"test-{uuid.uuid4().hex[:12]}"
    ctx = _context(ws, run_id, "test", values, step_logger(redactor, run_id))
    limit = min(timeout or action.timeout or MAX_TEST_TIMEOUT, MAX_TEST_TIMEOUT)
    started = time.perf_counter()
    output: Any = None
    error: dict[str, Any] | None = None
    try:
        output = await call_step(
            action, ctx, compiled, data=data, timeout=limit, renders=hub.engine.renders
        )
    except StepFailure as failure:
        error = {"kind": failure.kind, "message": redactor.text(str(failure))}
        if failure.kind == "input":
            error["issues"] = len(failure.problems)
        output = failure.output
    except Suspend:
        message = "the action asked to wait (suspend); a step test does not wait"
        error = {"kind": "suspend", "message": message}
    except ActionError as exc:
        error = {"kind": "action", "message": redactor.text(str(exc)), "retryable": exc.retryable}
    except Exception as exc:
        error = {"kind": "error", "message": redactor.text(f"{type(exc).__name__}: {exc}")}
    return StepTestOutcome(
        ok=error is None,
        input=redactor.data(ctx.input),
        output=redactor.data(output),
        error=error,
        duration_ms=(time.perf_counter() - started) * 1000,
    )


def options_key(
    ws: WorkspaceHub, action: str, field: str, connection: str | None, input: Any
) -> str:
    """The cache key of a field's options: per workspace, connection and input."""
    digest = hashlib.sha256(msgspec.json.encode(input, order="sorted")).hexdigest()[:32]
    return f"options:{ws.workspace}:{action}:{field}:{connection or ''}:{digest}"


async def field_options(
    ws: WorkspaceHub,
    action_name: str,
    field: str,
    input: dict[str, Any],
    connection: str | None = None,
) -> list[dict[str, Any]]:
    """The options of an action's field, cached by the action's cache policy per workspace,
    connection and input.

    The action's ``options[field]`` is called with a step context whose ``connection`` is
    the decrypted connection and ``input`` the input filled in so far. Raises
    :class:`~hub.services.errors.UpstreamFailed` (its message redacted) when that call fails.
    """
    action = ws.hub.registry.action(action_name)
    if action is None:
        raise NotFound(f"no action {action_name!r} is installed")
    loader = action.options.get(field)
    if loader is None:
        raise NotFound(f"{action_name} has no options for field {field!r}")
    values, redactor = await _connection(
        ws, action, connection, f"{action_name} needs a connection to list options"
    )

    async def load() -> list[dict[str, Any]]:
        ctx = _context(ws, "options", field, values, RedactingLogger(log, redactor.text, {}))
        ctx.input = input
        return list(await loader(ctx))

    try:
        if action.cache is not None:
            options = await ws.hub.cache.get_or_load(
                options_key(ws, action_name, field, connection, input),
                load,
                action.cache.ttl,
                action.cache.stale_while_revalidate,
            )
        else:
            options = await load()
    except Exception as exc:
        message = redactor.text(f"listing the options failed: {type(exc).__name__}: {exc}")
        raise UpstreamFailed(message) from exc
    return [o for o in redactor.data(options) if isinstance(o, dict)]
