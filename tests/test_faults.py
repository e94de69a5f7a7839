"""Fault tests of queue mode with real processes: PostgreSQL, Redis and `hub worker`s.

Each test starts its own Redis server and database, runs `hub worker` processes, loads them
with runs whose first step POSTs to a local sink that counts idempotency keys, and breaks
something in the middle: a worker is SIGKILLed, Redis restarts empty, PostgreSQL restarts.
Every run must still complete; completed steps never run again; the sink sees each
idempotency key at least once, and applies it once (duplicates are counted and printed).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from hub.db.runstate.types import StepJob
from hub.runtime import Hub
from hub.settings import Settings
from tests import kit
from tests.services import PostgresServer, RedisServer, terminate

HUB = str(Path(sys.executable).parent / "hub")


class Sink:
    """A local HTTP service that counts deliveries per Idempotency-Key."""

    def __init__(self, delay: float = 0.05) -> None:
        self.deliveries: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()
        self.delay = delay
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                key = self.headers.get("idempotency-key", "")
                with sink.lock:
                    sink.deliveries[key] += 1
                time.sleep(1.5 if self.path == "/slow" else sink.delay)
                body = json.dumps({"ok": True}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


class Cluster:
    """Worker processes and a serving hub on one PostgreSQL database and one Redis."""

    def __init__(self, tmp: Path, db_url: str, redis: RedisServer) -> None:
        self.tmp = tmp
        self.redis = redis
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("HUB_")},
            "HUB_DATA_DIR": str(tmp),
            "HUB_DATABASE_URL": db_url,
            "HUB_REDIS_URL": redis.url,
            "HUB_ALLOW_HOSTS": "127.0.0.1",
            "HUB_LEASE_SECONDS": "2",
            "HUB_SWEEP_INTERVAL": "0.5",
            "HUB_RESUBMIT_AFTER": "2",
            "HUB_QUEUE_NAME": f"q{uuid.uuid4().hex[:8]}",
            "HUB_SHUTDOWN_GRACE": "5",
        }
        self.settings = Settings.from_env(self.env)
        self.workers: list[subprocess.Popen[bytes]] = []

    def start_worker(self, concurrency: int = 20, **env: str) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"worker-{len(self.workers)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [HUB, "worker", "--concurrency", str(concurrency)],
            env={**self.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.workers.append(proc)
        return proc

    def boot_id(self, index: int, timeout: float = 30.0) -> str:
        """Wait until worker ``index`` serves; return the start of its boot id."""
        path = self.tmp / f"worker-{index}.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text_ = path.read_text(errors="replace") if path.exists() else ""
            for line in text_.splitlines():
                if line.startswith("hub worker ") and " serving " in line:
                    return line.split()[2]
            time.sleep(0.05)
        raise TimeoutError(f"worker {index} did not start:\n{self.logs()}")

    def stop(self) -> None:
        for proc in self.workers:
            terminate(proc, 10)

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-3000:] for p in self.tmp.glob("worker-*.log")
        )


def load_flow(sink: Sink, path: str = "/sink", retries: int = 5) -> dict[str, Any]:
    return {
        "id": "load",
        "steps": [
            {
                "id": "call",
                "action": "http.request",
                "input": {
                    "method": "POST",
                    "url": f"http://127.0.0.1:{sink.port}{path}",
                    "json": {"run": "{{ run.id }}"},
                },
                "retry": {"max_attempts": retries, "initial": "100ms", "max": "1s"},
            },
            {
                "id": "done",
                "action": "data.set",
                "input": {"value": "{{ steps.call.output.status }}"},
                "retry": {"max_attempts": retries, "initial": "100ms", "max": "1s"},
            },
        ],
    }


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sink() -> Iterator[Sink]:
    server = Sink()
    yield server
    server.close()


@pytest.fixture
async def cluster(
    tmp_path: Path, postgres: PostgresServer, redis: RedisServer
) -> AsyncIterator[Cluster]:
    url = postgres.create_database(f"hub_{uuid.uuid4().hex[:12]}", template="hub_template")
    made = Cluster(tmp_path, url, redis)
    yield made
    made.stop()


async def counts(hub: Hub) -> dict[str, int]:
    rows = await hub.db.read(
        lambda c: c.execute(text("SELECT status, count(*) FROM runs GROUP BY status")).all()
    )
    return {r[0]: r[1] for r in rows}


def succeeded_at_least(hub: Hub, n: int) -> Callable[[], Awaitable[bool]]:
    """A condition for :func:`until`: at least ``n`` runs have succeeded."""

    async def check() -> bool:
        return (await counts(hub)).get("succeeded", 0) >= n

    return check


def delivered(sink: Sink) -> Callable[[], Awaitable[bool]]:
    """A condition for :func:`until`: the sink has received a delivery."""

    async def check() -> bool:
        return bool(sink.deliveries)

    return check


async def wait_all(hub: Hub, total: int, timeout: float, cluster: Cluster) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    found: dict[str, int] = {}
    while time.monotonic() < deadline:
        found = await counts(hub)
        if found.get("succeeded", 0) + found.get("failed", 0) >= total:
            return found
        await asyncio.sleep(0.25)
    raise AssertionError(f"runs not finished after {timeout}s: {found}\n{cluster.logs()}")


async def until(
    condition: Callable[[], Awaitable[Any]],
    what: str,
    cluster: Cluster,
    timeout: float = 120.0,
    every: float = 0.02,
) -> None:
    """Wait for ``condition`` to hold, or fail naming ``what`` with the workers' logs (a
    worker that died leaves a condition that never holds: the test must fail, not hang)."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout:g}s\n{cluster.logs()}")
        await asyncio.sleep(every)


