"""Completing steps many at a time: PostgreSQL's hot path.

Most completions are *simple*: a step (not a ``for_each`` item, not an error handler) whose
successors each need only that step. Completing it means: lock the run, mark the step done
(checking attempt, lease owner and ``running``), insert its successors (the first one
already claimed by this process when it has room). Nothing there depends on other steps'
rows, so on PostgreSQL the simple completions of one group-committed batch are ONE
statement, whatever their number:

- ``locked``: ``SELECT ... FROM runs WHERE id = ANY(...) ORDER BY id FOR UPDATE``, the run
  locks in a fixed order. The UPDATE reads it in an uncorrelated subquery, which runs
  before the UPDATE's first row: every run is locked before any step row is touched, as
  on the one-by-one path. (A row changed by a transaction that held the lock before us,
  a cancel, is re-checked by PostgreSQL against its committed version and left alone.)
- ``fin``: one ``UPDATE ... FROM unnest(...)`` finishing every step, feeding
- ``ins``: one ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` of the successors of the
  steps it did finish, with ``RETURNING``.

A batch made only of such statements needs no ``BEGIN`` and ``COMMIT`` around them:
:class:`hub.db.database.Database` runs it in autocommit, one round trip for the batch.

A step whose UPDATE matched nothing lost its lease (another worker took it over, or the run
was cancelled): its successors are not inserted and its outcome says ``lost``, exactly as
:meth:`hub.db.runstate.transitions.Transitions.complete` says it one by one. Round trips,
not rows, are what a step costs PostgreSQL and the worker here (each is a parse/bind/execute for the
server and a socket write and a wake-up on both sides), so this is what lets a second
worker add throughput instead of waiting on the database.

On SQLite (one writer, no network) and for every other completion, the one-by-one path of
:mod:`hub.db.runstate.transitions` runs unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
from sqlalchemy import JSON, BigInteger, Connection, Integer, String, text

from hub.db.models import lease_expiry, now_us, opaque_status
from hub.db.runstate.output import last_step
from hub.db.runstate.rows import claimed_row, finished_run
from hub.db.runstate.transitions import Transitions
from hub.db.runstate.types import Outcome, RunInfo, StepJob
from hub.flows import Flow

# Statuses tested as (SELECT 'running'): see hub.db.models.opaque_status.
_OPAQUE = {status: opaque_status(status) for status in ("running", "waiting", "queued")}

# Both batched completions start alike: the run locks (in a fixed order), then the steps
# finished (attempt, lease owner and ``running`` checked per row) once every run is locked.
_LOCK_AND_FINISH = """
    WITH locked AS (
        SELECT r.id FROM unnest(CAST(:runs AS VARCHAR[])) AS r(id)
        CROSS JOIN LATERAL (SELECT 1 FROM runs WHERE runs.id = r.id FOR UPDATE) AS l
    ), fin AS (
        UPDATE steps
        SET status = v.status, input = CAST(v.input AS JSON), output = CAST(v.output AS JSON),
            finished_at = :now, lease_owner = NULL, lease_expires_at = NULL
        FROM unnest(
            CAST(:ids AS BIGINT[]), CAST(:attempts AS INTEGER[]), CAST(:owners AS VARCHAR[]),
            CAST(:statuses AS VARCHAR[]), CAST(:inputs AS TEXT[]), CAST(:outputs AS TEXT[])
        ) AS v(id, attempt, owner, status, input, output)
        WHERE steps.id = v.id AND steps.attempt = v.attempt AND steps.lease_owner = v.owner
          AND steps.status = {running}
          AND (SELECT count(*) FROM locked) > 0
        RETURNING steps.id, steps.run_id, steps.step_id
    )"""

_COMPLETE_MANY = text(
    (
        _LOCK_AND_FINISH
        + """, ins AS (
        INSERT INTO steps (run_id, key, step_id, attempt, status, submitted_at, resubmissions,
                           lease_owner, lease_expires_at, started_at, created_at)
        SELECT n.run_id, n.key, n.key, 1, n.status, :now, 0, n.owner, n.expires, n.started, :now
        FROM unnest(
            CAST(:n_pred AS BIGINT[]), CAST(:n_run AS VARCHAR[]), CAST(:n_key AS VARCHAR[]),
            CAST(:n_status AS VARCHAR[]), CAST(:n_owner AS VARCHAR[]),
            CAST(:n_expires AS BIGINT[]), CAST(:n_started AS BIGINT[])
        ) AS n(pred, run_id, key, status, owner, expires, started)
        WHERE n.pred IN (SELECT id FROM fin)
        ON CONFLICT DO NOTHING
        RETURNING steps.id, steps.run_id, steps.key
    ), ended AS (
        UPDATE runs
        SET status = 'succeeded', output = CAST(f.output AS JSON), finished_at = :now
        FROM unnest(
            CAST(:f_step AS BIGINT[]), CAST(:f_run AS VARCHAR[]), CAST(:f_output AS TEXT[])
        ) AS f(step, run_id, output)
        WHERE runs.id = f.run_id AND f.step IN (SELECT id FROM fin)
          AND runs.status NOT IN ('succeeded', 'failed', 'cancelled')
        RETURNING runs.id
    )
    SELECT 'done' AS what, id, NULL AS run_id, NULL AS key FROM fin
    UNION ALL
    SELECT 'new', id, run_id, key FROM ins
    UNION ALL
    SELECT 'ended', NULL, id, NULL FROM ended
    """
    ).format(**_OPAQUE)
)


def is_simple(flow: Flow, key: str) -> bool:
    """Whether completing ``key`` only marks it done and inserts successors needing it alone.

    Items, handlers, steps without successors (the run may finish) and steps feeding a join
    (the join's other needs must be read under the run lock) are not simple.
    """
    if ":" in key or key.endswith("]") or key not in flow.steps:
        return False
    successors = flow.successors.get(key, ())
    return bool(successors) and all(len(flow.steps[s].needs) == 1 for s in successors)


def is_final(flow: Flow, run: RunInfo, key: str, status: str) -> bool:
    """Whether marking ``key`` done finishes its run, with the step's output as the run's,
    with nothing to read: the batched statement can then finish the run too.

    That is a step every other step leads to (when it runs, every other step has finished:
    no other step's row need be read under the run lock, which a statement whose snapshot
    predates the lock could not do), the flow's last step in document order, in a flow
    without an ``output`` expression (the run's output is this step's), in a run with no
    parent step to wake.
    """
    if status != "done" or flow.output is not None or run.parent_run_id is not None:
        return False
    if ":" in key or key.endswith("]") or key not in flow.steps or flow.successors.get(key):
        return False
    if key != last_step(flow):
        return False
    others = {s for s, spec in flow.steps.items() if not spec.is_handler and s != key}
    return others <= flow.ancestors.get(key, frozenset())


def _json(value: Any) -> str | None:
    return None if value is None else msgspec.json.encode(value).decode()


def _finish_params(items: Sequence[Completion], now: int) -> dict[str, Any]:
    """The parameters of :data:`_LOCK_AND_FINISH` for these completions."""
    return {
        "now": now,
        "runs": sorted({c.run.id for c in items}),
        "ids": [c.row_id for c in items],
        "attempts": [c.attempt for c in items],
        "owners": [c.transitions.owner for c in items],
        "statuses": [c.status for c in items],
        "inputs": [_json(c.input) for c in items],
        "outputs": [_json(c.output) for c in items],
    }


@dataclasses.dataclass(slots=True)
class Completion:
    """A claimed step marked done or skipped: the write :meth:`Engine._complete` submits.

    A simple one (:func:`is_simple`) is ``batchable``: :func:`hub.db.database.run_writes`
    runs it with the other batchable completions of its transaction through
    :meth:`run_many`. Called alone (SQLite, a completion that is not simple, or a batch run
    again one write at a time after a failure), it completes its step by itself.
    """

    transitions: Transitions
    flow: Flow
    run: RunInfo
    row_id: int
    key: str
    attempt: int
    status: str
    input: Any
    output: Any
    render_output: Callable[[Connection], Any]
    #: Whether :meth:`run_many` may complete it (with others): it is simple or final.
    batchable: bool = dataclasses.field(init=False)
    #: Whether it finishes its run (:func:`is_final`): :meth:`run_many` does that too.
    final: bool = dataclasses.field(default=False, init=False)
    #: A batch of these is one statement: it may run in autocommit (the hot pipeline).
    single_statement = True
    #: Slots promised (``Transitions.promised``) to the siblings that the last attempt to
    #: complete this item claimed beyond its own slot; the engine gives them back.
    promised: int = dataclasses.field(default=0, init=False)

    def __post_init__(self) -> None:
        self.final = is_final(self.flow, self.run, self.key, self.status)
        self.batchable = self.final or is_simple(self.flow, self.key)

    @property
    def lane(self) -> str:
        """The run: its writes commit one transaction at a time in this process."""
        return self.run.id

    def __call__(self, conn: Connection) -> Outcome:
        """Complete this step alone."""
        if conn.dialect.name == "postgresql" and self.batchable:
            return self.run_many(conn, [self])[0]
        return self.transitions.complete(
            conn,
            self.flow,
            self.run,
            self.row_id,
            self.key,
            self.attempt,
            self.status,
            self.input,
            self.output,
            self.render_output,
        )

    @staticmethod
    def run_many(conn: Connection, items: Sequence[Completion]) -> list[Outcome]:
        """Complete batchable items in one statement (PostgreSQL); one Outcome per item.

        Elsewhere (SQLite), each item completes on its own.
        """
        if conn.dialect.name != "postgresql":
            return [item(conn) for item in items]
        now = now_us()
        n_pred: list[int] = []
        n_run: list[str] = []
        n_key: list[str] = []
        n_status: list[str] = []
        n_owner: list[str | None] = []
        n_expires: list[int | None] = []
        n_started: list[int | None] = []
        eager_keys: set[tuple[str, str]] = set()
        room = items[0].transitions.room() + len(items)  # each completed step frees a slot
        for item in items:
            if item.final:
                continue
            transitions = item.transitions
            eager = room > 0
            room -= eager
            for succ in item.flow.successors[item.key]:
                n_pred.append(item.row_id)
                n_run.append(item.run.id)
                n_key.append(succ)
                if eager:
                    eager = False
                    eager_keys.add((item.run.id, succ))
                    n_status.append("running")
                    n_owner.append(transitions.owner)
                    n_expires.append(lease_expiry(now, transitions.lease_s))
                    n_started.append(now)
                else:
                    n_status.append("queued")
                    n_owner.append(None)
                    n_expires.append(None)
                    n_started.append(None)
        rows = conn.execute(
            _COMPLETE_MANY,
            {
                **_finish_params(items, now),
                "n_pred": n_pred,
                "n_run": n_run,
                "n_key": n_key,
                "n_status": n_status,
                "n_owner": n_owner,
                "n_expires": n_expires,
                "n_started": n_started,
                "f_step": [item.row_id for item in items if item.final],
                "f_run": [item.run.id for item in items if item.final],
                "f_output": [_json(item.output) for item in items if item.final],
            },
        ).all()
        finished = {r.id for r in rows if r.what == "done"}
        inserted = {(r.run_id, r.key): r.id for r in rows if r.what == "new"}
        ended = {r.run_id for r in rows if r.what == "ended"}
        outcomes = []
        for item in items:
            if item.row_id not in finished:
                outcomes.append(Outcome(lost=True))
                continue
            outcome = Outcome()
            if item.final:
                if item.run.id in ended:
                    outcome.finished.append(finished_run(item.run, "succeeded", item.output))
                outcomes.append(outcome)
                continue
            for succ in item.flow.successors[item.key]:
                job = StepJob(item.run.id, succ, 1, 0, None)
                if (item.run.id, succ) not in eager_keys:
                    outcome.jobs.append(job)  # submitted even if it existed: harmless
                elif (row_id := inserted.get((item.run.id, succ))) is not None:
                    claimed = {"id": row_id, "step_id": succ, "item_index": None, "state": None}
                    outcome.eager.append((job, claimed))
            outcomes.append(outcome)
        return outcomes


_COMPLETE_ITEMS = text(
    (
        _LOCK_AND_FINISH
        + """, counts AS (
        SELECT run_id, step_id, count(*) AS n FROM fin GROUP BY run_id, step_id
    ), parents AS (
        UPDATE steps SET items_left = steps.items_left - counts.n
        FROM counts
        WHERE steps.run_id = counts.run_id AND steps.key = counts.step_id
          AND steps.status = {waiting}
        RETURNING steps.id, steps.run_id, steps.key, steps.items_left
    ), pulled AS (
        UPDATE steps
        SET status = 'running', lease_owner = :owner, lease_expires_at = :expires,
            submitted_at = coalesce(steps.submitted_at, :now), started_at = :now
        WHERE steps.status = {queued} AND steps.id = ANY(ARRAY(
            SELECT q.id
            FROM unnest(
                CAST(:p_run AS VARCHAR[]), CAST(:p_step AS VARCHAR[]),
                CAST(:p_take AS INTEGER[])
            ) AS w(run_id, step_id, take)
            JOIN counts ON counts.run_id = w.run_id AND counts.step_id = w.step_id
            CROSS JOIN LATERAL (
                SELECT s.id FROM steps s
                WHERE s.run_id = w.run_id AND s.step_id = w.step_id AND s.status = {queued}
                  AND s.item_index IS NOT NULL AND s.due_at IS NULL
                ORDER BY s.item_index DESC
                LIMIT w.take
                FOR UPDATE SKIP LOCKED
            ) AS q
        ))
        RETURNING steps.id, steps.run_id, steps.key, steps.attempt, steps.resubmissions,
                  steps.step_id, steps.item_index, steps.state
    )
    SELECT 'done' AS what, id, CAST(NULL AS VARCHAR) AS run_id, CAST(NULL AS VARCHAR) AS key,
           CAST(NULL AS INTEGER) AS n, CAST(NULL AS INTEGER) AS attempt,
           CAST(NULL AS INTEGER) AS resubmissions, CAST(NULL AS VARCHAR) AS step_id,
           CAST(NULL AS INTEGER) AS item_index, CAST(NULL AS JSON) AS state
    FROM fin
    UNION ALL
    SELECT 'parent', id, run_id, key, items_left, NULL, NULL, NULL, NULL, NULL FROM parents
    UNION ALL
    SELECT 'pulled', id, run_id, key, NULL, attempt, resubmissions, step_id, item_index, state
    FROM pulled
    """
    ).format(**_OPAQUE)
).columns(
    what=String,
    id=BigInteger,
    run_id=String,
    key=String,
    n=Integer,
    attempt=Integer,
    resubmissions=Integer,
    step_id=String,
    item_index=Integer,
    state=JSON(none_as_null=True),
)


def is_batchable_item(flow: Flow, key: str) -> bool:
    """Whether ``key`` is an item of a ``for_each`` without a concurrency cap: its
    completions batch (:class:`ItemCompletion`). A capped fan-out's items (the next one
    waits as ``pending``) and items' error handlers complete one by one."""
    if ":" in key or not key.endswith("]") or "[" not in key:
        return False
    spec = flow.steps.get(key[: key.index("[")])
    return spec is not None and not spec.concurrency


