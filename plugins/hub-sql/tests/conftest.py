"""Databases for hub-sql's tests: the real PostgreSQL and MariaDB servers, and SQLite files.

Each test session creates a fresh, uniquely named database on each server
(``hubsql_<random>``) and drops it at the end. Without a server the tests that need it are
skipped, except under ``CI=true`` where a missing server is a failure.
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import hub_sql.plugin
import pytest
import sqlalchemy as sa
from hub_sql.engines import ENGINES
from hub_sql.tables import forget_reflections

from hub.testing import Hub, Settings, service_missing, started_hub

PG_ADMIN = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
MARIA_ADMIN = "mysql+pymysql://root:@127.0.0.1:3306/test"
DIALECTS = ["sqlite", "postgresql", "mysql"]


def require(condition: bool, what: str) -> None:
    """Skip (or, under CI=true, fail) when a service cannot be had."""
    if not condition:
        service_missing(f"{what} is not available")


def _server(admin_url: str, family: str) -> Iterator[dict[str, Any] | None]:
    """Create ``hubsql_<random>`` on a server, yield its connection settings, drop it."""
    name = f"hubsql_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
    except sa.exc.OperationalError:
        admin.dispose()
        yield None
        return
    url = sa.make_url(admin_url).set(database=name)
    try:
        yield {"url": url.render_as_string(hide_password=False), "family": family, "name": name}
    finally:
        ENGINES.clear()
        with admin.connect() as conn:
            force = " WITH (FORCE)" if family == "postgresql" else ""
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}{force}"))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[dict[str, Any] | None]:
    """A fresh database on the local PostgreSQL server (None when it cannot be reached)."""
    yield from _server(PG_ADMIN, "postgresql")


@pytest.fixture(scope="session")
def maria_server() -> Iterator[dict[str, Any] | None]:
    """A fresh database on the local MariaDB server (None when it cannot be reached)."""
    yield from _server(MARIA_ADMIN, "mysql")


@dataclasses.dataclass
class Database:
    """One test's database: the connection settings the plugin gets and a setup engine."""

    family: str
    connection: dict[str, Any]
    engine: sa.Engine
    metadata: sa.MetaData = dataclasses.field(default_factory=sa.MetaData)

    def create(self, *tables: sa.Table) -> None:
        """Create tables declared on ``self.metadata`` (dropped after the test)."""
        self.metadata.create_all(self.engine, tables=list(tables))

    def rows(self, table: str, order_by: str = "id") -> list[dict[str, Any]]:
        """Every row of a table, read directly (not through the plugin)."""
        with self.engine.connect() as conn:
            tbl = sa.Table(table, sa.MetaData(), autoload_with=conn)
            result = conn.execute(sa.select(tbl).order_by(tbl.c[order_by]))
            return [dict(r._mapping) for r in result]

    def execute(self, statement: Any, params: Any = None) -> None:
        """Run a statement in its own transaction."""
        with self.engine.begin() as conn:
            conn.execute(statement, params)


def _database(
    family: str, tmp_path: Path, pg: dict[str, Any] | None, maria: dict[str, Any] | None
) -> Iterator[Database]:
    if family == "sqlite":
        url = f"sqlite:///{tmp_path / 'test.db'}"
        connection: dict[str, Any] = {"dialect": "sqlite", "database": str(tmp_path / "test.db")}
    else:
        server = pg if family == "postgresql" else maria
        require(server is not None, f"the local {family} server")
        assert server is not None
        url = server["url"]
        connection = {"url": url}
    engine = sa.create_engine(url)
    db = Database(family=family, connection=connection, engine=engine)
    try:
        yield db
    finally:
        forget_reflections()
        with contextlib.suppress(Exception):
            db.metadata.drop_all(engine)
        engine.dispose()


@pytest.fixture(params=DIALECTS)
def db(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    pg_server: dict[str, Any] | None,
    maria_server: dict[str, Any] | None,
) -> Iterator[Database]:
    """A database of each dialect in turn (SQLite file, PostgreSQL, MariaDB)."""
    yield from _database(request.param, tmp_path, pg_server, maria_server)


@pytest.fixture
def pg(tmp_path: Path, pg_server: dict[str, Any] | None) -> Iterator[Database]:
    """The PostgreSQL test database."""
    yield from _database("postgresql", tmp_path, pg_server, None)


@pytest.fixture
def maria(tmp_path: Path, maria_server: dict[str, Any] | None) -> Iterator[Database]:
    """The MariaDB test database."""
    yield from _database("mysql", tmp_path, None, maria_server)


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Unique table names, so tests sharing a server database never collide."""
    return lambda prefix: f"{prefix}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    """A started hub (SQLite in tmp_path, in-process) with the built-ins and hub-sql only."""
    async with started_hub(Settings(data_dir=tmp_path / "hub"), [hub_sql.plugin]) as instance:
        yield instance
