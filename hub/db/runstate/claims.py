"""Claiming steps many at a time: the other half of PostgreSQL's hot path.

A job from the queue names a step attempt; claiming it is one conditional UPDATE
(``queued``, or ``waiting`` and due, becomes ``running`` with this process's lease). Every
claim is independent of the others, so on PostgreSQL the claims of one group-committed
transaction are one ``UPDATE ... FROM unnest(...) RETURNING`` for all of them, as
:mod:`hub.db.runstate.completions` does for completions. A fan-out in queue mode claims every item
this way. Elsewhere (SQLite), each claim runs :func:`hub.db.runstate.rows.claim` on its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from sqlalchemy import JSON, BigInteger, Connection, Integer, String, text

from hub.db.models import lease_expiry, now_us, opaque_status
from hub.db.runstate.rows import claim, claimed_row

_CLAIM_MANY = text(
    """
    UPDATE steps
    SET status = 'running', lease_owner = v.owner, lease_expires_at = v.expires,
        started_at = coalesce(steps.started_at, :now)
    FROM unnest(
        CAST(:runs AS VARCHAR[]), CAST(:keys AS VARCHAR[]), CAST(:attempts AS INTEGER[]),
        CAST(:owners AS VARCHAR[]), CAST(:expires AS BIGINT[])
    ) AS v(run_id, key, attempt, owner, expires)
    WHERE steps.run_id = v.run_id AND steps.key = v.key AND steps.attempt = v.attempt
      AND steps.status IN ({queued}, {waiting})
      AND ((steps.due_at IS NULL AND steps.status = {queued}) OR steps.due_at <= :now)
    RETURNING steps.id, steps.run_id, steps.key, steps.attempt, steps.step_id,
              steps.item_index, steps.state
    """.format(queued=opaque_status("queued"), waiting=opaque_status("waiting"))
).columns(
    id=BigInteger,
    run_id=String,
    key=String,
    attempt=Integer,
    step_id=String,
    item_index=Integer,
    state=JSON(none_as_null=True),
)


@dataclasses.dataclass(slots=True)
class Claim:
    """Claim one step attempt for ``owner`` with a lease of ``lease_s`` seconds.

    The result is the claimed row (``id``, ``step_id``, ``item_index``, ``state``) or None
    when the step is not there to take (taken, finished, not due, cancelled).
    """

    run_id: str
    key: str
    attempt: int
    owner: str
    lease_s: float
    batchable = True
    single_statement = True  # a batch of claims is one statement: autocommit will do

    @property
    def lane(self) -> str:
        """The run: its writes commit one transaction at a time in this process."""
        return self.run_id

    def __call__(self, conn: Connection) -> dict[str, Any] | None:
        """Claim alone (the prebuilt one-row statement)."""
        return claim(conn, self.run_id, self.key, self.attempt, self.owner, self.lease_s)

    @staticmethod
    def run_many(conn: Connection, items: Sequence[Claim]) -> list[dict[str, Any] | None]:
        """Claim every item in one statement (PostgreSQL); one result per item.

        The same attempt asked for twice in one batch (a job delivered twice) is given to
        the first asker only: one UPDATE changes a row once, and so one claim wins.
        """
        if conn.dialect.name != "postgresql" or len(items) == 1:
            return [item(conn) for item in items]  # planning the batch would cost more
        now = now_us()
        rows = conn.execute(
            _CLAIM_MANY,
            {
                "now": now,
                "runs": [c.run_id for c in items],
                "keys": [c.key for c in items],
                "attempts": [c.attempt for c in items],
                "owners": [c.owner for c in items],
                "expires": [lease_expiry(now, c.lease_s) for c in items],
            },
        ).all()
        won = {(r.run_id, r.key, r.attempt): r for r in rows}
        results: list[dict[str, Any] | None] = []
        for item in items:
            row = won.pop((item.run_id, item.key, item.attempt), None)
            results.append(None if row is None else claimed_row(row))
        return results
