"""The ``odoo.changes`` poll trigger against the local Odoo stand-in (both protocols).

No Odoo server is reachable from here: ``odoo_standin`` keeps ``write_date`` with microseconds
and serialises it to the second, as Odoo does, so these tests prove that records sharing a
second are neither emitted twice nor skipped, whatever the batch size.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hub_odoo.poll import poll_changes

from hub.testing import Settings, make_context

T0 = dt.datetime(2025, 3, 1, 10, 0, 0)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


async def drain(
    connection: dict[str, Any], settings: Settings, config: dict[str, Any], cursor: Any
) -> tuple[list[list[int]], Any]:
    """Poll until a poll finds nothing; return the ids of each poll's events and the cursor."""
    ctx = make_context(settings=settings, connection=connection)
    polls: list[list[int]] = []
    try:
        for _ in range(50):
            events, cursor = await poll_changes(ctx, config, cursor)
            if not events:
                return polls, cursor
            polls.append([e["id"] for e in events])
    finally:
        await ctx.http.aclose()
    raise AssertionError(f"still finding events after 50 polls: {polls[-3:]}")


async def test_start_now_skips_existing_records_then_emits_changes_once(
    odoo: Any, connection: dict[str, Any], loopback: Settings
) -> None:
    odoo.add("Old", at=at(0))
    odoo.add("Older", at=at(0.5))
    config = {"model": "res.partner"}
    polls, cursor = await drain(connection, loopback, config, None)
    assert polls == []
    assert cursor == {"write_date": "2025-03-01 10:00:00", "id": 2}
    odoo.clock = lambda: at(5.25)
    odoo.partners[1].update(name="Old, renamed", write_date=odoo.clock())
    odoo.add("New", at=at(6))
    polls, cursor = await drain(connection, loopback, config, cursor)
    assert polls == [[1, 3]]
    assert cursor == {"write_date": "2025-03-01 10:00:06", "id": 3}


async def test_records_sharing_a_second_are_neither_repeated_nor_skipped(
    odoo: Any, connection: dict[str, Any], loopback: Settings
) -> None:
    # Database order (by microseconds) differs from id order inside the second.
    odoo.add("a", at=at(0.9))  # id 1
    odoo.add("b", at=at(0.1))  # id 2
    odoo.add("c", at=at(0.5))  # id 3
    odoo.add("d", at=at(1.2))  # id 4
    odoo.add("e", at=at(0.7))  # id 5
    odoo.add("f", at=at(2.0))  # id 6
    for batch in (1, 2, 3, 4, 10):
        config = {"model": "res.partner", "start": "beginning", "batch_size": batch}
        polls, cursor = await drain(connection, loopback, config, None)
        emitted = [i for poll in polls for i in poll]
        assert sorted(emitted) == [1, 2, 3, 4, 5, 6], (batch, polls)
        assert all(len(p) <= batch for p in polls)
        assert emitted.index(6) > emitted.index(4) > max(emitted.index(i) for i in (1, 2, 3, 5))
        assert cursor == {"write_date": "2025-03-01 10:00:02", "id": 6}


async def test_a_second_larger_than_the_batch_is_read_by_id(
    odoo: Any, json2: dict[str, Any], loopback: Settings
) -> None:
    for i in range(7):
        odoo.add(f"p{i}", at=at(0.9 - i * 0.1))  # later ids written earlier in the second
    config = {"model": "res.partner", "start": "beginning", "batch_size": 3}
    polls, _ = await drain(json2, loopback, config, None)
    assert polls == [[1, 2, 3], [4, 5, 6], [7]]
    sent = [r.json for r in odoo.requests]
    assert sent[1]["order"] == "id asc"  # the only bucket of a full batch, re-read by id
    assert sent[1]["domain"][:2] == [
        ["write_date", ">=", "2025-03-01 10:00:00"],
        ["write_date", "<", "2025-03-01 10:00:01"],
    ]
    assert sent[2]["domain"][:3] == [
        ["write_date", ">=", "2025-03-01 10:00:00"],
        ["write_date", "<", "2025-03-01 10:00:01"],
        ["id", ">", 3],
    ]
    for body in sent:  # and never the last seconds (settle_seconds)
        assert body["domain"][-1][:2] == ["write_date", "<"]


async def test_the_configured_domain_and_fields_apply(
    odoo: Any, connection: dict[str, Any], loopback: Settings
) -> None:
    odoo.add("Person", at=at(1), email="p@example.com")
    odoo.add("Company", at=at(2), is_company=True, email="c@example.com")
    config = {
        "model": "res.partner",
        "start": "beginning",
        "domain": [["is_company", "=", True]],
        "fields": ["name"],
    }
    ctx = make_context(settings=loopback, connection=connection)
    try:
        events, cursor = await poll_changes(ctx, config, None)
    finally:
        await ctx.http.aclose()
    assert events == [{"id": 2, "name": "Company", "write_date": "2025-03-01 10:00:02"}]
    assert cursor == {"write_date": "2025-03-01 10:00:02", "id": 2}


async def test_an_empty_model_keeps_a_cursor_that_finds_the_first_record(
    odoo: Any, json2: dict[str, Any], loopback: Settings
) -> None:
    config = {"model": "res.partner"}
    polls, cursor = await drain(json2, loopback, config, None)
    assert polls == [] and cursor == {"write_date": None, "id": 0}
    odoo.add("First", at=at(3))
    polls, _ = await drain(json2, loopback, config, cursor)
    assert polls == [[1]]


async def test_records_of_the_last_seconds_wait_for_a_later_poll(
    odoo: Any, connection: dict[str, Any], loopback: Settings
) -> None:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    odoo.add("settled", at=now - dt.timedelta(seconds=30))
    odoo.add("too fresh", at=now)
    config = {"model": "res.partner", "start": "beginning", "settle_seconds": 10}
    polls, cursor = await drain(connection, loopback, config, None)
    assert polls == [[1]]
    # Had the fresh record's second been read, a second write within it would go unseen.
    odoo.partners[2]["write_date"] = now - dt.timedelta(seconds=20)  # as if time had passed
    polls, _ = await drain(connection, loopback, config, cursor)
    assert polls == [[2]]
