"""Runs the poll and subscribe triggers of published flows for the life of a hub process.

- **poll**: ``await trigger.poll(ctx, config, cursor) -> (events, new_cursor)`` every
  ``config.interval`` seconds (default: the trigger's ``interval``). The runs of the events
  and the new cursor are written in ONE transaction (``trigger_state``), so an event is
  neither lost nor started twice, whatever crashes when.
- **subscribe**: ``await trigger.subscribe(ctx, config, emit)`` is a long-lived consumer of a
  broker. It calls ``run_id = await emit(event)`` for each message, and ``emit`` returns only
  once the run is committed in the database: acknowledge the message after ``emit`` returns,
  and a hub killed between receive and record loses nothing (the broker redelivers).
  A consumer that raises is restarted with back-off. ``emit(event, dedup_key=...)`` with
  the broker's message id makes a redelivered message return the run it already started.

Both start their runs through :func:`hub.triggers.events.start_event_runs`.

The runner reconciles every few seconds with the published flows: a new version restarts its
trigger, an unpublished or disabled flow stops it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from hub.connectors import Trigger
from hub.db import flows as flow_store
from hub.db import trigger_state, webhook_keys
from hub.triggers.events import start_event_runs
from hub.triggers.parts import TriggerParts

log = logging.getLogger("hub.triggers")
CURSOR_KEY = "cursor"


class TriggerContext:
    """What a poll or subscribe trigger sees: its flow, connection, HTTP client and log."""

    def __init__(
        self,
        *,
        workspace_id: str,
        flow_id: str,
        connection: dict[str, Any] | None,
        hub: TriggerParts,
    ) -> None:
        self.workspace_id = workspace_id
        self.flow_id = flow_id
        self.connection = connection
        self.http = hub.http
        self.settings = hub.settings
        self.cache = hub.cache
        self.log = logging.getLogger(f"hub.trigger.{flow_id}")


def load_cursor(conn: Any, workspace_id: str, flow_id: str) -> Any:
    """The stored cursor of a flow's poll trigger (None before the first poll)."""
    state = trigger_state.load(conn, workspace_id, flow_id, CURSOR_KEY)
    return None if state is None else state.get("cursor")


def save_cursor(conn: Any, workspace_id: str, flow_id: str, cursor: Any) -> None:
    """Store a poll trigger's cursor (inside the transaction that starts its runs)."""
    trigger_state.save(conn, workspace_id, flow_id, CURSOR_KEY, {"cursor": cursor})


