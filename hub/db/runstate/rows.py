"""The row-level pieces of the run-state transactions: inserting runs and steps, claiming a
step, finishing a claimed step, reading a run's facts and its steps' outputs.

Each is a synchronous function of a SQLAlchemy ``Connection``, run inside the caller's
transaction (:mod:`hub.db.runstate.transitions`, :mod:`hub.db.runstate.claims`,
:mod:`hub.db.runstate.completions`, :mod:`hub.db.runstate.retry`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection

from hub.db.models import lease_expiry, now_us
from hub.db.runstate.statements import (
    CLAIM,
    INSERT_RUN,
    INSERT_STEPS,
    LOAD_OUTPUTS,
    LOCK_RUN,
    RUN_INFOS,
    finish_statement,
)
from hub.db.runstate.types import Outcome, RunInfo, StepJob
from hub.flows import Flow


def lock_run(conn: Connection, run_id: str) -> None:
    """Lock the run row so that concurrent completions of one run serialise.

    PostgreSQL takes a row lock; SQLite needs nothing: it has one writer, and every write
    transaction starts with ``BEGIN IMMEDIATE``.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(LOCK_RUN, {"b_run": run_id})


def step_row(run_id: str, key: str, step_id: str, now: int, **values: Any) -> dict[str, Any]:
    """The column values of a new step row (queued and submitted now unless overridden)."""
    row: dict[str, Any] = {
        "run_id": run_id,
        "key": key,
        "step_id": step_id,
        "item_index": None,
        "attempt": 1,
        "status": "queued",
        "due_at": None,
        "submitted_at": now,
        "resubmissions": 0,
        "state": None,
        "items_left": None,
        "created_at": now,
    }
    row.update(values)
    return row


def insert_steps(conn: Connection, rows: list[dict[str, Any]]) -> list[StepJob]:
    """Insert step rows (ignoring ones that exist) and return jobs for the submittable ones."""
    if not rows:
        return []
    conn.execute(INSERT_STEPS[conn.dialect.name], rows)
    return [
        StepJob(r["run_id"], r["key"], r["attempt"], 0, _to_seconds(r["due_at"]))
        for r in rows
        if r["status"] in ("queued", "waiting")
        and not (r["status"] == "waiting" and r["due_at"] is None)
    ]


def _to_seconds(us: int | None) -> float | None:
    return None if us is None else us / 1_000_000


def create_runs(conn: Connection, new_runs: list[dict[str, Any]], flow: Flow) -> Outcome:
    """Insert run rows and the rows of their root steps: two statements for any number of
    runs (a burst of webhooks or a poll's events start together), in the caller's
    transaction."""
    if not new_runs:
        return Outcome()
    conn.execute(INSERT_RUN, new_runs)
    rows = [
        step_row(run["id"], root, root, run["created_at"])
        for run in new_runs
        for root in flow.roots
    ]
    return Outcome(jobs=insert_steps(conn, rows))


def claim(
    conn: Connection, run_id: str, key: str, attempt: int, owner: str, lease_s: float
) -> dict[str, Any] | None:
    """Claim a step: ``queued``/due ``waiting`` -> ``running`` with our lease, or None."""
    now = now_us()
    params = {
        "b_run": run_id,
        "b_key": key,
        "b_attempt": attempt,
        "b_now": now,
        "b_owner": owner,
        "b_expires": lease_expiry(now, lease_s),
    }
    row = conn.execute(CLAIM, params).first()
    return None if row is None else claimed_row(row)


def claimed_row(row: Any) -> dict[str, Any]:
    """What the engine runs of a step row this process has just claimed."""
    return {"id": row.id, "step_id": row.step_id, "item_index": row.item_index, "state": row.state}


def run_infos(conn: Connection, run_ids: Iterable[str]) -> dict[str, RunInfo]:
    """The immutable facts of these runs (those that exist), by id: one query."""
    rows = conn.execute(RUN_INFOS, {"b_ids": list(run_ids)})
    return {row.id: RunInfo(**row._mapping) for row in rows}


def run_info(conn: Connection, run_id: str) -> RunInfo | None:
    """The immutable facts of a run."""
    return run_infos(conn, [run_id]).get(run_id)


def load_outputs(conn: Connection, run_id: str, keys: Iterable[str]) -> dict[str, Any]:
    """The outputs of the given step keys that are done or skipped (latest attempt)."""
    key_list = list(keys)
    if not key_list:
        return {}
    rows = conn.execute(LOAD_OUTPUTS, {"b_run": run_id, "b_keys": key_list})
    return {r.key: r.output for r in rows}


def finish_update(
    conn: Connection, row_id: int, attempt: int, owner: str, values: dict[str, Any]
) -> bool:
    stmt = finish_statement(tuple(values))
    params = {"b_id": row_id, "b_attempt": attempt, "b_owner": owner}
    params.update({f"v_{name}": value for name, value in values.items()})
    return conn.execute(stmt, params).rowcount == 1


def finished_run(run: RunInfo, status: str, output: Any, error: Any = None) -> dict[str, Any]:
    """What :attr:`Outcome.finished` says of a run that a transition finished."""
    return {
        "id": run.id,
        "flow_id": run.flow_id,
        "workspace_id": run.workspace_id,
        "status": status,
        "output": output,
        "error": error,
        "parent_run_id": run.parent_run_id,
    }
