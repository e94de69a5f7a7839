"""The composition root: settings, plugins, database, executor and engine, built once.

:class:`Hub` builds the parts and starts and stops them, with the background services
(the sweeper and heartbeat; with :meth:`Hub.start_triggers`, the scheduler, the poll and
subscribe triggers and the OAuth2 refresher; with :meth:`Hub.work`, a queue worker). It
holds no face logic: the faces act through the workspace services (:mod:`hub.services`).
Its convenience methods (``save_flow``, ``start_run``, ``set_connection`` ...) each delegate
to the default workspace's service acting as ``system``, so that code holding a hub (tests,
benchmarks, plugins' tests) goes the same validated way as the faces, and its changes are
audited as ``system`` (its run starts are not: see :mod:`hub.services.runs`).
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
from hub.db import accounts
from hub.db.database import Database
from hub.db.flows import SavedVersion
from hub.db.migrate import upgrade
from hub.engine import Engine
from hub.engine.executors.base import Executor
from hub.engine.executors.local import LocalExecutor
from hub.expressions import Expressions, Limits
from hub.flows import Flow
from hub.plugins import build_registry, call_observers, collect_mapping, make_plugin_manager
from hub.security.netguard import make_http_client
from hub.security.secrets import SecretBox, load_keys
from hub.services import oauth2, system
from hub.services.base import SYSTEM
from hub.services.workspace import WorkspaceHub
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
                max_render_work=s.max_render_work,
                max_render_bytes=s.max_render_bytes,
                max_render_seconds=s.max_render_seconds,
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
        if self.redis is not None:
            from hub.engine.events import EventBus

            self.engine.events = EventBus(self.redis, self.engine.boot_id)
        self.workspace = s.workspace
        self._service: WorkspaceHub | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False

    @property
    def service(self) -> WorkspaceHub:
        """The workspace services of ``self.workspace`` acting as ``system`` (an owner): what
        the convenience methods below delegate to."""
        found = self._service
        if found is None or found.workspace != self.workspace:
            found = self._service = WorkspaceHub(self, self.workspace, actor=SYSTEM, role="owner")
        return found

    @property
    def boot_id(self) -> str:
        """This process's id among the hub's processes (it owns the leases of its steps)."""
        return self.engine.boot_id

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
        await self.db.write(lambda c: accounts.ensure_workspace(c, self.workspace))
        if verify_key:
            await self.verify_secret_key()
        if not execute:
            return self
        await self.engine.start()
        self._started = True
        await self.engine.sweep(startup=True)
        if self.l2 is not None:
            self._tasks.append(asyncio.create_task(self.l2.listen(self.cache)))
        if self.engine.events is not None:  # other processes' run events, to live views
            self._tasks.append(asyncio.create_task(self.engine.events.listen(self.engine.receive)))
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
            await asyncio.sleep(self.settings.heartbeat_interval)
            try:
                await self.engine.heartbeat()
            except Exception:
                log.exception("heartbeat failed")

    def start_triggers(self) -> None:
        """Start what ``hub serve`` runs besides the engine: the scheduler, the poll and
        subscribe triggers, and the OAuth2 token refresher (for the life of the hub)."""
        from hub.triggers.runner import TriggerRunner
        from hub.triggers.schedule import run_scheduler

        self.add_background(run_scheduler(self))
        self.add_background(TriggerRunner(self).run())
        self.add_background(oauth2.refresher(self))

    async def work(
        self, queues: list[str], *, concurrency: int | None = None, burst: bool = False
    ) -> None:
        """Run steps from the Redis queues (queue mode) until stopped, or until they are
        empty with ``burst``; ValueError names an unknown queue."""
        from hub.engine.executors.arq import PRIORITIES, run_worker

        unknown = [q for q in queues if q not in PRIORITIES]
        if unknown:
            raise ValueError(f"unknown queue(s) {unknown}; use {PRIORITIES}")
        await run_worker(self, queues=queues, concurrency=concurrency, burst=burst)

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
        self.engine.renders.close()  # a render still in a thread ends by its budget
        await self.http.aclose()
        if self.redis is not None:
            if self.engine.events is not None:
                await self.engine.events.flush()
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

    async def verify_secret_key(self, sample: int = system.KEY_CHECK_SAMPLE) -> int:
        """Check that the configured key decrypts the stored secrets (see
        :func:`hub.services.system.verify_secret_key`); return how many were checked."""
        return await system.verify_secret_key(self, sample)

    # -- the default workspace, acting as ``system`` ----------------------------------------

    async def validate_flow(self, document: dict[str, Any]) -> Flow:
        """Validate a document against the installed actions and stored connections."""
        return await self.service.validate(document)

    async def save_flow(
        self,
        document: dict[str, Any],
        *,
        source: str = "",
        author: str = "",
        message: str = "",
        publish: bool = False,
    ) -> SavedVersion:
        """Validate and save a document as a new version (if it changed); maybe publish it."""
        return await self.service.save_flow(
            document, source=source, author=author or None, message=message, publish=publish
        )

    async def publish_flow(self, flow_id: str, version: int) -> None:
        """Publish a version of a flow (rolling back is publishing an older one)."""
        await self.service.publish(flow_id, version)

    async def list_flows(self) -> list[dict[str, Any]]:
        """Every flow of the workspace."""
        return await self.service.list_flows()

    async def flow_document(self, flow_id: str, version: int | None = None) -> dict[str, Any]:
        """The document of a version (the published one, else the latest, by default)."""
        return await self.service.flow_document(flow_id, version)

    async def start_run(
        self,
        flow_id: str,
        input: Any = None,
        *,
        version: int | None = None,
        trigger_type: str = "manual",
    ) -> str:
        """Start a run of a flow (its published version unless ``version``)."""
        return await self.service.start_run(flow_id, input, version, trigger_type=trigger_type)

    async def cancel_run(self, run_id: str) -> bool:
        """Cancel a run and its child runs; False if it had already finished."""
        return await self.service.cancel_run(run_id)

    async def wait_for_run(self, run_id: str, timeout: float | None = None) -> dict[str, Any]:
        """Wait for a run's final status (a run of any workspace: waiting changes nothing)
        and return its record."""
        return await self.engine.wait_for_run(run_id, timeout)

    async def get_run(self, run_id: str, *, with_steps: bool = True) -> dict[str, Any]:
        """A run record, with its step attempts."""
        return await self.service.get_run(run_id, with_steps=with_steps)

    async def list_runs(self, **filters: Any) -> list[dict[str, Any]]:
        """Runs of the workspace, newest first (filters: flow_id, status, since, until,
        cursor, limit; see :meth:`hub.services.runs.RunsService.runs_page`)."""
        return await self.service.runs_page(**filters)

    async def connection_values(self, name: str, workspace_id: str | None = None) -> dict[str, Any]:
        """A connection's settings with its secrets decrypted (for triggers and tests)."""
        service = self.service
        if workspace_id is not None and workspace_id != self.workspace:
            service = WorkspaceHub(self, workspace_id, actor=SYSTEM, role="owner")
        return (await service.connection_values(name))[0]

    async def set_connection(self, name: str, connector: str, values: dict[str, Any]) -> None:
        """Create or replace a connection; secret fields (by its schema) are encrypted."""
        await self.service.put_connection(name, connector, values)
