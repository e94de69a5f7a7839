"""The hostile corpus (:data:`hub.testing.hostile.CORPUS`) rendered by a real hub, three ways:

- through the step-test route (``POST /api/w/default/step-tests``, an editor's token) of a
  ``hub serve`` process (embedded: SQLite, the in-process executor);
- through one unauthenticated webhook request to a published flow of the same server, with
  one step per template (all roots, so they render at once);
- by a ``hub worker`` process in queue mode (PostgreSQL and Redis), running that flow.

For each template: an error that names the limit it met, within a generous bound; the
server's ``/healthz`` answered within 2 s throughout, from another client polling it the
whole time (:class:`hub.testing.hostile.HealthProbe`); and the growth of the resident memory
of the process that rendered it under :data:`RSS_BOUND_MB`.

Why 300 MB: a render's budget bounds what it builds (``HUB_MAX_RENDER_BYTES``, 64 MB, an
estimate of the memory its values hold; the corpus mostly ends on work or output limits well
before it), at most ``HUB_RENDER_THREADS`` (2) renders run at once besides the loop's own, and
CPython's allocator keeps some freed memory; 300 MB leaves room for all of that and for the
allocator's slack, and is still well under what one unbounded template took (917 MB in the
issue; ``center_list_memory`` alone builds a gigabyte).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from hub.settings import Settings
from hub.testing.hostile import (
    CORPUS,
    HealthProbe,
    PeakRss,
    Served,
    flow_with_corpus,
    names_a_limit,
    rss_kb,
    serve,
)
from tests.conftest import make_hub, worker_process

HEALTHZ_BOUND = 2.0  # seconds: the longest /healthz may wait while the corpus renders
ERROR_BOUND = 30.0  # seconds: generous, for one template's error (max_render_seconds is 5)
RUN_BOUND = 120.0  # seconds: the whole corpus as one run (2 threads render it)
RSS_BOUND_MB = 300


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One ``hub serve`` for the module, warmed up (a step test, a run) before its memory is
    taken as the baseline."""
    with serve(tmp_path_factory.mktemp("hostile")) as served:
        warm = httpx.post(
            f"{served.base}/api/w/default/step-tests",
            json={"action": "data.set", "input": {"value": "{{ [1, 2]|sum }}"}},
            headers=served.headers,
            timeout=30,
        )
        assert warm.status_code == 200 and warm.json()["output"] == 3, warm.text
        yield served
    assert "Traceback" not in served.log.read_text(), served.log.read_text()


@contextlib.contextmanager
def probing(server: Served) -> Iterator[HealthProbe]:
    """A client polling the server's /healthz throughout the block; afterwards, every poll
    was answered 200 within HEALTHZ_BOUND."""
    probe = HealthProbe(server.base)
    probe.start()
    try:
        yield probe
    finally:
        probe.stop()
    assert not probe.failures, probe.failures[:5]
    assert len(probe.latencies) > 10, "the probe barely polled"
    assert probe.worst < HEALTHZ_BOUND, (
        f"/healthz waited {probe.worst:.2f}s (p99 {probe.percentile(99) * 1000:.0f} ms)"
    )


def test_step_tests_of_hostile_templates_fail_naming_their_limit(server: Served) -> None:
    baseline = rss_kb(server.process.pid)
    problems = []
    with probing(server), PeakRss(server.process.pid) as rss, httpx.Client(timeout=60) as client:
        for entry in CORPUS:
            started = time.monotonic()
            response = client.post(
                f"{server.base}/api/w/default/step-tests",
                json={"action": "data.set", "input": {"value": entry.source}},
                headers=server.headers,
            )
            took = time.monotonic() - started
            assert response.status_code == 200, response.text
            error = response.json()["error"] or {}
            message = str(error.get("message", ""))
            if error.get("kind") != "expression" or not names_a_limit(message):
                problems.append(f"{entry.name}: no limit named: {response.json()}")
            elif took > ERROR_BOUND:
                problems.append(f"{entry.name}: its error took {took:.1f}s")
    assert not problems, "\n".join(problems)
    growth = (rss.peak - baseline) / 1024
    assert growth < RSS_BOUND_MB, f"hub serve grew by {growth:.0f} MB"


