"""A worker process's queues: one arq worker per priority queue it serves, the wake channel's
listener, and the graceful stop (``hub worker``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence
from typing import Any

from arq.worker import Worker

from hub.engine.executors.arq.executor import ArqExecutor
from hub.engine.executors.arq.queues import deserialize, queue_for, redis_settings, serialize
from hub.engine.executors.arq.wake import listen_for_wakes
from hub.engine.executors.arq.worker import WakingWorker, run_step
from hub.settings import Settings

log = logging.getLogger("hub.executor.arq")


def _make_worker(
    hub: Any, priority: str, concurrency: int | None, burst: bool, wake: asyncio.Event
) -> Worker:
    settings: Settings = hub.settings
    return WakingWorker(
        wake=wake,
        want_idle=hub.engine.want_idle,
        idle_poll=settings.queue_idle_poll,
        room=hub.engine.room,
        capacity=lambda: hub.engine.capacity,
        functions=[run_step],
        queue_name=queue_for(settings, priority),
        redis_settings=redis_settings(settings.redis_url),
        ctx={"hub": hub},
        burst=burst,
        handle_signals=False,
        max_jobs=concurrency or settings.worker_concurrency,
        job_timeout=86_400,
        keep_result=0,
        max_tries=1,
        retry_jobs=False,
        poll_delay=settings.queue_poll_delay,
        job_serializer=serialize,
        job_deserializer=deserialize,
        log_results=False,
    )


async def _serve_queue(
    hub: Any,
    priority: str,
    concurrency: int | None,
    burst: bool,
    stopping: asyncio.Event,
    current: dict[str, Worker],
    wake: asyncio.Event,
) -> None:
    """Serve one queue; when Redis goes away, start a fresh arq worker once it is back."""
    delay = 0.5
    while not stopping.is_set():
        worker = _make_worker(hub, priority, concurrency, burst, wake)
        current[priority] = worker
        try:
            await worker.async_run()
            if burst:
                return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("queue %s: lost Redis (%s); reconnecting in %.1fs", priority, exc, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)


async def run_worker(
    hub: Any,
    *,
    queues: Sequence[str] = ("default",),
    concurrency: int | None = None,
    burst: bool = False,
    stop: asyncio.Event | None = None,
) -> None:
    """Run arq workers (one per priority queue) for a started hub until SIGTERM/SIGINT
    (or until ``stop`` is set, when given: then no signal handler is installed).

    On the signal: stop taking jobs, wait up to ``shutdown_grace`` seconds for running steps,
    hand the rest back (their attempt unchanged) and submit them again.
    """
    settings: Settings = hub.settings
    if concurrency:
        hub.engine.capacity = concurrency
    await hub.db.open_pool()
    loop = asyncio.get_running_loop()
    signals = stop is None
    stopping = stop or asyncio.Event()
    if signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
    current: dict[str, Worker] = {}
    if isinstance(hub.executor, ArqExecutor):
        hub.executor.workers = current  # their jobs count in the process's load
    wakes = {q: asyncio.Event() for q in queues}
    listener = asyncio.create_task(
        listen_for_wakes(
            hub,
            {queue_for(settings, q): wakes[q] for q in queues},
            lambda: max((getattr(w, "workers", 1) for w in current.values()), default=1),
        )
    )
    mains = [
        asyncio.create_task(_serve_queue(hub, q, concurrency, burst, stopping, current, wakes[q]))
        for q in queues
    ]
    stopper = asyncio.create_task(stopping.wait())
    waiting: list[asyncio.Future[Any]] = [stopper]
    if burst:
        waiting.append(asyncio.ensure_future(asyncio.gather(*mains)))
    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    for worker in current.values():
        worker.allow_pick_jobs = False
    if stopping.is_set():
        log.info("stopping: waiting up to %ss for running steps", settings.shutdown_grace)
        await hub.engine.drain(settings.shutdown_grace)
        handed = await hub.engine.hand_back()
        if handed:
            log.info("handed %d running steps back to the queue", handed)
    listener.cancel()
    for main in mains:
        main.cancel()
    for worker in current.values():
        for task in worker.tasks.values():
            task.cancel()
        if worker.main_task is not None:
            worker.main_task.cancel()
    await asyncio.gather(listener, *mains, return_exceptions=True)
    for worker in current.values():
        if isinstance(worker, WakingWorker) and worker._pool is not None:
            with contextlib.suppress(Exception):
                await worker.leave()
        # close() gathers the job tasks we just cancelled: their CancelledError is expected.
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await worker.close()
    stopper.cancel()
    if signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
