"""The values the run-state transactions take and return: the job of one step attempt, what
a transition produced, and the facts of a run that every step needs; and the error a
transaction raises for a run that is not there.

They belong to the storage layer (the transactions build them); the engine and its
executors use them (:class:`StepJob` is what an executor carries).
"""

from __future__ import annotations

import dataclasses
from typing import Any


class RunNotFound(LookupError):
    """No run (or flow) with that id in this workspace."""


@dataclasses.dataclass(frozen=True, slots=True)
class StepJob:
    """Run step ``key`` (attempt ``attempt``) of run ``run_id``, not before ``due_at``.

    ``resubmission`` counts how often the sweeper re-submitted it: together they make the
    deterministic job id (queues drop an id they still hold).
    """

    run_id: str
    key: str
    attempt: int
    resubmission: int = 0
    due_at: float | None = None
    priority: str = "default"

    @property
    def job_id(self) -> str:
        """The deterministic id of this submission."""
        return f"{self.run_id}:{self.key}:{self.attempt}:{self.resubmission}"


@dataclasses.dataclass
class Outcome:
    """What a transition produced: jobs to submit after commit, and finished runs."""

    jobs: list[StepJob] = dataclasses.field(default_factory=list)
    finished: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    lost: bool = False
    # Successors inserted already claimed by this process: (job, claimed row) to run here.
    eager: list[tuple[StepJob, dict[str, Any]]] = dataclasses.field(default_factory=list)
    # Jobs of steps this process claimed without them: to take back out of the queue.
    withdraw: list[StepJob] = dataclasses.field(default_factory=list)
    # Slots of Transitions.promised held for this outcome's eager steps until they start.
    promised: int = 0

    def merge(self, other: Outcome) -> None:
        """Add another outcome's jobs, eager steps and finished runs to this one."""
        self.jobs.extend(other.jobs)
        self.finished.extend(other.finished)
        self.eager.extend(other.eager)
        self.withdraw.extend(other.withdraw)
        self.promised += other.promised


@dataclasses.dataclass
class RunInfo:
    """The immutable facts of a run that the engine needs on every step."""

    id: str
    workspace_id: str
    flow_id: str
    flow_version: int
    trigger: Any
    depth: int
    parent_run_id: str | None
    parent_step_key: str | None
    created_at: int
