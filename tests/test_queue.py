"""Queue mode specifics: priority queues, duplicate jobs, the worker command."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from hub.executors.arq import run_worker
from hub.executors.base import StepJob
from hub.settings import Settings
from tests import kit
from tests.conftest import make_hub


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
