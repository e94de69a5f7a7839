"""Connections: from a stored connection to a SQLAlchemy engine, cached, and errors mapped.

The plugin uses SQLAlchemy's *synchronous* engines and runs every database call in a worker
thread (``asyncio.to_thread``). Synchronous engines are not bound to an event loop, so one
cached engine (and its connection pool) serves every run, trigger and test, whatever loop
calls it; an asyncio engine's pooled connections belong to the loop that opened them.

Engines are cached per connection URL in a bounded LRU (:class:`EngineCache`); an evicted
engine is disposed (its pooled connections closed).
"""

from __future__ import annotations

import asyncio
import collections
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Engine, make_url

from hub import ActionError

T = TypeVar("T")

DIALECTS = ("postgresql", "mysql", "sqlite")
# The synchronous driver used for each backend when the URL names none (or an async one).
DEFAULT_DRIVERS = {"postgresql": "psycopg2", "mysql": "pymysql", "mariadb": "pymysql"}
SYNC_DRIVERS = {
    "postgresql": {"psycopg2", "psycopg", "pg8000"},
    "mysql": {"pymysql", "mysqldb", "mysqlconnector", "mariadbconnector"},
    "mariadb": {"pymysql", "mysqldb", "mysqlconnector", "mariadbconnector"},
    "sqlite": {"pysqlite"},
}
DRIVER_EXTRAS = {"psycopg2": "hub-sql[postgresql]", "pymysql": "hub-sql[mysql]"}
DEFAULT_STATEMENT_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10
ENGINE_CACHE_SIZE = 16

# Server error codes meaning "the credentials or the account were refused" (never retried).
PG_AUTH_CODES = {"28P01", "28000"}
PG_NOT_FOUND_CODES = {"3D000"}  # the database does not exist
PG_RETRY_CODES = {"40001", "40P01", "55P03", "57P03", "53300"}
MYSQL_AUTH_CODES = {1044, 1045, 1698, 1251}
MYSQL_NOT_FOUND_CODES = {1049}
TIMEOUT_CODES = {"57014", 1969, 3024}  # statement_timeout / max_statement_time / max_execution_time
MYSQL_RETRY_CODES = {1205, 1213, 1040, 1053, 2002, 2003, 2006, 2013}
# libpq reports failures while connecting without a SQLSTATE: recognise them by their text.
AUTH_TEXT = re.compile(
    r"password authentication failed|authentication failed|role \".*\" does not exist"
    r"|no pg_hba\.conf entry|no password supplied|access denied for user",
    re.IGNORECASE,
)
MISSING_DB_TEXT = re.compile(r"database \".*\" does not exist|unknown database", re.IGNORECASE)


class Target:
    """A resolved connection: its URL, its dialect family and its statement timeout."""

    def __init__(self, url: URL, statement_timeout: float) -> None:
        self.url = url
        self.statement_timeout = statement_timeout
        backend = url.get_backend_name()
        self.family = "mysql" if backend == "mariadb" else backend
        self.password = url.password if isinstance(url.password, str) else None

    @property
    def key(self) -> str:
        """The cache key: the whole URL, password included (another password, another pool)."""
        return self.url.render_as_string(hide_password=False)

    def redact(self, text: str) -> str:
        """Remove the password (and the URL holding it) from a message."""
        if self.password:
            text = text.replace(self.password, "[redacted]")
        return text


def _number(value: Any, where: str, *, integer: bool = False) -> float:
    """A number from a connection field that may arrive as text (``hub connections set``)."""
    if isinstance(value, bool):
        raise ActionError(f"{where}: expected a number, not a boolean")
    try:
        number = int(value) if integer else float(value)
    except (TypeError, ValueError):
        raise ActionError(f"{where}: expected a number, not {value!r}") from None
    return number


def resolve(connection: Mapping[str, Any] | None) -> Target:
    """Check a connection's settings and build its URL; errors name the field.

    Either ``url`` (a SQLAlchemy URL) or ``dialect`` with ``host``, ``port``, ``database``,
    ``username`` and ``password``. Only PostgreSQL, MySQL/MariaDB and SQLite are accepted.
    """
    if not connection:
        raise ActionError("sql: this action needs a connection (url, or dialect and fields)")
    timeout = connection.get("statement_timeout")
    statement_timeout = (
        DEFAULT_STATEMENT_TIMEOUT
        if timeout in (None, "")
        else _number(timeout, "connection.statement_timeout")
    )
    if statement_timeout < 0:
        raise ActionError("connection.statement_timeout: must be 0 (off) or more seconds")
    url_text = connection.get("url")
    if url_text and connection.get("dialect"):
        raise ActionError("connection: give either url or dialect (with its fields), not both")
    if url_text:
        try:
            url = make_url(str(url_text))
        except (sa_exc.ArgumentError, ValueError):
            # The URL may hold a password: never echo it.
            raise ActionError("connection.url: not a valid SQLAlchemy URL") from None
    else:
        url = _url_from_fields(connection)
    url = _with_options(url, connection.get("options"))
    return Target(_sync_driver(url), statement_timeout)


