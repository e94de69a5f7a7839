"""Queue mode specifics: priority queues, duplicate jobs, the worker command."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hub.db.runstate.types import StepJob
from hub.engine.executors.arq import queue_for, run_worker
from hub.engine.executors.arq.worker import WakingWorker, presence_key
from hub.hookspecs import hookimpl
from hub.runtime import Hub
from hub.settings import Settings
from tests import kit
from tests.conftest import make_hub, worker_env


@pytest.fixture
def backend() -> str:
    return "queue"


async def test_priority_queues_route_steps_by_the_flows_priority(settings: Settings) -> None:
    hub = make_hub(settings)
    await hub.start(migrate=False)
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(hub, queues=("high",), stop=stop))
    try:
        step = [{"id": "a", "action": "data.set", "input": {"value": 1}}]
        await hub.save_flow({"id": "urgent", "priority": "high", "steps": step}, publish=True)
        await hub.save_flow({"id": "later", "priority": "low", "steps": step}, publish=True)
        urgent = await hub.start_run("urgent")
        later = await hub.start_run("later")
        assert (await hub.wait_for_run(urgent, 10))["status"] == "succeeded"
        await asyncio.sleep(0.3)
        assert (await hub.get_run(later, with_steps=False))[
            "status"
        ] == "running"  # nobody serves low
    finally:
        stop.set()
        await worker
    low = asyncio.Event()
    worker = asyncio.create_task(run_worker(hub, queues=("low",), stop=low))
    try:
        assert (await hub.wait_for_run(later, 10))["status"] == "succeeded"
    finally:
        low.set()
        await worker
        await hub.stop(grace=0)


async def test_the_same_step_enqueued_twice_runs_once(settings: Settings) -> None:
    hub = make_hub(settings)
    await hub.start(migrate=False)
    stop = asyncio.Event()
    try:
        await hub.save_flow(
            {"id": "k", "steps": [{"id": "k", "action": "test.count_key"}]}, publish=True
        )
        run_id = await hub.start_run("k")  # enqueued once here
        # ... and again, under the same id and under a new resubmission id.
        await hub.executor.submit([StepJob(run_id, "k", 1, 0), StepJob(run_id, "k", 1, 1)])
        worker = asyncio.create_task(run_worker(hub, queues=("default",), stop=stop))
        assert (await hub.wait_for_run(run_id, 10))["status"] == "succeeded"
        await asyncio.sleep(0.3)
        assert kit.CALLS[f"key:{run_id}:k"] == 1
        stop.set()
        await worker
    finally:
        await hub.stop(grace=0)


GC_PROBE = """
import gc

from hub import Action, Connector, hookimpl


async def state(ctx, data):
    return {"threshold": gc.get_threshold()[0], "frozen": gc.get_freeze_count()}


@hookimpl
def hub_connectors():
    return [Connector(name="gcprobe", actions=[Action(name="state", run=state)])]
"""


async def test_hub_worker_settles_its_garbage_collector(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once started, ``hub worker`` freezes what exists (full collections skip it) and
    collects its youngest generation every ``HUB_GC_THRESHOLD`` allocations, not 700:
    collections took a fifth of a worker's CPU time. A step run by the worker reports it."""
    import importlib

    (tmp_path / "gcprobe.py").write_text(GC_PROBE)
    monkeypatch.syspath_prepend(str(tmp_path))
    hub = make_hub(settings, plugins=(kit, importlib.import_module("gcprobe")))
    await hub.start(migrate=False)
    env = worker_env(
        settings,
        HUB_PLUGIN_MODULES="gcprobe",
        HUB_GC_THRESHOLD="12345",
        PYTHONPATH=str(tmp_path),
    )
    try:
        flow = {"id": "g", "steps": [{"id": "s", "action": "gcprobe.state"}]}
        await hub.save_flow(flow, publish=True)
        run_id = await hub.start_run("g")
        worker = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "hub"), "worker", "--burst", env=env
        )
        assert await asyncio.wait_for(worker.wait(), 60) == 0
        run = await hub.wait_for_run(run_id, 10)
    finally:
        await hub.stop(grace=0)
    assert run["status"] == "succeeded", run
    assert run["output"]["threshold"] == 12345
    assert run["output"]["frozen"] > 1000  # modules, plugins, the engine's tables