async def running_on(hub: Hub, boot_prefix: str) -> int:
    """How many steps a worker (by the start of its boot id) is running now."""
    return int(
        await hub.db.read(
            lambda c: c.execute(
                text("SELECT count(*) FROM steps WHERE status = 'running' AND lease_owner LIKE :p"),
                {"p": boot_prefix + "%"},
            ).scalar()
        )
    )


async def completed_steps_ran_once(hub: Hub) -> None:
    """No step has an attempt after its done attempt, and each key is done at most once."""
    bad = await hub.db.read(
        lambda c: c.execute(
            text(
                "SELECT d.run_id, d.key FROM steps d JOIN steps later "
                "ON later.run_id = d.run_id AND later.key = d.key AND later.attempt > d.attempt "
                "WHERE d.status = 'done'"
            )
        ).all()
    )
    assert bad == []
    twice = await hub.db.read(
        lambda c: c.execute(
            text(
                "SELECT run_id, key FROM steps WHERE status = 'done' "
                "GROUP BY run_id, key HAVING count(*) > 1"
            )
        ).all()
    )
    assert twice == []


async def lease_failures(hub: Hub) -> int:
    """How many attempts failed because their worker's lease expired (it was killed)."""
    return int(
        await hub.db.read(
            lambda c: c.execute(
                text(
                    "SELECT count(*) FROM steps "
                    "WHERE status = 'failed' AND CAST(error AS TEXT) LIKE '%lease%'"
                )
            ).scalar()
        )
    )


@contextlib.asynccontextmanager
async def serving(cluster: Cluster) -> AsyncIterator[Hub]:
    """The test's own hub process view: starts runs and sweeps, runs no step itself."""
    hub = Hub(cluster.settings, entry_points=False)
    await hub.start(migrate=False)
    try:
        yield hub
    finally:
        await hub.stop(grace=0)


async def start_load(hub: Hub, sink: Sink, n: int) -> list[str]:
    await hub.save_flow(load_flow(sink), publish=True)
    return [await hub.start_run("load", {"i": i}) for i in range(n)]


def report(name: str, sink: Sink, total: int) -> None:
    duplicates = sum(c - 1 for c in sink.deliveries.values())
    print(
        f"\n{name}: {total} runs, {len(sink.deliveries)} idempotency keys, "
        f"{duplicates} duplicate deliveries (at-least-once), applied once each by key"
    )