def _url_from_fields(connection: Mapping[str, Any]) -> URL:
    dialect = connection.get("dialect")
    if not dialect:
        raise ActionError("connection: give url, or dialect (postgresql, mysql or sqlite)")
    if dialect not in DIALECTS:
        raise ActionError(
            f"connection.dialect: {dialect!r} is not supported (postgresql, mysql or sqlite)"
        )
    database = connection.get("database") or None
    if dialect == "sqlite":
        if not database or database == ":memory:":
            raise ActionError("connection.database: sqlite needs the path of a database file")
        return URL.create("sqlite", database=str(database))
    port = connection.get("port")
    port_number: int | None = None
    if port not in (None, ""):
        port_number = int(_number(port, "connection.port", integer=True))
        if not 0 < port_number < 65536:
            raise ActionError(f"connection.port: {port_number} is not a TCP port")
    return URL.create(
        dialect,
        username=connection.get("username") or None,
        password=connection.get("password") or None,
        host=connection.get("host") or "localhost",
        port=port_number,
        database=database,
    )


def _with_options(url: URL, options: Any) -> URL:
    if not options:
        return url
    if not isinstance(options, Mapping):
        raise ActionError("connection.options: expected a mapping of driver options")
    return url.update_query_dict({str(k): str(v) for k, v in options.items()})


def _sync_driver(url: URL) -> URL:
    """Refuse other backends; swap an async or missing driver for the default sync one."""
    backend = url.get_backend_name()
    if backend not in SYNC_DRIVERS:
        raise ActionError(
            f"connection.url: the dialect {backend!r} is not supported "
            "(postgresql, mysql, mariadb or sqlite)"
        )
    driver = url.get_driver_name() if "+" in url.drivername else ""
    if driver not in SYNC_DRIVERS[backend]:
        url = url.set(drivername=f"{backend}+{DEFAULT_DRIVERS.get(backend, 'pysqlite')}")
    if backend == "sqlite" and (not url.database or url.database == ":memory:"):
        raise ActionError("connection.url: sqlite needs the path of a database file")
    return url


def _create_engine(target: Target) -> Engine:
    url = target.url
    options: dict[str, Any] = {"pool_pre_ping": True}
    connect_args: dict[str, Any] = {}
    if target.family == "sqlite":
        connect_args["timeout"] = 10  # seconds to wait for a lock held by another writer
    else:
        options.update(pool_size=5, max_overflow=5, pool_timeout=30, pool_recycle=1800)
        connect_args["connect_timeout"] = CONNECT_TIMEOUT
        if target.family == "postgresql" and url.get_driver_name() == "psycopg2":
            connect_args["application_name"] = "hub-sql"
    try:
        return sa.create_engine(url, connect_args=connect_args, **options)
    except ModuleNotFoundError as exc:
        driver = url.get_driver_name()
        extra = DRIVER_EXTRAS.get(driver, driver)
        raise ActionError(
            f"connection: the {driver} driver is not installed; install {extra}"
        ) from exc


class EngineCache:
    """A bounded LRU of engines, one per connection URL; evicted engines are disposed."""

    def __init__(self, size: int = ENGINE_CACHE_SIZE) -> None:
        self.size = size
        self._engines: collections.OrderedDict[str, Engine] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, target: Target) -> Engine:
        """The engine for a target, created on first use."""
        key = target.key
        with self._lock:
            engine = self._engines.get(key)
            if engine is not None:
                self._engines.move_to_end(key)
                return engine
            engine = _create_engine(target)
            self._engines[key] = engine
            evicted = []
            while len(self._engines) > self.size:
                evicted.append(self._engines.popitem(last=False)[1])
        for old in evicted:
            old.dispose()
        return engine

    def __len__(self) -> int:
        return len(self._engines)

    def __contains__(self, target: object) -> bool:
        return isinstance(target, Target) and target.key in self._engines

    def clear(self) -> None:
        """Dispose of every engine (for tests and shutdown)."""
        with self._lock:
            engines = list(self._engines.values())
            self._engines.clear()
        for engine in engines:
            engine.dispose()


ENGINES = EngineCache()


def _server_code(exc: sa_exc.DBAPIError) -> Any:
    orig = exc.orig
    code = getattr(orig, "pgcode", None)
    if code is None and orig is not None and orig.args and isinstance(orig.args[0], int):
        code = orig.args[0]  # MySQL drivers: (errno, message)
    return code


