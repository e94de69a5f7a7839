"""Trial runs of a flow's draft (the flow builder's "try it"): start one, read what it ran.

A trial is a real run, marked ``trial``: follow it like any run (``GET
/api/w/{workspace}/runs/{run_id}`` and its ``/events``); it is listed only with the runs
list's ``trial=true``. See :mod:`hub.services.trials`.
"""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from hub.api.deps import EDITOR, SECURITY, WORKSPACE_DEPENDENCIES, workspace_guard
from hub.api.errors import error_responses, invalid
from hub.api.flows import FlowPath
from hub.api.models import RunStarted, TrialDetail, TrialStart
from hub.api.runs import RunPath
from hub.services.errors import NotFound
from hub.services.workspace import WorkspaceHub


class TrialsController(Controller):
    """Trial runs of a flow's draft: the document given, not a saved version."""

    path = "/api/w/{workspace:str}/flows/{flow_id:str}/trials"
    tags = ["runs"]
    security = SECURITY
    guards = [workspace_guard]
    dependencies = WORKSPACE_DEPENDENCIES

    @post(
        "/",
        name="trials_start",
        operation_id="trials_start",
        opt=EDITOR,
        status_code=202,
        responses=error_responses(400, 401, 403, 404, 422),
    )
    async def start_trial(
        self, ws: NamedDependency[WorkspaceHub], flow_id: FlowPath, data: JSONBody[TrialStart]
    ) -> RunStarted:
        """Run ``document`` as a trial with ``trigger`` as its trigger data: steps named in
        ``pins`` are not called (their output is the pinned value), and with ``stop_after``
        only that step and its ancestors run. The document is validated as a save is (422
        with every issue); its ``id`` must be ``flow_id`` (the flow need not be saved)."""
        if data.document.get("id") != flow_id:
            raise invalid(
                "the document's id is not the flow's",
                [{"location": "document.id", "message": f"must be {flow_id!r}"}],
            )
        run_id = await ws.start_trial(
            data.document, trigger=data.trigger, pins=data.pins, stop_after=data.stop_after
        )
        return RunStarted(run_id=run_id, status="running")

    @get(
        "/{run_id:str}",
        name="trials_get",
        operation_id="trials_get",
        responses=error_responses(400, 401, 404),
    )
    async def get_trial(
        self, ws: NamedDependency[WorkspaceHub], flow_id: FlowPath, run_id: RunPath
    ) -> TrialDetail:
        """What a trial run ran: its document, pins and ``stop_after``."""
        found = await ws.get_trial(run_id)
        if found["flow_id"] != flow_id:
            raise NotFound(f"no trial run {run_id!r} of flow {flow_id!r}")
        return TrialDetail(**found)