def test_hub_worker_needs_a_redis_url(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "hub"), "worker"],
        env={"HUB_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "HUB_REDIS_URL" in result.stderr


async def _zrangebyscore_calls(url: str) -> int:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(url)
    try:
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    return int(stats.get("cmdstat_zrangebyscore", {}).get("calls", 0))


@contextlib.asynccontextmanager
async def hub_and_worker(
    settings: Settings, plugins: Any = (kit,), **worker: Any
) -> AsyncIterator[Hub]:
    """A started hub with ``run_worker(hub, **worker)`` running beside it."""
    hub = make_hub(settings, plugins=plugins)
    await hub.start(migrate=False)
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(hub, stop=stop, **worker))
    try:
        yield hub
    finally:
        stop.set()
        await task
        await hub.stop(grace=0)


async def test_an_idle_worker_waits_to_be_woken_instead_of_polling(settings: Settings) -> None:
    """Idle, a worker serving three queues makes a handful of Redis calls a second, not
    600 (arq's fixed 5 ms poll); a submission wakes it at once, and a deferred job wakes
    it when it comes due, long before the (here 60 s) idle poll would (and with the
    sweeper, which would also submit it, set to a minute)."""
    settings = settings.replace(queue_idle_poll=60.0, sweep_interval=60.0)
    async with hub_and_worker(settings, queues=("high", "default", "low")) as hub:
        await asyncio.sleep(0.5)  # started, polled once, now idle
        before = await _zrangebyscore_calls(settings.redis_url)
        await asyncio.sleep(1.0)
        idle_calls = await _zrangebyscore_calls(settings.redis_url) - before
        assert idle_calls < 10, f"{idle_calls} queue polls in one idle second"

        step = [{"id": "a", "action": "data.set", "input": {"value": 1}}]
        await hub.save_flow({"id": "now", "steps": step}, publish=True)
        run_id = await hub.start_run("now")
        assert (await hub.wait_for_run(run_id, 20))["status"] == "succeeded"

        delayed = [
            {"id": "wait", "action": "flow.delay", "input": {"seconds": 1}},
            {"id": "after", "action": "data.set", "input": {"value": 2}},
        ]
        await hub.save_flow({"id": "later", "steps": delayed}, publish=True)
        run_id = await hub.start_run("later")
        assert (await hub.wait_for_run(run_id, 20))["status"] == "succeeded"


async def test_a_worker_keeps_taking_jobs_while_it_finds_them(settings: Settings) -> None:
    """More runs than the worker's capacity, with a 60 s idle poll: each freed slot is
    filled by the next poll (every poll_delay while busy), not by the idle poll."""
    settings = settings.replace(queue_idle_poll=60.0)
    async with hub_and_worker(settings, queues=("default",), concurrency=3) as hub:
        await hub.save_flow(
            {"id": "k", "steps": [{"id": "k", "action": "test.count_key"}]}, publish=True
        )
        run_ids = await hub.engine.start_runs(hub.workspace, "k", [None] * 30)
        for run_id in run_ids:
            assert (await hub.wait_for_run(run_id, 20))["status"] == "succeeded"
        assert sum(kit.CALLS.values()) == 30


class StepCounter:
    """A plugin counting the steps its hub's process ran."""

    def __init__(self) -> None:
        self.steps = 0

    @hookimpl
    def hub_after_step(self, ctx: Any, result: dict[str, Any]) -> None:
        self.steps += 1


