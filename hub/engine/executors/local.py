"""The in-process executor: each job is an asyncio task in this process (the embedded default).

Deferred jobs (retry back-off, delays) are kept in a heap with one timer for the earliest,
not as sleeping tasks: 10,000 runs waiting an hour cost a heap entry each. Jobs due far in
the future are not even kept: the sweeper finds them in the database when they come due.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Sequence

from hub.db.runstate.types import StepJob
from hub.engine.executors.base import Executor, StepRunner

log = logging.getLogger("hub.executor")


class LocalExecutor(Executor):
    """Runs step jobs as asyncio tasks in this process."""

    in_process = True

    def __init__(self, horizon: float = 60.0) -> None:
        self._runner: StepRunner | None = None
        self._tasks: dict[asyncio.Task[None], StepJob] = {}
        self._heap: list[tuple[float, int, StepJob]] = []
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._horizon = horizon
        self._stopping = False

    async def start(self, runner: StepRunner) -> None:
        """Start accepting jobs."""
        self._runner = runner
        self._stopping = False

    async def submit(self, jobs: Sequence[StepJob]) -> None:
        """Start due jobs now; keep near-future ones in the timer heap."""
        if self._stopping or self._runner is None:
            return
        now = time.time()
        rearm = False
        for job in jobs:
            if job.due_at is None or job.due_at <= now:
                self._spawn(job)
            elif job.due_at <= now + self._horizon:
                heapq.heappush(self._heap, (job.due_at, next(self._seq), job))
                rearm = True
            # else: the sweeper submits it again when it comes due.
        if rearm:
            self._arm()

    def _spawn(self, job: StepJob) -> None:
        assert self._runner is not None
        task = asyncio.get_running_loop().create_task(self._runner(job))
        self._tasks[task] = job
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("step job failed", exc_info=task.exception())

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._heap:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._heap[0][0] - time.time())
        self._timer = loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        now = time.time()
        while self._heap and self._heap[0][0] <= now + 0.001:
            _, _, job = heapq.heappop(self._heap)
            if not self._stopping:
                self._spawn(job)
        self._arm()

    def load(self) -> int:
        """How many jobs are running now."""
        return len(self._tasks)

    @property
    def deferred(self) -> int:
        """How many jobs wait in the timer heap."""
        return len(self._heap)

    def pause(self) -> None:
        """Start no more jobs: what is submitted now waits in the database for the sweeper."""
        self._stopping = True

    async def stop(self, grace: float = 10.0) -> None:
        """Stop timers; wait for running jobs, then cancel what is left (it comes back)."""
        self._stopping = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._heap.clear()
        tasks = list(self._tasks)
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
