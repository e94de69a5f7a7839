"""The hub instance: settings, plugins, database, executor and engine, composed once.

:class:`Hub` is what the CLI, the HTTP app and tests hold. Its methods (``start_run``,
``cancel_run``, ``save_flow``, ``publish_flow`` ...) are the one path the faces use to act on
the hub: no face runs SQL or drives the engine by another route.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Iterable
from types import TracebackType
from typing import Any

import pluggy

from hub.cache import Cache
from hub.connectors import Registry
from hub.db import store
from hub.db.database import Database
from hub.db.migrate import upgrade
from hub.engine import Engine, RunNotFound
from hub.engine.executors.base import Executor
from hub.engine.executors.local import LocalExecutor
from hub.expressions import Expressions, Limits
from hub.flows import Flow, load_flow
from hub.plugins import build_registry, call_observers, collect_mapping, make_plugin_manager
from hub.schemas import schema_errors
from hub.security.netguard import make_http_client
from hub.security.secrets import KEY_FILE, SecretBox, SecretKeyError, load_keys, secret_fields
from hub.settings import Settings

log = logging.getLogger("hub")


def settle_gc(settings: Settings) -> None:
    """Tune the garbage collector once a long-lived process (``hub serve``, ``hub worker``)
    has started.

    What exists by then (modules, plugins, the app, the engine's tables) is never garbage:
    frozen, full collections skip it (their pauses reached 100+ ms and set the webhook
    p99). And Python collects its youngest generation every 700 net allocations of
    container objects: a step allocates hundreds (its context, its rows, its outcome),
    most of them gone a moment later, so a worker collected about 400 times a second and
    promoted objects still in flight to older generations, whose collections then
    scanned them again. Collections took a fifth of a worker's CPU time (a load of 60,000
    steps through two workers: 1.7 of 7.2 CPU seconds); with the objects of start-up
    frozen and a first threshold of ``HUB_GC_THRESHOLD`` (10,000), 0.1 of 4.5 seconds.
    Cyclic garbage lives a little longer: a few megabytes at most.
    """
    gc.collect()
    gc.freeze()
    if settings.gc_threshold:
        _first, second, third = gc.get_threshold()
        gc.set_threshold(settings.gc_threshold, second, third)


class Hub:
    """One hub process's view of the system."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        plugins: Iterable[Any] = (),
        entry_points: bool = True,
        executor: Executor | None = None,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.pm: pluggy.PluginManager = make_plugin_manager(
            self.settings, plugins, entry_points=entry_points
        )
        self.registry: Registry = build_registry(self.pm)
        s = self.settings
        self.expressions = Expressions(
            Limits(
                max_output=s.max_render_output,
                max_loop_iterations=s.max_loop_iterations,
                max_range=s.max_range,
                max_repeat=s.max_repeat,
            ),
            filters=collect_mapping(self.pm, "hub_template_filters"),
            globals=collect_mapping(self.pm, "hub_template_globals"),
        )
        self.db = Database(s.resolved_database_url, pool_size=s.database_pool_size)
        self.secrets = SecretBox(load_keys(s.secret_key, s.data_dir))
        self.redis: Any = None
        l2 = None
        if s.redis_url:
            import redis.asyncio

            from hub.cache import RedisL2

            self.redis = redis.asyncio.Redis.from_url(s.redis_url)
            l2 = RedisL2(self.redis)
        self.l2 = l2
        self.cache = Cache(l2=l2)
        self.http = make_http_client(s)
        if executor is None:
            if s.redis_url:
                from hub.engine.executors.arq import ArqExecutor

                executor = ArqExecutor(s)
            else:
                executor = LocalExecutor(horizon=max(60.0, s.sweep_interval * 2))
        self.executor = executor
        limiter = None
        if self.redis is not None:
            from hub.engine.limits import RedisLimiter

            limiter = RedisLimiter(self.redis)
        self.engine = Engine(
            settings=s,
            db=self.db,
            registry=self.registry,
            expressions=self.expressions,
            pm=self.pm,
            executor=self.executor,
            cache=self.cache,
            http=self.http,
            secrets=self.secrets,
            limiter=limiter,
        )
        self.workspace = s.workspace
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False

    # -- lifecycle --------------------------------------------------------------------------

    def migrate(self) -> None:
        """Bring the database schema up to date and make sure the workspace exists."""
        upgrade(self.db.sync_engine)

    async def start(
        self,
        *,
        migrate: bool = True,
        background: bool = True,
        execute: bool = True,
        verify_key: bool = True,
    ) -> Hub:
        """Migrate, start the executor, recover lost work, start the background loops.

        With ``execute=False`` (read-only commands such as ``hub runs list``) only the
        database is prepared: this process runs no step.
        """
        if migrate:
            await asyncio.to_thread(self.migrate) if not self.db.is_sqlite else self.migrate()
        await self.db.write(lambda c: store.ensure_workspace(c, self.workspace))
        if verify_key:
            await self.verify_secret_key()
        if not execute:
            return self
        await self.engine.start()
        self._started = True
        await self.engine.sweep(startup=True)
        if self.l2 is not None:
            self._tasks.append(asyncio.create_task(self.l2.listen(self.cache)))
        if background:
            self._tasks.append(asyncio.create_task(self._loop(self.engine.sweep, "sweep")))
            self._tasks.append(asyncio.create_task(self._heartbeat_loop()))
        await call_observers(self.pm, "hub_startup", self.settings.observer_timeout, hub=self)
        return self

    async def _loop(self, fn: Any, name: str) -> None:
        while True:
            await asyncio.sleep(self.settings.sweep_interval)
            try:
                await fn()
            except Exception:
                log.exception("%s failed; retrying at the next interval", name)

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.lease_seconds / 3)
            try:
                await self.engine.heartbeat()
            except Exception:
                log.exception("heartbeat failed")

    def add_background(self, coro: Any) -> None:
        """Run a coroutine for the life of the hub (cancelled on stop)."""
        self._tasks.append(asyncio.create_task(coro))

    async def stop(self, grace: float | None = None) -> None:
        """Stop loops and executor, close everything.

        Running steps get ``grace`` seconds (``HUB_SHUTDOWN_GRACE`` by default) to finish;
        the rest are handed back to ``queued`` without using up an attempt.
        """
        if grace is None:
            grace = self.settings.shutdown_grace
        if self._started:
            await call_observers(self.pm, "hub_shutdown", self.settings.observer_timeout, hub=self)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        self.executor.pause()
        await self.engine.drain(grace)
        await self.engine.hand_back()
        await self.executor.stop(0)
        await self.http.aclose()
        if self.redis is not None:
            await self.redis.aclose()
        await self.db.close()
        self._started = False

    async def __aenter__(self) -> Hub:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def check_database(self) -> None:
        """Raise if the database does not answer (for readiness probes)."""
        await self.db.read(store.ping)

    # -- flows ------------------------------------------------------------------------------

    async def connections(self) -> dict[str, str]:
        """Connection name -> connector, in this workspace."""
        return await self.db.read(lambda c: store.connection_names(c, self.workspace))

    async def validate_flow(self, document: dict[str, Any]) -> Flow:
        """Validate a document against the installed actions and stored connections."""
        conns = await self.connections()
        return load_flow(
            document, expressions=self.expressions, registry=self.registry, connections=conns
        )

    async def save_flow(
        self,
        document: dict[str, Any],
        *,
        source: str = "",
        author: str = "",
        message: str = "",
        publish: bool = False,
    ) -> store.SavedVersion:
        """Validate and save a document as a new version (if it changed); maybe publish it."""
        await self.validate_flow(document)
        saved = await self.db.write(
            lambda c: store.save_version(
                c,
                self.workspace,
                document,
                source=source,
                author=author,
                message=message,
                publish=publish,
            )
        )
        if saved.published:
            await self.engine.published_changed(self.workspace, saved.flow_id, saved.version)
        return saved

    async def publish_flow(self, flow_id: str, version: int) -> None:
        """Publish a version of a flow (rolling back is publishing an older one)."""
        await self.db.write(lambda c: store.publish_version(c, self.workspace, flow_id, version))
        await self.engine.published_changed(self.workspace, flow_id, version)

    async def list_flows(self) -> list[dict[str, Any]]:
        """Every flow of the workspace."""
        return await self.db.read(lambda c: store.list_flows(c, self.workspace))

    async def flow_document(self, flow_id: str, version: int | None = None) -> dict[str, Any]:
        """The document of a version (the published one, else the latest, by default)."""
        flow = await self.db.read(lambda c: store.get_flow(c, self.workspace, flow_id))
        if flow is None:
            raise RunNotFound(f"no flow {flow_id!r}")
        chosen = version or flow["published_version"] or flow["latest_version"]
        doc = await self.db.read(
            lambda c: store.version_document(c, self.workspace, flow_id, chosen)
        )
        if doc is None:
            raise RunNotFound(f"flow {flow_id!r} has no version {chosen}")
        return doc

    # -- runs -------------------------------------------------------------------------------

    async def start_run(
        self,
        flow_id: str,
        input: Any = None,
        *,
        version: int | None = None,
        trigger_type: str = "manual",
    ) -> str:
        """Start a run of a flow (its published version unless ``version``)."""
        return await self.engine.start_run(
            self.workspace, flow_id, input, version=version, trigger_type=trigger_type
        )

    async def cancel_run(self, run_id: str) -> bool:
        """Cancel a run and its child runs; False if it had already finished."""
        await self.get_run(run_id, with_steps=False)
        return await self.engine.cancel_run(run_id)

    async def wait_for_run(self, run_id: str, timeout: float | None = None) -> dict[str, Any]:
        """Wait for a run's final status and return its record."""
        return await self.engine.wait_for_run(run_id, timeout)

    async def get_run(self, run_id: str, *, with_steps: bool = True) -> dict[str, Any]:
        """A run record, with its step attempts."""
        record = await self.db.read(lambda c: store.run_record(c, run_id, self.workspace))
        if record is None:
            raise RunNotFound(f"no run {run_id!r}")
        if with_steps:
            record["steps"] = await self.db.read(lambda c: store.run_steps(c, run_id))
        return record

    async def list_runs(self, **filters: Any) -> list[dict[str, Any]]:
        """Runs of the workspace, newest first (filters: flow_id, status, before, limit)."""
        return await self.db.read(lambda c: store.list_runs(c, self.workspace, **filters))

    # -- connections ------------------------------------------------------------------------

    async def verify_secret_key(self, sample: int = 500) -> int:
        """Check that the configured key decrypts the stored secrets (the newest ``sample``
        connections); raise :class:`SecretKeyError` naming HUB_SECRET_KEY if not, so that a
        process started with a wrong key fails loudly instead of failing every step.

        Returns how many encrypted values were checked.
        """
        rows = await self.db.read(lambda c: store.encrypted_connections(c, limit=sample))
        checked = 0
        for row in rows:
            for token in (row["secrets"], row["oauth_tokens"]):
                if not token:
                    continue
                try:
                    self.secrets.decrypt(token)
                except SecretKeyError as exc:
                    source = (
                        "HUB_SECRET_KEY"
                        if self.settings.secret_key
                        else f"the key file {self.settings.data_dir / KEY_FILE} "
                        "(HUB_SECRET_KEY unset)"
                    )
                    raise SecretKeyError(
                        f"the stored secrets of connection {row['name']!r} in workspace "
                        f"{row['workspace_id']!r} cannot be decrypted with {source}. Start the "
                        "hub with HUB_SECRET_KEY set to the key(s) they were encrypted with, "
                        "newest first, comma-separated (then `hub secrets rotate` to move to "
                        "a new key)."
                    ) from exc
                checked += 1
        return checked

    async def connection_values(self, name: str, workspace_id: str | None = None) -> dict[str, Any]:
        """A connection's settings with its secrets decrypted (for triggers and tests)."""
        values, _redactor = await self.engine.connection_values(
            workspace_id or self.workspace, name
        )
        return values

    async def set_connection(self, name: str, connector: str, values: dict[str, Any]) -> None:
        """Create or replace a connection; secret fields (by its schema) are encrypted."""
        desc = self.registry.connectors.get(connector)
        if desc is None:
            raise LookupError(f"no connector {connector!r} is installed")
        if desc.connection_schema is None:
            raise ValueError(
                f"connector {connector!r} takes no connection (it has no connection schema)"
            )
        problems = schema_errors(desc.connection_schema, values, f"connection {name!r}")
        if problems:
            raise ValueError("; ".join(problems))
        secret_names = secret_fields(desc.connection_schema)
        secrets = {k: v for k, v in values.items() if k in secret_names}
        plain = {k: v for k, v in values.items() if k not in secret_names}
        token = self.secrets.encrypt(secrets) if secrets else ""
        await self.db.write(
            lambda c: store.put_connection(c, self.workspace, name, connector, token, plain)
        )