class TriggerRunner:
    """Keeps one task per published flow whose trigger is a poll or a subscribe trigger."""

    def __init__(self, hub: TriggerParts, reconcile_interval: float = 5.0) -> None:
        self.hub = hub
        self.reconcile_interval = reconcile_interval
        self._tasks: dict[tuple[str, str], tuple[int, asyncio.Task[None]]] = {}

    async def run(self) -> None:
        """Reconcile forever (until cancelled); stop every trigger task on the way out."""
        try:
            while True:
                try:
                    await self.reconcile()
                except Exception:
                    log.exception("trigger reconcile failed")
                await asyncio.sleep(self.reconcile_interval)
        finally:
            for _version, task in self._tasks.values():
                task.cancel()
            for _version, task in self._tasks.values():
                await asyncio.gather(task, return_exceptions=True)
            self._tasks.clear()

    async def reconcile(self) -> None:
        """Start, restart or stop trigger tasks to match the published flows."""
        wanted: dict[tuple[str, str], tuple[int, dict[str, Any], Trigger]] = {}
        for flow in await self.hub.db.read(flow_store.published_flows):
            spec = flow["document"].get("trigger") or {}
            trigger = self.hub.registry.triggers.get(spec.get("type", ""))
            if trigger is not None and trigger.kind in ("poll", "subscribe"):
                key = (flow["workspace_id"], flow["id"])
                wanted[key] = (flow["published_version"], spec, trigger)
        for key, (version, task) in list(self._tasks.items()):
            if key not in wanted or wanted[key][0] != version or task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                del self._tasks[key]
        for key, (version, spec, trigger) in wanted.items():
            if key not in self._tasks:
                coro = self._run_trigger(key[0], key[1], version, spec, trigger)
                self._tasks[key] = (version, asyncio.create_task(coro))

    async def context_for(
        self, workspace_id: str, flow_id: str, spec: dict[str, Any]
    ) -> TriggerContext:
        """The context a flow's poll or subscribe trigger runs with (its connection decrypted)."""
        connection = None
        if spec.get("connection"):
            connection, _ = await self.hub.engine.connection_values(
                workspace_id, spec["connection"]
            )
        return TriggerContext(
            workspace_id=workspace_id, flow_id=flow_id, connection=connection, hub=self.hub
        )

    async def _run_trigger(
        self, workspace_id: str, flow_id: str, version: int, spec: dict[str, Any], trigger: Trigger
    ) -> None:
        delay = 1.0
        while True:
            try:
                ctx = await self.context_for(workspace_id, flow_id, spec)
                config = spec.get("config") or {}
                if trigger.kind == "poll":
                    await self._poll_forever(ctx, version, config, trigger)
                else:
                    assert trigger.subscribe is not None
                    emit = self._emitter(workspace_id, flow_id, version, spec["type"])
                    await trigger.subscribe(ctx, config, emit)
                delay = 1.0
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("trigger of flow %s failed; restarting in %.0fs", flow_id, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)

    def _emitter(
        self, workspace_id: str, flow_id: str, version: int, trigger_type: str
    ) -> Callable[..., Awaitable[str]]:
        async def emit(event: Any, dedup_key: str | None = None) -> str:
            return await emit_event(
                self.hub, workspace_id, flow_id, version, trigger_type, event, dedup_key
            )

        return emit

    async def _poll_forever(
        self, ctx: TriggerContext, version: int, config: dict[str, Any], trigger: Trigger
    ) -> None:
        assert trigger.poll is not None
        interval = float(config.get("interval") or trigger.interval)
        ws, flow_id = ctx.workspace_id, ctx.flow_id
        while True:
            cursor = await self.hub.db.read(
                functools.partial(load_cursor, workspace_id=ws, flow_id=flow_id)
            )
            events, new_cursor = await trigger.poll(ctx, config, cursor)
            if events or new_cursor != cursor:
                await start_event_runs(
                    self.hub.engine,
                    ws,
                    flow_id,
                    events,
                    version=version,
                    trigger_type=f"poll:{trigger.name}",
                    also=functools.partial(
                        save_cursor, workspace_id=ws, flow_id=flow_id, cursor=new_cursor
                    ),
                )
            await asyncio.sleep(interval)


async def emit_event(
    hub: TriggerParts,
    workspace_id: str,
    flow_id: str,
    version: int,
    trigger_type: str,
    event: Any,
    dedup_key: str | None = None,
) -> str:
    """Start the run of one event; return its id once it is committed.

    With ``dedup_key`` (a broker's message id, a stream sequence ...), the key is stored in
    the transaction that creates the run, so an event delivered again (a hub killed after
    recording the run but before its acknowledgement reached the broker) returns the run
    that exists instead of starting a second one.
    """
    keys = [] if dedup_key is None else [(webhook_keys.EVENT_PREFIX + dedup_key, "")]
    started = await start_event_runs(
        hub.engine,
        workspace_id,
        flow_id,
        [event],
        version=version,
        trigger_type=trigger_type,
        keys=keys,
    )
    if started.run_ids:
        return started.run_ids[0]
    return next(iter(started.found.values())).run_id


async def poll_once(hub: TriggerParts, flow_id: str) -> list[str]:
    """Poll a flow's trigger once now (for tests and ``hub triggers poll``); return run ids."""
    ws = hub.workspace
    found = await hub.db.read(lambda c: flow_store.published_document(c, ws, flow_id))
    if found is None:
        raise LookupError(f"flow {flow_id!r} is not published")
    version, document = found
    spec = document.get("trigger") or {}
    trigger = hub.registry.triggers.get(spec.get("type", ""))
    if trigger is None or trigger.poll is None:
        raise LookupError(f"flow {flow_id!r} has no poll trigger")
    runner = TriggerRunner(hub)
    ctx = await runner.context_for(ws, flow_id, spec)
    cursor = await hub.db.read(functools.partial(load_cursor, workspace_id=ws, flow_id=flow_id))
    events, new_cursor = await trigger.poll(ctx, spec.get("config") or {}, cursor)
    started = await start_event_runs(
        hub.engine,
        ws,
        flow_id,
        events,
        version=version,
        trigger_type=f"poll:{trigger.name}",
        also=functools.partial(save_cursor, workspace_id=ws, flow_id=flow_id, cursor=new_cursor),
    )
    return started.run_ids