@dataclasses.dataclass(slots=True)
class ItemCompletion(Completion):
    """An item of an uncapped fan-out marked done: completions that batch in a transaction.

    On PostgreSQL, the item completions of one transaction are one statement, whatever
    their number and however many fan-outs they belong to: the run locks (as for simple
    completions), the items finished (attempt, lease owner and ``running`` checked per
    row), each fan-out's ``items_left`` taken down by its number of items done, and for
    each done item a queued sibling claimed by this process (the newest: the queue's
    workers start from the oldest; its job is then withdrawn), as
    :meth:`hub.db.runstate.transitions.Transitions.complete` does one item at a time, and more
    siblings when the process has room to spare (taken here in this statement, an item
    costs a row; taken from the queue, six round trips to Redis). The transaction
    that takes a fan-out's ``items_left`` to 0 then runs its fan-in
    (:meth:`~hub.db.runstate.transitions.Transitions.fan_in`), still under the run's
    lock: so the batch is not one statement in every case, and runs in the general
    pipeline, in a transaction, not in autocommit. One by one, an item costs four statements.
    """

    single_statement = False

    def __post_init__(self) -> None:
        self.batchable = is_batchable_item(self.flow, self.key)

    @staticmethod
    def run_many(conn: Connection, items: Sequence[Completion]) -> list[Outcome]:
        """Complete item completions together (PostgreSQL); one Outcome per item."""
        if conn.dialect.name != "postgresql":
            return [item(conn) for item in items]
        transitions = items[0].transitions
        for item in items:  # an earlier attempt's promise (its transaction rolled back)
            transitions.promised -= item.promised
            item.promised = 0
        now = now_us()
        # Each done item frees its slot; this process's spare room counts too.
        room = transitions.room() + len(items)
        groups: dict[tuple[str, str], list[Completion]] = {}
        for item in items:
            groups.setdefault((item.run.id, item.key[: item.key.index("[")]), []).append(item)
        # Each done item's slot goes to a sibling of its own fan-out; spare room is shared
        # out too: an item claimed here costs one row of this statement, where its job
        # would cost the queue's worker six round trips to Redis.
        takes = {}
        for group, members in groups.items():
            takes[group] = max(0, min(room, len(members)))
            room -= takes[group]
        spare = max(0, room)
        each = -(-spare // len(takes))  # the spare room, shared out (rounded up)
        for group in takes:
            extra = min(room, each) if room > 0 else 0
            takes[group] += extra
            room -= extra
        # The spare room is promised until the siblings' tasks start: until then, another
        # transaction or the queue's poll would see it free.
        transitions.promised += spare
        try:
            rows = conn.execute(
                _COMPLETE_ITEMS,
                {
                    **_finish_params(items, now),
                    "p_run": [run_id for run_id, _step in takes],
                    "p_step": [step for _run, step in takes],
                    "p_take": list(takes.values()),
                    "owner": transitions.owner,
                    "expires": lease_expiry(now, transitions.lease_s),
                },
            ).all()
        finally:
            transitions.promised -= spare
        finished = {r.id for r in rows if r.what == "done"}
        emptied = {(r.run_id, r.key): r.id for r in rows if r.what == "parent" and r.n == 0}
        pulled: dict[tuple[str, str], list[Any]] = {}
        for r in sorted((r for r in rows if r.what == "pulled"), key=lambda r: -r.item_index):
            pulled.setdefault((r.run_id, r.step_id), []).append(r)  # newest first
        outcomes: dict[int, Outcome] = {}
        for group, members in groups.items():
            done = [m for m in members if m.row_id in finished]
            for item in members:
                outcomes[id(item)] = Outcome(lost=item.row_id not in finished)
            # Each done item's slot passes to a sibling; the last one takes any more.
            siblings = pulled.get(group, [])
            for index, row in enumerate(siblings):
                job = StepJob(row.run_id, row.key, row.attempt, row.resubmissions, None)
                outcome = outcomes[id(done[min(index, len(done) - 1)])]
                outcome.eager.append((job, claimed_row(row)))
                outcome.withdraw.append(job)
            if len(siblings) > len(done):  # claimed beyond the done items' own slots
                done[-1].promised = outcomes[id(done[-1])].promised = len(siblings) - len(done)
                transitions.promised += done[-1].promised
            parent = emptied.get(group)
            if parent is not None:  # the fan-out's last items: its fan-in, once
                last = done[-1]
                outcomes[id(last)].merge(
                    transitions.fan_in(
                        conn, last.flow, last.run, group[1], parent, now, last.render_output
                    )
                )
        return [outcomes[id(item)] for item in items]