def _message(exc: BaseException) -> str:
    """The driver's own message, first lines only (SQLAlchemy's adds the SQL and params)."""
    orig = getattr(exc, "orig", None)
    source = orig if orig is not None else exc
    if len(source.args) >= 2 and isinstance(source.args[0], int):
        text = str(source.args[1])  # MySQL drivers: (errno, message)
    else:
        text = str(source)
    text = re.sub(r"\s*\[SQL:.*", "", text, flags=re.S)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " ".join(lines[:3])[:500] or type(source).__name__


def map_error(exc: BaseException, target: Target, what: str) -> ActionError:
    """An :class:`ActionError` for a database error: clear, retryable when worth it, no secret."""
    detail = target.redact(_message(exc))
    where = f"{what} ({target.family})"
    if isinstance(exc, ActionError):
        return exc
    if isinstance(exc, sa_exc.DBAPIError):
        code = _server_code(exc)
        lower = detail.lower()
        connecting = isinstance(exc, sa_exc.OperationalError)
        if (
            code in PG_AUTH_CODES
            or code in MYSQL_AUTH_CODES
            or (connecting and AUTH_TEXT.search(detail))
        ):
            return ActionError(f"{where}: the credentials were refused: {detail}")
        if code in PG_NOT_FOUND_CODES or code in MYSQL_NOT_FOUND_CODES:
            return ActionError(f"{where}: the database does not exist: {detail}")
        if connecting and MISSING_DB_TEXT.search(detail):
            return ActionError(f"{where}: the database does not exist: {detail}")
        if code in TIMEOUT_CODES:
            seconds = f"{target.statement_timeout:g}"
            return ActionError(
                f"{where}: the statement ran longer than statement_timeout ({seconds} s): {detail}",
                retryable=True,
            )
        if exc.connection_invalidated or code in PG_RETRY_CODES or code in MYSQL_RETRY_CODES:
            return ActionError(f"{where}: {detail}", retryable=True)
        if connecting:
            if target.family == "sqlite" and "locked" not in lower and "busy" not in lower:
                return ActionError(f"{where}: {detail}")
            # Connection refused, server gone, lock timeouts: another attempt may succeed.
            return ActionError(f"{where}: {detail}", retryable=True)
        if isinstance(exc, sa_exc.IntegrityError):
            return ActionError(f"{where}: the data breaks a constraint: {detail}")
        return ActionError(f"{where}: {detail}")
    if isinstance(exc, sa_exc.TimeoutError):
        return ActionError(f"{where}: no free connection in the pool: {detail}", retryable=True)
    if isinstance(exc, sa_exc.StatementError):
        return ActionError(f"{where}: {detail}")
    if isinstance(exc, sa_exc.SQLAlchemyError):
        return ActionError(f"{where}: {detail}")
    if isinstance(exc, OSError):
        return ActionError(f"{where}: {detail}", retryable=True)
    raise exc


def apply_statement_timeout(conn: sa.Connection, target: Target) -> None:
    """Bound every statement of this transaction on the server (0 turns it off).

    Statements run in a worker thread that a cancelled step cannot interrupt; the server-side
    timeout is what stops a runaway query.
    """
    seconds = target.statement_timeout
    if target.family == "postgresql":
        millis = str(int(seconds * 1000))
        conn.execute(sa.text("SELECT set_config('statement_timeout', :v, true)"), {"v": millis})
    elif target.family == "mysql":
        if getattr(conn.dialect, "is_mariadb", False):
            conn.execute(sa.text("SET SESSION max_statement_time = :v"), {"v": float(seconds)})
        else:
            millis_int = int(seconds * 1000)
            conn.execute(sa.text("SET SESSION max_execution_time = :v"), {"v": millis_int})


async def in_thread(
    connection: Mapping[str, Any] | None,
    what: str,
    work: Callable[[sa.Connection, Target], T],
) -> T:
    """Run ``work(conn, target)`` in one transaction in a worker thread, errors mapped."""
    target = resolve(connection)

    def call() -> T:
        engine = ENGINES.get(target)
        try:
            with engine.begin() as conn:
                apply_statement_timeout(conn, target)
                return work(conn, target)
        except ActionError:
            raise
        except (sa_exc.SQLAlchemyError, OSError) as exc:
            raise map_error(exc, target, what) from None

    return await asyncio.to_thread(call)


async def test_connection(connection: Mapping[str, Any]) -> dict[str, Any]:
    """Connect and run ``SELECT 1``; raise a clear :class:`ActionError` when refused."""

    def probe(conn: sa.Connection, target: Target) -> dict[str, Any]:
        conn.execute(sa.text("SELECT 1"))
        version = ".".join(str(p) for p in (conn.dialect.server_version_info or ()))
        return {"ok": True, "dialect": target.family, "server_version": version}

    return await in_thread(connection, "sql connection test", probe)
