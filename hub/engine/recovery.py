"""Recovery: the sweeper, leases and heartbeats, graceful hand-back (part of the engine).

Split from :mod:`hub.engine` along its concern; :class:`RecoveryMixin` is only meant to be
mixed into :class:`hub.engine.Engine`, whose state it uses.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from hub.db import runs as run_store
from hub.db.models import lease_expiry, now_us
from hub.db.runstate.output import output_renderer, write_finishing
from hub.db.runstate.types import Outcome, StepJob

if TYPE_CHECKING:
    from hub.db.database import Database
    from hub.db.runstate.transitions import Transitions
    from hub.db.runstate.types import RunInfo
    from hub.engine.executors.base import Executor
    from hub.expressions.offload import Renders
    from hub.flows import Flow
    from hub.settings import Settings


class RecoveryMixin:
    """Finds lost work again and keeps this process's leases."""

    settings: Settings
    db: Database
    executor: Executor
    transitions: Transitions
    renders: Renders
    boot_id: str
    _running: dict[int, tuple[float, StepJob, asyncio.Task[Any] | None]]
    _eager_tasks: set[asyncio.Task[None]]

    async def _run_info(self, run_id: str) -> RunInfo:
        raise NotImplementedError

    async def flow_of(self, run: RunInfo) -> Flow:
        raise NotImplementedError

    async def _after(self, outcome: Outcome) -> None:
        raise NotImplementedError

    async def sweep(self, *, startup: bool = False) -> int:
        """Re-submit what the executor may have lost; return how many jobs were submitted.

        Expired leases become failed attempts (retried by policy); ``queued`` steps never
        submitted, or submitted long ago (all of them at start-up), are submitted again under
        a new resubmission number; ``waiting`` steps coming due are submitted deferred.
        """
        horizon = now_us() + int(self.settings.sweep_interval * 1_000_000)
        resubmit_before = 0 if startup else now_us() - int(self.settings.resubmit_after * 1e6)
        if startup:
            resubmit_before = now_us() + 1
        found = await self.db.write(
            lambda c: run_store.sweep_candidates(c, horizon, resubmit_before, now_us())
        )
        jobs = [StepJob(*entry) for entry in found.submit]
        for expired in found.expired:
            outcome = await self._expire(expired)
            jobs.extend(outcome.jobs)
            await self._after(Outcome(finished=outcome.finished))
        if jobs:
            await self.executor.submit(jobs)
        return len(jobs)

    async def _expire(self, expired: dict[str, Any]) -> Outcome:
        run = await self._run_info(expired["run_id"])
        flow = await self.flow_of(run)
        spec = flow.steps[expired["step_id"]]
        error = {
            "message": "the worker running this step stopped (its lease expired)",
            "kind": "lease",
            "attempt": expired["attempt"],
        }
        # A lost worker is not the step's fault: it gets at least lease_retry_attempts tries.
        allowed = max(spec.retry.max_attempts, self.settings.lease_retry_attempts)
        delay = spec.retry.delay(expired["attempt"]) if expired["attempt"] < allowed else None
        renderer = output_renderer(run, flow, None, self.renders.inline_seconds)
        return await write_finishing(
            self.db,
            lambda c: self.transitions.fail(
                c,
                flow,
                run,
                expired["id"],
                expired["key"],
                expired["attempt"],
                error,
                None,
                delay,
                renderer,
                owner_check=False,
            ),
            renderer,
            self.renders,
        )

    @property
    def running_count(self) -> int:
        """How many steps this process is running now."""
        return len(self._running)

    async def hand_back(self) -> int:
        """Give the steps running here back to ``queued`` (attempt unchanged) and resubmit.

        Used on a graceful shutdown: a step handed back does not count as a failed attempt.
        """
        ids = list(self._running)
        if not ids:
            return 0
        found = await self.db.write(lambda c: run_store.hand_back(c, ids, self.boot_id, now_us()))
        await self._after(Outcome(jobs=[StepJob(*entry) for entry in found]))
        return len(found)

    async def drain(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for the steps running here to finish."""
        deadline = time.monotonic() + grace
        while (self._running or self._eager_tasks) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    async def heartbeat(self) -> None:
        """Renew the leases of steps running here for longer than the heartbeat interval."""
        threshold = time.monotonic() - self.settings.heartbeat_interval
        ids = [row_id for row_id, (since, _job, _t) in self._running.items() if since < threshold]
        if ids:
            expires = lease_expiry(now_us(), self.settings.lease_seconds)
            held = await self.db.write(
                lambda c: run_store.renew_leases(c, ids, self.boot_id, expires)
            )
            # A step we no longer hold was cancelled, or taken over: stop running it.
            for row_id in set(ids) - set(held):
                entry = self._running.get(row_id)
                if entry is not None and entry[2] is not None:
                    entry[2].cancel()

    def interrupt_run(self, run_id: str) -> None:
        """Cancel the steps of ``run_id`` that run in this process (not the caller's own)."""
        me = asyncio.current_task()
        for _since, job, task in list(self._running.values()):
            if job.run_id == run_id and task is not None and task is not me:
                task.cancel()
