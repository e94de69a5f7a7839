"""The example flow examples/connectors/sql-new-orders.yaml validates and works end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hub_sql.plugin
import sqlalchemy as sa

from hub.testing import Hub, check_flow_file, poll_once, read_flow_file

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "connectors" / "sql-new-orders.yaml"


def test_the_example_flow_validates() -> None:
    flow = check_flow_file(EXAMPLE, hub_sql.plugin)
    assert flow.trigger.type == "sql.new_rows"


async def test_the_example_tallies_new_orders(hub: Hub, db: Any) -> None:
    md = db.metadata
    customers = sa.Table(
        "customers",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("email", sa.String(100)),
        sa.Column("name", sa.String(100)),
    )
    orders = sa.Table(
        "orders",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("customer_id", sa.Integer),
        sa.Column("total", sa.Numeric(10, 2)),
        sa.Column("status", sa.String(20)),
    )
    stats = sa.Table(
        "customer_stats",
        md,
        sa.Column("customer_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("email", sa.String(100)),
        sa.Column("last_order_id", sa.Integer),
        sa.Column("last_order_total", sa.Numeric(10, 2)),
    )
    db.create(customers, orders, stats)
    db.execute(customers.insert(), [{"id": 7, "email": "ada@example.com", "name": "Ada"}])
    await hub.set_connection("shop-db", "sql", db.connection)
    await hub.save_flow(read_flow_file(EXAMPLE), publish=True)

    assert await poll_once(hub, "sql-new-orders") == []  # starts at the current end
    db.execute(
        orders.insert(),
        [
            {"customer_id": 7, "total": "12.50", "status": "new"},
            {"customer_id": 7, "total": "30.00", "status": "new"},
        ],
    )
    run_ids = await poll_once(hub, "sql-new-orders")
    assert len(run_ids) == 2
    for run_id in run_ids:
        record = await hub.wait_for_run(run_id, 10)
        assert record["status"] == "succeeded", record["error"]
    assert [r["status"] for r in db.rows("orders")] == ["picked_up", "picked_up"]
    (tally,) = db.rows("customer_stats", order_by="customer_id")
    assert tally["email"] == "ada@example.com"
    assert tally["last_order_id"] in (1, 2)  # the two runs may finish in either order
    assert float(tally["last_order_total"]) in (12.5, 30.0)


def test_a_templated_sql_text_is_refused_at_validation(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Rendering values into SQL would defeat bound parameters: the validator refuses it."""
    import pytest as _pytest
    from hub_sql import plugin as sql_plugin

    from hub.testing import FlowError, check_flow_file

    path = tmp_path / "bad.yaml"
    path.write_text(
        "id: bad\n"
        "steps:\n"
        "  - id: q\n"
        "    action: sql.query\n"
        "    connection: db\n"
        "    input: {sql: \"SELECT * FROM t WHERE name = '{{ trigger.name }}'\"}\n"
    )
    with _pytest.raises(FlowError, match=r"steps\[0\]\.input\.sql: must be literal text"):
        check_flow_file(path, sql_plugin)