async def test_sigkill_a_worker_under_load_loses_no_run(cluster: Cluster, sink: Sink) -> None:
    for _ in range(3):
        cluster.start_worker()
    victim = await asyncio.to_thread(cluster.boot_id, 0)
    for index in (1, 2):
        await asyncio.to_thread(cluster.boot_id, index)
    async with serving(cluster) as hub:
        total = 500
        await start_load(hub, sink, total)
        await until(succeeded_at_least(hub, 100), "100 runs succeeded", cluster)
        await until(lambda: running_on(hub, victim), "a step running on the victim", cluster)
        cluster.workers[0].kill()  # SIGKILL in the middle of its steps
        cluster.workers[0].wait()
        found = await wait_all(hub, total, 90, cluster)
        assert found == {"succeeded": total}, cluster.logs()
        await completed_steps_ran_once(hub)
        assert len(sink.deliveries) == total  # every idempotent side effect, exactly one key each
        lost = await lease_failures(hub)
        assert lost > 0, "the kill hit no running step: the test proved nothing"
        print(f"\nSIGKILL: {lost} steps of the killed worker ran again after their lease")
        report("SIGKILL", sink, total)


async def test_sigkill_a_worker_during_fan_outs_loses_no_item(cluster: Cluster, sink: Sink) -> None:
    """Fan-outs on two workers, whose item completions batch, take siblings and fan in:
    one worker is SIGKILLed in the middle. Every run completes with every item's output
    in order; no completed item runs again; each fan-in ran once (its step done once)."""
    for _ in range(2):
        cluster.start_worker(concurrency=50)
    victim = await asyncio.to_thread(cluster.boot_id, 0)
    await asyncio.to_thread(cluster.boot_id, 1)
    each = {
        "id": "each",
        "action": "http.request",
        "for_each": "{{ range(150) | list }}",
        "input": {
            "method": "POST",
            "url": f"http://127.0.0.1:{sink.port}/sink",
            "json": {"item": "{{ item }}"},
        },
        "retry": {"max_attempts": 5, "initial": "100ms", "max": "1s"},
    }
    after = {"id": "after", "action": "data.set", "needs": ["each"], "input": {"value": 1}}
    async with serving(cluster) as hub:
        await hub.save_flow({"id": "fan", "steps": [each, after]}, publish=True)
        total = 6
        await hub.engine.start_runs(hub.workspace, "fan", [None] * total)
        await until(lambda: running_on(hub, victim), "an item running on the victim", cluster)
        await asyncio.sleep(0.2)  # items done on both workers by now
        cluster.workers[0].kill()  # SIGKILL in the middle of its items
        cluster.workers[0].wait()
        found = await wait_all(hub, total, 90, cluster)
        assert found == {"succeeded": total}, cluster.logs()
        await completed_steps_ran_once(hub)
        rows = await hub.db.read(
            lambda c: c.execute(
                text(
                    "SELECT r.id, s.output FROM runs r JOIN steps s "
                    "ON s.run_id = r.id AND s.key = 'each' AND s.status = 'done'"
                )
            ).all()
        )
        assert len(rows) == total  # each fan-in once
        for _run_id, output in rows:
            assert [item["status"] for item in output] == [200] * 150
        lost = await lease_failures(hub)
        assert lost > 0, "the kill hit no running item: the test proved nothing"
        print(f"\nSIGKILL during fan-outs: {lost} items of the killed worker ran again")


async def test_redis_restart_in_the_middle_of_a_load_loses_no_run(
    cluster: Cluster, sink: Sink
) -> None:
    for _ in range(2):
        cluster.start_worker()
    async with serving(cluster) as hub:
        total = 300
        await start_load(hub, sink, total)
        await until(succeeded_at_least(hub, 50), "50 runs succeeded", cluster)
        cluster.redis.kill()  # the queue is gone: no persistence
        await asyncio.sleep(0.5)
        cluster.redis.start()
        found = await wait_all(hub, total, 90, cluster)
        assert found == {"succeeded": total}, cluster.logs()
        await completed_steps_ran_once(hub)
        assert len(sink.deliveries) == total
        report("Redis restart", sink, total)


