"""Queue-mode benchmark: PostgreSQL + Redis + `hub worker` processes, on loopback.

Starts its own throwaway PostgreSQL and Redis servers (like the tests), then prints, beside
the targets of the queue-mode issue:

- raw arq no-op job throughput with the same Redis and the same poll delay (the reference);
- hub no-op step throughput with one worker process, and with two (the median of five
  loads of each, alternated; a load is 300 runs of a 100-step chain of ``flow.noop``,
  30,000 steps), and where the CPU time of those loads went: the worker processes,
  PostgreSQL's processes, Redis and this process, in microseconds per step. Each
  measured load follows a warm-up load (a third of it) on tables that keep every earlier
  run's rows, freshly analysed; it starts as this process creates its runs and ends at
  its last run's ``finished_at``. Also printed: each load's rate in full swing (while
  the 20th to the 80th percent of its steps finished: without the runs' creation and
  first jobs, nor the last runs' last steps);
- for scale, one worker through fan-outs (20 runs of a 300-item ``for_each``);
- step handoff p50/p99 (a step done -> its successor started, from the step records);
- recovery: a worker is SIGKILLed in the middle of a step; the time until the step's next
  attempt starts, with the default lease (30 s) and sweeper interval (5 s).

    python bench/queue_mode.py              # everything (about two and a half minutes, idle)
    python bench/queue_mode.py --length 30  # loads of 30-step chains (the shape until
                                            # 3 December 2026: 9,000 steps a load)
    python bench/queue_mode.py --quick      # one smaller run each, recovery with a 5 s lease
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
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from arq import create_pool  # noqa: E402
from arq.worker import Worker  # noqa: E402
from sqlalchemy import text  # noqa: E402

from bench import probe  # noqa: E402
from bench.report import print_measures  # noqa: E402
from hub.engine.executors.arq.queues import deserialize, redis_settings, serialize  # noqa: E402
from hub.runtime import Hub  # noqa: E402
from hub.settings import Settings  # noqa: E402
from tests.services import PostgresServer, RedisServer, terminate  # noqa: E402

HUB = str(Path(sys.executable).parent / "hub")
POLL_DELAY = 0.005
# Steps a worker runs at once, its queue jobs and the steps it runs without one alike: as
# many as there are chains, so that what limits one worker is the worker, not its cap.
CONCURRENCY = 300
# Loads of each shape, alternated: this machine's speed drifts by a quarter within minutes,
# so that three runs of one configuration could span its whole range.
ALTERNATIONS = 5


async def noop_job(ctx: dict[str, Any]) -> None:
    return None


async def raw_arq_rate(redis_url: str, n: int) -> float:
    """Jobs/s of one arq worker running no-op jobs (enqueued first, then drained in burst)."""
    queue = f"raw{uuid.uuid4().hex[:6]}"
    pool = await create_pool(
        redis_settings(redis_url), job_serializer=serialize, job_deserializer=deserialize
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
        job_serializer=serialize,
        job_deserializer=deserialize,
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


def fan_out(n: int) -> dict[str, Any]:
    """One step over ``n`` items (saved under the same id: the runs' steps are counted)."""
    each = {"id": "each", "action": "flow.noop", "for_each": f"{{{{ range({n}) | list }}}}"}
    return {"id": "chain", "steps": [each]}


async def wait_done(hub: Hub, run_ids: list[str], timeout: float = 600) -> None:
    """Wait until these runs have finished; a run that did not succeed is an error (a
    figure counting failed runs would count steps that never ran). Polls every 0.1 s for
    the runs not yet seen finished (the figure itself is taken from their ``finished_at``)."""
    deadline = time.monotonic() + timeout
    left = list(run_ids)
    while time.monotonic() < deadline:
        ended = await hub.db.read(
            lambda c, left=left: c.execute(
                text(
                    "SELECT id, status FROM runs WHERE id = ANY(:ids) "
                    "AND status IN ('succeeded', 'failed', 'cancelled')"
                ),
                {"ids": left},
            ).all()
        )
        failed = [row.id for row in ended if row.status != "succeeded"]
        if failed:
            raise RuntimeError(f"{len(failed)} of {len(run_ids)} runs did not succeed")
        done = {row.id for row in ended}
        left = [run_id for run_id in left if run_id not in done]
        if not left:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError("runs did not finish")


TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int | str) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (None if it is gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0 if it is gone)."""
    fields = _stat(pid)
    return 0.0 if fields is None else (int(fields[11]) + int(fields[12])) / TICKS


def children(parent: int) -> list[int]:
    """The processes whose parent is ``parent`` (PostgreSQL's backends and helpers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(entry.name)) and int(fields[1]) == parent:
            found.append(int(entry.name))
    return found


class CpuMeter:
    """CPU seconds spent by groups of processes between :meth:`start` and :meth:`stop`.

    PostgreSQL's backends come and go with connections, so they are read while alive:
    the meter is stopped before the workers (and their connections) are.
    """

    def __init__(self, groups: dict[str, Any]) -> None:
        self.groups = groups  # name -> function returning the group's pids now
        self.before: dict[int, float] = {}
        self.spent: dict[str, float] = {}

    def start(self) -> None:
        """Note every process's CPU time now."""
        self.before = {pid: cpu_seconds(pid) for pids in self.groups.values() for pid in pids()}

    def stop(self) -> None:
        """Add up what each group spent since :meth:`start`."""
        self.spent = {
            name: sum(cpu_seconds(pid) - self.before.get(pid, 0.0) for pid in pids())
            for name, pids in self.groups.items()
        }


class Load(NamedTuple):
    """What :func:`hub_rate` measured of one load."""

    rate: float  # steps/s, from the runs' creation to the last run's end
    handoffs: list[float]  # ms, with a probe file
    per_step: dict[str, float]  # CPU seconds a step by group of processes, and "wall"
    steady: float  # steps/s in full swing (steady_rate)


async def hub_rate(
    env: dict[str, str],
    workers: int,
    runs: int,
    length: int,
    probe_file: str | None = None,
    services: dict[str, Any] | None = None,
    shape: Any = chain,
) -> Load:
    """Steps/s through ``workers`` worker processes; with a probe file, the handoffs in ms;
    with ``services`` (name -> function giving pids), the CPU seconds per step of each."""
    if probe_file:
        env = {
            **env,
            "HUB_PLUGIN_MODULES": "bench.probe",
            "HUB_PROBE_FILE": probe_file,
            "PYTHONPATH": str(ROOT),
        }
    procs = [
        subprocess.Popen(
            [HUB, "worker", "--concurrency", str(CONCURRENCY)],
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
        await hub.save_flow(shape(length), publish=True)
        # Steady state, not start-up: a third of the load first, so that each worker has
        # opened its pool's connections (a new PostgreSQL backend costs milliseconds of
        # CPU: its fork, its catalog caches, the driver's type introspection) and has
        # loaded the flow.
        warm = await hub.engine.start_runs(hub.workspace, "chain", [{} for _ in range(runs // 3)])
        await wait_done(hub, warm)
        # The tables keep the earlier runs' rows, as a hub's do; their statistics are fresh,
        # as autovacuum keeps them (an empty table's would make the planner scan steps).
        await hub.db.read(lambda c: c.execute(text("ANALYZE steps, runs")))
        meter = CpuMeter(
            {
                "worker processes": lambda: [p.pid for p in procs],
                **(services or {}),
                "this process (starts the runs, polls for the end)": lambda: [os.getpid()],
            }
        )
        meter.start()
        started = time.time()
        measured = await hub.engine.start_runs(hub.workspace, "chain", [{} for _ in range(runs)])
        await wait_done(hub, measured)
        meter.stop()
        # Until the last run finished, as recorded (not when the 50 ms poll saw it).
        finished_us = await hub.db.read(
            lambda c: c.execute(
                text("SELECT max(finished_at) FROM runs WHERE id = ANY(:ids)"), {"ids": measured}
            ).scalar_one()
        )
        took = finished_us / 1e6 - started
        ends = await hub.db.read(
            lambda c: (
                c.execute(
                    text("SELECT finished_at FROM steps WHERE run_id = ANY(:ids) ORDER BY 1"),
                    {"ids": measured},
                )
                .scalars()
                .all()
            )
        )
    finally:
        await hub.stop(grace=0)
        for proc in procs:
            terminate(proc)
    handoffs: list[float] = []
    if probe_file:
        order = [f"s{i}" for i in range(length)]
        handoffs = probe.handoffs_ms(probe.read_file(probe_file), order)
    steps = runs * length
    per_step = {name: spent / steps for name, spent in meter.spent.items()}
    per_step["wall"] = took / steps
    return Load(steps / took, handoffs, per_step, steady_rate(ends))


def steady_rate(ends: Sequence[int]) -> float:
    """Steps/s while the load was in full swing: between the moments the 20th and the
    80th percent of its steps finished (``ends``: their ``finished_at``, in order),
    leaving out the start (the runs created, their first jobs taken) and the tail (the
    last runs' last steps)."""
    first, last = ends[len(ends) // 5], ends[len(ends) * 4 // 5]
    return (len(ends) * 3 // 5) / max(1e-6, (last - first) / 1e6)


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


async def main(quick: bool, length: int) -> None:
    runs, length = (100, 30) if quick else (300, length)
    print(
        f"queue-mode benchmark, python {sys.version.split()[0]}, {os.cpu_count()} cores, "
        f"poll delay {POLL_DELAY}s; loads of {runs} runs of a {length}-step chain"
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
        postmaster = int((pg.data / "postmaster.pid").read_text().split()[0])
        services = {
            "PostgreSQL (its backends and helpers)": lambda: children(postmaster),
            "Redis": lambda: [redis.proc.pid] if redis.proc else [],
        }
        measured: dict[int, list[Load]] = {1: [], 2: []}
        for _ in range(1 if quick else ALTERNATIONS):
            for workers in (1, 2):
                load = await hub_rate(env, workers, runs, length, services=services)
                measured[workers].append(load)
        one, one_cpu = _median(measured[1])
        two, two_cpu = _median(measured[2])
        fan = (await hub_rate(env, 1, 20, 300, shape=fan_out)).rate
        hand = (await hub_rate(env, 1, 20, 30, probe_file=str(data / "probe.txt"))).handoffs
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
        ("hub no-op steps/s, one worker, 20 runs of a 300-item for_each", f"{fan:,.0f}", ""),
        ("step handoff p50 (ms): done committed -> next action called", f"{p50:.2f}", "<= 10"),
        ("step handoff p99 (ms)", f"{p99:.2f}", "<= 50"),
        (
            f"recovery after SIGKILL, lease {5 if quick else 30}s, sweep 5s (s)",
            f"{rec:.1f}",
            "<= 40",
        ),
    ]
    print_measures(rows)
    print(f"\nratios: one worker / raw arq = {one / raw:.2f}; two workers / one = {two / one:.2f}")
    each = {n: [round(load.rate) for load in found] for n, found in measured.items()}
    print(f"every run, steps/s: one worker {each[1]}, two {each[2]}")
    steady = {n: [round(load.steady) for load in found] for n, found in measured.items()}
    print(
        f"in full swing (from the 20th to the 80th percent of a load's steps finished), "
        f"steps/s: one worker {steady[1]}, two {steady[2]}; medians "
        f"{statistics.median(steady[1]):,.0f} and {statistics.median(steady[2]):,.0f} "
        f"({statistics.median(steady[2]) / statistics.median(steady[1]):.2f}x)"
    )
    width = max(len(r[0]) for r in rows)  # the CPU table lines up with the measures
    print("\nCPU time per step (us), in the median run of each")
    print(f"{'':{width}}  {'one worker':>10}  {'two':>10}")
    for name in one_cpu:
        if name != "wall":
            print(f"{name:{width}}  {one_cpu[name] * 1e6:>10.0f}  {two_cpu[name] * 1e6:>10.0f}")
    for label, cpu in (("one worker", one_cpu), ("two workers", two_cpu)):
        busy = sum(v for k, v in cpu.items() if k != "wall") / cpu["wall"] / (os.cpu_count() or 1)
        print(f"{label}: the measured processes kept the {os.cpu_count()} cores {busy:.0%} busy")


def _median(found: list[Load]) -> tuple[float, dict[str, float]]:
    """The rate and CPU figures of the load with the median rate (the middle one)."""
    load = sorted(found, key=lambda item: item.rate)[len(found) // 2]
    return load.rate, load.per_step


def steps_a_run(value: str) -> int:
    """``--length``: a whole number of steps, at least one."""
    length = int(value)
    if length < 1:
        raise argparse.ArgumentTypeError(f"a run needs at least one step, not {length}")
    return length


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--length",
        type=steps_a_run,
        default=100,
        help="steps a run (the chain's length), default 100",
    )
    arguments = parser.parse_args()
    asyncio.run(main(arguments.quick, arguments.length))
