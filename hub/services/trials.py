"""Trial runs: the flow builder's "try it", as a workspace's caller starts them.

:meth:`TrialsService.start_trial` runs a document that need not be saved (a draft) as a
trial run: validated first exactly as a save is (an invalid document raises the same
:class:`hub.flows.FlowError`, every issue with its location), with trigger data given,
optionally stopping after a chosen step, and with pinned outputs (``{step id: output}``:
those steps are not called). The engine's side, what a trial runs and how, is
:mod:`hub.engine.trials`; trial runs are kept out of the runs lists, the flows list's
counts, the home page and the metrics, and never call ``hub_run_finished``.

Each start needs the editor role and is written to the audit log (``flow.trial``, the
flow id as target, the run id, the pinned step ids and ``stop_after`` as details) in the
transaction that creates the run.
"""

from __future__ import annotations

from typing import Any

import anyio

from hub.db import audit
from hub.db import runs as run_store
from hub.db import trials as trial_store
from hub.engine import new_run_id
from hub.engine.trials import trial_document
from hub.flows import load_flow
from hub.flows.bounds import BoundExceeded, DocumentLimits, measure_value
from hub.services.errors import Invalid, NotFound
from hub.services.flows import FlowsService, document_limiter


class TrialsService(FlowsService):
    """Start trial runs of drafts, and read what a trial ran."""

    async def start_trial(
        self,
        document: dict[str, Any],
        *,
        trigger: Any,
        pins: dict[str, Any] | None,
        stop_after: str | None,
    ) -> str:
        """Start a trial run of ``document`` with ``trigger`` as its trigger data; return
        its run id.

        The document is validated as a save is (:class:`hub.flows.FlowError` when
        invalid); ``trigger`` and ``pins`` are each held to the document bounds
        (``HUB_MAX_DOCUMENT_*``); every pin and ``stop_after`` must name a step of the
        document, and ``stop_after`` no error handler (:class:`Invalid`, with the issues'
        locations ``trigger``, ``pins.<step>``, ``stop_after``). The flow need not exist.
        """
        self.require("editor")
        limits = DocumentLimits.from_settings(self.hub.settings)
        issues: list[dict[str, str]] = []
        for name, value in (("document", document), ("trigger", trigger), ("pins", pins)):
            try:
                measure_value(value, limits)
            except BoundExceeded as exc:
                issues.append({"location": name, "message": exc.message})
        if issues:
            raise Invalid("the trial is too large", issues)
        flow = await self.validate(document)
        for step_id in pins or {}:
            if step_id not in flow.steps:
                issues.append({"location": f"pins.{step_id}", "message": "no such step"})
        if stop_after is not None:
            spec = flow.steps.get(stop_after)
            if spec is None:
                issues.append({"location": "stop_after", "message": "no such step"})
            elif spec.is_handler:
                message = (
                    "an error handler runs only when the step it handles fails: stop after "
                    f"{', '.join(spec.handles)} (its handlers run with it)"
                )
                issues.append({"location": "stop_after", "message": message})
        if issues:
            raise Invalid(f"the trial is invalid ({len(issues)} issue(s))", issues)
        if stop_after is not None:  # the steps it runs, compiled off the event loop too
            pruned = trial_document(flow, stop_after)
            flow = await anyio.to_thread.run_sync(
                lambda: load_flow(
                    pruned, expressions=self.hub.expressions, registry=self.hub.registry
                ),
                limiter=document_limiter(),
            )
        ws, actor, run_id = self.workspace, self.actor, new_run_id()
        details = {"run_id": run_id, "pins": sorted(pins or {}), "stop_after": stop_after}
        return await self.hub.engine.start_trial(
            ws,
            flow.id,
            document,
            trigger,
            pins=pins,
            stop_after=stop_after,
            run_id=run_id,
            flow=flow,
            also=lambda c: audit.record(c, ws, actor, "flow.trial", flow.id, details),
        )

    async def get_trial(self, run_id: str) -> dict[str, Any]:
        """What a trial run ran: ``flow_id``, ``document``, ``pins`` and ``stop_after``;
        :class:`NotFound` for no trial run of that id in this workspace."""
        ws = self.workspace

        def read(conn: Any) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
            return run_store.run_record(conn, run_id, ws), trial_store.trial_of(conn, run_id)

        record, trial = await self.hub.db.read(read)
        if record is None or trial is None or trial["workspace_id"] != ws:
            raise NotFound(f"no trial run {run_id!r}")
        return {
            "run_id": run_id,
            "flow_id": record["flow_id"],
            "document": trial["document"],
            "pins": trial["pins"],
            "stop_after": trial["stop_after"],
        }
