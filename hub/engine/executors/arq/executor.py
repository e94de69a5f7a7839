"""The arq executor: submits step jobs to Redis queues, where ``hub worker`` processes take
them (:mod:`hub.engine.executors.arq.worker`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from arq import create_pool
from arq.connections import ArqRedis
from arq.constants import job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from arq.worker import Worker

from hub.db.runstate.types import StepJob
from hub.engine.executors.arq.queues import (
    EXPIRES_EXTRA_MS,
    deserialize,
    queue_for,
    redis_settings,
    serialize,
)
from hub.engine.executors.arq.wake import wake_channel
from hub.engine.executors.arq.worker import WakingWorker
from hub.engine.executors.base import Executor, StepRunner
from hub.settings import Settings

log = logging.getLogger("hub.executor.arq")

WITHDRAWN_KEEP_MS = 60_000  # a withdrawn job's key, for a worker that read its id already

# arq's enqueue_job for many jobs at once, then the wake-ups: per job, unless its id is
# held (arq drops an id whose job or result key exists), the job's key and its entry in
# the queue's sorted set (score: when it is due, in ms). KEYS: job key, result key, queue
# per job; ARGV: the count, then data, expiry (ms), score, id per job, then the channels.
ENQUEUE = """
local n = tonumber(ARGV[1])
for i = 0, n - 1 do
    local job_key, result_key, queue = KEYS[i * 3 + 1], KEYS[i * 3 + 2], KEYS[i * 3 + 3]
    local data, px, score, id = ARGV[i * 4 + 2], ARGV[i * 4 + 3], ARGV[i * 4 + 4], ARGV[i * 4 + 5]
    if redis.call('EXISTS', job_key, result_key) == 0 then
        redis.call('PSETEX', job_key, px, data)
        redis.call('ZADD', queue, score, id)
    end
end
for i = n * 4 + 2, #ARGV do
    redis.call('PUBLISH', ARGV[i], '')
end
return n
"""


class ArqExecutor(Executor):
    """Submits step jobs to Redis; ``hub worker`` processes run them."""

    in_process = False

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pool: ArqRedis | None = None
        self._enqueue: Any = None
        # The arq workers of this process (``hub worker``), by priority: their jobs count in
        # the process's load.
        self.workers: dict[str, Worker] = {}
        # Withdrawals asked for in one turn of the event loop go in one pipeline.
        self._withdrawals: list[StepJob] = []
        self._withdrawn: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def load(self) -> int:
        """The jobs this process's arq workers have started whose step has not ended."""
        return sum(
            worker.load() if isinstance(worker, WakingWorker) else worker.job_counter
            for worker in self.workers.values()
        )

    async def start(self, runner: StepRunner) -> None:
        """Connect to Redis."""
        self.pool = await create_pool(
            redis_settings(self.settings.redis_url),
            job_serializer=serialize,
            job_deserializer=deserialize,
            default_queue_name=self.settings.queue_name,
        )
        self._enqueue = self.pool.register_script(ENQUEUE)

    async def submit(self, jobs: Sequence[StepJob]) -> None:
        """Enqueue jobs and wake the workers of their queues, in one round trip to Redis.

        A Redis failure is logged: the database still holds the steps, and the sweeper
        submits them again.
        """
        if self.pool is None or not jobs:
            return
        now_ms = int(time.time() * 1000)
        keys: list[str] = []
        args: list[Any] = [len(jobs)]
        channels: list[str] = []
        for job in jobs:
            score = now_ms if job.due_at is None else int(job.due_at * 1000)
            queue = queue_for(self.settings, job.priority)
            keys += [job_key_prefix + job.job_id, result_key_prefix + job.job_id, queue]
            data = serialize_job(
                "run_step",
                (job.run_id, job.key, job.attempt, job.resubmission),
                {},
                None,
                now_ms,
                serializer=serialize,
            )
            args += [data, max(score - now_ms, 0) + EXPIRES_EXTRA_MS, score, job.job_id]
            if wake_channel(queue) not in channels:
                channels.append(wake_channel(queue))
        try:
            await self._enqueue(keys=keys, args=args + channels)
        except Exception as exc:  # Redis down: the database still holds the steps
            log.warning(
                "could not enqueue %d jobs (%s); the sweeper will resubmit them", len(jobs), exc
            )

    async def withdraw(self, jobs: Sequence[StepJob]) -> None:
        """Take jobs out of their queues; return when they are out.

        The withdrawals of one turn of the event loop (the items of one batch of
        completions each withdraw the job of the sibling they took) go in one pipeline,
        one round trip. Their keys are left to expire within a minute rather than deleted:
        a worker that read a job's id just before would otherwise log it as expired;
        finding it out of the queue, arq passes it over as finished.
        """
        if self.pool is None or not jobs:
            return
        self._withdrawals.extend(jobs)
        if self._withdrawn is None:
            self._withdrawn = asyncio.get_running_loop().create_future()
            task = asyncio.get_running_loop().create_task(self._withdraw_together(self._withdrawn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await asyncio.shield(self._withdrawn)  # a cancelled caller leaves the rest be

    async def _withdraw_together(self, done: asyncio.Future[None]) -> None:
        await asyncio.sleep(0)  # the withdrawals asked for in this turn join
        jobs, self._withdrawals, self._withdrawn = self._withdrawals, [], None
        try:
            if self.pool is not None:
                async with self.pool.pipeline(transaction=False) as pipe:
                    for job in jobs:
                        pipe.zrem(queue_for(self.settings, job.priority), job.job_id)
                        pipe.pexpire(job_key_prefix + job.job_id, WITHDRAWN_KEEP_MS)
                    await pipe.execute()
        except Exception as exc:  # Redis down: a job left in the queue is harmless
            log.debug("could not withdraw %d jobs (%s)", len(jobs), exc)
        finally:
            done.set_result(None)

    async def stop(self, grace: float = 10.0) -> None:
        """Disconnect."""
        if self.pool is not None:
            await self.pool.aclose()
            self.pool = None
