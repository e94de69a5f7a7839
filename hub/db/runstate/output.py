"""The run's output: rendered in the transaction that finishes the run.

That transaction runs on the event loop (SQLite's writes are flushed there; PostgreSQL's run
in a greenlet of it) and holds the database's write lock, so the ``output`` expression is
rendered there only within the inline slice of :mod:`hub.expressions.offload`. A render that
outgrows it raises :class:`OutputMoved` out of the transaction, which rolls it back;
:func:`write_finishing` then renders the output in a thread with its whole budget, over the
context the transaction saw, and runs the write again, which takes that result when it sees
the same context.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, bindparam, select

from hub.db.database import Database
from hub.db.models import steps
from hub.db.runstate.rows import load_outputs
from hub.db.runstate.types import RunInfo
from hub.expressions import ExpressionError
from hub.expressions.offload import DEFAULT_INLINE_SECONDS, Renders
from hub.expressions.sandbox import RenderMoved
from hub.flows import Flow

T = TypeVar("T")

_DONE_STEPS = select(steps.c.key, steps.c.output).where(
    steps.c.run_id == bindparam("b_run"),
    steps.c.status == "done",
    steps.c.item_index.is_(None),
)

#: Writes run again after an output moved off the loop, before the last one renders inline
#: with the whole budget (the context changes between tries only if a step's output does).
MAX_OUTPUT_MOVES = 3


class OutputMoved(Exception):
    """The run's output expression outgrew its inline slice inside the finishing
    transaction (rolled back); ``renderer`` holds the context to render it over."""

    def __init__(self, renderer: OutputRenderer) -> None:
        super().__init__("the run's output is rendered off the event loop")
        self.renderer = renderer


class OutputRenderer:
    """A function of the finishing transaction's connection -> (status, output, error).

    The output is the flow's ``output`` expression rendered over the trigger and the step
    outputs it reads; without one, the output of the last step in document order that ran.
    ``done`` is (key, output) of a step the finishing transaction marks done: when it is
    the flow's last step, its output is the run's, and no step's output is read back.
    ``inline`` is the render's slice in the transaction (None: its whole budget).
    """

    def __init__(
        self,
        run: RunInfo,
        flow: Flow,
        done: tuple[str, Any] | None = None,
        inline: float | None = DEFAULT_INLINE_SECONDS,
    ) -> None:
        self.run = run
        self.flow = flow
        self.done = done
        self.inline = inline
        self.pending: dict[str, Any] | None = None  # the context of a render that moved
        self._prepared: tuple[dict[str, Any], tuple[str, Any, Any]] | None = None

    def __call__(self, conn: Connection) -> tuple[str, Any, Any]:
        flow, run, done = self.flow, self.run, self.done
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
        if self._prepared is not None and self._prepared[0] == context:
            return self._prepared[1]
        try:
            return "succeeded", flow.output.render(context, inline=self.inline), None
        except RenderMoved:
            self.pending = context
            raise OutputMoved(self) from None
        except ExpressionError as exc:
            return "failed", None, {"message": str(exc), "kind": "expression"}

    async def prepare(self, renders: Renders) -> None:
        """Render the output over the context of the render that moved, in ``renders``'
        pool with the whole budget; the next call over the same context returns it."""
        context, output = self.pending, self.flow.output
        if context is None or output is None:
            return
        try:
            result: tuple[str, Any, Any] = (
                "succeeded",
                await renders.in_thread(output, context),
                None,
            )
        except ExpressionError as exc:
            result = ("failed", None, {"message": str(exc), "kind": "expression"})
        self._prepared, self.pending = (context, result), None


def output_renderer(
    run: RunInfo,
    flow: Flow,
    done: tuple[str, Any] | None = None,
    inline: float | None = DEFAULT_INLINE_SECONDS,
) -> OutputRenderer:
    """The :class:`OutputRenderer` of a run's finishing transaction."""
    return OutputRenderer(run, flow, done, inline)


async def write_finishing(
    db: Database,
    write: Callable[[Connection], T],
    renderer: OutputRenderer,
    renders: Renders,
    *,
    lane: str | None = None,
) -> T:
    """``db.write(write, lane=lane)`` for a write that may finish its run with
    ``renderer``: when the output moves off the loop, render it in ``renders``' pool and
    write again (the last of :data:`MAX_OUTPUT_MOVES` tries renders it in the transaction
    with its whole budget)."""
    for _ in range(MAX_OUTPUT_MOVES):
        try:
            return await db.write(write, lane=lane)
        except OutputMoved as moved:
            await moved.renderer.prepare(renders)
    renderer.inline = None
    return await db.write(write, lane=lane)


def last_step(flow: Flow) -> str | None:
    """The flow's last step in document order, error handlers aside."""
    ran = [spec for spec in flow.steps.values() if not spec.is_handler]
    return max(ran, key=lambda spec: spec.index).id if ran else None
