"""The ``new_rows`` poll trigger on a real hub, against each database."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from hub_sql.trigger import poll_new_rows

from hub import ActionError
from hub.testing import Hub, poll_once


def orders(db: Any, name: str) -> sa.Table:
    table = sa.Table(
        name,
        db.metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("item", sa.String(50), nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=True),
    )
    db.create(table)
    return table


async def publish(hub: Hub, db: Any, config: dict[str, Any]) -> str:
    await hub.set_connection("shop", "sql", db.connection)
    document = {
        "id": "new-orders",
        "trigger": {"type": "sql.new_rows", "connection": "shop", "config": config},
        "steps": [{"id": "seen", "action": "data.set", "input": {"value": "{{ trigger.item }}"}}],
    }
    saved = await hub.save_flow(document, publish=True)
    return saved.flow_id


async def triggers_of(hub: Hub, run_ids: list[str]) -> list[Any]:
    found = []
    for run_id in run_ids:
        record = await hub.wait_for_run(run_id, 10)
        assert record["status"] == "succeeded", record["error"]
        found.append((await hub.get_run(run_id, with_steps=False))["trigger"])
    return found


async def test_one_run_per_new_row_and_nothing_twice(
    hub: Hub, db: Any, unique: Callable[[str], str]
) -> None:
    name = unique("orders")
    table = orders(db, name)
    db.execute(table.insert(), [{"item": "old-1"}, {"item": "old-2"}])
    flow_id = await publish(hub, db, {"table": name, "cursor_column": "id", "batch_size": 2})

    assert await poll_once(hub, flow_id) == []  # the first poll starts at the end: no back-fill
    db.execute(table.insert(), [{"item": "a"}, {"item": "b"}, {"item": "c"}])
    first = await poll_once(hub, flow_id)
    assert len(first) == 2  # batch_size
    second = await poll_once(hub, flow_id)
    assert len(second) == 1
    assert await poll_once(hub, flow_id) == []
    events = await triggers_of(hub, first + second)
    assert [(e["id"], e["item"]) for e in events] == [(3, "a"), (4, "b"), (5, "c")]
    outputs = [(await hub.get_run(r))["output"] for r in first + second]
    assert outputs == ["a", "b", "c"]

    db.execute(table.insert(), {"item": "d"})
    later = await triggers_of(hub, await poll_once(hub, flow_id))
    assert [e["item"] for e in later] == ["d"]
    runs = await hub.list_runs(flow_id=flow_id)
    assert sorted(r["trigger"]["item"] for r in runs) == ["a", "b", "c", "d"]


async def test_from_start_takes_the_rows_already_there(
    hub: Hub, db: Any, unique: Callable[[str], str]
) -> None:
    name = unique("orders")
    table = orders(db, name)
    db.execute(table.insert(), [{"item": "x"}, {"item": "y"}])
    flow_id = await publish(
        hub, db, {"table": name, "cursor_column": "id", "from_start": True, "columns": ["item"]}
    )
    events = await triggers_of(hub, await poll_once(hub, flow_id))
    assert events == [{"item": "x", "id": 1}, {"item": "y", "id": 2}]
    assert await poll_once(hub, flow_id) == []


async def test_an_empty_table_at_start_still_yields_its_first_rows(
    hub: Hub, db: Any, unique: Callable[[str], str]
) -> None:
    name = unique("orders")
    table = orders(db, name)
    flow_id = await publish(hub, db, {"table": name, "cursor_column": "id"})
    assert await poll_once(hub, flow_id) == []
    db.execute(table.insert(), [{"item": "first"}])
    events = await triggers_of(hub, await poll_once(hub, flow_id))
    assert [e["item"] for e in events] == ["first"]


class _Ctx:
    def __init__(self, connection: dict[str, Any]) -> None:
        self.connection = connection


async def test_a_timestamp_cursor_never_splits_rows_sharing_a_value(
    db: Any, unique: Callable[[str], str]
) -> None:
    name = unique("orders")
    table = orders(db, name)
    t1, t2 = dt.datetime(2024, 1, 1, 10, 0, 0), dt.datetime(2024, 1, 1, 10, 0, 5)
    db.execute(
        table.insert(),
        [
            {"item": "a", "updated_at": t1},
            {"item": "b", "updated_at": t2},
            {"item": "c", "updated_at": t2},
            {"item": "d", "updated_at": t2},
            {"item": "e", "updated_at": None},
        ],
    )
    config = {"table": name, "cursor_column": "updated_at", "batch_size": 2, "from_start": True}
    ctx = _Ctx(db.connection)
    rows, cursor = await poll_new_rows(ctx, config, None)
    assert [r["item"] for r in rows] == ["a"]  # b would split the t2 group: left for later
    assert cursor == {"value": "2024-01-01T10:00:00"}
    rows, cursor = await poll_new_rows(ctx, config, cursor)
    assert sorted(r["item"] for r in rows) == ["b", "c", "d"]  # the whole group, past the batch
    assert cursor == {"value": "2024-01-01T10:00:05"}
    assert await poll_new_rows(ctx, config, cursor) == ([], cursor)
    db.execute(table.update().where(table.c.item == "a").values(updated_at=t2 + dt.timedelta(1)))
    rows, _ = await poll_new_rows(ctx, config, cursor)
    assert [r["item"] for r in rows] == ["a"]  # a changed row is seen again


async def test_an_unknown_cursor_column_is_refused_by_name(
    db: Any, unique: Callable[[str], str]
) -> None:
    name = unique("orders")
    orders(db, name)
    with pytest.raises(ActionError, match=r"trigger\.config\.cursor_column: .*no column 'idx'"):
        await poll_new_rows(_Ctx(db.connection), {"table": name, "cursor_column": "idx"}, None)
    with pytest.raises(ActionError, match=r"trigger\.config\.table: no table named 'missing'"):
        await poll_new_rows(_Ctx(db.connection), {"table": "missing", "cursor_column": "id"}, None)
