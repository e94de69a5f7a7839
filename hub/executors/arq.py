"""Queue mode: step jobs travel through Redis with arq; any ``hub worker`` runs them.

The only module that imports arq. Around arq's known gaps:

- arq silently drops a job whose id it still holds: ids are deterministic and unique per
  submission (run, step key, attempt, resubmission counter) and results are not kept.
- Jobs are serialised with msgpack, not pickle.
- The database decides what runs: a job is a hint, the claim in SQL makes it happen once,
  and a job lost with Redis is found again by the sweeper (the step is still ``queued``).
- arq keeps a killed worker's job locked for its timeout: the hub's own leases and sweeper
  decide when a step runs again, not arq's retries (``max_tries=1``, ``retry_jobs=False``).
- SIGTERM: stop taking jobs, let running steps finish within the grace period, then hand
  the rest back to ``queued`` with their attempt unchanged and submit them again.
- Priority: one queue per priority (``hub``, ``hub:high``, ``hub:low``); a worker process
  runs one arq worker per queue it serves, each with its own capacity.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import signal
from collections.abc import Sequence
from typing import Any

import msgspec
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.worker import Worker

from hub.executors.base import Executor, StepJob, StepRunner
from hub.settings import Settings

log = logging.getLogger("hub.executor.arq")
PRIORITIES = ("high", "default", "low")


def queue_for(settings: Settings, priority: str = "default") -> str:
    """The Redis queue name of a priority."""
    return settings.queue_name if priority == "default" else f"{settings.queue_name}:{priority}"


def _serialize(value: Any) -> bytes:
    return msgspec.msgpack.encode(value)


def _deserialize(data: bytes) -> Any:
    return msgspec.msgpack.decode(data)


def redis_settings(url: str) -> RedisSettings:
    """arq's connection settings from a Redis URL, with short retry for a restarting Redis."""
    settings = RedisSettings.from_dsn(url)
    settings.conn_retries = 60
    settings.conn_retry_delay = 1
    return settings


class ArqExecutor(Executor):
    """Submits step jobs to Redis; ``hub worker`` processes run them."""

    in_process = False

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pool: ArqRedis | None = None

    async def start(self, runner: StepRunner) -> None:
        """Connect to Redis."""
        self.pool = await create_pool(
            redis_settings(self.settings.redis_url),
            job_serializer=_serialize,
            job_deserializer=_deserialize,
            default_queue_name=self.settings.queue_name,
        )

    async def submit(self, jobs: Sequence[StepJob]) -> None:
        """Enqueue jobs; a Redis failure is logged, the sweeper submits them again later."""
        if self.pool is None or not jobs:
            return
        for job in jobs:
            defer = None
            if job.due_at is not None:
                defer = dt.datetime.fromtimestamp(job.due_at, dt.UTC)
            try:
                await self.pool.enqueue_job(
                    "run_step",
                    job.run_id,
                    job.key,
                    job.attempt,
                    job.resubmission,
                    _job_id=job.job_id,
                    _defer_until=defer,
                    _queue_name=queue_for(self.settings, job.priority),
                )
            except Exception as exc:  # Redis down: the database still holds the step
                log.warning(
                    "could not enqueue %s (%s); the sweeper will resubmit it", job.job_id, exc
                )

    async def stop(self, grace: float = 10.0) -> None:
        """Disconnect."""
        if self.pool is not None:
            await self.pool.aclose()
            self.pool = None


async def run_step(
    ctx: dict[str, Any], run_id: str, key: str, attempt: int, resubmission: int
) -> None:
    """The arq job: execute one step through the engine (never raises into arq)."""
    hub = ctx["hub"]
    try:
        await hub.engine.execute(StepJob(run_id, key, attempt, resubmission))
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("step %s of run %s failed inside the engine", key, run_id)


def _make_worker(hub: Any, priority: str, concurrency: int | None, burst: bool) -> Worker:
    settings: Settings = hub.settings
    return Worker(
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
        job_serializer=_serialize,
        job_deserializer=_deserialize,
        log_results=False,
    )


async def _serve_queue(
    hub: Any,
    priority: str,
    concurrency: int | None,
    burst: bool,
    stopping: asyncio.Event,
    current: dict[str, Worker],
) -> None:
    """Serve one queue; when Redis goes away, start a fresh arq worker once it is back."""
    delay = 0.5
    while not stopping.is_set():
        worker = _make_worker(hub, priority, concurrency, burst)
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
    loop = asyncio.get_running_loop()
    signals = stop is None
    stopping = stop or asyncio.Event()
    if signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
    current: dict[str, Worker] = {}
    mains = [
        asyncio.create_task(_serve_queue(hub, q, concurrency, burst, stopping, current))
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
    for main in mains:
        main.cancel()
    for worker in current.values():
        for task in worker.tasks.values():
            task.cancel()
        if worker.main_task is not None:
            worker.main_task.cancel()
    await asyncio.gather(*mains, return_exceptions=True)
    for worker in current.values():
        # close() gathers the job tasks we just cancelled: their CancelledError is expected.
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await worker.close()
    stopper.cancel()
    if signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
