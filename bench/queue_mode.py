"""Queue-mode benchmark: PostgreSQL + Redis + `hub worker` processes, on loopback.

Starts its own throwaway PostgreSQL and Redis servers (like the tests), then prints, beside
the targets of the queue-mode issue:

- raw arq no-op job throughput with the same Redis and the same poll delay (the reference);
- hub no-op step throughput with one worker process, and with two;
- step handoff p50/p99 (a step done -> its successor started, from the step records);
- recovery: a worker is SIGKILLed in the middle of a step; the time until the step's next
  attempt starts, with the default lease (30 s) and sweeper interval (5 s).

    python bench/queue_mode.py            # everything (about two minutes)
    python bench/queue_mode.py --quick    # smaller loads, recovery with a 5 s lease
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from arq import create_pool  # noqa: E402
from arq.worker import Worker  # noqa: E402
from sqlalchemy import text  # noqa: E402

from bench import probe  # noqa: E402
from hub.executors.arq import _deserialize, _serialize, redis_settings  # noqa: E402
from hub.runtime import Hub  # noqa: E402
from hub.settings import Settings  # noqa: E402
from tests.services import PostgresServer, RedisServer, terminate  # noqa: E402

HUB = str(Path(sys.executable).parent / "hub")
POLL_DELAY = 0.005


async def noop_job(ctx: dict[str, Any]) -> None:
    return None


async def raw_arq_rate(redis_url: str, n: int) -> float:
    """Jobs/s of one arq worker running no-op jobs (enqueued first, then drained in burst)."""
    queue = f"raw{uuid.uuid4().hex[:6]}"
    pool = await create_pool(
        redis_settings(redis_url), job_serializer=_serialize, job_deserializer=_deserialize
    )
    for i in range(n):
        await pool.enqueue_job("noop_job", _job_id=f"j{i}", _queue_name=queue)
    worker = Worker(
        functions=[noop_job],
        queue_name=queue,
        redis_settings=redis_settings(redis_url),
        burst=True,
        handle_signals=False,
        poll_delay=POLL_DELAY,
        keep_result=0,
        max_jobs=100,
        job_serializer=_serialize,
        job_deserializer=_deserialize,
        log_results=False,
    )
    started = time.perf_counter()
    await worker.async_run()
    took = time.perf_counter() - started
    await worker.close()
    await pool.aclose()
    return n / took


def chain(n: int) -> dict[str, Any]:
    return {"id": "chain", "steps": [{"id": f"s{i}", "action": "flow.noop"} for i in range(n)]}


async def wait_done(hub: Hub, total: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = await hub.db.read(
            lambda c: c.execute(
                text("SELECT count(*) FROM runs WHERE status IN ('succeeded', 'failed')")
            ).scalar()
        )
        if done >= total:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("runs did not finish")


async def hub_rate(
    env: dict[str, str], workers: int, runs: int, length: int, probe_file: str | None = None
) -> tuple[float, list[float]]:
    """Steps/s through ``workers`` worker processes; with a probe file, the handoffs in ms."""
    if probe_file:
        env = {
            **env,
            "HUB_PLUGIN_MODULES": "bench.probe",
            "HUB_PROBE_FILE": probe_file,
            "PYTHONPATH": str(ROOT),
        }
    procs = [
        subprocess.Popen(
            [HUB, "worker", "--concurrency", "50"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    hub = Hub(Settings.from_env(env), entry_points=False)
    await hub.start(migrate=False)
    try:
        await asyncio.sleep(3.0)  # workers start and connect
        await hub.db.write(lambda c: c.execute(text("DELETE FROM steps")))
        await hub.db.write(lambda c: c.execute(text("DELETE FROM runs")))
        await hub.save_flow(chain(length), publish=True)
        started = time.perf_counter()
        await hub.engine.start_runs(hub.workspace, "chain", [{} for _ in range(runs)])
        await wait_done(hub, runs)
        took = time.perf_counter() - started
    finally:
        await hub.stop(grace=0)
        for proc in procs:
            terminate(proc)
    handoffs: list[float] = []
    if probe_file:
        order = [f"s{i}" for i in range(length)]
        handoffs = probe.handoffs_ms(probe.read_file(probe_file), order)
    return runs * length / took, handoffs


async def recovery(env: dict[str, str], lease: float) -> float:
    """Seconds from a worker's SIGKILL (mid-step) to the step's next attempt starting."""
    env = {**env, "HUB_LEASE_SECONDS": str(lease), "HUB_SWEEP_INTERVAL": "5"}
    victim = subprocess.Popen(
        [HUB, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    hub = Hub(Settings.from_env(env), entry_points=False)
    await hub.start(migrate=False)
    rescuer = None
    try:
        await asyncio.sleep(3.0)
        await hub.save_flow(
            {
                "id": "slow",
                "steps": [
                    {"id": "wait", "action": "flow.delay", "input": {"seconds": 0}},
                    {
                        "id": "nap",
                        "action": "http.request",
                        "input": {"url": "http://127.0.0.1:9/never"},
                        "timeout": "120s",
                        "retry": {"max_attempts": 3},
                    },
                ],
            },
            publish=True,
        )
        run_id = await hub.start_run("slow")
        while True:
            status = await hub.db.read(
                lambda c: c.execute(
                    text("SELECT status FROM steps WHERE run_id = :r AND key = 'wait'"),
                    {"r": run_id},
                ).scalar()
            )
            if status == "done":
                break
            await asyncio.sleep(0.01)
        victim.kill()
        killed = time.time()
        rescuer = subprocess.Popen(
            [HUB, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        while True:
            started = await hub.db.read(
                lambda c: c.execute(
                    text(
                        "SELECT started_at FROM steps "
                        "WHERE run_id = :r AND key = 'nap' AND attempt = 2"
                    ),
                    {"r": run_id},
                ).scalar()
            )
            if started:
                return started / 1e6 - killed
            await asyncio.sleep(0.1)
    finally:
        await hub.cancel_run(run_id)
        await hub.stop(grace=0)
        if rescuer is not None:
            terminate(rescuer)


async def main(quick: bool) -> None:
    print(
        f"queue-mode benchmark, python {sys.version.split()[0]}, {os.cpu_count()} cores, "
        f"poll delay {POLL_DELAY}s"
    )
    pg, redis = PostgresServer(), RedisServer()
    pg.start()
    redis.start()
    data = Path(tempfile.mkdtemp(prefix="hub-bench-q-"))
    try:
        url = pg.create_database("bench")
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("HUB_")},
            "HUB_DATA_DIR": str(data),
            "HUB_DATABASE_URL": url,
            "HUB_REDIS_URL": redis.url,
            "HUB_QUEUE_POLL_DELAY": str(POLL_DELAY),
            # The SSRF guard refuses 127.0.0.1:9 by default; the recovery probe needs a hung
            # connection there, so allow loopback (nothing listens on port 9: it just fails).
            "HUB_ALLOW_HOSTS": "127.0.0.1",
        }
        Hub(Settings.from_env(env), entry_points=False).migrate()
        n = 2000 if quick else 5000
        raw = statistics.median([await raw_arq_rate(redis.url, n) for _ in range(3)])
        runs, length = (50, 20) if quick else (100, 30)
        one, _ = await hub_rate(env, 1, runs, length)
        two, _ = await hub_rate(env, 2, runs, length)
        _, hand = await hub_rate(env, 1, 20, length, probe_file=str(data / "probe.txt"))
        rec = await recovery(env, 5.0 if quick else 30.0)
    finally:
        redis.stop()
        pg.stop()
    hand.sort()
    p50 = hand[len(hand) // 2]
    p99 = hand[min(len(hand) - 1, int(len(hand) * 0.99))]
    rows = [
        ("raw arq no-op jobs/s, one worker (reference)", f"{raw:,.0f}", ""),
        (
            "hub no-op steps/s, one worker process",
            f"{one:,.0f}",
            f">= {raw * 0.5:,.0f} (50% of raw)",
        ),
        (
            "hub no-op steps/s, two worker processes",
            f"{two:,.0f}",
            f">= {one * 1.5:,.0f} (1.5x one)",
        ),
        ("step handoff p50 (ms): done committed -> next action called", f"{p50:.2f}", "<= 10"),
        ("step handoff p99 (ms)", f"{p99:.2f}", "<= 50"),
        (
            f"recovery after SIGKILL, lease {5 if quick else 30}s, sweep 5s (s)",
            f"{rec:.1f}",
            "<= 40",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"\n{'measure':{width}}  {'figure':>10}  target")
    for name, value, target in rows:
        print(f"{name:{width}}  {value:>10}  {target}")
    print(f"\nratios: one worker / raw arq = {one / raw:.2f}; two workers / one = {two / one:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    asyncio.run(main(parser.parse_args().quick))
