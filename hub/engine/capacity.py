"""The engine's capacity: how many steps this process runs, and shedding work to idle
workers (part of the engine).

Split from :mod:`hub.engine.engine` along its concern; :class:`CapacityMixin` is only meant
to be mixed into :class:`hub.engine.Engine`, whose state it uses.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hub.db.runstate.transitions import Transitions
    from hub.engine.executors.base import Executor

log = logging.getLogger("hub.engine")


class CapacityMixin:
    """How many more steps this process can run, and handing a share of them to others."""

    executor: Executor
    transitions: Transitions
    _eager_tasks: set[asyncio.Task[None]]

    def _init_capacity(self, capacity: int) -> None:
        # How many steps this process runs at once (``hub worker --concurrency`` sets it).
        self.capacity: int = capacity
        # While shedding work (see shed): how many steps to keep running, until when.
        self._keep: tuple[int, float] | None = None
        # Set, once asked for (want_idle), when the last step running here ends.
        self._idle = asyncio.Event()
        self._idle_wanted = False

    def room(self) -> int:
        """How many more steps this process can run now (negative when it runs more): its
        capacity less the jobs of its executor running here and the steps it runs without
        a job (eager successors and items), and the slots promised to steps a transaction
        has claimed here beyond the ones it completed, until their tasks start. Counted by
        tasks, so a slot is taken from the moment a job starts (before its claim) until its
        task ends, whatever happens. While the process sheds work (:meth:`shed`), its
        capacity is what it keeps."""
        capacity = self.capacity
        if self._keep is not None:
            if time.monotonic() < self._keep[1]:
                capacity = min(capacity, self._keep[0])
            else:
                self._keep = None
        return capacity - len(self._eager_tasks) - self.executor.load() - self.transitions.promised

    def _eager_task_done(self, task: asyncio.Task[None]) -> None:
        self._eager_tasks.discard(task)
        self.step_ended()

    def want_idle(self) -> asyncio.Event:
        """An event set when the last step running here ends (a worker then asks others
        for work): until then, every step's end counts what still runs."""
        self._idle.clear()
        self._idle_wanted = True
        return self._idle

    def step_ended(self) -> None:
        """A step running here has ended: when it was the last one and someone waits for
        that (:meth:`want_idle`), say so (otherwise nothing: this is every step's path)."""
        if self._idle_wanted and self.room() >= self.capacity:
            self._idle_wanted = False
            self._idle.set()

    def shed(self, share: float, window: float) -> int:
        """Hand ``share`` of the steps running here to other workers (an idle worker asked
        for work): for ``window`` seconds this process runs at most the rest, so that the
        successors of the steps that end meanwhile, beyond that, go through the queue,
        where the idle worker takes them, instead of running here; and its polls take
        nothing. Returns how many steps it sheds (none when it runs fewer than two, or
        sheds already).

        A run's successors run where its step ran (claimed in the completion's statement,
        without a job): without shedding, a worker that joins, or finishes its share
        early, finds nothing to do while another runs the chains it has started.
        """
        running = self.capacity - self.room()  # (room() forgets a shedding that is over)
        count = int(running * share)
        if self._keep is not None or count < 1:
            return 0
        self._keep = (running - count, time.monotonic() + window)
        log.debug("shedding %d of %d running steps for %.2fs", count, running, window)
        return count
