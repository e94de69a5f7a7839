"""Try one step on sample data, without creating a run."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from litestar import Controller, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from hub.api.deps import EDITOR, SECURITY, WORKSPACE_DEPENDENCIES, workspace_guard
from hub.api.errors import error_responses
from hub.api.models import StepTest, StepTestResult
from hub.connectors import ActionError
from hub.context import RedactingLogger, StepContext, Suspend
from hub.expressions import ExpressionError
from hub.schemas import schema_errors
from hub.security.secrets import Redactor
from hub.services.workspace import WorkspaceHub, invalid

step_log = logging.getLogger("hub.step")
MAX_TEST_TIMEOUT = 60.0


class NoChildRuns:
    """The services behind a test step's context: a test never starts other runs."""

    async def start_child_run(
        self, ctx: StepContext, flow_id: str, input: Any, wait: bool
    ) -> dict[str, Any]:
        """Refuse: a step test must not start a sub-flow."""
        raise ActionError("a step test cannot start a sub-flow (flow.call); run the flow")


def _failure(kind: str, message: str, redactor: Redactor, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "message": redactor.text(message), **extra}


async def try_step(ws: NamedDependency[WorkspaceHub], data: JSONBody[StepTest]) -> StepTestResult:
    """Render ``data.input`` against the sample context, validate it, call the action.

    Everything returned is redacted with the connection's secret values. A step test is a
    real call of the action (it may change things in the service).
    """
    hub = ws.hub
    action = hub.registry.action(data.action)
    if action is None:
        raise invalid(
            f"unknown action {data.action!r} (is its plugin installed?)",
            [{"location": "action", "message": "unknown action"}],
        )
    try:
        compiled = hub.expressions.compile(data.input, "input")
    except ExpressionError as exc:
        raise invalid(str(exc), [{"location": exc.location, "message": exc.message}]) from exc
    connection: dict[str, Any] | None = None
    redactor = Redactor()
    if data.connection:
        connection, redactor = await ws.connection_values(data.connection)  # 404 if none
    elif action.needs_connection:
        raise invalid(
            f"the action {data.action} needs a connection",
            [{"location": "connection", "message": "required by the action"}],
        )
    context = {
        "trigger": data.trigger,
        "steps": {key: {"output": value} for key, value in data.steps.items()},
        "run": {"id": "step-test", "flow_id": "", "flow_version": 0},
    }
    started = time.perf_counter()

    def result(ok: bool, rendered: Any, output: Any, error: Any) -> StepTestResult:
        return StepTestResult(
            ok=ok,
            input=redactor.data(rendered),
            output=redactor.data(output),
            error=error,
            duration_ms=(time.perf_counter() - started) * 1000,
        )

    try:
        rendered = compiled.render(context)
    except ExpressionError as exc:
        return result(False, None, None, _failure("expression", str(exc), redactor))
    errors = schema_errors(action.input_schema, rendered, "input")
    if errors:
        failure = _failure("input", "; ".join(errors), redactor, issues=len(errors))
        return result(False, rendered, None, failure)
    run_id = f"test-{uuid.uuid4().hex[:12]}"
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger] = step_log
    if redactor:
        logger = RedactingLogger(step_log, redactor.text, {"run_id": run_id})
    ctx = StepContext(
        run_id=run_id,
        flow_id="",
        workspace_id=ws.workspace,
        step_key="test",
        step_id="test",
        attempt=1,
        connection=connection,
        http=hub.http,
        cache=hub.cache,
        log=logger,
        state={},
        settings=hub.settings,
        services=NoChildRuns(),
    )
    ctx.input = rendered
    timeout = min(data.timeout or action.timeout or MAX_TEST_TIMEOUT, MAX_TEST_TIMEOUT)
    try:
        async with asyncio.timeout(timeout):
            output = await action.run(ctx, rendered)
    except TimeoutError:
        message = f"the action timed out after {timeout:g}s"
        return result(False, rendered, None, _failure("timeout", message, redactor))
    except Suspend:
        message = "the action asked to wait (suspend); a step test does not wait"
        return result(False, rendered, None, _failure("suspend", message, redactor))
    except ActionError as exc:
        failure = _failure("action", str(exc), redactor, retryable=exc.retryable)
        return result(False, rendered, None, failure)
    except Exception as exc:
        failure = _failure("error", f"{type(exc).__name__}: {exc}", redactor)
        return result(False, rendered, None, failure)
    errors = schema_errors(action.output_schema, output, "output")
    if errors:
        return result(False, rendered, output, _failure("output", "; ".join(errors), redactor))
    return result(True, rendered, output, None)


class StepTestsController(Controller):
    """One step on sample data (editors: it calls the action for real)."""

    path = "/api/w/{workspace:str}/step-tests"
    tags = ["runs"]
    security = SECURITY
    guards = [workspace_guard]
    dependencies = WORKSPACE_DEPENDENCIES

    @post(
        "/",
        name="step_test",
        operation_id="step_test",
        opt=EDITOR,
        status_code=200,
        responses=error_responses(400, 401, 403, 404, 422),
    )
    async def run_test(
        self, ws: NamedDependency[WorkspaceHub], data: JSONBody[StepTest]
    ) -> StepTestResult:
        """Render the input against ``{trigger, steps}``, validate it, call the action, and
        answer its output or error; no run is created."""
        outcome = await try_step(ws, data)
        await ws.audit("step.test", data.action, {"ok": outcome.ok})
        return outcome
