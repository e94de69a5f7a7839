"""The worker: arq's ``Worker``, reworked to take jobs a chunk at a time, run them itself,
finish them together, and poll only while it finds work (idle, it waits to be woken).

It overrides and calls private methods and attributes of arq's ``Worker`` (see
``tests/test_arq_contract.py``, which fails when arq changes them; arq is pinned to the
minor version they were written against).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

from arq import create_pool
from arq.constants import in_progress_key_prefix, job_key_prefix
from arq.jobs import deserialize_job_raw
from arq.worker import Worker

from hub.db.runstate.types import StepJob
from hub.engine.executors.arq.wake import HUNGRY_EVERY, hungry_channel
from hub.engine.executors.base import cancel_requested

log = logging.getLogger("hub.executor.arq")

# A worker's poll takes a chunk of jobs in one call. KEYS: the queue, then per job its
# in-progress key and its key; ARGV: now (ms), the in-progress timeout (ms), the length of
# a job key's prefix (what follows is the job's id, its member in the queue). Per job, two
# replies: 0 and "" when another worker holds it; -1 and "" when it has left the queue or
# is not due (its in-progress key, just set, deleted again); else its score and its data
# ("" when its key has expired).
TAKE = """
local queue, now, px, prefix = KEYS[1], tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local out = {}
for i = 2, #KEYS, 2 do
    local id = string.sub(KEYS[i + 1], prefix + 1)
    if redis.call('SET', KEYS[i], '1', 'PX', px, 'NX') then
        local score = redis.call('ZSCORE', queue, id)
        if score and tonumber(score) <= now then
            out[#out + 1] = score
            out[#out + 1] = redis.call('GET', KEYS[i + 1]) or ''
        else
            redis.call('DEL', KEYS[i])
            out[#out + 1] = -1
            out[#out + 1] = ''
        end
    else
        out[#out + 1] = 0
        out[#out + 1] = ''
    end
end
return out
"""


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
    finally:
        worker = ctx.get("worker")
        if isinstance(worker, WakingWorker):
            worker.stepped.add(ctx["job_id"])  # its slot is free while the job is finished
        hub.engine.step_ended()


PRESENCE_TTL = 10.0  # a worker not seen in its queue's presence set for this long is gone
PRESENCE_EVERY = 1.0  # how often a polling worker says it is there and counts the others


def presence_key(queue: str) -> str:
    """The sorted set of a queue's workers (member: worker, score: last seen, epoch s)."""
    return f"{queue}:workers"


def presence_member() -> str:
    """A worker's member in its queue's presence set: ``host/pid/random``, so that whoever
    reads the set (the home page) can tell the worker processes apart and name them."""
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:12]}"


def share(room: int, waiting: int, workers: int, idle: bool) -> int:
    """How many jobs a poll starts at most: its fair share of the ``waiting`` jobs among the
    queue's live ``workers`` (rounded up), within its ``room``; and when the process is
    not ``idle``, at most an eighth of its room (at least ten) a poll.

    Taking all it has room for, one worker of two would take a whole burst of runs (and,
    running their successors without jobs, the runs' every step) while the other idles:
    the fair share splits a burst evenly and, reaching an idle process, starts it at once
    (slices would start it a poll at a time). A busy process takes slices:
    its steps' completions claim work in the same statement (a fan-out's next items, a
    row each), which from the queue costs six round trips to Redis a job.
    """
    fair = min(room, -(-waiting // max(1, workers)))
    return fair if idle else min(fair, max(10, room // 8))


class WakingWorker(Worker):
    """arq's worker, polling only while it finds work; idle, it waits to be woken.

    arq's own ``_poll_iteration`` reads the queue; ``start_jobs`` takes jobs a chunk at a
    time and runs them itself (arq's ``run_job`` costs two round trips to Redis a job),
    ``main`` is arq's with its fixed-interval loop replaced, and a full process does not
    read the queue.
    """

    def __init__(
        self,
        *args: Any,
        wake: asyncio.Event,
        want_idle: Callable[[], asyncio.Event],
        idle_poll: float,
        room: Callable[[], int],
        capacity: Callable[[], int],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.wake = wake
        self.want_idle = want_idle  # an event set when the process's last step ends
        self.idle_poll = idle_poll
        self.room = room  # how many more steps the process can run now
        self.capacity = capacity  # how many it can run at once
        self.free_last_poll = 0  # jobs the last poll found free to start (maybe not started)
        self.member = presence_member()  # this worker in its queue's presence set
        self.workers = 1  # the queue's live workers, this one included
        self.seen_at = 0.0  # when this worker last said it was there
        self.asked_at = 0.0  # when this worker, idle, last asked the others for work
        # Jobs whose step has ended, being finished (a round trip to Redis): they
        # hold no slot, the step's successor, run here without a job, may hold it already.
        self.stepped: set[str] = set()
        self.ctx["worker"] = self
        # Jobs whose task has ended, finished in Redis together (see _finish).
        self._finishing: list[str] = []
        self._finished_all: asyncio.Future[None] | None = None
        self._finishers: set[asyncio.Task[None]] = set()
        self._take: Any = None  # the TAKE script, registered with the worker's pool

    def load(self) -> int:
        """The jobs of this worker whose step has started (or is about to) and not ended."""
        return self.job_counter - len(self.stepped)

    def _finished(self, job_id: str, _task: asyncio.Task[Any]) -> None:
        self.stepped.discard(job_id)

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """Start the free jobs among ``job_ids``: as many as the process has room for, or
        its :func:`share` of that when less (noting how many were started or not looked
        at, for :meth:`rest`: with more left, the next poll comes after ``poll_delay``).

        arq's own ``start_jobs`` takes a job in four round trips to Redis (``WATCH`` its
        in-progress key, ``EXISTS``, ``ZSCORE``, ``MULTI``/``EXEC``), one job after the
        other, and its ``run_job`` then reads the job in a fifth: in a worker whose event
        loop is busy running steps, each round trip waits for the loop to come round, and
        a burst of new runs waits for all of them. Here a chunk of jobs is taken
        in ONE round trip (the :data:`TAKE` script), with the same effect: for each job,
        its in-progress key set ``NX`` (at most one worker gets it, as arq's ``WATCH``
        ensures), then its data; a job whose key this worker got but that has left the
        queue, or was put back with a delay, is let go (its key deleted), as arq leaves
        it. Jobs running here are not looked at; a job stays in its queue until it
        finishes, so the others are.
        """
        candidates = [
            job_id.decode()
            for job_id in job_ids
            if (task := self.tasks.get(job_id.decode())) is None or task.done()
        ]
        free = self.room()
        idle = free >= self.capacity()
        room = share(
            min(free, self.max_jobs - self.job_counter), len(candidates), self.workers, idle
        )
        started = looked = 0
        timeout_ms = int(self.in_progress_timeout_s * 1000)
        while started < room and looked < len(candidates):
            chunk = candidates[looked : looked + room - started]
            looked += len(chunk)
            keys = [self.queue_name]
            for job_id in chunk:
                keys += [in_progress_key_prefix + job_id, job_key_prefix + job_id]
            if self._take is None:
                self._take = self.pool.register_script(TAKE)
            now_ms = int(time.time() * 1000)
            replies = await self._take(keys=keys, args=[now_ms, timeout_ms, len(job_key_prefix)])
            for index, job_id in enumerate(chunk):
                score, data = int(float(replies[2 * index])), replies[2 * index + 1]
                if score <= 0:
                    continue  # running on another worker, or let go
                await self.sem.acquire()  # free: the slice is within max_jobs
                self.job_counter += 1
                task = self.loop.create_task(self._run(job_id, score, data or None))
                task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
                task.add_done_callback(functools.partial(self._finished, job_id))
                self.tasks[job_id] = task
                started += 1
        self.free_last_poll = started + len(candidates) - looked

    async def _run(self, job_id: str, score: int, data: bytes | None) -> None:
        """Run one job taken by :meth:`start_jobs` (what arq's ``run_job`` does for the
        hub's jobs: no retries, no results, no timeout but the steps' own), then finish
        it (see :meth:`_finish`), whether it succeeded, failed or was cancelled."""
        try:
            if data is None:
                log.warning("job %s expired", job_id)
                self.jobs_failed += 1
                return
            name, args, kwargs, _try, enqueued_ms = deserialize_job_raw(
                data, deserializer=self.job_deserializer
            )
            function = self.functions.get(name)
            if function is None:
                log.warning("job %s: function %r not found", job_id, name)
                self.jobs_failed += 1
                return
            log.debug("%6.2fs -> %s:%s", time.time() - enqueued_ms / 1000, job_id, name)
            ctx = {**self.ctx, "job_id": job_id, "job_try": 1, "score": score}
            await function.coroutine(ctx, *args, **kwargs)
            self.jobs_complete += 1
        except Exception:
            log.exception("job %s failed", job_id)
            self.jobs_failed += 1
        finally:
            await asyncio.shield(self._finish(job_id))

    async def _finish(self, job_id: str) -> None:
        """Finish a job as arq does (its in-progress key, its key and its entry in the
        queue deleted), with the others finishing in this turn of the event loop: one
        round trip for them all."""
        self._finishing.append(job_id)
        if self._finished_all is None:
            self._finished_all = self.loop.create_future()
            task = self.loop.create_task(self._finish_together(self._finished_all))
            self._finishers.add(task)
            task.add_done_callback(self._finishers.discard)
        await self._finished_all

    async def _finish_together(self, done: asyncio.Future[None]) -> None:
        await asyncio.sleep(0)  # the jobs finishing in this turn join
        job_ids, self._finishing, self._finished_all = self._finishing, [], None
        try:
            async with self.pool.pipeline(transaction=True) as pipe:
                pipe.delete(
                    *(in_progress_key_prefix + job_id for job_id in job_ids),
                    *(job_key_prefix + job_id for job_id in job_ids),
                )
                pipe.zrem(self.queue_name, *job_ids)
                await pipe.execute()
        except Exception as exc:  # held by their in-progress keys; the database decides
            log.warning("could not finish %d jobs (%s)", len(job_ids), exc)
        finally:
            done.set_result(None)

    async def poll(self) -> None:
        """arq's poll, reading the queue only while the process has room, and as many
        jobs as its :func:`share` beyond those running (here, and maybe as many elsewhere).

        Full, it only forgets its finished jobs: arq would read ``5 x max_jobs`` job ids
        every ``poll_delay`` to start none of them.
        """
        await self.count_workers()
        room = self.room()
        if room > 0:
            self.queue_read_limit = self.job_counter + room + self.max_jobs
            await self._poll_iteration()
            return
        for job_id, task in list(self.tasks.items()):
            if task.done():
                del self.tasks[job_id]
                task.result()  # as arq does: an error of _run itself is raised here

    async def count_workers(self) -> None:
        """Every ``PRESENCE_EVERY`` seconds: say this worker is there, forget the workers
        not seen for ``PRESENCE_TTL`` seconds, and count the rest (one round trip)."""
        now = time.time()
        if now - self.seen_at < PRESENCE_EVERY:
            return
        self.seen_at = now
        key = presence_key(self.queue_name)
        async with self.pool.pipeline(transaction=False) as pipe:
            pipe.zadd(key, {self.member: now})
            pipe.zremrangebyscore(key, "-inf", now - PRESENCE_TTL)
            pipe.zcard(key)
            pipe.expire(key, int(PRESENCE_TTL) * 6)
            replies = await pipe.execute()
        self.workers = max(1, int(replies[2]))

    async def leave(self) -> None:
        """Leave the queue's presence set (stopping): the others take it all again."""
        await self.pool.zrem(presence_key(self.queue_name), self.member)

    async def main(self) -> None:
        """Poll; between polls, rest (see :meth:`rest`)."""
        if self._pool is None:
            self._pool = await create_pool(
                self.redis_settings,
                job_deserializer=self.job_deserializer,
                job_serializer=self.job_serializer,
                default_queue_name=self.queue_name,
                expires_extra_ms=self.expires_extra_ms,
            )
        self.ctx["redis"] = self.pool
        while True:
            try:
                self.wake.clear()  # a wake-up arriving from here on ends the next rest at once
                self.free_last_poll = 0
                await self.poll()
                if self.burst and await self._burst_done():
                    return
                await self.rest()
            except asyncio.CancelledError:
                if cancel_requested():
                    raise
                # On Python 3.11, redis-py's zero-second timeout (a pooled connection's
                # readiness check, with hiredis) can leave a cancellation behind when the
                # read it guards completes as it expires: nobody asked for this one, and
                # letting it through ended this worker's polling for good.
                log.debug("queue %s: a stray cancellation; polling on", self.queue_name)

    async def ask_for_work(self) -> None:
        """Idle while other workers serve the queue: ask them for work (at most every
        ``HUNGRY_EVERY`` seconds). Each busy one sends a share of its runs' next steps
        through the queue for a moment (``Engine.shed``); the wake-ups of those jobs end
        this worker's rest."""
        now = time.monotonic()
        if now - self.asked_at >= HUNGRY_EVERY:
            self.asked_at = now
            await self.pool.publish(hungry_channel(self.queue_name), self.member)

    async def _burst_done(self) -> bool:
        if await self.pool.zcard(self.queue_name) == 0:
            await asyncio.gather(*self.tasks.values())
            return True
        return False

    async def rest(self) -> None:
        """Wait before the next poll.

        While the last poll found jobs free to start (whether it started them or not: one
        may have finished meanwhile, or the process had room for fewer), or the process is
        full, more work may be waiting: ``poll_delay``, as arq does. Otherwise, until a
        wake-up message, the queue's next deferred job comes due, or ``idle_poll`` seconds,
        whichever comes first; with other workers on the queue, an idle process first
        asks them for work (:meth:`ask_for_work`), and a busy one also stops resting when
        its last step ends, to ask.
        """
        if self.free_last_poll or self.job_counter >= self.max_jobs or self.room() <= 0:
            await asyncio.sleep(self.poll_delay_s)
            return
        timeout = self.idle_poll
        waiting = {self.wake}
        if self.workers > 1 and self.allow_pick_jobs:  # (not while stopping)
            if self.room() >= self.capacity():
                await self.ask_for_work()
            else:  # busy: when its last step ends, come back to ask for work
                waiting.add(self.want_idle())
        upcoming = await self.pool.zrangebyscore(
            self.queue_name, min=time.time() * 1000, max="+inf", start=0, num=1, withscores=True
        )
        if upcoming:
            timeout = min(timeout, max(0.0, upcoming[0][1] / 1000 - time.time()))
        # Not asyncio.timeout: on Python 3.11, a wake-up arriving as it expires leaves the
        # task's cancellation pending, and the next await cancelled this worker for good.
        waiters = {asyncio.ensure_future(event.wait()) for event in waiting}
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
