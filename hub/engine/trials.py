"""Trial runs: a draft flow run as a test, with pinned outputs, stopping after a chosen step
(part of the engine).

A trial (the flow builder's "try it") runs a document that need not be saved. It is a real
run (same protocol, same executors, embedded or queue mode) marked ``trial``, with flow
version :data:`~hub.db.trials.TRIAL_VERSION` (0); the document, the pins and the step to
stop after are stored with it (:mod:`hub.db.trials`), and every process compiles a trial's
flow from that row, cached by run id (:meth:`TrialsMixin.flow_of`): a trial's flow never
goes through the cache of versions, nor the layered (Redis) cache.

- ``stop_after``: only that step and its ancestors run, with the error handlers those steps
  name (:func:`trial_document`); the run's output is then the output of that step (the
  document's ``output`` may read steps that do not run).
- ``pins`` (``{step id: output}``): a pinned step is not called (nor its ``when``,
  ``for_each`` or input rendered): it is recorded done with the pinned value as its output
  and ``{"pinned": true}`` as its state. A pin on a ``for_each`` step is its whole output
  list. Pins on steps a ``stop_after`` leaves out change nothing.
- A trial's ``flow.call`` steps start their sub-flow as a trial too (the sub-flow's
  published version, no pins): nothing a trial starts is a production run.
- Trial runs never call ``hub_run_finished`` (the hook for production outcomes), and their
  events carry ``"trial": true`` (the metrics leave them out).

:class:`TrialsMixin` is only meant to be mixed into :class:`hub.engine.Engine`.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from cachetools import LRUCache

from hub.connectors import Registry
from hub.db import flows as flow_store
from hub.db import trials as trial_store
from hub.db.database import Database, WriteFn
from hub.db.models import now_us
from hub.db.runstate.types import RunInfo, RunNotFound
from hub.engine.runs import new_run_id
from hub.expressions import Expressions
from hub.flows import Flow, load_flow


@dataclasses.dataclass(frozen=True)
class Trial:
    """A trial run's compiled flow (pruned by ``stop_after``) and its pins."""

    flow: Flow
    pins: dict[str, Any]
    stop_after: str | None = None


def trial_document(flow: Flow, stop_after: str | None) -> dict[str, Any]:
    """The document a trial with ``stop_after`` runs: that step, its ancestors and the
    error handlers they name, each kept step's ``needs`` written out (a step without
    ``needs`` follows the one before it, which may be gone), and as its ``output`` that
    step's (the document's may read steps that do not run).

    ``ValueError`` when ``stop_after`` names no step, or an error handler (those run only
    when the step they handle fails: stop after that step instead)."""
    if stop_after is None:
        return dict(flow.document)
    spec = flow.steps.get(stop_after)
    if spec is None:
        raise ValueError(f"no step {stop_after!r} in this flow")
    if spec.is_handler:
        raise ValueError(
            f"{stop_after!r} is an error handler: stop after the step it handles "
            f"({', '.join(spec.handles)}); its handlers run with it"
        )
    kept = {stop_after} | set(flow.ancestors.get(stop_after, ()))
    handlers = {flow.steps[s].on_error for s in kept} & {
        s for s, step in flow.steps.items() if step.is_handler
    }
    steps: list[dict[str, Any]] = []
    for raw in flow.document.get("steps", []):
        step_id = raw.get("id")
        if step_id in kept:
            steps.append({**raw, "needs": list(flow.steps[step_id].needs)})
        elif step_id in handlers:
            steps.append(dict(raw))
    document = {k: v for k, v in flow.document.items() if k not in ("steps", "output")}
    document["steps"] = steps
    document["output"] = "{{ steps.%s.output }}" % stop_after  # noqa: UP031 (braces)
    return document


def compile_trial(
    document: dict[str, Any],
    stop_after: str | None,
    *,
    expressions: Expressions,
    registry: Registry | None,
) -> Flow:
    """The flow a trial runs: ``document`` compiled, pruned by ``stop_after`` (see
    :func:`trial_document`). :class:`~hub.flows.FlowError` for an invalid document."""
    flow = load_flow(document, expressions=expressions, registry=registry)
    if stop_after is None:
        return flow
    return load_flow(trial_document(flow, stop_after), expressions=expressions, registry=registry)


