"""Embedded-mode benchmark: SQLite + in-process executor, in a warm process.

Prints, beside the targets of the core issue: the raw ``sqlite3`` single-row transaction rate
on the same disk (the reference), no-op step throughput on a 1,000-item ``for_each`` and a
100-step chain, the step handoff (a step done -> its successor started, from the step
records), a 40-step sequential flow's wall time, and the RSS of 10,000 runs waiting in a
one-hour ``flow.delay``.

    python bench/embedded.py            # everything
    python bench/embedded.py --quick    # fewer repetitions, 2,000 waiting runs
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import probe
from bench.report import print_measures
from hub.runtime import Hub
from hub.settings import Settings


def rss_mb() -> float:
    """Resident set size of this process in MB (from /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def raw_sqlite_rate(folder: Path, n: int = 5000) -> float:
    """Single-row INSERT transactions per second with the stdlib driver (WAL, NORMAL)."""
    conn = sqlite3.connect(folder / "raw.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    started = time.perf_counter()
    for i in range(n):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (v) VALUES (?)", (str(i),))
        conn.execute("COMMIT")
    rate = n / (time.perf_counter() - started)
    conn.close()
    return rate


def chain(flow_id: str, n: int) -> dict[str, Any]:
    return {
        "id": flow_id,
        "steps": [{"id": f"s{i}", "action": "flow.noop", "input": {"i": i}} for i in range(n)],
    }


async def timed_run(hub: Hub, flow_id: str, data: Any = None) -> tuple[float, str]:
    started = time.perf_counter()
    run_id = await hub.start_run(flow_id, data)
    record = await hub.wait_for_run(run_id, 600)
    took = time.perf_counter() - started
    assert record["status"] == "succeeded", record
    return took, run_id


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


async def main(quick: bool) -> None:
    folder = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    print(
        f"embedded benchmark, data in {folder}, "
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores"
    )
    raw = raw_sqlite_rate(folder)
    settings = Settings(data_dir=folder, sweep_interval=5.0)
    hub = Hub(settings, entry_points=False)
    await hub.start()
    # A second hub with the probe plugin measures the handoff (the probe's hooks cost a
    # little, so throughput is measured without it).
    probed = Hub(settings, entry_points=False, plugins=[probe])
    reps = 3 if quick else 5
    try:
        await hub.save_flow(
            {
                "id": "fanout",
                "steps": [
                    {
                        "id": "each",
                        "action": "flow.noop",
                        "for_each": "{{ trigger.items }}",
                        "input": {"i": "{{ item }}"},
                    }
                ],
            },
            publish=True,
        )
        for n in (100, 40):
            await hub.save_flow(chain(f"chain{n}", n), publish=True)
        await timed_run(hub, "chain40")  # warm caches
        await timed_run(hub, "fanout", {"items": list(range(50))})

        fan = [await timed_run(hub, "fanout", {"items": list(range(1000))}) for _ in range(reps)]
        fan_rate = 1000 / statistics.median(t for t, _ in fan)

        chains = [await timed_run(hub, "chain100") for _ in range(reps)]
        chain_rate = 100 / statistics.median(t for t, _ in chains)

        forty = [await timed_run(hub, "chain40") for _ in range(reps * 4)]
        forty_ms = statistics.median(t for t, _ in forty) * 1000

        waiting = 2000 if quick else 10_000
        await hub.save_flow(
            {
                "id": "sleepy",
                "steps": [{"id": "wait", "action": "flow.delay", "input": {"seconds": 3600}}],
            },
            publish=True,
        )
        gc.collect()
        before = rss_mb()
        started = time.perf_counter()
        ids = [await hub.start_run("sleepy") for _ in range(waiting)]
        while True:
            rows = await hub.list_runs(flow_id="sleepy", limit=1)
            pending = await hub.db.read(
                lambda c: c.exec_driver_sql(
                    "SELECT count(*) FROM steps WHERE status = 'waiting' AND step_id = 'wait'"
                ).scalar()
            )
            if pending >= waiting or not rows:
                break
            await asyncio.sleep(0.1)
        gc.collect()
        after = rss_mb()
        wait_secs = time.perf_counter() - started
        assert len(ids) == waiting
    finally:
        await hub.stop()
    await probed.start()
    try:
        for _ in range(reps):
            await timed_run(probed, "chain100")
    finally:
        await probed.stop()
    hand = probe.handoffs_ms(probe.EVENTS, [f"s{i}" for i in range(100)])

    rows = [
        ("raw sqlite3 single-row transactions/s (reference)", f"{raw:,.0f}", ""),
        ("no-op steps/s, 1,000-item for_each", f"{fan_rate:,.0f}", ">= 2,000"),
        ("no-op steps/s, 100-step chain", f"{chain_rate:,.0f}", ">= 1,000"),
        (
            "step handoff p50 (ms): done committed -> next action called",
            f"{percentile(hand, 50):.2f}",
            "<= 2",
        ),
        ("step handoff p99 (ms)", f"{percentile(hand, 99):.2f}", "<= 10"),
        ("40-step sequential flow, median (ms)", f"{forty_ms:.1f}", "< 100"),
        (f"RSS with {waiting:,} runs in a 1 h delay (MB)", f"{after:.0f}", "< 200"),
        ("  RSS before starting them (MB)", f"{before:.0f}", ""),
        (f"  time to start {waiting:,} waiting runs (s)", f"{wait_secs:.1f}", ""),
    ]
    print_measures(rows)
    print(
        f"\nratios: chain steps/s vs raw sqlite tx/s = {chain_rate / raw:.3f}; "
        f"for_each steps/s vs raw = {fan_rate / raw:.3f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    asyncio.run(main(parser.parse_args().quick))
