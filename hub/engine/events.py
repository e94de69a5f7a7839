"""Run and step events across processes: Redis pub/sub in queue mode.

The engine tells this process's listeners of every change it makes to a run or a step
attempt (:meth:`hub.engine.Engine.emit`). In queue mode the steps run in ``hub worker``
processes, so the live views of the API processes would never hear of them: with a
:class:`EventBus` attached, the engine also publishes each event on ONE Redis channel, and
each process keeps ONE subscription to it (:meth:`EventBus.listen`) that hands the events
of the other processes to its own listeners. Nothing polls: a lost Redis loses events, not
state, and the live views fall back to reading the database (see
:mod:`hub.services.live`), faster while :attr:`EventBus.connected` is false.

An event is published as JSON with its ``origin`` (the engine's boot id: a process skips its
own, which its listeners heard already). A step event carries its attempt's input and output
as stored (redacted); one over :data:`MAX_EVENT_BYTES` goes without them and says
``"trimmed": true`` (a watcher reads that attempt from the database).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import msgspec

log = logging.getLogger("hub.engine.events")

CHANNEL = "hub:events"
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
    """Publishes this process's events on Redis and hands other processes' to a callback.

    :meth:`publish` is synchronous (the engine's listeners are): it queues the event, and one
    task sends what is queued in a single pipeline, so a burst of events costs one round
    trip, not one each.
    """

    def __init__(self, redis: Any, origin: str, channel: str = CHANNEL) -> None:
        self.redis = redis
        self.origin = origin
        self.channel = channel
        self.connected = False  # the subscription is up (events of other processes arrive)
        self._queued: list[bytes] = []
        self._sender: asyncio.Task[None] | None = None

    def publish(self, event: dict[str, Any]) -> None:
        """Queue an event for the other processes (sent at the next turn of the loop)."""
        try:
            self._queued.append(encode_event(event, self.origin))
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
                    for data in batch:
                        pipe.publish(self.channel, data)
                    await pipe.execute()
            except asyncio.CancelledError:
                raise
            except Exception:
                # Live views read the database while events are lost: nothing hangs on them.
                log.warning("could not publish %d run event(s) on Redis", len(batch))

    async def flush(self) -> None:
        """Wait until what is queued is sent (at stop)."""
        sender = self._sender
        if sender is not None and not sender.done():
            with contextlib.suppress(Exception):
                await sender

    async def listen(self, deliver: Callable[[dict[str, Any]], None]) -> None:
        """Hand the events of other processes to ``deliver``, for the life of the process:
        one subscription, subscribed again (after :data:`RECONNECT_SECONDS`) when Redis
        fails."""
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self.channel)
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
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(RECONNECT_SECONDS)
