"""The actions against real databases: SQLite files, the local PostgreSQL and MariaDB."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from hub_sql import actions
from hub_sql.plugin import sql_connector

from hub import ActionError
from hub.testing import check_examples, run_action


def people(db: Any, name: str) -> sa.Table:
    """A table with the column types whose JSON form the actions define."""
    table = sa.Table(
        name,
        db.metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("email", sa.String(100), unique=True),
        sa.Column("balance", sa.Numeric(10, 2)),
        sa.Column("born", sa.Date),
        sa.Column("seen", sa.DateTime),
        sa.Column("photo", sa.LargeBinary),
    )
    db.create(table)
    return table


async def call(action: Any, db: Any, input: dict[str, Any]) -> Any:
    return await run_action(action, input, connection=db.connection)


async def test_query_binds_params_and_returns_json_values(
    db: Any, unique: Callable[..., str]
) -> None:
    name = unique("people")
    table = people(db, name)
    db.execute(
        table.insert(),
        {
            "name": "Ada",
            "email": "ada@example.com",
            "balance": "12.50",
            "born": dt.date(1815, 12, 10),
            "seen": dt.datetime(2024, 5, 1, 9, 30, 15),
            "photo": b"\x00\xffpng",
        },
    )
    out = await call(
        actions.query,
        db,
        {"sql": f"SELECT * FROM {name} WHERE name = :who", "params": {"who": "Ada"}},
    )
    assert out["row_count"] == 1 and out["truncated"] is False
    assert out["columns"] == ["id", "name", "email", "balance", "born", "seen", "photo"]
    row = out["rows"][0]
    assert row["name"] == "Ada"
    # Decimal -> string, no digit lost (SQLite has no decimal type: it stores a REAL).
    assert row["balance"] == (12.5 if db.family == "sqlite" else "12.50")
    assert row["born"] == "1815-12-10"
    if db.family == "sqlite":  # SQLite keeps times as text; query returns it as stored
        assert row["seen"] == "2024-05-01 09:30:15.000000"
    else:
        assert row["seen"] == "2024-05-01T09:30:15"
    assert base64.b64decode(row["photo"]) == b"\x00\xffpng"


async def test_query_binds_a_list_as_an_in_list_and_caps_rows(
    db: Any, unique: Callable[..., str]
) -> None:
    name = unique("people")
    table = people(db, name)
    db.execute(table.insert(), [{"name": f"p{i}", "email": f"p{i}@x.org"} for i in range(5)])
    out = await call(
        actions.query,
        db,
        {
            "sql": f"SELECT name FROM {name} WHERE name IN :names ORDER BY name",
            "params": {"names": ["p1", "p3", "p4"]},
            "max_rows": 2,
        },
    )
    assert [r["name"] for r in out["rows"]] == ["p1", "p3"]
    assert out["truncated"] is True and out["row_count"] == 2


async def test_query_reports_rows_changed_by_a_statement(
    db: Any, unique: Callable[..., str]
) -> None:
    name = unique("people")
    table = people(db, name)
    db.execute(table.insert(), [{"name": "a"}, {"name": "b"}, {"name": "c"}])
    out = await call(
        actions.query,
        db,
        {"sql": f"UPDATE {name} SET email = :e WHERE name <> :n", "params": {"e": None, "n": "a"}},
    )
    assert out == {"rows": [], "row_count": 2, "columns": [], "truncated": False}


async def test_query_refuses_a_parameter_without_a_value(db: Any) -> None:
    with pytest.raises(ActionError, match=r"params: the SQL uses :missing"):
        await call(actions.query, db, {"sql": "SELECT :missing AS x", "params": {}})


async def test_sql_injection_through_a_param_stays_data(
    db: Any, unique: Callable[..., str]
) -> None:
    name = unique("people")
    people(db, name)
    attack = f"x'); DROP TABLE {name}; --"
    await call(
        actions.query,
        db,
        {"sql": f"INSERT INTO {name} (name) VALUES (:name)", "params": {"name": attack}},
    )
    found = await call(
        actions.query,
        db,
        {"sql": f"SELECT name FROM {name} WHERE name = :name", "params": {"name": "' OR '1'='1"}},
    )
    assert found["rows"] == []  # the OR did not become SQL
    assert [r["name"] for r in db.rows(name)] == [attack]  # stored verbatim; table still there
    await call(actions.insert, db, {"table": name, "row": {"name": attack, "email": "e'--"}})
    out = await call(actions.delete, db, {"table": name, "where": {"email": "' OR 1=1 --"}})
    assert out == {"row_count": 0}
    assert len(db.rows(name)) == 2


async def test_insert_returns_count_and_primary_keys(db: Any, unique: Callable[..., str]) -> None:
    name = unique("people")
    people(db, name)
    one = await call(
        actions.insert,
        db,
        {"table": name, "row": {"name": "Ada", "seen": "2024-05-01T09:30:00", "balance": 3.5}},
    )
    assert one["inserted"] == 1
    assert one["primary_keys"] == [{"id": 1}]
    many = await call(
        actions.insert,
        db,
        {
            "table": name,
            "rows": [
                {"name": "Bob", "email": "bob@x.org"},
                {"name": "Cy"},
                {"name": "Di", "email": "di@x.org"},
            ],
        },
    )
    assert many["inserted"] == 3
    assert many["primary_keys"] == [{"id": 2}, {"id": 3}, {"id": 4}]  # in the rows' order
    stored = db.rows(name)
    assert [r["name"] for r in stored] == ["Ada", "Bob", "Cy", "Di"]
    assert stored[0]["seen"] == dt.datetime(2024, 5, 1, 9, 30)
    assert str(stored[0]["balance"]) in ("3.50", "3.5")


async def test_insert_breaking_a_constraint_is_a_clear_permanent_error(
    db: Any, unique: Callable[..., str]
) -> None:
    name = unique("people")
    people(db, name)
    row = {"name": "Ada", "email": "ada@x.org"}
    await call(actions.insert, db, {"table": name, "row": row})
    with pytest.raises(ActionError, match="breaks a constraint") as caught:
        await call(actions.insert, db, {"table": name, "rows": [{"name": "new"}, row]})
    assert caught.value.retryable is False
    assert [r["name"] for r in db.rows(name)] == ["Ada"]  # one transaction: nothing inserted


async def test_upsert_inserts_then_updates(db: Any, unique: Callable[..., str]) -> None:
    name = unique("people")
    people(db, name)
    first = {
        "table": name,
        "rows": [{"email": "ada@x.org", "name": "Ada"}, {"email": "bob@x.org", "name": "Bob"}],
        "conflict_keys": ["email"],
    }
    assert await call(actions.upsert, db, first) == {"upserted": 2}
    again = {
        "table": name,
        "rows": [{"email": "ada@x.org", "name": "Ada L."}, {"email": "cy@x.org", "name": "Cy"}],
        "conflict_keys": ["email"],
    }
    assert await call(actions.upsert, db, again) == {"upserted": 2}
    assert await call(actions.upsert, db, again) == {"upserted": 2}  # safe to repeat
    stored = {r["email"]: r["name"] for r in db.rows(name)}
    assert stored == {"ada@x.org": "Ada L.", "bob@x.org": "Bob", "cy@x.org": "Cy"}


async def test_upsert_with_no_column_to_update_leaves_the_row(
    db: Any, unique: Callable[..., str]
) -> None:
    name = unique("people")
    people(db, name)
    await call(actions.insert, db, {"table": name, "row": {"name": "Ada", "email": "a@x.org"}})
    await call(
        actions.upsert,
        db,
        {
            "table": name,
            "rows": [{"email": "a@x.org", "name": "changed"}],
            "conflict_keys": ["email"],
            "update_columns": [],
        },
    )
    assert [r["name"] for r in db.rows(name)] == ["Ada"]


async def test_upsert_refuses_rows_with_different_columns(
    db: Any, unique: Callable[..., str]
) -> None:
    name = unique("people")
    people(db, name)
    rows = [{"email": "a@x.org", "name": "A"}, {"email": "b@x.org"}]
    with pytest.raises(ActionError, match=r"rows\[1\] has other columns than rows\[0\]"):
        await call(actions.upsert, db, {"table": name, "rows": rows, "conflict_keys": ["email"]})


async def test_update_sets_values_on_matching_rows(db: Any, unique: Callable[..., str]) -> None:
    name = unique("people")
    table = people(db, name)
    db.execute(
        table.insert(),
        [{"name": "a", "email": None}, {"name": "b", "email": "b@x"}, {"name": "c", "email": None}],
    )
    out = await call(
        actions.update,
        db,
        {"table": name, "values": {"born": "2000-01-02"}, "where": {"email": None}},
    )
    assert out == {"row_count": 2}
    out = await call(
        actions.update, db, {"table": name, "values": {"name": "z"}, "where": {"id": [1, 2]}}
    )
    assert out == {"row_count": 2}
    stored = db.rows(name)
    assert [r["name"] for r in stored] == ["z", "z", "c"]
    assert [r["born"] for r in stored] == [dt.date(2000, 1, 2), None, dt.date(2000, 1, 2)]


async def test_update_and_delete_refuse_an_empty_where_unless_all(
    db: Any, unique: Callable[..., str]
) -> None:
    name = unique("people")
    table = people(db, name)
    db.execute(table.insert(), [{"name": "a"}, {"name": "b"}])
    with pytest.raises(ActionError, match="where is empty"):
        await call(actions.update, db, {"table": name, "values": {"name": "x"}})
    with pytest.raises(ActionError, match="where is empty"):
        await call(actions.delete, db, {"table": name, "where": {}})
    assert len(db.rows(name)) == 2
    out = await call(actions.update, db, {"table": name, "values": {"name": "x"}, "all": True})
    assert out == {"row_count": 2}
    assert await call(actions.delete, db, {"table": name, "all": True}) == {"row_count": 2}
    assert db.rows(name) == []


async def test_delete_removes_only_matching_rows(db: Any, unique: Callable[..., str]) -> None:
    name = unique("people")
    table = people(db, name)
    db.execute(table.insert(), [{"name": "a"}, {"name": "b"}, {"name": "a"}])
    assert await call(actions.delete, db, {"table": name, "where": {"name": "a"}}) == {
        "row_count": 2
    }
    assert [r["name"] for r in db.rows(name)] == ["b"]


@pytest.mark.parametrize(
    ("action", "make_input", "message"),
    [
        (
            actions.insert,
            lambda t: {"table": "nope", "row": {"name": "x"}},
            "no table named 'nope'",
        ),
        (
            actions.insert,
            lambda t: {"table": t, "row": {"nam": "x"}},
            r"row\.nam: .*no column 'nam'",
        ),
        (
            actions.update,
            lambda t: {"table": t, "values": {"name": "x"}, "where": {"idd": 1}},
            "where.idd: .*no column 'idd'",
        ),
        (
            actions.update,
            lambda t: {"table": t, "values": {"bogus": 1}, "where": {"id": 1}},
            "values.bogus: .*no column 'bogus'",
        ),
        (actions.delete, lambda t: {"table": t, "where": {"x": 1}}, "where.x: .*no column 'x'"),
        (
            actions.upsert,
            lambda t: {"table": t, "rows": [{"name": "a"}], "conflict_keys": ["mail"]},
            "conflict_keys.mail: .*no column 'mail'",
        ),
        (
            actions.delete,
            lambda t: {"table": f"{t}; DROP TABLE {t}", "where": {"id": 1}},
            "not a valid table name",
        ),
    ],
    ids=["table", "insert-column", "where-column", "values-column", "delete", "upsert", "name"],
)
async def test_unknown_tables_and_columns_are_refused_by_name(
    db: Any, unique: Callable[..., str], action: Any, make_input: Any, message: str
) -> None:
    name = unique("people")
    people(db, name)
    with pytest.raises(ActionError, match=message) as caught:
        await call(action, db, make_input(name))
    assert caught.value.retryable is False
    assert db.rows(name) == []


async def test_a_bad_value_for_a_typed_column_names_the_field(
    db: Any, unique: Callable[..., str]
) -> None:
    name = unique("people")
    people(db, name)
    with pytest.raises(ActionError, match=r"rows\[1\]\.born: 'soon' is not a valid date"):
        await call(
            actions.insert,
            db,
            {"table": name, "rows": [{"name": "a"}, {"name": "b", "born": "soon"}]},
        )


def test_every_declared_example_validates() -> None:
    for act in sql_connector().actions:
        check_examples(act)


async def test_a_mapping_for_a_text_column_is_stored_as_json_text(
    db: Any, unique: Callable[..., str]
) -> None:
    name = unique("docs")
    table = sa.Table(
        name,
        db.metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("body", sa.Text),
    )
    db.create(table)
    await call(actions.insert, db, {"table": name, "row": {"id": 1, "body": {"a": [1, "é"]}}})
    assert json.loads(db.rows(name)[0]["body"]) == {"a": [1, "é"]}


async def test_postgresql_json_and_array_columns_round_trip(
    pg: Any, unique: Callable[..., str]
) -> None:
    from sqlalchemy.dialects import postgresql

    name = unique("docs")
    table = sa.Table(
        name,
        pg.metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("doc", postgresql.JSONB),
        sa.Column("tags", postgresql.ARRAY(sa.Text)),
    )
    pg.create(table)
    row = {"id": 1, "doc": {"k": {"n": 1.5}}, "tags": ["a", "b"]}
    await call(actions.insert, pg, {"table": name, "row": row})
    out = await call(actions.query, pg, {"sql": f"SELECT doc, tags FROM {name}"})
    assert out["rows"] == [{"doc": {"k": {"n": 1.5}}, "tags": ["a", "b"]}]
