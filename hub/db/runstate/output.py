"""The run's output: rendered in the transaction that finishes the run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, bindparam, select

from hub.db.models import steps
from hub.db.runstate.rows import load_outputs
from hub.db.runstate.types import RunInfo
from hub.expressions import ExpressionError
from hub.flows import Flow

_DONE_STEPS = select(steps.c.key, steps.c.output).where(
    steps.c.run_id == bindparam("b_run"),
    steps.c.status == "done",
    steps.c.item_index.is_(None),
)


def output_renderer(
    run: RunInfo, flow: Flow, done: tuple[str, Any] | None = None
) -> Callable[[Connection], Any]:
    """A function of the finishing transaction's connection -> (status, output, error).

    The output is the flow's ``output`` expression rendered over the trigger and the step
    outputs it reads; without one, the output of the last step in document order that ran.
    ``done`` is (key, output) of a step the finishing transaction marks done: when it is
    the flow's last step, its output is the run's, and no step's output is read back.
    """

    def render(conn: Connection) -> tuple[str, Any, Any]:
        if flow.output is None:
            if done is not None and done[0] == last_step(flow):
                return "succeeded", done[1], None
            rows = conn.execute(_DONE_STEPS, {"b_run": run.id}).all()
            ran = [r for r in rows if r.key in flow.steps and not flow.steps[r.key].is_handler]
            if not ran:
                return "succeeded", None, None
            last = max(ran, key=lambda r: flow.steps[r.key].index)
            return "succeeded", last.output, None
        refs = flow.output.step_refs
        keys = [s for s in flow.steps if not flow.steps[s].is_handler] if refs is None else refs
        outputs = load_outputs(conn, run.id, keys)
        context = {
            "trigger": run.trigger,
            "steps": {k: {"output": v} for k, v in outputs.items()},
            "run": {"id": run.id, "flow_id": run.flow_id, "flow_version": run.flow_version},
        }
        try:
            return "succeeded", flow.output.render(context), None
        except ExpressionError as exc:
            return "failed", None, {"message": str(exc), "kind": "expression"}

    return render


def last_step(flow: Flow) -> str | None:
    """The flow's last step in document order, error handlers aside."""
    ran = [spec for spec in flow.steps.values() if not spec.is_handler]
    return max(ran, key=lambda spec: spec.index).id if ran else None
