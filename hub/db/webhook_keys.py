"""Storage of the dedup keys of events (``webhook_keys``): webhook ``Idempotency-Key``
values, senders' delivery ids, signature replay markers, and the message ids of subscribe
triggers.

Every kind of row is written IN THE SAME TRANSACTION as the run it lets through
(:func:`hub.triggers.events.start_event_runs`), and the table's primary key (workspace,
flow, key) is what makes a key or a signed delivery start at most one run, whatever the
number of processes: a second insert of the same key fails (:class:`KeyTaken`), its run is
rolled back with it.

- ``idem:<key>``: an ``Idempotency-Key`` with the SHA-256 of the request body; kept for
  :data:`IDEMPOTENCY_RETENTION` seconds (Stripe keeps keys 24 hours).
- ``sig:<timestamp>:<digest>``: a timestamped signature that was accepted; kept until the
  timestamp leaves the scheme's tolerance (then the timestamp check refuses it anyway).
  The zero-padded timestamp first lets :func:`prune` delete old markers by key range.
- ``dedup:<id>``: a sender's delivery id, found where the flow's ``trigger.config.dedup``
  (or its ``sender`` preset) says (``X-GitHub-Delivery``, Stripe's event ``id`` ...), with
  the SHA-256 of the body; kept for ``HUB_WEBHOOK_DEDUP_RETENTION_HOURS`` (a sender's retry
  period: Stripe retries for up to three days).
- ``event:<id>``: the dedup key a subscribe trigger gave with an event (a broker's message
  id), with no request hash.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from sqlalchemy import ColumnElement, Connection, and_, delete, select
from sqlalchemy.exc import IntegrityError

from hub.db.models import now_us, webhook_keys

IDEMPOTENCY_PREFIX = "idem:"
REPLAY_PREFIX = "sig:"
EVENT_PREFIX = "event:"
DEDUP_PREFIX = "dedup:"
IDEMPOTENCY_RETENTION = 24 * 3600.0
MAX_KEY_LENGTH = 200 - len(IDEMPOTENCY_PREFIX)


class KeyTaken(Exception):
    """A key to record is stored already (another request or process recorded it first)."""


@dataclasses.dataclass(frozen=True)
class KeyRow:
    """A stored key: the body's hash and the run it started."""

    key: str
    request_hash: str
    run_id: str


def find(
    conn: Connection, workspace_id: str, flow_id: str, keys: Iterable[str]
) -> dict[str, KeyRow]:
    """The stored rows among ``keys`` (full keys, with their prefix), by key."""
    wanted = list(keys)
    if not wanted:
        return {}
    rows = conn.execute(
        select(webhook_keys.c.key, webhook_keys.c.request_hash, webhook_keys.c.run_id).where(
            webhook_keys.c.workspace_id == workspace_id,
            webhook_keys.c.flow_id == flow_id,
            webhook_keys.c.key.in_(wanted),
        )
    )
    return {r.key: KeyRow(r.key, r.request_hash, r.run_id) for r in rows}


def record(
    conn: Connection,
    workspace_id: str,
    flow_id: str,
    entries: Iterable[tuple[str, str]],
    run_id: str,
) -> None:
    """Insert (key, request hash) rows for ``run_id``; a key that exists raises
    :class:`KeyTaken` (and its transaction must roll back)."""
    now = now_us()
    rows = [
        {
            "workspace_id": workspace_id,
            "flow_id": flow_id,
            "key": key,
            "request_hash": request_hash,
            "run_id": run_id,
            "created_at": now,
        }
        for key, request_hash in entries
    ]
    try:
        conn.execute(webhook_keys.insert(), rows)
    except IntegrityError as exc:
        raise KeyTaken(str(exc)) from exc


def prune(
    conn: Connection,
    workspace_id: str,
    flow_id: str,
    replay_before: int,
    keys_before_us: int,
    dedup_before_us: int | None = None,
) -> int:
    """Delete replay markers signed before ``replay_before`` (epoch seconds), idempotency
    keys stored before ``keys_before_us`` and, with ``dedup_before_us``, delivery ids stored
    before it; return how many rows went."""
    mine = and_(webhook_keys.c.workspace_id == workspace_id, webhook_keys.c.flow_id == flow_id)
    markers = conn.execute(
        delete(webhook_keys).where(
            mine,
            webhook_keys.c.key.like(REPLAY_PREFIX + "%"),
            webhook_keys.c.key < f"{REPLAY_PREFIX}{max(0, replay_before):012d}",
        )
    ).rowcount
    keys = _delete_stored_before(conn, mine, IDEMPOTENCY_PREFIX, keys_before_us)
    deliveries = 0
    if dedup_before_us is not None:
        deliveries = _delete_stored_before(conn, mine, DEDUP_PREFIX, dedup_before_us)
    return int(markers or 0) + keys + deliveries


def _delete_stored_before(
    conn: Connection, mine: ColumnElement[bool], prefix: str, before_us: int
) -> int:
    """Delete the keys of ``mine`` (one flow's) that start with ``prefix`` and were stored
    before ``before_us``; return how many went."""
    removed = conn.execute(
        delete(webhook_keys).where(
            mine,
            webhook_keys.c.key.like(prefix + "%"),
            webhook_keys.c.created_at < before_us,
        )
    ).rowcount
    return int(removed or 0)
