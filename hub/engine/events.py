"""Run and step events across processes: Redis pub/sub in queue mode.

The engine tells this process's watchers of every change it makes to a run or a step
attempt (:meth:`hub.engine.Engine.emit`). In queue mode the steps run in ``hub worker``
processes, so the live views of the API processes would never hear of them: with a
:class:`EventBus` attached, the engine also publishes each event on its run's channel
(``hub:events:<run id>``), and each process keeps ONE subscription (one connection,
:meth:`EventBus.listen`) to the channels of the runs its live views watch
(:meth:`EventBus.watch`), handing their events to its own watchers. Nothing polls: a lost
Redis loses events, not state, and the live views fall back to reading the database (see
:mod:`hub.services.live`), faster while :attr:`EventBus.connected` is false.

Publishing costs a worker about 6-15 us of CPU an event (encoding, the command), a tenth
of a step's own cost: so a run nobody watches is not published for a while. A PUBLISH that
reached no subscriber makes its run quiet for :data:`QUIET_SECONDS` (its events dropped on
the spot); a live view that starts watching a run reads it once more after that long
(:func:`hub.services.live.follow_run`), for what a quiet publisher dropped meanwhile.

An event is published as JSON with its ``origin`` (the engine's boot id: a process skips its
own, which its watchers heard already). A step event carries its attempt's input and output
as stored (redacted); one over :data:`MAX_EVENT_BYTES` goes without them and says
``"trimmed": true`` (a watcher reads that attempt from the database).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

import msgspec

log = logging.getLogger("hub.engine.events")

CHANNEL = "hub:events"  # always subscribed (it keeps the connection listening)
PREFIX = "hub:events:"  # + a run id: that run's events
QUIET_SECONDS = 0.5  # a run whose event reached nobody is not published for this long
MAX_QUIET = 10_000  # runs remembered as quiet before the expired ones are forgotten
MAX_EVENT_BYTES = 64_000  # a bigger step event goes without its input and output
RECONNECT_SECONDS = 1.0  # the wait before subscribing again after Redis failed


def encode_event(event: dict[str, Any], origin: str) -> bytes:
    """An event as the bytes published: JSON with its origin, trimmed when too big."""
    body = {**event, "origin": origin}
    data = msgspec.json.encode(body, enc_hook=str)
    if len(data) > MAX_EVENT_BYTES:
        body.pop("input", None)
        body.pop("output", None)
        body["trimmed"] = True
        data = msgspec.json.encode(body, enc_hook=str)
    return data


class EventBus:
    """Publishes this process's events on Redis and hands the watched runs' events of other
    processes to a callback.

    :meth:`publish` is synchronous (the engine's listeners are): it queues the event, and one
    task sends what is queued in a single pipeline, so a burst of events costs one round
    trip, not one each.
    """

    def __init__(self, redis: Any, origin: str, prefix: str = PREFIX) -> None:
        self.redis = redis
        self.origin = origin
        self.prefix = prefix
        self.connected = False  # the subscription is up (events of other processes arrive)
        self._queued: list[tuple[str, bytes]] = []
        self._sender: asyncio.Task[None] | None = None
        self._quiet: dict[str, float] = {}  # run id -> until when its events are dropped
        self._watched: collections.Counter[str] = collections.Counter()
        self._pubsub: Any = None
        self._changes: set[asyncio.Task[Any]] = set()

    # -- publishing -------------------------------------------------------------------------

    def wants(self, run_id: str) -> bool:
        """Whether an event of ``run_id`` would be published now (its run is not quiet): the
        engine builds no event that would be dropped."""
        until = self._quiet.get(run_id)
        return until is None or time.monotonic() >= until

    def publish(self, event: dict[str, Any]) -> None:
        """Queue an event for the other processes (sent at the next turn of the loop), unless
        its run is quiet (nobody watched it a moment ago)."""
        run_id = str(event.get("run_id") or "")
        until = self._quiet.get(run_id)
        if until is not None:
            if time.monotonic() < until:
                return
            del self._quiet[run_id]
        try:
            self._queued.append((run_id, encode_event(event, self.origin)))
        except (TypeError, ValueError):
            log.exception("an event could not be encoded: %s", event.get("type"))
            return
        if self._sender is None or self._sender.done():
            try:
                self._sender = asyncio.get_running_loop().create_task(self._send())
            except RuntimeError:  # no loop (a synchronous caller): nobody is watching live
                self._queued.clear()

    async def _send(self) -> None:
        while self._queued:
            batch, self._queued = self._queued, []
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for run_id, data in batch:
                        pipe.publish(self.prefix + run_id, data)
                    heard = await pipe.execute()
            except asyncio.CancelledError:
                raise
            except Exception:
                # Live views read the database while events are lost: nothing hangs on them.
                log.warning("could not publish %d run event(s) on Redis", len(batch))
                continue
            self._hush([run_id for (run_id, _), n in zip(batch, heard, strict=True) if not n])

    def _hush(self, unheard: list[str]) -> None:
        if not unheard:
            return
        now = time.monotonic()
        if len(self._quiet) > MAX_QUIET:
            self._quiet = {k: v for k, v in self._quiet.items() if v > now}
        for run_id in unheard:
            self._quiet[run_id] = now + QUIET_SECONDS

    async def flush(self) -> None:
        """Wait until what is queued is sent (at stop)."""
        sender = self._sender
        if sender is not None and not sender.done():
            with contextlib.suppress(Exception):
                await sender

    # -- subscribing ------------------------------------------------------------------------

    def subscribed(self, run_id: str) -> bool:
        """Whether the subscription to ``run_id``'s channel has been asked of Redis."""
        pubsub = self._pubsub
        return pubsub is not None and (self.prefix + run_id).encode() in pubsub.channels

    def watch(self, run_id: str) -> None:
        """Receive the events other processes publish of ``run_id`` (until as many
        :meth:`unwatch` calls)."""
        self._watched[run_id] += 1
        if self._watched[run_id] == 1:
            self._change("subscribe", run_id)

    def unwatch(self, run_id: str) -> None:
        """Undo one :meth:`watch`."""
        self._watched[run_id] -= 1
        if self._watched[run_id] <= 0:
            del self._watched[run_id]
            self._change("unsubscribe", run_id)

    def _change(self, command: str, run_id: str) -> None:
        pubsub = self._pubsub
        if pubsub is None:  # not connected: listen() subscribes to what is watched
            return
        change: Coroutine[Any, Any, Any] = getattr(pubsub, command)(self.prefix + run_id)
        try:
            task = asyncio.get_running_loop().create_task(change)
        except RuntimeError:
            change.close()
            return
        self._changes.add(task)
        task.add_done_callback(self._changed)

    def _changed(self, task: asyncio.Task[Any]) -> None:
        self._changes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # the connection failed: listen() subscribes again to everything watched
            log.warning("run events: a subscription change failed")

    async def listen(self, deliver: Callable[[dict[str, Any]], None]) -> None:
        """Hand the events other processes publish of the watched runs to ``deliver``, for
        the life of the process: one subscription, made again (after
        :data:`RECONNECT_SECONDS`) when Redis fails."""
        while True:
            pubsub = self.redis.pubsub()
            try:
                self._pubsub = pubsub
                await pubsub.subscribe(CHANNEL, *(self.prefix + r for r in list(self._watched)))
                self.connected = True
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    try:
                        event = msgspec.json.decode(message["data"])
                    except msgspec.DecodeError:
                        continue
                    if isinstance(event, dict) and event.pop("origin", None) != self.origin:
                        deliver(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("run events: the Redis subscription failed; subscribing again")
            finally:
                self.connected = False
                self._pubsub = None
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(RECONNECT_SECONDS)
