"""Connections: resolving settings, the connection test, error mapping, secrets kept out."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import hub_sql.plugin
import pytest
import sqlalchemy as sa
from hub_sql import actions
from hub_sql.engines import ENGINES, EngineCache, resolve
from hub_sql.engines import test_connection as check_connection

from hub import ActionError
from hub.testing import Hub, Settings, run_action, started_hub

WRONG_PASSWORD = "Wr0ng-Secret-Pw-4711"


async def test_connection_test_succeeds_on_each_database(db: Any) -> None:
    result = await check_connection(db.connection)
    assert result["ok"] is True
    assert result["dialect"] == db.family


async def test_a_wrong_password_is_a_clear_permanent_error_without_the_password(
    maria: Any,
) -> None:
    url = sa.make_url(maria.connection["url"]).set(password=WRONG_PASSWORD)
    for connection in (
        {"url": url.render_as_string(hide_password=False)},
        {
            "dialect": "mysql",
            "host": "127.0.0.1",
            "port": "3306",  # as `hub connections set` stores it: text
            "username": "root",
            "password": WRONG_PASSWORD,
            "database": url.database,
        },
    ):
        with pytest.raises(ActionError) as caught:
            await check_connection(connection)
        message = str(caught.value)
        assert "the credentials were refused" in message
        assert "Access denied" in message
        assert WRONG_PASSWORD not in message
        assert caught.value.retryable is False


async def test_an_unknown_postgresql_role_is_refused_clearly(pg: Any) -> None:
    """The local PostgreSQL trusts loopback (no password is checked): an unknown role is."""
    url = sa.make_url(pg.connection["url"]).set(username="no_such_role", password="pw-1234")
    with pytest.raises(ActionError, match="the credentials were refused") as caught:
        await check_connection({"url": url.render_as_string(hide_password=False)})
    assert caught.value.retryable is False
    assert "pw-1234" not in str(caught.value)


async def test_a_missing_database_is_a_permanent_error(pg: Any, maria: Any) -> None:
    for db in (pg, maria):
        url = sa.make_url(db.connection["url"]).set(database="hubsql_does_not_exist")
        with pytest.raises(ActionError, match="the database does not exist") as caught:
            await check_connection({"url": url.render_as_string(hide_password=False)})
        assert caught.value.retryable is False


async def test_a_refused_connection_is_retryable() -> None:
    connection = {"dialect": "postgresql", "host": "127.0.0.1", "port": 1, "database": "x"}
    with pytest.raises(ActionError) as caught:
        await check_connection(connection)
    assert caught.value.retryable is True


@pytest.mark.parametrize(
    ("connection", "message"),
    [
        ({"url": "oracle://scott:tiger@127.0.0.1/orcl"}, "dialect 'oracle' is not supported"),
        ({"url": "mssql+pyodbc://u:p@127.0.0.1/db"}, "dialect 'mssql' is not supported"),
        ({"dialect": "oracle", "host": "h"}, "connection.dialect: 'oracle' is not supported"),
        ({"url": "not a url at all"}, "connection.url: not a valid SQLAlchemy URL"),
        ({"dialect": "sqlite"}, "connection.database: sqlite needs the path"),
        ({"url": "sqlite://"}, "sqlite needs the path of a database file"),
        ({"dialect": "mysql", "port": "http"}, "connection.port: expected a number"),
        ({"dialect": "mysql", "port": 70000}, "connection.port: 70000 is not a TCP port"),
        ({"url": "sqlite:///x.db", "dialect": "sqlite"}, "either url or dialect"),
        ({"host": "db"}, "give url, or dialect"),
    ],
)
def test_bad_connection_settings_are_refused_naming_the_field(
    connection: dict[str, Any], message: str
) -> None:
    with pytest.raises(ActionError, match=message):
        resolve(connection)


def test_async_drivers_are_swapped_for_sync_ones() -> None:
    assert resolve({"url": "postgresql+asyncpg://u@h/d"}).url.drivername == "postgresql+psycopg2"
    assert resolve({"url": "mariadb://u@h/d"}).url.drivername == "mariadb+pymysql"
    assert resolve({"url": "mariadb://u@h/d"}).family == "mysql"
    assert resolve({"url": "sqlite+aiosqlite:///a.db"}).url.drivername == "sqlite+pysqlite"


def test_the_engine_cache_is_bounded_and_disposes_what_it_evicts(tmp_path: Path) -> None:
    cache = EngineCache(size=2)
    targets = [resolve({"dialect": "sqlite", "database": str(tmp_path / f"{i}.db")}) for i in "abc"]
    first = cache.get(targets[0])
    with first.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    pool = first.pool
    assert isinstance(pool, sa.pool.QueuePool)
    assert pool.checkedin() == 1
    assert cache.get(targets[0]) is first  # cached
    cache.get(targets[1])
    cache.get(targets[0])  # a is now the most recent: b goes next
    cache.get(targets[2])
    assert len(cache) == 2
    assert targets[0] in cache and targets[2] in cache and targets[1] not in cache
    cache.get(targets[1])  # evicts a, the least recently used
    assert targets[0] not in cache
    assert pool.checkedin() == 0  # disposed: its pooled connection is closed
    cache.clear()


async def test_the_connection_secret_never_reaches_the_run_record(
    hub: Hub, pg: Any, maria: Any
) -> None:
    """PostgreSQL trusts loopback, so its URL can carry a password that is accepted."""
    secret = "Sup3r-Secret-Pw-0815"
    pg_url = sa.make_url(pg.connection["url"]).set(password=secret)
    await hub.set_connection("main", "sql", {"url": pg_url.render_as_string(hide_password=False)})
    wrong = sa.make_url(maria.connection["url"]).set(password=secret)
    await hub.set_connection("maria", "sql", {"url": wrong.render_as_string(hide_password=False)})
    document = {
        "id": "secret-check",
        "steps": [
            {
                "id": "who",
                "action": "sql.query",
                "connection": "main",
                "input": {"sql": "SELECT current_user AS who, :x AS x", "params": {"x": "y"}},
            },
            {
                "id": "broken",
                "action": "sql.query",
                "connection": "maria",
                "input": {"sql": "SELECT 1"},
                "on_error": "continue",
            },
        ],
        "output": "{{ steps.who.output }}",
    }
    await hub.save_flow(document, publish=True)
    run_id = await hub.start_run("secret-check", {})
    record = await hub.wait_for_run(run_id, 10)
    assert record["status"] == "succeeded", record["error"]
    full = await hub.get_run(run_id)
    assert full["output"]["rows"] == [{"who": "postgres", "x": "y"}]
    broken = [s for s in full["steps"] if s["key"] == "broken"]
    assert broken and "the credentials were refused" in json.dumps(broken[0]["error"])
    assert secret not in json.dumps(full, default=str)


@pytest.mark.parametrize("family", ["postgresql", "mysql"])
async def test_the_statement_timeout_stops_a_long_query_on_the_server(
    family: str, pg: Any, maria: Any
) -> None:
    """A step's timeout cannot interrupt the worker thread; the server-side limit does."""
    db = pg if family == "postgresql" else maria
    sleep = "SELECT pg_sleep(5)" if family == "postgresql" else "SELECT SLEEP(5)"
    connection = {**db.connection, "statement_timeout": "0.3"}
    started = time.monotonic()
    with pytest.raises(ActionError, match=r"longer than statement_timeout \(0\.3 s\)") as caught:
        await run_action(actions.query, {"sql": sleep}, connection=connection)
    assert time.monotonic() - started < 3
    assert caught.value.retryable is True
    fine = await run_action(actions.query, {"sql": "SELECT 1 AS one"}, connection=connection)
    assert fine["rows"] == [{"one": 1}]


async def test_stopping_the_hub_closes_the_pooled_connections(tmp_path: Path, db: Any) -> None:
    async with started_hub(Settings(data_dir=tmp_path / "hub"), [hub_sql.plugin]):
        await run_action(actions.query, {"sql": "SELECT 1 AS one"}, connection=db.connection)
        assert resolve(db.connection) in ENGINES
    assert len(ENGINES) == 0
