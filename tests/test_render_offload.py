"""No render blocks an event loop (:mod:`hub.expressions.offload`).

A render runs inline for a small slice and, past it, again in a thread with its whole
budget while the loop keeps answering; a worker's heartbeats go on meanwhile, so a step
whose render passes its bound fails once with that reason, never as a lost lease.

The costly render here is a pair of nested loops with the loop and work budgets raised out
of the way (``HUB_MAX_LOOP_ITERATIONS``, ``HUB_MAX_RENDER_WORK``), so that it runs until the
render deadline (``HUB_MAX_RENDER_SECONDS``): longer than the leases the tests give.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hub.expressions import ExpressionError, Expressions, Limits
from hub.expressions.offload import Renders
from hub.settings import Settings, SettingsError
from tests.conftest import make_hub, run_flow, started, worker_process

ROOT = Path(__file__).resolve().parent.parent
LOOPS = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
UNBOUNDED = 10**15  # the loop and work budgets out of the way: the deadline ends LOOPS


def costly(settings: Settings) -> Settings:
    """``settings`` under which LOOPS runs until a 2 s render deadline."""
    return settings.replace(
        max_loop_iterations=UNBOUNDED, max_render_work=UNBOUNDED, max_render_seconds=2.0
    )


@contextlib.asynccontextmanager
async def loop_gaps(period: float = 0.01) -> AsyncIterator[list[float]]:
    """The longest the event loop went without running a task that sleeps ``period``
    seconds at a time, in a one-item list filled in when the block ends."""
    worst = [0.0]
    stop = asyncio.Event()

    async def tick() -> None:
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(period)
            now = time.monotonic()
            worst[0] = max(worst[0], now - last - period)
            last = now

    task = asyncio.create_task(tick())
    try:
        yield worst
    finally:
        stop.set()
        await task


def where(value: object) -> str:
    """A filter that tells on which thread the render runs."""
    return threading.current_thread().name


async def test_cheap_renders_stay_inline_and_costly_ones_move_to_a_thread() -> None:
    expressions = Expressions(filters={"where": where})
    renders = Renders(inline_seconds=0.0)  # any charge point moves the render
    try:
        path = expressions.compile("{{ trigger.a }}", "x")
        assert await renders.render(path, {"trigger": {"a": [1]}}) == [1]
        static = expressions.compile({"a": 1}, "x")
        assert await renders.render(static, {}) == {"a": 1}
        assert renders.moved == 0  # neither has a charge point: no thread hop
        loop = expressions.compile("{% for i in range(3) %}{{ i }}{% endfor %}{{ 0|where }}", "x")
        main = threading.current_thread().name
        in_pool = "012hub-render_"  # which of the pool's threads is the pool's choice
        assert (await renders.render(loop, {})).startswith(in_pool)
        assert renders.moved == 1
        # It took longer than a slice (0 s) in the pool: it goes straight there next time,
        # with no inline attempt stopped again.
        assert (await renders.render(loop, {})).startswith(in_pool)
        assert renders.moved == 1
        # Quick in the pool (under a slice of 60 s), it goes back to the loop.
        renders.inline_seconds = 60.0
        assert (await renders.render(loop, {})).startswith(in_pool)
        assert await renders.render(loop, {}) == f"012{main}"
        assert renders.moved == 1
    finally:
        renders.close()


async def test_a_moved_render_leaves_the_loop_free_and_ends_by_its_deadline() -> None:
    limits = Limits(
        max_loop_iterations=UNBOUNDED, max_render_work=UNBOUNDED, max_render_seconds=1.5
    )
    compiled = Expressions(limits).compile(LOOPS, "steps.x.input")
    renders = Renders()
    try:
        started_at = time.monotonic()
        async with loop_gaps() as worst:
            with pytest.raises(ExpressionError, match="limit exceeded") as caught:
                await renders.render(compiled, {})
        took = time.monotonic() - started_at
    finally:
        renders.close()
    assert caught.value.location == "steps.x.input"
    assert renders.moved == 1
    assert 1.4 < took < 10
    assert worst[0] < 0.5, f"the loop stalled {worst[0]:.2f}s"


def test_the_offload_settings_are_read_and_checked(tmp_path: Path) -> None:
    env = {"HUB_RENDER_INLINE_SECONDS": "0.02", "HUB_RENDER_THREADS": "2"}
    settings = Settings.from_env(env, data_dir=tmp_path)
    assert (settings.render_inline_seconds, settings.render_threads) == (0.02, 2)
    with pytest.raises(SettingsError, match="HUB_RENDER_THREADS"):
        Settings.from_env({"HUB_RENDER_THREADS": "0"}, data_dir=tmp_path)


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_an_embedded_hub_renders_a_costly_step_input_off_its_loop(
    settings: Settings,
) -> None:
    """The run fails its step with the limit, and the hub's loop never stalls meanwhile."""
    async with started(costly(settings)) as hub:
        document = {
            "id": "costly",
            "steps": [{"id": "x", "action": "data.set", "input": {"value": LOOPS}}],
        }
        async with loop_gaps() as worst:
            run = await run_flow(hub, document, timeout=60)
        assert hub.engine.renders.moved == 1
    assert run["status"] == "failed"
    (step,) = run["steps"]
    assert (step["status"], step["attempt"]) == ("failed", 1)
    assert "limit exceeded" in step["error"]["message"], step["error"]
    assert worst[0] < 0.5, f"the loop stalled {worst[0]:.2f}s"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_costly_flow_output_renders_off_the_loop(settings: Settings) -> None:
    """The output is rendered in the transaction that finishes the run, which runs on the
    loop (PostgreSQL's in a greenlet of it) and holds the write lock: past its slice it is
    rolled back, the output rendered in a thread, and the transaction run again; the loop
    never stalls."""
    async with started(costly(settings)) as hub:
        step = {"id": "a", "action": "data.set", "input": {"value": 1}}
        document = {"id": "out", "steps": [step], "output": LOOPS}
        async with loop_gaps() as worst:
            run = await run_flow(hub, document, timeout=60)
    assert run["status"] == "failed"
    assert "limit exceeded" in run["error"]["message"], run["error"]
    assert [s["status"] for s in run["steps"]] == ["done"]
    assert worst[0] < 0.5, f"the loop stalled {worst[0]:.2f}s"


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_an_output_rendered_off_the_loop_is_the_runs_output(settings: Settings) -> None:
    """With no inline slice, every output with a charge point takes the thread path."""
    async with started(settings.replace(render_inline_seconds=0.0)) as hub:
        document = {
            "id": "out",
            "steps": [{"id": "a", "action": "data.set", "input": {"value": 2}}],
            "output": "{% for i in range(3) %}{{ steps.a.output * i }}{% endfor %}",
        }
        run = await run_flow(hub, document)
    assert (run["status"], run["output"]) == ("succeeded", "024")


