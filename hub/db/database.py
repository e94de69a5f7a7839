"""Database access: one interface, two data paths.

Storage functions are plain synchronous functions of a SQLAlchemy ``Connection`` (``fn(conn)``)
that run inside one transaction. :class:`Database` runs them:

- SQLite (the embedded default): on the event loop's thread, through SQLAlchemy's sync Core
  over the stdlib ``sqlite3`` driver (WAL, ``synchronous=NORMAL``, ``BEGIN IMMEDIATE``).
  Writes are *group-committed*: every write submitted during one turn of the event loop runs
  in one transaction at the start of the next turn. SQLite has one writer anyway, so this
  costs no concurrency, and a 1,000-item fan-out commits in a handful of transactions instead
  of thousands. Each write keeps its own all-or-nothing semantics: if one write of a batch
  raises, the batch is rolled back and every write is re-run in a transaction of its own, so
  the failing one fails alone. (Not the async aiosqlite path: its cost per transaction alone
  would cap a chain of steps at a few hundred steps a second.)
- PostgreSQL (queue mode): SQLAlchemy's asyncio engine over asyncpg, through
  ``AsyncConnection.run_sync`` so the same storage functions serve both; writes are
  group-committed too (see :meth:`Database._pg_write`), and a lost server is waited for
  with back-off. Round trips are what costs here: writes that can be batched (claims,
  simple completions: see :func:`run_writes`) become one statement per kind, a batch of
  only those runs in autocommit, and reads run in autocommit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import msgspec
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from hub.security.files import create_private_file

log = logging.getLogger("hub.db")
T = TypeVar("T")
WriteFn = Callable[[Connection], Any]
PG_FLUSHERS = 3  # general transactions committing at once
PG_BATCH = 64  # writes at most in one general transaction
PG_HOT_BATCH = 256  # batchable writes at most in one batch of the hot pipeline
# The hot pipeline's connection runs only statements that find every row by key (claims,
# completions), whatever the parameters: generic plans, made once per statement, where
# PostgreSQL otherwise planned each call again (a custom plan for each array of ids cost
# more than running a batch of a few steps); and no sequential scans, which a plan made
# while a table was small would go on making as it grew, for each row of each batch.
HOT_SETTINGS = {"plan_cache_mode": "force_generic_plan", "enable_seqscan": "off"}


def _json_serializer(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _sqlite_engine(url: str, *, immediate: bool) -> Engine:
    engine = create_engine(
        url,
        json_serializer=_json_serializer,
        json_deserializer=msgspec.json.decode,
        pool_size=1,
        max_overflow=0,
    )

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Database:
    """Runs storage functions in transactions; see the module docstring for the data paths."""

    def __init__(self, url: str, reconnect_timeout: float = 60.0, pool_size: int = 10) -> None:
        self.url = url
        self.reconnect_timeout = reconnect_timeout
        self.pool_size = pool_size
        self.is_sqlite = url.startswith("sqlite")
        self._pending: list[tuple[WriteFn, asyncio.Future[Any]]] = []
        # PostgreSQL's two pipelines of writes (see _pg_write): pending writes, flushers.
        self._pg_pending: list[tuple[WriteFn, asyncio.Future[Any], str | None]] = []
        self._pg_hot: list[tuple[WriteFn, asyncio.Future[Any], str | None]] = []
        self._pg_flushers = 0
        self._pg_hot_flushing = False
        self._pg_tasks: set[asyncio.Task[None]] = set()
        self._pg_held: set[str] = set()  # lanes of the transactions committing now
        self._flush_scheduled = False
        self._async_engine: AsyncEngine | None = None
        self._sync_engine: Engine | None = None
        self._writer: Engine | None = None
        self._reader: Engine | None = None
        self._write_conn: Connection | None = None
        self._read_conn: Connection | None = None
        if self.is_sqlite:
            path = url.split("///", 1)[-1].split("?", 1)[0] if "///" in url else ""
            if path and path != ":memory:":
                # 0600 before SQLite opens it: its -wal and -shm files copy this mode.
                create_private_file(Path(path))
            self._writer = _sqlite_engine(url, immediate=True)
            self._reader = _sqlite_engine(url, immediate=False)
        else:
            self._async_engine = create_async_engine(
                _async_url(url),
                json_serializer=_json_serializer,
                json_deserializer=msgspec.json.decode,
                # A fixed pool: a connection beyond it would be opened and closed again
                # under load (a server process forked, types introspected, statements
                # prepared anew each time); waiting for a free one costs far less.
                pool_size=pool_size,
                max_overflow=0,
                pool_timeout=reconnect_timeout,
            )
            self._autocommit = self._async_engine.execution_options(isolation_level="AUTOCOMMIT")
            # The hot pipeline's own connection (it has one batch in flight), with its own
            # settings (HOT_SETTINGS).
            self._hot_engine = create_async_engine(
                _async_url(url),
                json_serializer=_json_serializer,
                json_deserializer=msgspec.json.decode,
                pool_size=1,
                max_overflow=0,
                pool_timeout=reconnect_timeout,
                connect_args={"server_settings": HOT_SETTINGS},
            )
            self._hot = self._hot_engine.execution_options(isolation_level="AUTOCOMMIT")

    @property
    def sync_engine(self) -> Engine:
        """A synchronous engine for migrations and tools."""
        if self._writer is not None:
            return self._writer
        if self._sync_engine is None:
            self._sync_engine = create_engine(
                _sync_url(self.url), json_serializer=_json_serializer, poolclass=NullPool
            )
        return self._sync_engine

    async def write(self, fn: Callable[[Connection], T], *, lane: str | None = None) -> T:
        """Run ``fn(conn)`` in a write transaction and return its result.

        ``lane`` (the engine passes a run's id; a write object may carry a ``lane``
        attribute instead) matters on PostgreSQL: writes of one lane are never in two
        transactions of this process at once, so that they never wait for each other's
        row locks (the items of one fan-out all lock their run).
        """
        if self._async_engine is not None:
            return await self._pg_write(fn, lane if lane is not None else getattr(fn, "lane", None))
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((fn, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        return await future

    async def open_pool(self) -> None:
        """Open the pool's connections now (PostgreSQL; a worker does at start): each costs
        PostgreSQL a process and the driver a round of type introspection (milliseconds of
        CPU), better spent before the first burst of work than in the middle of it."""
        if self._async_engine is None:
            return

        async def one(engine: AsyncEngine) -> None:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        engines = [self._async_engine] * self.pool_size + [self._hot_engine]
        await asyncio.gather(*(one(engine) for engine in engines))

    async def read(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn(conn)`` in a read transaction and return its result."""
        if self._async_engine is not None:
            return await self._with_reconnect(fn, write=False)
        return self.read_sync(fn)

    async def _pg_write(self, fn: Callable[[Connection], T], lane: str | None) -> T:
        """Group commit on PostgreSQL: writes that arrive while earlier batches are being
        committed go together in the next batch, along one of two pipelines.

        - Writes that batch into one statement (claims, simple completions: ``batchable``
          and ``single_statement`` attributes) go in the *hot* pipeline: one batch in
          flight at a time, each class of write one statement in autocommit. A statement's
          fixed cost in PostgreSQL (planning, executor start, locks, the round trip) is
          most of what a step costs it when batches are small: while one batch commits,
          the next grows, so the cost per step falls as the load rises instead of the
          statements multiplying (docs/benchmarks.md has the figures).
        - Every other write (item completions, fan-outs, failures, finishing runs, API
          writes) goes in the *general* pipeline: up to ``PG_FLUSHERS`` transactions at
          once, so that one waiting for a row lock held by another process does not hold
          up the rest. Batchable writes there (item completions) still run together,
          through their class's ``run_many``, inside the transaction.

        A batch takes no write whose lane another batch of this process holds (it is left
        for the next), so the writes of one run never wait for each other's row locks. Each
        write keeps its all-or-nothing meaning: a batch that fails (a conflict, a deadlock
        between two workers' batches) is rolled back and every write in it is run again on
        its own, so that only the failing one fails.
        """
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        queue = self._pg_hot if _single_statement(fn) else self._pg_pending
        queue.append((fn, future, lane))
        self._pg_kick()
        return await future

    def _pg_kick(self) -> None:
        """Start the flushers that pending writes need (one hot, ``PG_FLUSHERS`` general)."""
        loop = asyncio.get_running_loop()
        if self._pg_hot and not self._pg_hot_flushing:
            self._pg_hot_flushing = True
            self._pg_tasks.add(task := loop.create_task(self._pg_flush(hot=True)))
            task.add_done_callback(self._pg_tasks.discard)
        if self._pg_pending and self._pg_flushers < PG_FLUSHERS:
            self._pg_flushers += 1
            self._pg_tasks.add(task := loop.create_task(self._pg_flush(hot=False)))
            task.add_done_callback(self._pg_tasks.discard)

    def _pg_take(
        self, queue: list[tuple[WriteFn, asyncio.Future[Any], str | None]], limit: int
    ) -> tuple[list[tuple[WriteFn, asyncio.Future[Any]]], set[str]]:
        """The next batch of a pipeline's ``queue`` (in order, skipping lanes held by other
        batches) and the lanes it holds; what it leaves stays in ``queue``."""
        batch: list[tuple[WriteFn, asyncio.Future[Any]]] = []
        held: set[str] = set()
        left = []
        for fn, future, lane in queue:
            free = lane is None or lane in held or lane not in self._pg_held
            if free and len(batch) < limit:
                batch.append((fn, future))
                if lane is not None:
                    held.add(lane)
            else:
                left.append((fn, future, lane))
        queue[:] = left
        self._pg_held |= held
        return batch, held

    async def _pg_flush(self, *, hot: bool) -> None:
        queue, limit = (self._pg_hot, PG_HOT_BATCH) if hot else (self._pg_pending, PG_BATCH)
        try:
            while queue:
                batch, held = self._pg_take(queue, limit)
                if not batch:  # all of it waits for lanes: their holders kick it on
                    return
                try:
                    await self._pg_commit(batch)
                finally:
                    self._pg_held -= held
                    if held:
                        self._pg_kick()  # writes that waited for these lanes
        finally:
            if hot:
                self._pg_hot_flushing = False
            else:
                self._pg_flushers -= 1

    async def _pg_commit(self, batch: list[tuple[WriteFn, asyncio.Future[Any]]]) -> None:
        if all(_single_statement(fn) for fn, _future in batch):
            await self._pg_autocommit(batch)
            return
        if len(batch) > 1:
            try:
                results = await self._with_reconnect(
                    lambda conn: run_writes(conn, [fn for fn, _future in batch]), write=True
                )
            except Exception:
                pass  # run each on its own below
            else:
                for (_fn, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
                return
        await self._pg_alone(batch)

    async def _pg_autocommit(self, batch: list[tuple[WriteFn, asyncio.Future[Any]]]) -> None:
        """A batch of batchable writes only: each class's ``run_many`` is one statement, so
        it runs in autocommit (no ``BEGIN``, no ``COMMIT``: one round trip per class). When
        a statement of several writes fails, each of them is run again alone."""
        for cls, indexes in batchable_groups([fn for fn, _future in batch]).items():
            group = [batch[i] for i in indexes]
            if len(group) == 1:
                await self._pg_alone(group, hot=True)
                continue
            fns = [fn for fn, _future in group]

            def run_many(conn: Connection, cls: Any = cls, fns: list[WriteFn] = fns) -> Any:
                return cls.run_many(conn, fns)

            try:
                results = await self._with_reconnect(run_many, write=True, hot=True)
            except Exception:
                await self._pg_alone(group, hot=True)
                continue
            for (_fn, future), result in zip(group, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def _pg_alone(
        self, batch: list[tuple[WriteFn, asyncio.Future[Any]]], *, hot: bool = False
    ) -> None:
        """Run each write of a batch on its own; each future gets its own result or error
        (``hot``: single statements, on the hot pipeline's connection, in autocommit)."""
        for fn, future in batch:
            try:
                result = await self._with_reconnect(fn, write=True, hot=hot)
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(result)

    async def _with_reconnect(
        self, fn: Callable[[Connection], T], *, write: bool, hot: bool = False
    ) -> T:
        """Run on PostgreSQL; while the server is unreachable, retry with back-off.

        A write runs in a transaction, except a ``hot`` one (single statements: the hot
        pipeline's connection, in autocommit). A failed transaction was rolled back whole,
        so running it again is safe. After ``reconnect_timeout`` seconds the error is raised.
        """
        assert self._async_engine is not None
        delay = 0.05
        deadline = time.monotonic() + self.reconnect_timeout
        while True:
            try:
                if hot:
                    async with self._hot.connect() as conn:
                        return await conn.run_sync(fn)
                if write:
                    async with self._async_engine.begin() as conn:
                        return await conn.run_sync(fn)
                # A read gains nothing from a transaction: under READ COMMITTED each
                # statement has its own snapshot anyway, so BEGIN and ROLLBACK would only
                # add two round trips.
                async with self._autocommit.connect() as conn:
                    return await conn.run_sync(fn)
            except (DBAPIError, OSError) as exc:
                unreachable = isinstance(exc, OSError) or exc.connection_invalidated
                if not unreachable or time.monotonic() + delay > deadline:
                    raise
                log.warning(
                    "database unreachable (%s); retrying in %.2fs", type(exc).__name__, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    def read_sync(self, fn: Callable[[Connection], T]) -> T:
        """Run a read on SQLite directly (for the CLI and tests)."""
        conn = self._reader_conn()
        try:
            with conn.begin():
                return fn(conn)
        except Exception:
            self._reset_reader()
            raise

    def _reader_conn(self) -> Connection:
        if self._read_conn is None:
            assert self._reader is not None
            self._read_conn = self._reader.connect()
        return self._read_conn

    def _reset_reader(self) -> None:
        if self._read_conn is not None:
            self._read_conn.close()
            self._read_conn = None

    def _writer_conn(self) -> Connection:
        if self._write_conn is None:
            assert self._writer is not None
            self._write_conn = self._writer.connect()
        return self._write_conn

    def _flush(self) -> None:
        self._flush_scheduled = False
        batch, self._pending = self._pending, []
        if not batch:
            return
        conn = self._writer_conn()
        results: list[Any] = []
        try:
            with conn.begin():
                for fn, _future in batch:
                    results.append(fn(conn))
        except Exception:
            if len(batch) == 1:
                self._fail(batch[0][1])
                return
            # One write failed: run each on its own so that only the failing one fails.
            for fn, future in batch:
                self._run_one(conn, fn, future)
            return
        for (_fn, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    def _run_one(self, conn: Connection, fn: WriteFn, future: asyncio.Future[Any]) -> None:
        try:
            with conn.begin():
                result = fn(conn)
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
        else:
            if not future.done():
                future.set_result(result)

    def _fail(self, future: asyncio.Future[Any]) -> None:
        import sys

        exc = sys.exc_info()[1]
        if not future.done() and exc is not None:
            future.set_exception(exc)

    async def close(self) -> None:
        """Close connections and engines."""
        if self._pending:
            self._flush()
        for conn in (self._write_conn, self._read_conn):
            if conn is not None:
                conn.close()
        self._write_conn = self._read_conn = None
        for engine in (self._writer, self._reader):
            if engine is not None:
                engine.dispose()
        if self._async_engine is not None:
            await self._async_engine.dispose()
            await self._hot_engine.dispose()
        if self._sync_engine is not None:
            self._sync_engine.dispose()


def run_writes(conn: Connection, fns: list[WriteFn]) -> list[Any]:
    """Run the writes of one transaction; return their results in order.

    A write whose ``batchable`` attribute is true (:class:`hub.db.runstate.claims.Claim`, a simple
    :class:`hub.db.runstate.completions.Completion`) runs together with the others of its class
    through the class's ``run_many(conn, items)``, which returns one result per item in
    ONE statement on PostgreSQL (so that a batch of them can run in autocommit); every
    other write runs on its own. The writes of one transaction were submitted concurrently,
    so none of them relies on running before another.
    """
    results: list[Any] = [None] * len(fns)
    groups = batchable_groups(fns)
    batched = {i for indexes in groups.values() for i in indexes}
    for index, fn in enumerate(fns):
        if index not in batched:
            results[index] = fn(conn)
    for cls, indexes in groups.items():
        outcomes = cls.run_many(conn, [fns[i] for i in indexes])
        for index, outcome in zip(indexes, outcomes, strict=True):
            results[index] = outcome
    return results


def _single_statement(fn: WriteFn) -> bool:
    """Whether a write batches with others of its class in ONE statement (claims, simple
    completions): a batch of only those runs in autocommit, in the hot pipeline."""
    return bool(getattr(fn, "batchable", False) and getattr(fn, "single_statement", False))


def batchable_groups(fns: list[WriteFn]) -> dict[Any, list[int]]:
    """The positions of the batchable writes, by class (each class batches its own)."""
    groups: dict[Any, list[int]] = {}
    for index, fn in enumerate(fns):
        if getattr(fn, "batchable", False):
            groups.setdefault(type(fn), []).append(index)
    return groups


def _sync_url(url: str) -> str:
    if url.startswith("postgres://"):
        return "postgresql://" + url.split("://", 1)[1]
    return url


def _async_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    return url
