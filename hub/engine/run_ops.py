"""Operations on finished runs: retry from the failed step, and replay.

Both keep the run protocol's guarantees (see ``ARCHITECTURE.md``):

- **Retry** (:func:`retry_run`) works on a ``failed`` run, in ONE transaction that locks the
  run row: the run goes back to ``running``; every step key whose latest attempt is
  ``failed`` gets a new attempt (the old attempts stay as history: rows are unique on run,
  key and attempt); the keys the failure cancelled (parallel branches, queued or waiting
  steps, items of a ``for_each``) get a new attempt too, and a ``for_each`` step waiting for
  its items goes back to waiting. Completed steps are never re-run. The new attempts are
  submitted only after the transaction commits. A manual retry is one more attempt: the
  step's own retry policy is not restarted, so if it fails again the run fails again.
- **Replay** (:func:`replay_run`) starts a new run of the same flow version with the same
  trigger data, through the engine's ``start_run``; a trial run's replay is a new trial of
  the same document, pins and ``stop_after`` (:mod:`hub.engine.trials`).
"""

from __future__ import annotations

from typing import Any

from hub.db import runs as run_store
from hub.db import trials as trial_store
from hub.db.runstate.retry import RunStateError, retry_transition
from hub.db.runstate.types import RunNotFound
from hub.engine.engine import Engine

__all__ = ["RunStateError", "replay_run", "retry_run"]


def _announce(engine: Engine, event: dict[str, Any]) -> None:
    engine.emit(event)


async def retry_run(engine: Engine, workspace_id: str, run_id: str) -> list[str]:
    """Retry a failed run from its failed step(s); return the step keys given a new attempt."""
    outcome, keys = await engine.db.write(lambda c: retry_transition(c, workspace_id, run_id))
    if outcome.jobs:
        await engine.executor.submit(outcome.jobs)
    _announce(engine, {"type": "run", "run_id": run_id, "status": "running"})
    return keys


async def replay_run(engine: Engine, workspace_id: str, run_id: str) -> str:
    """Start a new run of the same flow version with the same trigger data; return its id."""
    record = await engine.db.read(lambda c: run_store.run_record(c, run_id, workspace_id))
    if record is None:
        raise RunNotFound(f"no run {run_id!r}")
    if record["trial"]:
        trial = await engine.db.read(lambda c: trial_store.trial_of(c, run_id))
        if trial is None:
            raise RunNotFound(f"run {run_id!r} has lost its trial document")
        return await engine.start_trial(
            workspace_id,
            record["flow_id"],
            trial["document"],
            record["trigger"],
            pins=trial["pins"],
            stop_after=trial["stop_after"],
            trigger_type="replay",
        )
    return await engine.start_run(
        workspace_id,
        record["flow_id"],
        record["trigger"],
        version=record["flow_version"],
        trigger_type="replay",
    )