@pytest.fixture
def backend() -> str:
    return "queue"


async def test_a_worker_keeps_its_leases_while_a_render_outlasts_them(
    settings: Settings,
) -> None:
    """A ``hub worker`` (a lease of 1.5 s, renewed every 0.5 s) runs two steps at once: one
    whose input renders until the render deadline (longer than the lease), and one that
    sleeps for 3 s. The first fails once with the limit it met, the second succeeds, and
    neither loses its lease, though this process's sweeper looks for expired leases every
    0.2 s."""
    settings = settings.replace(lease_seconds=1.5)
    hub = make_hub(settings)
    await hub.start(migrate=False)
    env = {
        "HUB_LEASE_SECONDS": "1.5",
        "HUB_MAX_LOOP_ITERATIONS": str(UNBOUNDED),
        "HUB_MAX_RENDER_WORK": str(UNBOUNDED),
        "HUB_MAX_RENDER_SECONDS": "4",
        "HUB_PLUGIN_MODULES": "tests.kit",
        "PYTHONPATH": str(ROOT),
    }
    log = settings.data_dir / "worker.log"
    document: dict[str, Any] = {
        "id": "lease",
        "steps": [
            {"id": "costly", "action": "data.set", "needs": [], "input": {"value": LOOPS}},
            {"id": "normal", "action": "test.sleep", "needs": [], "input": {"seconds": 3}},
        ],
    }
    try:
        await hub.save_flow(document, publish=True)
        async with worker_process(settings, log, **env):
            run_id = await hub.start_run("lease")
            await hub.wait_for_run(run_id, 60)
            run = await hub.get_run(run_id)
    finally:
        await hub.stop(grace=0)
    steps = {(s["step_id"], s["attempt"]): s for s in run["steps"]}
    assert set(steps) == {("costly", 1), ("normal", 1)}, (run["steps"], log.read_text())
    costly, normal = steps["costly", 1], steps["normal", 1]
    assert costly["status"] == "failed"
    assert "limit exceeded" in costly["error"]["message"], costly["error"]
    took = costly["finished_at"] - costly["started_at"]  # epoch microseconds
    assert took > 1_500_000, "the render ended within the lease: nothing tested"
    assert normal["status"] == "done", normal
    assert run["status"] == "failed"  # the costly step's failure (on_error: fail)
