"""The executor interface: how ready steps reach the code that runs them.

A job is a hint to run a step; the claim in SQL decides whether it runs. Jobs are submitted
only after the transaction that made the step ready has committed.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from hub.db.runstate.types import StepJob

StepRunner = Callable[[StepJob], Coroutine[Any, Any, None]]


class Executor(abc.ABC):
    """Submits step jobs; an executor never decides *whether* a step runs, only where."""

    #: True when jobs run in this process (so a completed step's successor can run at once).
    in_process: bool = False

    @abc.abstractmethod
    async def start(self, runner: StepRunner) -> None:
        """Start accepting jobs; ``runner`` executes one job."""

    @abc.abstractmethod
    async def submit(self, jobs: Sequence[StepJob]) -> None:
        """Submit jobs (deferred ones run at their ``due_at``)."""

    def load(self) -> int:
        """How many of its jobs are running in this process now."""
        return 0

    async def withdraw(self, jobs: Sequence[StepJob]) -> None:  # noqa: B027 - optional
        """Take back jobs whose steps this process claimed without them (best effort: a job
        that still runs finds its step taken and does nothing)."""

    @abc.abstractmethod
    async def stop(self, grace: float = 10.0) -> None:
        """Stop taking jobs; let running ones finish within ``grace`` seconds."""

    def pause(self) -> None:  # noqa: B027 - optional for executors
        """Stop starting jobs in this process (the first step of a graceful stop)."""


def cancel_requested() -> bool:
    """Whether the current task's cancellation was asked for (``Task.cancel``), not left
    behind by a timeout that expired as the block it guarded completed (Python 3.11, with
    redis-py's zero-second readiness check: the task gets a CancelledError that nobody
    asked for, and ``cancelling()`` is 0)."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0