async def test_an_idle_worker_gets_a_share_of_the_runs_another_worker_runs(
    settings: Settings,
) -> None:
    """A run's next step runs where its step ran, without a job: a worker that joins while
    another runs long runs would find nothing to do. Idle, it asks the queue's other
    workers for work (``<queue>:hungry``); the busy one sends a share of its runs' next
    steps through the queue for a moment, and the newcomer takes them and carries those
    runs on."""
    first, second = StepCounter(), StepCounter()
    hub = make_hub(settings, plugins=(kit, first))
    await hub.start(migrate=False)
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(hub, queues=("default",), stop=stop))
    sleepy = {"action": "test.sleep", "input": {"seconds": 0.01}}
    steps = [{"id": f"s{i}", **sleepy} for i in range(300)]  # 3 s at least, to join in
    try:
        await hub.save_flow({"id": "long", "steps": steps}, publish=True)
        run_ids = await hub.engine.start_runs(hub.workspace, "long", [None] * 10)
        deadline = time.monotonic() + 20
        while first.steps < 100:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        async with hub_and_worker(settings, queues=("default",), plugins=(kit, second)):
            for run_id in run_ids:
                assert (await hub.wait_for_run(run_id, 60))["status"] == "succeeded"
    finally:
        stop.set()
        await worker
        await hub.stop(grace=0)
    assert first.steps + second.steps == 3000
    assert second.steps >= 100, (first.steps, second.steps)


async def test_one_submission_enqueues_many_jobs_and_skips_ids_already_held(
    settings: Settings,
) -> None:
    """submit() puts all its jobs in their queues in one script: a job whose id Redis
    still holds (the same submission twice) is not queued again, a deferred job waits in
    the queue with its due time as its score, and each queue's workers are woken."""
    import time

    import redis.asyncio

    hub = make_hub(settings)
    await hub.start(migrate=False)
    client = redis.asyncio.Redis.from_url(settings.redis_url)
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe(f"{settings.queue_name}:wake", f"{settings.queue_name}:high:wake")
        await pubsub.get_message(timeout=1.0)  # the subscription confirmations
        await pubsub.get_message(timeout=1.0)
        due = time.time() + 60
        jobs = [
            StepJob("r1", "a", 1),
            StepJob("r1", "a", 1),  # the same id again
            StepJob("r2", "b", 1, due_at=due),
            StepJob("r3", "c", 1, priority="high"),
        ]
        await hub.executor.submit(jobs)
        await hub.executor.submit(jobs[:1])  # held: not queued again
        queue = await client.zrange(settings.queue_name, 0, -1, withscores=True)
        assert [(job_id.decode(), score) for job_id, score in queue][-1] == (
            "r2:b:1:0",
            float(int(due * 1000)),
        )
        assert sorted(job_id.decode() for job_id, _ in queue) == ["r1:a:1:0", "r2:b:1:0"]
        assert await client.zrange(f"{settings.queue_name}:high", 0, -1) == [b"r3:c:1:0"]
        woken = set()
        for _ in range(4):
            message = await pubsub.get_message(timeout=1.0)
            if message and message["type"] == "message":
                woken.add(message["channel"].decode())
        assert woken == {f"{settings.queue_name}:wake", f"{settings.queue_name}:high:wake"}
    finally:
        await pubsub.aclose()
        await client.aclose()
        await hub.stop(grace=0)


async def test_withdrawn_jobs_leave_their_queue(settings: Settings) -> None:
    """withdraw() takes jobs out of their queues in one round trip; their keys are kept a
    minute (a worker that read the id already finds it gone from the queue and passes)."""
    import redis.asyncio

    hub = make_hub(settings)
    await hub.start(migrate=False)
    client = redis.asyncio.Redis.from_url(settings.redis_url)
    try:
        jobs = [StepJob("r1", f"e[{i}]", 1) for i in range(3)]
        await hub.executor.submit([*jobs, StepJob("r1", "x", 1, priority="high")])
        await hub.executor.withdraw([jobs[0], jobs[2], StepJob("r1", "x", 1, priority="high")])
        queue = await client.zrange(settings.queue_name, 0, -1)
        assert queue == [b"r1:e[1]:1:0"]
        assert await client.zrange(f"{settings.queue_name}:high", 0, -1) == []
        assert 0 < await client.pttl("arq:job:r1:e[0]:1:0") <= 60_000
        assert await client.pttl("arq:job:r1:e[1]:1:0") > 60_000
    finally:
        await client.aclose()
        await hub.stop(grace=0)


