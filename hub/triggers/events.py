"""The one way an event starts runs: webhooks, poll and subscribe triggers, and schedules.

:func:`start_event_runs` creates one run per event in ONE transaction, together with what
must be written with them or not at all: the event's dedup keys (a webhook's
``Idempotency-Key`` and signature replay marker, a broker's message id; see
:mod:`hub.db.webhook_keys`) and the trigger's own state (a poll's cursor, a schedule's
tick; see :mod:`hub.db.trigger_state`). A dedup key that is stored already starts nothing:
the caller gets the stored rows, and with them the run that the first delivery started.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from hub.db import webhook_keys
from hub.db.database import WriteFn
from hub.engine import Engine, new_run_id


@dataclasses.dataclass
class StartedRuns:
    """The runs an event started; or, when one of its dedup keys was stored already, none
    and the stored rows (``found``), by key."""

    run_ids: list[str]
    found: dict[str, webhook_keys.KeyRow]


async def start_event_runs(
    engine: Engine,
    workspace_id: str,
    flow_id: str,
    events: Sequence[Any],
    *,
    version: int | None,
    trigger_type: str,
    keys: Sequence[tuple[str, str]] = (),
    also: WriteFn | None = None,
) -> StartedRuns:
    """Start one run of ``flow_id`` (``version``, or its published one) per event.

    ``keys`` (only with one event) are (dedup key, request hash) pairs stored with the run,
    in its transaction: if any is stored already (looked up first, or inserted first by a
    concurrent delivery), no run starts. ``also(conn)`` runs in the same transaction (a
    trigger's state; raising there starts nothing). Raises
    :class:`~hub.db.runstate.types.RunNotFound` when the flow has no such version.
    """
    if not keys:
        ids = await engine.start_runs(
            workspace_id,
            flow_id,
            list(events),
            version=version,
            trigger_type=trigger_type,
            also=also,
        )
        return StartedRuns(ids, {})
    if len(events) != 1:
        raise ValueError("dedup keys go with exactly one event")
    names = [key for key, _hash in keys]

    def lookup(conn: Any) -> dict[str, webhook_keys.KeyRow]:
        return webhook_keys.find(conn, workspace_id, flow_id, names)

    found = await engine.db.read(lookup)
    if found:
        return StartedRuns([], found)
    run_id = new_run_id()

    def record(conn: Any) -> None:  # the keys are written with the run, or not at all
        webhook_keys.record(conn, workspace_id, flow_id, keys, run_id)
        if also is not None:
            also(conn)

    try:
        await engine.start_runs(
            workspace_id,
            flow_id,
            list(events),
            version=version,
            trigger_type=trigger_type,
            also=record,
            run_ids=[run_id],
        )
    except webhook_keys.KeyTaken:
        # A concurrent delivery with the same key committed first.
        found = await engine.db.read(lookup)
        if not found:
            raise
        return StartedRuns([], found)
    return StartedRuns([run_id], {})
