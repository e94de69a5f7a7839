"""The engine's runs: starting them (and child runs), cancelling them, waiting for them
(part of the engine).

Split from :mod:`hub.engine.engine` along its concern; :class:`RunsMixin` is only meant to
be mixed into :class:`hub.engine.Engine`, whose state it uses.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import TYPE_CHECKING, Any

from cachetools import LRUCache

from hub.connectors import ActionError
from hub.context import StepContext, Suspend
from hub.db import runs as run_store
from hub.db.database import Database, WriteFn
from hub.db.models import now_us
from hub.db.runstate.rows import create_runs
from hub.db.runstate.types import Outcome, RunInfo, RunNotFound
from hub.db.trials import TRIAL_VERSION
from hub.flows import Flow

if TYPE_CHECKING:
    from hub.db.runstate.transitions import Transitions
    from hub.settings import Settings


def new_run_id() -> str:
    """A time-ordered run id: 12 hex digits of epoch milliseconds, then 20 random ones."""
    return f"{time.time_ns() // 1_000_000:012x}{uuid.uuid4().hex[:20]}"


class RunsMixin:
    """Runs as a whole: the run rows and their root steps, cancellation, waiting."""

    settings: Settings
    db: Database
    transitions: Transitions
    _runs: LRUCache[str, RunInfo]
    _waiters: dict[str, list[asyncio.Future[dict[str, Any]]]]

    if TYPE_CHECKING:  # the engine's, from its other parts (no definitions here: see MRO)

        async def get_flow(self, workspace_id: str, flow_id: str, version: int) -> Flow: ...

        async def published_version(self, workspace_id: str, flow_id: str) -> int | None: ...

        async def _run_info(self, run_id: str) -> RunInfo: ...

        async def _start_child_trial(
            self, workspace_id: str, flow_id: str, input: Any, parent: tuple[str, str, int]
        ) -> str: ...

        def _emit(self, event: dict[str, Any]) -> None: ...

        async def _after(self, outcome: Outcome) -> None: ...

        def interrupt_run(self, run_id: str) -> None: ...

    async def start_run(
        self,
        workspace_id: str,
        flow_id: str,
        trigger: Any = None,
        *,
        version: int | None = None,
        trigger_type: str = "manual",
        parent: tuple[str, str, int] | None = None,
    ) -> str:
        """Create a run of ``flow_id`` (its published version unless ``version``); return its id.

        The run row and its root steps are inserted in one transaction; the root steps are
        submitted after it commits. ``parent`` is (run id, step key, depth) for a child run.
        """
        ids = await self.start_runs(
            workspace_id,
            flow_id,
            [trigger],
            version=version,
            trigger_type=trigger_type,
            parent=parent,
        )
        return ids[0]

    async def start_runs(
        self,
        workspace_id: str,
        flow_id: str,
        triggers: list[Any],
        *,
        version: int | None = None,
        trigger_type: str = "manual",
        parent: tuple[str, str, int] | None = None,
        also: WriteFn | None = None,
        run_ids: list[str] | None = None,
    ) -> list[str]:
        """Create one run per trigger value in ONE transaction, with ``also(conn)`` in it too.

        Poll triggers use ``also`` to store their new cursor with the runs it produced, so an
        event is never lost nor started twice.
        """
        if version is None:
            version = await self.published_version(workspace_id, flow_id)
            if version is None:
                raise RunNotFound(f"flow {flow_id!r} has no published version")
        flow = await self.get_flow(workspace_id, flow_id, version)
        return await self._insert_runs(
            workspace_id,
            flow_id,
            version,
            flow,
            triggers,
            trigger_type=trigger_type,
            parent=parent,
            also=also,
            run_ids=run_ids,
        )

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
    ) -> list[str]:
        """Insert the runs of ``flow`` (and their root steps) in one transaction with
        ``also(conn)``, announce them and submit their root steps; ``trial`` marks them
        trial runs (:mod:`hub.engine.trials`)."""
        now = now_us()
        rows = [
            {
                "id": run_ids[i] if run_ids else new_run_id(),
                "workspace_id": workspace_id,
                "flow_id": flow_id,
                "flow_version": version,
                "status": "running",
                "trigger_type": trigger_type,
                "trigger": trigger,
                "parent_run_id": parent[0] if parent else None,
                "parent_step_key": parent[1] if parent else None,
                "depth": parent[2] if parent else 0,
                "created_at": now,
                "started_at": now,
            }
            for i, trigger in enumerate(triggers)
        ]
        if trial:  # only then: a production run's INSERT stays as it was (the default)
            for row in rows:
                row["trial"] = True

        def write(conn: Any) -> Outcome:
            outcome = create_runs(conn, rows, flow)
            if also is not None:
                also(conn)
            return outcome

        outcome = await self.db.write(write)
        for row in rows:
            self._runs[row["id"]] = RunInfo(
                id=row["id"],
                workspace_id=workspace_id,
                flow_id=flow_id,
                flow_version=version,
                trigger=row["trigger"],
                depth=row["depth"],
                parent_run_id=row["parent_run_id"],
                parent_step_key=row["parent_step_key"],
                created_at=now,
            )
            event = {"type": "run", "run_id": row["id"], "status": "running", "flow_id": flow_id}
            if trial:
                event["trial"] = True
            self._emit(event)
        await self._after(outcome)
        return [row["id"] for row in rows]

    async def cancel_run(self, run_id: str, reason: str = "cancelled") -> bool:
        """Cancel a run: queued and waiting steps never start, running ones are interrupted."""
        outcome = await self.db.write(
            lambda c: self.transitions.cancel_run(c, run_id, reason), lane=run_id
        )
        for finished in outcome.finished:
            self.interrupt_run(finished["id"])
        await self._after(outcome)
        return bool(outcome.finished)

    async def wait_for_run(self, run_id: str, timeout: float | None = None) -> dict[str, Any]:
        """Wait until a run has a final status; return its record."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(run_id, []).append(future)
        try:
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                record = await self.db.read(lambda c: run_store.run_record(c, run_id))
                if record is None:
                    raise RunNotFound(f"no run {run_id!r}")
                if record["status"] in ("succeeded", "failed", "cancelled"):
                    return record
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"run {run_id} still {record['status']} after {timeout}s")
                # Runs finished by another process are seen by polling.
                wait = 1.0 if remaining is None else min(1.0, remaining)
                try:
                    await asyncio.wait_for(asyncio.shield(future), wait)
                except TimeoutError:
                    continue
        finally:
            waiters = self._waiters.get(run_id, [])
            if future in waiters:
                waiters.remove(future)
            if not waiters:
                self._waiters.pop(run_id, None)

    async def start_child_run(self, ctx: StepContext, flow_id: str, input: Any, wait: bool) -> Any:
        """Start (or find again) the child run of a step; see StepContext.start_flow."""
        child = await self.db.read(lambda c: run_store.child_run(c, ctx.run_id, ctx.step_key))
        if child is None:
            if ctx.depth + 1 > self.settings.max_subflow_depth:
                raise ActionError(
                    f"sub-flow depth limit reached ({self.settings.max_subflow_depth}): "
                    f"{flow_id!r} not started"
                )
            parent = (ctx.run_id, ctx.step_key, ctx.depth + 1)
            try:
                if (await self._run_info(ctx.run_id)).flow_version == TRIAL_VERSION:
                    run_id = await self._start_child_trial(ctx.workspace_id, flow_id, input, parent)
                else:
                    run_id = await self.start_run(
                        ctx.workspace_id, flow_id, input, trigger_type="flow", parent=parent
                    )
            except RunNotFound as exc:
                raise ActionError(str(exc)) from exc
            child = {"id": run_id, "status": "running", "output": None, "error": None}
        if not wait:
            return {"run_id": child["id"]}
        if child["status"] == "succeeded":
            return child["output"]
        if child["status"] in ("failed", "cancelled"):
            message = (child["error"] or {}).get("message", child["status"])
            raise ActionError(
                f"sub-flow {flow_id!r} (run {child['id']}) {child['status']}: {message}"
            )
        suspend = Suspend(None, ctx.state)
        suspend.child_run = child["id"]  # type: ignore[attr-defined]
        raise suspend