def wait_run(client: httpx.Client, server: Served, run_id: str, timeout: float) -> dict[str, Any]:
    """The run once finished (polled through the API)."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"{server.base}/api/w/default/runs/{run_id}", headers=server.headers)
        assert response.status_code == 200, response.text
        run: dict[str, Any] = response.json()
        if run["status"] not in {"queued", "running", "waiting"}:
            return run
        assert time.monotonic() < deadline, f"run {run_id} still {run['status']} after {timeout}s"
        time.sleep(0.1)


def corpus_problems(steps: list[dict[str, Any]]) -> list[str]:
    """What is wrong with the step attempts of a run of :func:`flow_with_corpus`: each
    template's step failed once (attempt 1), with an error naming its limit (the flow
    continues on error, so the step counts as done with its error recorded)."""
    by_id: dict[str, list[dict[str, Any]]] = {}
    for step in steps:
        by_id.setdefault(step["step_id"], []).append(step)
    problems = []
    for entry in CORPUS:
        attempts = by_id.get(entry.name, [])
        if len(attempts) != 1:
            errors = [a["error"] for a in attempts]
            problems.append(f"{entry.name}: {len(attempts)} attempts: {errors}")
            continue
        step = attempts[0]
        message = str((step["error"] or {}).get("message", ""))
        # on_error: continue records the error and counts the step as done (output null)
        if step["status"] not in ("failed", "done") or not names_a_limit(message):
            problems.append(f"{entry.name}: {step['status']}, {step['error']}")
    return problems


def test_a_webhook_to_a_flow_of_hostile_templates_fails_each_step_naming_its_limit(
    server: Served,
) -> None:
    with httpx.Client(timeout=60) as client:
        saved = client.post(
            f"{server.base}/api/w/default/flows",
            json={
                "document": flow_with_corpus("hostile-hook", {"type": "webhook"}),
                "publish": True,
            },
            headers=server.headers,
        )
        assert saved.status_code in (200, 201), saved.text
        baseline = rss_kb(server.process.pid)
        with probing(server), PeakRss(server.process.pid) as rss:
            accepted = client.post(f"{server.base}/hooks/default/hostile-hook", json={"a": 1})
            assert accepted.status_code == 202, accepted.text
            run = wait_run(client, server, accepted.json()["run_id"], RUN_BOUND)
    problems = corpus_problems(run["steps"])
    assert not problems, "\n".join(problems)
    growth = (rss.peak - baseline) / 1024
    assert growth < RSS_BOUND_MB, f"hub serve grew by {growth:.0f} MB"


@pytest.fixture
def backend() -> str:
    return "queue"


async def test_a_worker_fails_each_hostile_step_once_naming_its_limit(settings: Settings) -> None:
    """A ``hub worker`` runs the corpus flow: each step fails once with its limit, none
    loses its lease (its heartbeats go on while renders run), and the worker's memory
    stays within the bound. The hub in this process sweeps every 0.2 s, so a lease that
    expired would be found and failed as such."""
    settings = settings.replace(lease_seconds=3.0)
    hub = make_hub(settings)
    await hub.start(migrate=False)
    log = settings.data_dir / "worker.log"
    try:
        await hub.save_flow(
            {"id": "warm", "steps": [{"id": "a", "action": "flow.noop"}]}, publish=True
        )
        await hub.save_flow(flow_with_corpus("hostile-run"), publish=True)
        lease = str(settings.lease_seconds)
        async with worker_process(settings, log, HUB_LEASE_SECONDS=lease) as worker:
            warm = await hub.start_run("warm")
            assert (await hub.wait_for_run(warm, 60))["status"] == "succeeded"
            baseline = rss_kb(worker.pid)
            with PeakRss(worker.pid) as rss:
                run_id = await hub.start_run("hostile-run")
                await hub.wait_for_run(run_id, RUN_BOUND)
            run = await hub.get_run(run_id)
    finally:
        await hub.stop(grace=0)
    text = log.read_text()
    problems = corpus_problems(run["steps"])
    assert not problems, "\n".join(problems) + "\n" + text[-3000:]
    assert "lease expired" not in str(run["steps"])
    growth = (rss.peak - baseline) / 1024
    assert growth < RSS_BOUND_MB, f"hub worker grew by {growth:.0f} MB"
