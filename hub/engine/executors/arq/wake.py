"""The wake channel: the pub/sub messages between the processes of a queue.

Every submission publishes on the queue's wake channel (``<queue>:wake``), so an idle
worker waits for that instead of polling; an idle worker asks the queue's busy ones for
work on ``<queue>:hungry``, and each sheds a share of its runs' next steps
(``Engine.shed``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("hub.executor.arq")


def wake_channel(queue: str) -> str:
    """The pub/sub channel that wakes the idle workers of a queue."""
    return f"{queue}:wake"


def hungry_channel(queue: str) -> str:
    """The pub/sub channel where an idle worker of a queue asks the others for work."""
    return f"{queue}:hungry"


HUNGRY_EVERY = 0.05  # an idle worker asks for work at most this often
SHED_WINDOW = 0.05  # seconds a busy worker sends successors through the queue when asked


async def listen_for_wakes(
    hub: Any, wakes: dict[str, asyncio.Event], workers: Callable[[], int]
) -> None:
    """Set a queue's event whenever its wake channel carries a message, and shed work when
    an idle worker of the queue asks for it (its share among the queue's ``workers``), for
    the worker's life; after a lost connection, subscribe again (meanwhile the idle poll
    covers)."""
    channels = {wake_channel(queue).encode(): event for queue, event in wakes.items()}
    hungry = {hungry_channel(queue).encode() for queue in wakes}
    while True:
        pubsub = hub.redis.pubsub()
        try:
            await pubsub.subscribe(*channels, *hungry)
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                event = channels.get(message["channel"])
                if event is not None:
                    event.set()
                elif message["channel"] in hungry:  # (this process's own: it runs nothing)
                    hub.engine.shed(1 / max(2, workers()), SHED_WINDOW)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.debug("wake channel lost (%s); subscribing again", exc)
            for event in channels.values():
                event.set()  # poll once now: a wake-up may have been missed
            await asyncio.sleep(1.0)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