async def test_a_busy_worker_does_not_check_its_own_running_jobs_again(
    settings: Settings,
) -> None:
    """A job stays in its queue until it finishes, so every poll of a busy worker reads its
    running jobs again; arq would check each with a WATCH (three round trips). The worker
    skips its own, and takes a job with a SET NX of its in-progress key and a ZSCORE, in
    one round trip for the poll's jobs: 30 jobs through 5 slots cost one ZSCORE each (a
    few more for jobs that finished as a poll read them), and no WATCH."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(settings.redis_url)
    await client.config_resetstat()
    async with hub_and_worker(settings, queues=("default",), concurrency=5) as hub:
        await hub.save_flow(
            {"id": "s", "steps": [{"id": "s", "action": "test.sleep", "input": {"seconds": 0.1}}]},
            publish=True,
        )
        run_ids = await hub.engine.start_runs(hub.workspace, "s", [None] * 30)
        for run_id in run_ids:
            assert (await hub.wait_for_run(run_id, 20))["status"] == "succeeded"
    stats = await client.info("commandstats")
    await client.aclose()
    assert "cmdstat_watch" not in stats  # arq alone: 42 WATCHes here
    looked = int(stats["cmdstat_zscore"]["calls"])
    assert 30 <= looked <= 33, looked


async def test_a_burst_of_jobs_is_taken_and_finished_in_a_few_round_trips(
    settings: Settings,
) -> None:
    """arq takes a job in four round trips and runs it in two more (read it, finish it),
    each on a connection of its own: 40 new runs cost 240 round trips, and a burst of 300
    took half a second to start. The worker takes a poll's jobs in one script call and
    finishes the jobs that end in one turn of its loop in one transaction; nothing of them
    is left in Redis afterwards."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(settings.redis_url)
    try:
        async with hub_and_worker(settings, queues=("default",), concurrency=40) as hub:
            await hub.save_flow(
                {"id": "one", "steps": [{"id": "a", "action": "data.set", "input": {"value": 1}}]},
                publish=True,
            )
            await client.config_resetstat()
            run_ids = await hub.engine.start_runs(hub.workspace, "one", [None] * 40)
            for run_id in run_ids:
                assert (await hub.wait_for_run(run_id, 20))["status"] == "succeeded"
            await asyncio.sleep(0.2)  # the last finishes reach Redis
            stats = await client.info("commandstats")
            assert await client.zcard(settings.queue_name) == 0
            for run_id in run_ids:  # (other tests' keys may still be there)
                assert await client.keys(f"arq:*{run_id}*") == []
    finally:
        await client.aclose()
    taken = int(stats["cmdstat_evalsha"]["calls"]) - 1  # one was the enqueue
    finished = int(stats["cmdstat_exec"]["calls"])
    assert "cmdstat_watch" not in stats and "cmdstat_incr" not in stats
    assert 1 <= taken <= 4, taken  # arq: 40 WATCHes, 40 MULTI/EXECs
    assert 1 <= finished <= 20, finished  # arq: 80 MULTI/EXECs, to read and finish


async def test_the_take_script_takes_only_free_due_jobs(settings: Settings) -> None:
    """Per job: held by another worker, not taken; gone from the queue or not yet due,
    let go (the in-progress key it set deleted again); due, taken with its data, or with
    none when its key has expired (the worker then finishes it as expired)."""
    import redis.asyncio
    from arq.constants import in_progress_key_prefix, job_key_prefix

    from hub.engine.executors.arq.worker import TAKE

    client = redis.asyncio.Redis.from_url(settings.redis_url)
    try:
        now = int(time.time() * 1000)
        queue = settings.queue_name  # (unique to this test: the keys below are its own)
        held, gone, later, due, expired = (
            f"{queue}-{name}" for name in ("held", "gone", "later", "due", "expired")
        )
        await client.zadd(queue, {held: now, due: now - 5, later: now + 60_000, expired: now})
        await client.set(in_progress_key_prefix + held, b"1", px=60_000)
        await client.set(job_key_prefix + due, b"data", px=60_000)
        keys = [queue]
        for job_id in (held, gone, later, due, expired):
            keys += [in_progress_key_prefix + job_id, job_key_prefix + job_id]
        take = client.register_script(TAKE)
        replies = await take(keys=keys, args=[now, 60_000, len(job_key_prefix)])
        due_at, expired_at = str(now - 5).encode(), str(now).encode()
        assert replies == [0, b"", -1, b"", -1, b"", due_at, b"data", expired_at, b""]
        assert await client.exists(in_progress_key_prefix + gone) == 0
        assert await client.exists(in_progress_key_prefix + later) == 0
        assert 0 < await client.pttl(in_progress_key_prefix + due) <= 60_000
    finally:
        await client.aclose()


