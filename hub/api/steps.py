"""Try one step on sample data, without creating a run (:mod:`hub.services.actions`)."""

from __future__ import annotations

import dataclasses

from litestar import Controller, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from hub.api.deps import EDITOR, SECURITY, WORKSPACE_DEPENDENCIES, workspace_guard
from hub.api.errors import error_responses
from hub.api.models import StepTest, StepTestResult
from hub.services import actions
from hub.services.workspace import WorkspaceHub


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
        outcome = await actions.try_step(
            ws,
            data.action,
            data.input,
            connection=data.connection,
            trigger=data.trigger,
            steps=data.steps,
            timeout=data.timeout,
        )
        await ws.audit("step.test", data.action, {"ok": outcome.ok})
        return StepTestResult(**dataclasses.asdict(outcome))
