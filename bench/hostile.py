"""How long ``/healthz`` waits while a ``hub serve`` renders hostile templates.

The script starts ``hub serve`` (embedded: SQLite and the in-process executor) on a fresh
data folder, and a client in a thread of this process polls its ``/healthz`` one request
after another for the whole run. Then it plays the corpus of ``tests/test_hostile_renders.py``
(:data:`hub.testing.hostile.CORPUS`, one list for both) against the server:

- each template through the step-test route (``POST /api/w/default/step-tests``, an
  editor's token), one after another: its time to error and the limit it met;
- with ``--webhook``, also one webhook request to a published flow with one step per
  template (all roots: they render at once, as many at a time as ``HUB_RENDER_THREADS``).

It prints each template's time to error and the longest ``/healthz`` wait meanwhile, and
the p50, p99 and max of ``/healthz``'s latency, idle (before the corpus) and
while the corpus renders (the target: max <= 200 ms), and the server's RSS before and at
its peak.

    .venv/bin/python bench/hostile.py                   # the step tests, about a minute
    .venv/bin/python bench/hostile.py --webhook         # and the webhook flow
    .venv/bin/python bench/hostile.py --rounds 3        # the corpus three times over
    .venv/bin/python bench/hostile.py --only sort_loop,nested_loops     # some of it
    HUB_RENDER_THREADS=1 .venv/bin/python bench/hostile.py   # HUB_* settings reach the server
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import print_measures
from hub.testing.hostile import CORPUS, HealthProbe, PeakRss, flow_with_corpus, rss_kb, serve


def ms(seconds: float) -> str:
    """Seconds as milliseconds, for the table."""
    return f"{seconds * 1000:,.1f}"


def wait_run(client: httpx.Client, base: str, headers: dict[str, str], run_id: str) -> Any:
    """The run record once finished (polled every 50 ms, at most 10 minutes)."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        run = client.get(f"{base}/api/w/default/runs/{run_id}", headers=headers).json()
        if run["status"] not in {"queued", "running", "waiting"}:
            return run
        time.sleep(0.05)
    raise SystemExit(f"run {run_id} did not finish in 10 minutes")


def main(args: argparse.Namespace) -> None:
    passed = {k: v for k, v in os.environ.items() if k.startswith("HUB_") and k != "HUB_DATA_DIR"}
    folder = tempfile.TemporaryDirectory(prefix="hub-bench-hostile-")
    with folder as tmp, serve(Path(tmp), passed) as srv:
        base, headers = srv.base, srv.headers
        client = httpx.Client(timeout=600)
        step_test = f"{base}/api/w/default/step-tests"
        warm = {"action": "data.set", "input": {"value": "{{ [1, 2]|sum }}"}}
        for _ in range(20):
            client.post(step_test, json=warm, headers=headers)
        idle = HealthProbe(base)
        idle.start()
        time.sleep(args.idle)
        idle.stop()
        baseline = rss_kb(srv.process.pid)
        peak = PeakRss(srv.process.pid)
        peak.start()
        probe = HealthProbe(base)
        probe.start()
        rows: list[tuple[str, float, float, str]] = []
        only = set(filter(None, args.only.split(",")))
        unknown = only - {entry.name for entry in CORPUS}
        if unknown:
            raise SystemExit(f"no such templates: {sorted(unknown)}")
        for _ in range(args.rounds):
            for entry in [e for e in CORPUS if not only or e.name in only]:
                started = time.perf_counter()
                body = {"action": "data.set", "input": {"value": entry.source}}
                answer = client.post(step_test, json=body, headers=headers).json()
                took = time.perf_counter() - started
                error = answer.get("error") or {}
                worst = probe.worst_between(started, started + took)
                rows.append((entry.name, took, worst, str(error.get("message", "no error"))))
        webhook = None
        if args.webhook:
            document = flow_with_corpus("bench-hostile", {"type": "webhook"})
            saved = client.post(
                f"{base}/api/w/default/flows",
                json={"document": document, "publish": True},
                headers=headers,
            )
            saved.raise_for_status()
            started = time.perf_counter()
            accepted = client.post(f"{base}/hooks/default/bench-hostile", json={})
            run = wait_run(client, base, headers, accepted.json()["run_id"])
            failed = sum(1 for s in run["steps"] if s["error"])  # on_error: continue
            took = time.perf_counter() - started
            webhook = (took, failed, probe.worst_between(started, started + took))
        probe.stop()
        peak.stop()
        client.close()

    width = max(len(row[0]) for row in rows)
    print(f"\n{'template':{width}}  {'to error (ms)':>13}  {'/healthz max (ms)':>17}  error")
    for name, took, worst, message in rows:
        print(f"{name:{width}}  {ms(took):>13}  {ms(worst):>17}  {message[:80]}")
    if webhook is not None:
        print(
            f"\nwebhook, {len(CORPUS)} templates as one run's steps: finished in "
            f"{webhook[0]:.1f} s, {webhook[1]} steps with an error, /healthz max "
            f"{ms(webhook[2])} ms"
        )
    table = [
        ("/healthz p50 idle (ms)", ms(idle.percentile(50)), ""),
        ("/healthz p99 idle (ms)", ms(idle.percentile(99)), ""),
        ("/healthz p50 during the corpus (ms)", ms(probe.percentile(50)), ""),
        ("/healthz p99 during the corpus (ms)", ms(probe.percentile(99)), ""),
        ("/healthz max during the corpus (ms)", ms(probe.worst), "<= 200"),
        ("/healthz requests during the corpus", f"{len(probe.latencies):,}", ""),
        ("/healthz failures during the corpus", f"{len(probe.failures)}", "0"),
        ("slowest time to error (ms)", ms(max(row[1] for row in rows)), ""),
        ("RSS before the corpus (MB)", f"{baseline / 1024:.0f}", ""),
        ("RSS peak during the corpus (MB)", f"{peak.peak / 1024:.0f}", ""),
    ]
    print_measures(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=1, help="times the corpus is played")
    parser.add_argument("--webhook", action="store_true", help="also through a webhook flow")
    parser.add_argument("--only", default="", help="comma-separated template names to play")
    parser.add_argument("--idle", type=float, default=2.0, help="seconds of idle polling first")
    main(parser.parse_args())