class TrialsMixin:
    """Trial runs: starting them, and the flow and pins of one (cached by run id)."""

    db: Database
    registry: Registry
    expressions: Expressions

    if TYPE_CHECKING:  # the engine's, from its other parts

        async def get_flow(self, workspace_id: str, flow_id: str, version: int) -> Flow: ...

        async def published_version(self, workspace_id: str, flow_id: str) -> int | None: ...

        async def _insert_runs(
            self,
            workspace_id: str,
            flow_id: str,
            version: int,
            flow: Flow,
            triggers: list[Any],
            *,
            trigger_type: str,
            parent: tuple[str, str, int] | None,
            also: WriteFn | None,
            run_ids: list[str] | None,
            trial: bool = False,
        ) -> list[str]: ...

    def _init_trials(self) -> None:
        self._trials: LRUCache[str, Trial] = LRUCache(maxsize=1_000)

    async def start_trial(
        self,
        workspace_id: str,
        flow_id: str,
        document: dict[str, Any],
        trigger: Any = None,
        *,
        pins: dict[str, Any] | None = None,
        stop_after: str | None = None,
        trigger_type: str = "trial",
        parent: tuple[str, str, int] | None = None,
        also: WriteFn | None = None,
        run_id: str | None = None,
        flow: Flow | None = None,
    ) -> str:
        """Start a trial run of ``document`` (flow ``flow_id``) with ``trigger`` as its
        trigger data; return its id.

        The document, ``pins`` and ``stop_after`` are stored with the run, in the
        transaction that creates it (with ``also(conn)``). The caller validated the
        document; :class:`~hub.flows.FlowError` or ``ValueError`` (``stop_after``) if not.
        ``flow`` is the trial's flow when the caller compiled it already
        (:func:`compile_trial`, off the event loop).
        """
        if flow is None:
            flow = compile_trial(
                document, stop_after, expressions=self.expressions, registry=self.registry
            )
        pinned = dict(pins or {})
        trial = Trial(flow, pinned, stop_after)

        def write(conn: Any) -> None:
            trial_store.insert_trial(
                conn, run, workspace_id, document, pinned, stop_after, now_us()
            )
            if also is not None:
                also(conn)

        run = run_id or new_run_id()
        self._trials[run] = trial
        try:
            await self._insert_runs(
                workspace_id,
                flow_id,
                trial_store.TRIAL_VERSION,
                flow,
                [trigger],
                trigger_type=trigger_type,
                parent=parent,
                also=write,
                run_ids=[run],
                trial=True,
            )
        except BaseException:
            self._trials.pop(run, None)
            raise
        return run

    async def flow_of(self, run: RunInfo) -> Flow:
        """The compiled flow a run runs: its version's, or a trial's own."""
        if run.flow_version != trial_store.TRIAL_VERSION:
            return await self.get_flow(run.workspace_id, run.flow_id, run.flow_version)
        return (await self.trial_of(run.id)).flow

    async def trial_of(self, run_id: str) -> Trial:
        """A trial run's flow and pins, compiled from what the trial stored (cached)."""
        found = self._trials.get(run_id)
        if found is None:
            row = await self.db.read(lambda c: trial_store.trial_of(c, run_id))
            if row is None:
                raise RunNotFound(f"run {run_id!r} is no trial run")
            flow = compile_trial(
                row["document"],
                row["stop_after"],
                expressions=self.expressions,
                registry=self.registry,
            )
            found = self._trials[run_id] = Trial(flow, row["pins"] or {}, row["stop_after"])
        return found

    async def _start_child_trial(
        self, workspace_id: str, flow_id: str, input: Any, parent: tuple[str, str, int]
    ) -> str:
        """A trial's sub-flow: a trial run too, of the sub-flow's published version."""
        version = await self.published_version(workspace_id, flow_id)
        document = None
        if version is not None:
            document = await self.db.read(
                lambda c: flow_store.version_document(c, workspace_id, flow_id, version)
            )
        if document is None:
            raise RunNotFound(f"flow {flow_id!r} has no published version")
        return await self.start_trial(
            workspace_id, flow_id, document, input, trigger_type="flow", parent=parent
        )