async def test_postgres_restart_in_the_middle_of_a_load_loses_no_run(
    cluster: Cluster, sink: Sink, postgres: PostgresServer
) -> None:
    for _ in range(2):
        cluster.start_worker()
    async with serving(cluster) as hub:
        total = 200
        await start_load(hub, sink, total)
        await until(succeeded_at_least(hub, 40), "40 runs succeeded", cluster)
        await asyncio.to_thread(postgres.kill)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(postgres.start)
        found = await wait_all(hub, total, 120, cluster)
        assert found == {"succeeded": total}, cluster.logs()
        await completed_steps_ran_once(hub)
        assert len(sink.deliveries) == total
        report("PostgreSQL restart", sink, total)


async def test_sigterm_during_a_step_finishes_it_or_hands_it_back(
    cluster: Cluster, sink: Sink
) -> None:
    quick = cluster.start_worker(HUB_SHUTDOWN_GRACE="0.2")
    async with serving(cluster) as hub:
        await hub.save_flow({**load_flow(sink, "/slow"), "id": "load"}, publish=True)
        run_id = await hub.start_run("load", {})
        await until(delivered(sink), "a delivery to the sink", cluster)
        terminate(quick, 10)  # grace 0.2 s < the 1.5 s step: it is handed back
        cluster.start_worker()
        record = await hub.wait_for_run(run_id, 30)
        assert record["status"] == "succeeded", cluster.logs()
        run = await hub.get_run(run_id)
        assert [(s["key"], s["attempt"]) for s in run["steps"]] == [("call", 1), ("done", 1)]


async def test_two_workers_racing_for_one_step_run_it_once(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    url = postgres.create_database(f"hub_{uuid.uuid4().hex[:12]}", template="hub_template")
    settings = Settings(data_dir=tmp_path, database_url=url)
    first = Hub(settings, plugins=[kit], entry_points=False)
    second = Hub(settings, plugins=[kit], entry_points=False)
    await first.start(migrate=False, background=False)
    await second.start(migrate=False, background=False)
    first.executor.pause()  # the race is run by hand below
    second.executor.pause()
    try:
        await first.save_flow(
            {"id": "race", "steps": [{"id": "k", "action": "test.count_key"}]}, publish=True
        )
        for _ in range(1000):
            run_id = await first.start_run("race")
            job = StepJob(run_id, "k", 1)
            await asyncio.gather(first.engine.execute(job), second.engine.execute(job))
            assert kit.CALLS[f"key:{run_id}:k"] == 1
    finally:
        await first.stop(grace=0)
        await second.stop(grace=0)


async def test_a_join_runs_once_when_its_predecessors_finish_together_on_postgres(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    url = postgres.create_database(f"hub_{uuid.uuid4().hex[:12]}", template="hub_template")
    settings = Settings(data_dir=tmp_path, database_url=url)
    first = Hub(settings, plugins=[kit], entry_points=False)
    second = Hub(settings, plugins=[kit], entry_points=False)
    await first.start(migrate=False, background=False)
    await second.start(migrate=False, background=False)
    first.executor.pause()
    second.executor.pause()
    try:
        await first.save_flow(
            {
                "id": "join",
                "steps": [
                    {"id": "a", "action": "flow.noop", "needs": []},
                    {"id": "b", "action": "flow.noop", "needs": []},
                    {"id": "j", "action": "test.count_key", "needs": ["a", "b"]},
                ],
            },
            publish=True,
        )
        for _ in range(1000):
            run_id = await first.start_run("join")
            # Each process completes one predecessor at the same moment.
            await asyncio.gather(
                first.engine.execute(StepJob(run_id, "a", 1)),
                second.engine.execute(StepJob(run_id, "b", 1)),
            )
            joins = await first.db.read(
                lambda c, r=run_id: c.execute(
                    text("SELECT count(*) FROM steps WHERE run_id = :r AND key = 'j'"), {"r": r}
                ).scalar()
            )
            assert joins == 1
    finally:
        await first.stop(grace=0)
        await second.stop(grace=0)
