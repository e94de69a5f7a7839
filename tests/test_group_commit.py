"""PostgreSQL group commit: batches, lanes and autocommit (hub/db/database.py)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from sqlalchemy import Connection, text

from hub.db.database import Database
from tests.services import PostgresServer


async def test_one_runs_writes_are_never_in_two_transactions_at_once(
    postgres: PostgresServer,
) -> None:
    """Writes of one lane (the engine passes a run's id) wait for the transaction that
    holds their lane instead of running beside it (where they would wait for its row
    locks); writes of other lanes do run beside it. Every write commits once."""
    url = postgres.create_database(f"gc_{uuid.uuid4().hex[:10]}", template="hub_template")
    db = Database(url)
    active: dict[int, set[str]] = {}
    overlaps: list[set[str]] = []
    concurrent = 0
    original = db._pg_commit

    async def watched(batch: list[Any]) -> None:
        nonlocal concurrent
        lanes = {fn.lane for fn, _future in batch}
        for other in active.values():
            if other & lanes:
                overlaps.append(other & lanes)
        if active:
            concurrent += 1
        active[id(batch)] = lanes
        try:
            await original(batch)
        finally:
            del active[id(batch)]

    db._pg_commit = watched  # type: ignore[method-assign]

    class Write:
        def __init__(self, lane: str, n: int) -> None:
            self.lane = lane
            self.n = n

        def __call__(self, conn: Connection) -> int:
            conn.execute(text("SELECT pg_sleep(0.002)"))
            return self.n

    try:
        writes = [Write(f"run-{i // 100}", i) for i in range(300)]  # three lanes
        results = await asyncio.gather(*(db.write(w) for w in writes))
    finally:
        await db.close()
    assert results == list(range(300))
    assert overlaps == []
    assert concurrent > 0  # other lanes did commit side by side


async def test_a_batch_of_batchable_writes_runs_without_a_transaction(
    postgres: PostgresServer,
) -> None:
    """Claims and simple completions are one statement per kind: a batch of only them runs
    in autocommit (no BEGIN/COMMIT); a failing statement of several writes is run again
    one write at a time, so that only the failing write fails."""
    url = postgres.create_database(f"gc_{uuid.uuid4().hex[:10]}", template="hub_template")
    db = Database(url)
    seen: list[tuple[str, bool]] = []

    class Batchable:
        batchable = True
        single_statement = True

        def __init__(self, n: int) -> None:
            self.n = n
            self.lane = None

        def __call__(self, conn: Connection) -> int:
            return self.run_many(conn, [self])[0]

        @staticmethod
        def run_many(conn: Connection, items: list[Batchable]) -> list[int]:
            xid = text("SELECT pg_current_xact_id()::text")
            in_tx = conn.execute(xid).scalar() == conn.execute(xid).scalar()
            seen.append(("many" if len(items) > 1 else "one", bool(in_tx)))
            if any(item.n == 13 for item in items):
                raise ValueError("13 fails")
            return [item.n for item in items]

    try:
        results = await asyncio.gather(
            *(db.write(Batchable(n)) for n in range(20)), return_exceptions=True
        )
    finally:
        await db.close()
    assert [r for r in results if not isinstance(r, Exception)] == [n for n in range(20) if n != 13]
    assert isinstance(results[13], ValueError)
    assert seen and not any(in_tx for _kind, in_tx in seen)  # never inside BEGIN ... COMMIT
    assert ("many", False) in seen


async def test_batchable_writes_go_one_batch_at_a_time_beside_other_writes(
    postgres: PostgresServer,
) -> None:
    """The hot pipeline: claims and simple completions commit one batch at a time (the next
    batch grows while one commits, so a load makes few, large statements), beside the
    general pipeline's transactions: a slow transaction holds up only the writes of its
    own lane, in either pipeline."""
    url = postgres.create_database(f"gc_{uuid.uuid4().hex[:10]}", template="hub_template")
    db = Database(url)
    in_flight = 0
    most = 0
    sizes: list[int] = []
    events: list[str] = []

    class Batchable:
        batchable = True
        single_statement = True

        def __init__(self, n: int, lane: str | None) -> None:
            self.n = n
            self.lane = lane

        def __call__(self, conn: Connection) -> int:
            return self.run_many(conn, [self])[0]

        @staticmethod
        def run_many(conn: Connection, items: list[Batchable]) -> list[int]:
            conn.execute(text("SELECT pg_sleep(0.005)"))
            sizes.append(len(items))
            return [item.n for item in items]

    original = db._pg_autocommit

    async def watched(batch: list[Any]) -> None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            await original(batch)
        finally:
            in_flight -= 1

    db._pg_autocommit = watched  # type: ignore[method-assign]

    def slow(conn: Connection) -> str:
        # Holds its transaction (and lane "busy") until a write of another lane has
        # committed, or 60 s: each statement gives the event loop a turn.
        events.append("slow started")
        deadline = time.monotonic() + 60
        while "run-0 0" not in events and time.monotonic() < deadline:
            conn.execute(text("SELECT pg_sleep(0.01)"))
        events.append("slow committed")
        return "slow"

    async def batchable(n: int, lane: str | None) -> int:
        result = await db.write(Batchable(n, lane))
        events.append(f"{lane} {n}")
        return result

    try:
        slow_write = asyncio.ensure_future(db.write(slow, lane="busy"))
        deadline = time.monotonic() + 60
        while "slow started" not in events:  # the slow transaction holds lane "busy"
            assert time.monotonic() < deadline, "the slow transaction never started"
            await asyncio.sleep(0.005)
        results = await asyncio.gather(
            batchable(-1, "busy"), *(batchable(n, f"run-{n}") for n in range(400))
        )
        assert await slow_write == "slow"
    finally:
        await db.close()
    assert results == [-1, *range(400)]
    assert most == 1  # one hot batch at a time
    assert sum(sizes) == 401 and len(sizes) < 40  # few, large statements
    # Other lanes committed while the slow transaction ran; its own lane waited for it.
    assert events.index("slow committed") > events.index("run-0 0")
    assert events.index("busy -1") > events.index("slow committed")
