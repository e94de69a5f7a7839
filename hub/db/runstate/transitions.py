"""The state transitions of runs and steps that need the flow graph, each one database
transaction.

Every method of :class:`Transitions` is a synchronous function of a SQLAlchemy
``Connection`` that the engine runs through :meth:`hub.db.database.Database.write`, so each
transition is all-or-nothing: a step is marked done *and* its ready successors are inserted
in the same transaction, and the UPDATE that completes a step checks the attempt, the lease
owner and ``running``, so a worker that lost its lease cannot complete a step someone else
has taken over.

The methods return :class:`~hub.db.runstate.types.Outcome` objects: the jobs to submit once
the transaction has committed (never before: a job must never reach a queue before its row
exists) and the runs that reached a final status. Their statements are in
:mod:`hub.db.runstate.statements`, the row-level pieces in :mod:`hub.db.runstate.rows`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, and_, func, select, update

from hub.db.models import lease_expired, lease_expiry, now_us, runs, status_is, steps
from hub.db.runstate.rows import (
    claimed_row,
    finish_update,
    finished_run,
    insert_steps,
    lock_run,
    run_info,
    step_row,
)
from hub.db.runstate.statements import (
    ANY_ACTIVE,
    CANCEL_ACTIVE,
    FINAL_RUN,
    FINISH_RUN,
    INSERT_STEPS,
    ITEM_DONE,
    NEEDS_STATUS,
    NEXT_PENDING,
    PULL_PENDING,
    PULL_QUEUED,
    QUEUE_PENDING,
    SATISFIED,
    WAKE_PARENT,
)
from hub.db.runstate.types import Outcome, RunInfo, StepJob
from hub.flows import Flow


class Transitions:
    """Transitions that need the flow graph; one instance per engine.

    ``room()`` says how many more steps this process can run at once (negative when it runs
    more than its share), not counting the step being completed or expanded, whose slot
    its first successor or items inherit. While it has room, the first ready successor of
    a completed step, and the first items of a ``for_each`` (as many as there is room
    for), are inserted already claimed (``running`` with this process's lease), in the
    same transaction, and run here at once, with no queue round trip and no separate
    claim; the rest are queued for any worker. The insert can only succeed once, so this
    is as safe as a claim; if this process dies, the lease expires and the sweeper takes
    over. Likewise an item done here claims a sibling still queued (or pending) and runs
    it here, so that a fan-out goes through the queue only for the workers it spreads to.
    """

    def __init__(
        self, owner: str, lease_s: float = 30.0, room: Callable[[], int] = lambda: 0
    ) -> None:
        self.owner = owner
        self.lease_s = lease_s
        self.room = room
        # Slots promised to steps claimed beyond the completed ones' own, in transactions
        # not yet followed by their tasks (the engine's room counts them as taken).
        self.promised = 0

    # -- completing, failing, suspending a claimed step ------------------------------------

    def complete(
        self,
        conn: Connection,
        flow: Flow,
        run: RunInfo,
        row_id: int,
        key: str,
        attempt: int,
        status: str,
        input: Any,
        output: Any,
        render_output: Any,
    ) -> Outcome:
        """Mark a claimed step done (or skipped) and insert the successors that became ready."""
        lock_run(conn, run.id)
        now = now_us()
        values = {"status": status, "input": input, "output": output, "finished_at": now}
        if not finish_update(conn, row_id, attempt, self.owner, values):
            return Outcome(lost=True)
        return self._after_satisfied(conn, flow, run, key, now, render_output)

    def suspend(
        self,
        conn: Connection,
        run: RunInfo,
        row_id: int,
        attempt: int,
        until_us: int | None,
        state: Any,
        input: Any,
        child_run: str | None = None,
    ) -> Outcome:
        """Make a claimed step ``waiting`` until a time, or until a child run finishes.

        Waiting on a child that has finished meanwhile (between the action's look and this
        transaction) makes the step due at once, so the wake-up cannot be missed.
        """
        lock_run(conn, run.id)
        if child_run is not None:
            status = conn.execute(select(runs.c.status).where(runs.c.id == child_run)).scalar()
            if status in FINAL_RUN:
                until_us = now_us()
        values = {"status": "waiting", "due_at": until_us, "state": state, "input": input}
        if not finish_update(conn, row_id, attempt, self.owner, values):
            return Outcome(lost=True)
        if until_us is None:
            return Outcome()
        # The wake-up job needs an id of its own: the job running this attempt still holds
        # its id in the queue until it returns, and a queue drops an id it holds.
        woken = conn.execute(
            update(steps)
            .where(steps.c.id == row_id)
            .values(resubmissions=steps.c.resubmissions + 1)
            .returning(steps.c.key, steps.c.resubmissions)
        ).one()
        return Outcome(
            jobs=[StepJob(run.id, woken.key, attempt, woken.resubmissions, until_us / 1_000_000)]
        )

    def fail(
        self,
        conn: Connection,
        flow: Flow,
        run: RunInfo,
        row_id: int,
        key: str,
        attempt: int,
        error: dict[str, Any],
        input: Any,
        retry_delay: float | None,
        render_output: Any,
        *,
        owner_check: bool = True,
    ) -> Outcome:
        """Record a failed attempt: retry later, or apply the step's ``on_error``."""
        lock_run(conn, run.id)
        now = now_us()
        values = {"status": "failed", "error": error, "input": input, "finished_at": now}
        if owner_check:
            if not finish_update(conn, row_id, attempt, self.owner, values):
                return Outcome(lost=True)
        else:  # the sweeper: only a step whose lease has expired
            changed = conn.execute(
                update(steps)
                .where(
                    steps.c.id == row_id,
                    status_is("running"),
                    lease_expired(now),
                )
                .values(lease_owner=None, lease_expires_at=None, **values)
            ).rowcount
            if changed != 1:
                return Outcome(lost=True)
        old = conn.execute(
            select(steps.c.step_id, steps.c.item_index, steps.c.state).where(steps.c.id == row_id)
        ).one()
        if retry_delay is not None:
            due = now + int(retry_delay * 1_000_000)
            row = step_row(
                run.id,
                key,
                old.step_id,
                now,
                item_index=old.item_index,
                attempt=attempt + 1,
                status="waiting",
                due_at=due,
                state=_carry_state(old.state),
            )
            return Outcome(jobs=insert_steps(conn, [row]))
        return self._final_failure(conn, flow, run, key, old.step_id, error, now, render_output)

    def _final_failure(
        self,
        conn: Connection,
        flow: Flow,
        run: RunInfo,
        key: str,
        step_id: str,
        error: dict[str, Any],
        now: int,
        render_output: Any,
    ) -> Outcome:
        spec = flow.steps[step_id]
        if spec.on_error == "continue":
            self._mark_latest(conn, run.id, key, "done")
            return self._after_satisfied(conn, flow, run, key, now, render_output)
        if spec.on_error not in ("fail", "continue") and not spec.is_handler:
            handler_key = f"{spec.on_error}:{key}"
            state = {"error": error, "handles": key}
            latest_state = conn.execute(
                select(steps.c.state)
                .where(steps.c.run_id == run.id, steps.c.key == key)
                .order_by(steps.c.attempt.desc())
                .limit(1)
            ).scalar()
            if isinstance(latest_state, dict) and "item" in latest_state:
                state["item"] = latest_state["item"]
            row = step_row(run.id, handler_key, spec.on_error, now, state=state)
            return Outcome(jobs=insert_steps(conn, [row]))
        return self.finish_run(conn, run, "failed", None, {**error, "step": key}, now)

    def _mark_latest(self, conn: Connection, run_id: str, key: str, status: str) -> None:
        latest = (
            select(func.max(steps.c.attempt))
            .where(steps.c.run_id == run_id, steps.c.key == key)
            .scalar_subquery()
        )
        conn.execute(
            update(steps)
            .where(steps.c.run_id == run_id, steps.c.key == key, steps.c.attempt == latest)
            .values(status=status, output=None)
        )

    def _after_satisfied(
        self, conn: Connection, flow: Flow, run: RunInfo, key: str, now: int, render_output: Any
    ) -> Outcome:
        """A step key counts as done: handle handlers, fan-in of items, then successors."""
        if ":" in key:  # a handler finished: the step it handled counts as done
            handled = key.split(":", 1)[1]
            self._mark_latest(conn, run.id, handled, "done")
            return self._after_satisfied(conn, flow, run, handled, now, render_output)
        if key.endswith("]"):
            return self._item_satisfied(conn, flow, run, key, now, render_output)
        return self._successors(conn, flow, run, key, now, render_output)

    def _item_satisfied(
        self, conn: Connection, flow: Flow, run: RunInfo, key: str, now: int, render_output: Any
    ) -> Outcome:
        step_id = key[: key.index("[")]
        outcome = Outcome()
        ids = {"b_run": run.id, "b_step": step_id}
        capped = bool(flow.steps[step_id].concurrency)  # only a capped fan-out has pending items
        if self.room() + 1 > 0:  # the completed item's slot passes to a sibling
            pulled = self._pull_item(conn, run.id, step_id, now, capped)
            if pulled is not None:
                outcome.eager.append(pulled)
                if not capped:
                    outcome.withdraw.append(pulled[0])
        elif capped:
            nxt = conn.execute(NEXT_PENDING, ids).first()
            if nxt is not None:
                conn.execute(QUEUE_PENDING, {"b_id": nxt.id, "b_now": now})
                outcome.jobs.append(StepJob(run.id, nxt.key, nxt.attempt, 0, None))
        left = conn.execute(ITEM_DONE, ids).first()
        if left is None or left.items_left > 0:
            return outcome
        outcome.merge(self.fan_in(conn, flow, run, step_id, left.id, now, render_output))
        return outcome

    def fan_in(
        self,
        conn: Connection,
        flow: Flow,
        run: RunInfo,
        step_id: str,
        parent_id: int,
        now: int,
        render_output: Any,
    ) -> Outcome:
        """The last item of a fan-out is done: its step (row ``parent_id``) is done with
        the items' outputs in order, and its successors follow. Called once, by the
        transaction that took the step's ``items_left`` to 0, under the run's lock."""
        items = conn.execute(
            select(steps.c.item_index, steps.c.output, steps.c.attempt, steps.c.status).where(
                steps.c.run_id == run.id,
                steps.c.step_id == step_id,
                steps.c.item_index.is_not(None),
            )
        ).all()
        latest: dict[int, Any] = {}
        for item in sorted(items, key=lambda r: r.attempt):
            latest[item.item_index] = item.output if item.status in SATISFIED else None
        output = [latest[i] for i in sorted(latest)]
        conn.execute(
            update(steps)
            .where(steps.c.id == parent_id)
            .values(status="done", output=output, finished_at=now)
        )
        return self._successors(conn, flow, run, step_id, now, render_output)

    def _successors(
        self, conn: Connection, flow: Flow, run: RunInfo, step_id: str, now: int, render_output: Any
    ) -> Outcome:
        rows = []
        for succ in flow.successors.get(step_id, ()):
            needs = flow.steps[succ].needs
            if len(needs) > 1:
                found = conn.execute(NEEDS_STATUS, {"b_run": run.id, "b_keys": list(needs)}).all()
                current: dict[str, tuple[int, str]] = {}
                for r in found:
                    if r.key not in current or r.attempt > current[r.key][0]:
                        current[r.key] = (r.attempt, r.status)
                if not all(current.get(n, (0, ""))[1] in SATISFIED for n in needs):
                    continue
            rows.append(step_row(run.id, succ, succ, now))
        if rows:
            outcome = Outcome()
            if self.room() + 1 > 0:  # the completed step's slot passes to its successor
                eager = self._insert_claimed(conn, rows.pop(0), now)
                if eager is not None:
                    outcome.eager.append(eager)
            outcome.jobs.extend(insert_steps(conn, rows))
            return outcome
        return self._maybe_finish(conn, run, now, render_output)

    def _pull_item(
        self, conn: Connection, run_id: str, step_id: str, now: int, capped: bool
    ) -> tuple[StepJob, dict[str, Any]] | None:
        """Claim the next item of a fan-out to run here at once: (its job, the claimed row).

        Queued items have jobs: the item is taken from the newest end, while the queue's
        workers start from the oldest, and its job is withdrawn once this commits (were it
        still to run, it would find its step taken). Items of a capped fan-out come in
        order, from those still pending (which have no job).
        """
        row = conn.execute(
            PULL_PENDING if capped else PULL_QUEUED,
            {
                "b_run": run_id,
                "b_step": step_id,
                "b_owner": self.owner,
                "b_expires": lease_expiry(now, self.lease_s),
                "b_now": now,
            },
        ).first()
        if row is None:
            return None
        return StepJob(run_id, row.key, row.attempt, row.resubmissions, None), claimed_row(row)

    def _insert_claimed(
        self, conn: Connection, row: dict[str, Any], now: int
    ) -> tuple[StepJob, dict[str, Any]] | None:
        found = self._insert_all_claimed(conn, [row], now)
        return found[0] if found else None

    def _insert_all_claimed(
        self, conn: Connection, rows: list[dict[str, Any]], now: int
    ) -> list[tuple[StepJob, dict[str, Any]]]:
        """Insert step rows already claimed by this process; (job, claimed row) of each
        row inserted (one that exists already is someone else's)."""
        if not rows:  # an empty parameter list would insert one row of defaults
            return []
        expires = lease_expiry(now, self.lease_s)
        claimed = [
            {
                **row,
                "status": "running",
                "lease_owner": self.owner,
                "lease_expires_at": expires,
                "started_at": now,
            }
            for row in rows
        ]
        stmt = INSERT_STEPS[conn.dialect.name].returning(steps.c.id, steps.c.key)
        ids = {r.key: r.id for r in conn.execute(stmt, claimed)}
        return [
            (
                StepJob(row["run_id"], row["key"], row["attempt"], 0, None),
                {
                    "id": ids[row["key"]],
                    "step_id": row["step_id"],
                    "item_index": row["item_index"],
                    "state": row["state"],
                },
            )
            for row in rows
            if row["key"] in ids
        ]

    def _maybe_finish(
        self, conn: Connection, run: RunInfo, now: int, render_output: Any
    ) -> Outcome:
        active = conn.execute(ANY_ACTIVE, {"b_run": run.id}).first()
        if active is not None:
            return Outcome()
        status, output, error = render_output(conn)
        return self.finish_run(conn, run, status, output, error, now)

    # -- for_each ---------------------------------------------------------------------------

    def expand(
        self,
        conn: Connection,
        run: RunInfo,
        row_id: int,
        step_id: str,
        attempt: int,
        items: list[Any],
        concurrency: int | None,
    ) -> Outcome:
        """Fan a claimed ``for_each`` step out into item rows; the step waits for them."""
        lock_run(conn, run.id)
        now = now_us()
        values = {"status": "waiting", "due_at": None, "items_left": len(items)}
        if not finish_update(conn, row_id, attempt, self.owner, values):
            return Outcome(lost=True)
        cap = concurrency or len(items)
        rows = [
            step_row(
                run.id,
                f"{step_id}[{i}]",
                step_id,
                now,
                item_index=i,
                status="queued" if i < cap else "pending",
                submitted_at=now if i < cap else None,
                state={"item": item},
            )
            for i, item in enumerate(items)
        ]
        take = max(0, min(self.room() + 1, cap))  # the waiting step's slot is free too
        eager = self._insert_all_claimed(conn, rows[:take], now)
        return Outcome(jobs=insert_steps(conn, rows[take:]), eager=eager)

    # -- runs -------------------------------------------------------------------------------

    def finish_run(
        self,
        conn: Connection,
        run: RunInfo,
        status: str,
        output: Any,
        error: Any,
        now: int,
    ) -> Outcome:
        """Give a run its final status; cancel what is left; wake a waiting parent step."""
        changed = conn.execute(
            FINISH_RUN,
            {
                "b_run": run.id,
                "v_status": status,
                "v_output": output,
                "v_error": error,
                "b_now": now,
            },
        ).rowcount
        if not changed:
            return Outcome()
        if status != "succeeded":  # a succeeded run has nothing left to cancel
            conn.execute(CANCEL_ACTIVE, {"b_run": run.id, "b_now": now})
        outcome = Outcome(finished=[finished_run(run, status, output, error)])
        if run.parent_run_id and run.parent_step_key:
            woke = conn.execute(
                WAKE_PARENT,
                {"b_run": run.parent_run_id, "b_key": run.parent_step_key, "b_now": now},
            ).first()
            if woke is not None:
                outcome.jobs.append(
                    StepJob(run.parent_run_id, run.parent_step_key, woke.attempt, 0, None)
                )
        return outcome

    def cancel_run(self, conn: Connection, run_id: str, reason: str) -> Outcome:
        """Cancel a run and, recursively, its unfinished child runs."""
        now = now_us()
        outcome = Outcome()
        pending = [run_id]
        while pending:
            current = pending.pop()
            info = run_info(conn, current)
            if info is None:
                continue
            lock_run(conn, current)
            outcome.merge(self.finish_run(conn, info, "cancelled", None, {"message": reason}, now))
            children = conn.execute(
                select(runs.c.id).where(
                    and_(runs.c.parent_run_id == current, runs.c.status.not_in(FINAL_RUN))
                )
            ).scalars()
            pending.extend(children)
        outcome.jobs.clear()  # a cancelled child must not wake its cancelled parent
        return outcome


def _carry_state(state: Any) -> Any:
    """What a new attempt inherits from the last one: the item of a for_each item."""
    if isinstance(state, dict) and "item" in state:
        return {"item": state["item"]}
    return None
