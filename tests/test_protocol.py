"""The guarantees of the run protocol: claims, leases, joins, duplicate jobs, recovery."""

from __future__ import annotations

import asyncio
import types
from typing import Any

from sqlalchemy import select, update

from hub.db.models import now_us, steps
from hub.db.runstate.rows import claim
from hub.db.runstate.types import StepJob
from hub.runtime import Hub
from tests import kit


def doc(*steps_: dict[str, Any]) -> dict[str, Any]:
    return {"id": "p", "steps": list(steps_)}


async def test_a_step_is_claimed_once(hub: Hub) -> None:
    await hub.save_flow(
        doc({"id": "g", "action": "test.gate", "input": {"name": "c"}}), publish=True
    )
    await hub.executor.stop()  # keep the job from running: claim by hand
    run_id = await hub.start_run("p")
    first = await hub.db.write(lambda c: claim(c, run_id, "g", 1, "worker-a", 30))
    second = await hub.db.write(lambda c: claim(c, run_id, "g", 1, "worker-b", 30))
    assert first is not None
    assert second is None


async def test_the_same_job_submitted_twice_runs_the_action_once(hub: Hub) -> None:
    await hub.save_flow(doc({"id": "k", "action": "test.count_key"}), publish=True)
    run_id = await hub.start_run("p")
    job = StepJob(run_id, "k", 1)
    await asyncio.gather(*(hub.engine.execute(job) for _ in range(5)))
    await hub.wait_for_run(run_id, 5)
    assert kit.CALLS[f"key:{run_id}:k"] == 1


async def test_a_worker_that_lost_its_lease_cannot_complete_the_step(hub: Hub) -> None:
    await hub.save_flow(
        doc({"id": "g", "action": "test.gate", "input": {"name": "lease"}}), publish=True
    )
    run_id = await hub.start_run("p")
    while not kit.CALLS["gate:lease"]:
        await asyncio.sleep(0.01)
    # Another worker takes the step over (as the sweeper would after the lease expired).
    await hub.db.write(
        lambda c: c.execute(
            update(steps).where(steps.c.run_id == run_id).values(lease_owner="someone-else")
        )
    )
    kit.GATES["lease"].set()
    await asyncio.sleep(0.2)
    row = await hub.db.read(
        lambda c: c.execute(
            select(steps.c.status, steps.c.lease_owner).where(steps.c.run_id == run_id)
        ).one()
    )
    assert row.status == "running"
    assert row.lease_owner == "someone-else"


async def test_a_step_whose_worker_died_runs_again_after_its_lease(hub: Hub) -> None:
    await hub.save_flow(
        doc(
            {"id": "k", "action": "test.count_key", "retry": {"max_attempts": 2, "initial": "10ms"}}
        ),
        publish=True,
    )
    await hub.executor.stop()
    run_id = await hub.start_run("p")
    # A worker (another boot id) claims it, then dies: its lease runs out.
    await hub.db.write(lambda c: claim(c, run_id, "k", 1, "dead-worker", 30))
    await hub.db.write(
        lambda c: c.execute(
            update(steps).where(steps.c.run_id == run_id).values(lease_expires_at=now_us() - 1)
        )
    )
    await hub.executor.start(hub.engine.execute)
    await hub.engine.sweep()
    record = await hub.wait_for_run(run_id, 5)
    assert record["status"] == "succeeded"
    run = await hub.get_run(run_id)
    assert [(s["attempt"], s["status"]) for s in run["steps"]] == [(1, "failed"), (2, "done")]
    assert "lease expired" in run["steps"][0]["error"]["message"]


async def test_join_runs_once_when_its_predecessors_finish_together(hub: Hub) -> None:
    await hub.save_flow(
        doc(
            {"id": "a", "action": "test.gate", "needs": [], "input": {"name": "both"}},
            {"id": "b", "action": "test.gate", "needs": [], "input": {"name": "both"}},
            {"id": "join", "action": "test.count_key", "needs": ["a", "b"]},
        ),
        publish=True,
    )
    for _ in range(25):
        kit.GATES.clear()
        kit.CALLS.clear()
        run_id = await hub.start_run("p")
        while kit.CALLS["gate:both"] < 2:
            await asyncio.sleep(0.005)
        kit.GATES["both"].set()
        record = await hub.wait_for_run(run_id, 5)
        assert record["status"] == "succeeded"
        assert kit.CALLS[f"key:{run_id}:join"] == 1
        joins = [s for s in (await hub.get_run(run_id))["steps"] if s["key"] == "join"]
        assert len(joins) == 1


async def test_queued_steps_lost_by_the_executor_are_found_at_start(
    hub: Hub, settings: Any
) -> None:
    await hub.save_flow(doc({"id": "a", "action": "data.set", "input": {"value": 5}}), publish=True)
    await hub.executor.stop()
    run_id = await hub.start_run("p")  # the job is dropped: the executor is stopped
    assert (await hub.get_run(run_id))["status"] == "running"
    await hub.executor.start(hub.engine.execute)
    submitted = await hub.engine.sweep(startup=True)
    assert submitted >= 1
    record = await hub.wait_for_run(run_id, 5)
    assert record["output"] == 5


async def test_failing_and_slow_observers_never_break_a_run(settings: Any) -> None:
    seen: list[str] = []

    from hub.hookspecs import hookimpl

    @hookimpl
    def hub_before_step(ctx: Any) -> None:
        raise RuntimeError("observer bug")

    @hookimpl
    async def hub_after_step(ctx: Any, result: dict[str, Any]) -> None:
        seen.append(f"{ctx.step_key}:{result['status']}")

    @hookimpl
    async def hub_run_finished(run: dict[str, Any]) -> None:
        await asyncio.sleep(10)  # longer than the observer timeout

    observers = types.SimpleNamespace(
        hub_before_step=hub_before_step,
        hub_after_step=hub_after_step,
        hub_run_finished=hub_run_finished,
    )
    from tests.conftest import make_hub

    hub = make_hub(settings.replace(observer_timeout=0.2), plugins=[kit, observers])
    await hub.start(migrate=False)
    try:
        await hub.save_flow(
            doc({"id": "a", "action": "data.set", "input": {"value": 1}}), publish=True
        )
        run_id = await hub.start_run("p")
        record = await hub.wait_for_run(run_id, 5)
        assert record["status"] == "succeeded"
        assert seen == ["a:done"]
    finally:
        await hub.stop()