async def test_an_expired_job_is_finished_and_logged(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A job in the queue whose key has expired is taken, logged as expired and finished:
    it leaves the queue and its in-progress key, and the worker polls on."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(settings.redis_url)
    try:
        async with hub_and_worker(settings, queues=("default",)) as hub:
            await client.zadd(settings.queue_name, {"r9:x:1:0": time.time() * 1000})
            await client.publish(f"{settings.queue_name}:wake", "")
            deadline = time.monotonic() + 10
            while await client.zcard(settings.queue_name):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            assert await client.exists("arq:in-progress:r9:x:1:0") == 0
            await hub.save_flow(
                {"id": "one", "steps": [{"id": "a", "action": "data.set", "input": {"value": 1}}]},
                publish=True,
            )
            run_id = await hub.start_run("one")
            assert (await hub.wait_for_run(run_id, 10))["status"] == "succeeded"
    finally:
        await client.aclose()
    assert "job r9:x:1:0 expired" in caplog.text


async def test_a_worker_runs_at_most_its_concurrency_counting_steps_run_without_a_job(
    settings: Settings,
) -> None:
    """``--concurrency`` bounds the steps a worker runs at once, its queue jobs and the
    steps it runs without one (a successor, a fan-out's items) alike: with the process
    full, its arq worker leaves the queue to others."""
    sleepy = {"action": "test.sleep", "input": {"seconds": 0.05}}
    async with hub_and_worker(settings, queues=("default",), concurrency=3) as hub:
        await hub.save_flow(
            {"id": "c", "steps": [{"id": f"s{i}", **sleepy} for i in range(3)]}, publish=True
        )
        await hub.save_flow(
            {"id": "f", "steps": [{"id": "e", **sleepy, "for_each": "{{ range(8) | list }}"}]},
            publish=True,
        )
        run_ids = await hub.engine.start_runs(hub.workspace, "c", [None] * 8)
        run_ids.append(await hub.start_run("f"))
        for run_id in run_ids:
            assert (await hub.wait_for_run(run_id, 30))["status"] == "succeeded"
        assert hub.engine.capacity == 3
        assert hub.engine.transitions.promised == 0  # every promised slot given back
    assert kit.IN_FLIGHT["max"] == 3


async def test_a_stray_cancellation_does_not_stop_a_worker(settings: Settings) -> None:
    """On Python 3.11, a timeout expiring as the read it guards completes (redis-py's
    zero-second readiness check) cancels the task and takes the request back: the task
    gets a CancelledError that nobody asked for (``cancelling()`` is 0). The worker's
    loop goes on polling; a real cancellation (stopping the worker) still ends it."""
    async with hub_and_worker(settings, queues=("default",)) as hub:
        await hub.save_flow(
            {"id": "k", "steps": [{"id": "k", "action": "test.count_key"}]}, publish=True
        )
        assert (await hub.wait_for_run(await hub.start_run("k"), 10))["status"] == "succeeded"
        worker = hub.executor.workers["default"]
        assert worker.main_task is not None
        worker.main_task.cancel()  # what the expiring timeout does ...
        worker.main_task.uncancel()  # ... and what it undoes on leaving the block
        await asyncio.sleep(0.1)
        assert not worker.main_task.done()
        run_ids = await hub.engine.start_runs(hub.workspace, "k", [None] * 5)
        for run_id in run_ids:
            assert (await hub.wait_for_run(run_id, 10))["status"] == "succeeded"
    assert worker.main_task.done()


async def test_a_poll_takes_its_share_of_a_burst_among_the_queues_live_workers(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alone in its queue's presence set, a worker's poll takes a whole burst at once (its
    room allowing); with another worker there, half of it, the rest left to the other (or
    to its own next poll). A fixed slice a poll took a burst of 300 runs most of a second
    to start in the queue-mode benchmark; all it had room for, one worker of two took the
    burst and, running their successors without jobs, the runs. A stopping worker leaves
    the set."""
    import redis.asyncio

    started: list[int] = []
    original = WakingWorker.start_jobs

    async def recorded(self: WakingWorker, job_ids: list[bytes]) -> None:
        before = set(self.tasks)
        await original(self, job_ids)
        started.append(len(set(self.tasks) - before))

    monkeypatch.setattr(WakingWorker, "start_jobs", recorded)
    key = presence_key(queue_for(settings, "default"))
    client = redis.asyncio.Redis.from_url(settings.redis_url)
    try:
        async with hub_and_worker(settings, queues=("default",), concurrency=200) as hub:
            sleepy = {"action": "test.sleep", "input": {"seconds": 0.2}}
            await hub.save_flow({"id": "s", "steps": [{"id": "s", **sleepy}]}, publish=True)
            for others in (0, 1):
                if others:  # another worker, present (for the next minute) but not polling
                    await client.zadd(key, {"other": time.time() + 60})
                    hub.executor.workers["default"].seen_at = 0.0  # count again now
                started.clear()
                run_ids = await hub.engine.start_runs(hub.workspace, "s", [None] * 100)
                for run_id in run_ids:
                    assert (await hub.wait_for_run(run_id, 20))["status"] == "succeeded"
                assert sum(started) >= 100
                assert max(started) == 100 // (1 + others), started
        assert await client.zrange(key, 0, -1) == [b"other"]  # the worker left
    finally:
        await client.aclose()


async def test_a_job_whose_step_ended_holds_no_slot_while_it_is_finished(
    settings: Settings,
) -> None:
    """A job's step ends (its successor, claimed in the same statement, already running
    here without a job) before arq has finished the job (a round trip to Redis): from
    then on the job holds no slot. Counted until arq was done, it left the successors of
    a worker as full as it had chains no room, and they went through the queue: with
    room for exactly its 20 chains, only the 20 runs' first steps are jobs."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(settings.redis_url)
    try:
        async with hub_and_worker(settings, queues=("default",), concurrency=20) as hub:
            steps = [{"id": f"s{i}", "action": "data.set", "input": {"value": i}} for i in range(6)]
            await hub.save_flow({"id": "c", "steps": steps}, publish=True)
            # Round 0 is not counted: the sweep at start-up submits every queued step again
            # (a queue lost with Redis), and may meet its runs' first steps.
            for number in range(4):
                await client.config_resetstat()
                run_ids = await hub.engine.start_runs(hub.workspace, "c", [None] * 20)
                for run_id in run_ids:
                    assert (await hub.wait_for_run(run_id, 20))["status"] == "succeeded"
                stats = await client.info("commandstats")
                if number:
                    assert int(stats["cmdstat_psetex"]["calls"]) == 20  # a job key a run
    finally:
        await client.aclose()


async def test_a_worker_opens_its_database_pool_when_it_starts(settings: Settings) -> None:
    """A new PostgreSQL connection costs a server process and a round of type
    introspection: a worker opens its pool's connections when it starts, not in the middle
    of its first burst of work."""
    async with hub_and_worker(settings, queues=("default",)) as hub:
        engine = hub.db._async_engine
        assert engine is not None
        deadline = asyncio.get_running_loop().time() + 10
        while engine.pool.checkedin() < hub.db.pool_size:
            assert asyncio.get_running_loop().time() < deadline, engine.pool.status()
            await asyncio.sleep(0.02)


async def test_fan_outs_with_room_to_spare_finish_and_give_back_every_slot(
    settings: Settings,
) -> None:
    """Fan-outs through a worker with room to spare: item completions take more siblings
    than they free (slots promised until the siblings' tasks start); every run succeeds
    with its items' outputs in order, and no promised slot is left over."""
    async with hub_and_worker(settings, queues=("default",), concurrency=50) as hub:
        each = {
            "id": "e",
            "action": "data.set",
            "for_each": "{{ range(120) | list }}",
            "input": {"value": "{{ item }}"},
        }
        await hub.save_flow({"id": "f", "steps": [each]}, publish=True)
        run_ids = await hub.engine.start_runs(hub.workspace, "f", [None] * 4)
        for run_id in run_ids:
            run = await hub.wait_for_run(run_id, 30)
            assert run["status"] == "succeeded" and run["output"] == list(range(120))
        assert hub.engine.transitions.promised == 0
