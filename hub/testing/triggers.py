"""Running a hub's poll and subscribe triggers in a test.

:func:`poll_once` (``await poll_once(hub, flow_id)``) polls one published flow's trigger
now, as the trigger runner would on its schedule, stores the runs of the events with the new
cursor, and returns the new runs' ids; :func:`running_triggers` runs every published
flow's poll or subscribe trigger for the duration of an ``async with`` block.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from hub.runtime import Hub
from hub.triggers.runner import TriggerRunner, poll_once

__all__ = ["poll_once", "running_triggers"]


@contextlib.asynccontextmanager
async def running_triggers(
    hub: Hub, *, reconcile_interval: float = 0.05
) -> AsyncIterator[asyncio.Task[None]]:
    """Run the hub's trigger runner in a task while the block runs; cancel it on exit.

    Every published flow with a poll or subscribe trigger gets its trigger started (and
    restarted with back-off when it fails); the runner looks for newly published flows every
    ``reconcile_interval`` seconds. Yields the runner's task (awaiting it runs forever).
    """
    task = asyncio.create_task(TriggerRunner(hub, reconcile_interval=reconcile_interval).run())
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
