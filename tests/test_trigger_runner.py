"""Poll and subscribe triggers run by the hub: cursors, acknowledgements, reconciling."""

from __future__ import annotations

import asyncio

from hub.runtime import Hub
from hub.triggers.runner import TriggerRunner, poll_once
from tests import kit


def flow_on(trigger: str) -> dict:
    return {
        "id": "t",
        "trigger": {"type": trigger},
        "steps": [{"id": "a", "action": "data.set", "input": {"value": "{{ trigger }}"}}],
    }


async def outputs(hub: Hub, run_ids: list[str]) -> list:
    return [(await hub.wait_for_run(r, 5))["output"] for r in run_ids]


async def test_poll_starts_one_run_per_event_and_keeps_its_cursor(hub: Hub) -> None:
    await hub.save_flow(flow_on("test.events"), publish=True)
    kit.EVENTS.extend(["a", "b"])
    first = await poll_once(hub, "t")
    assert await outputs(hub, first) == ["a", "b"]
    assert await poll_once(hub, "t") == []  # the cursor moved: nothing twice
    kit.EVENTS.append("c")
    assert await outputs(hub, await poll_once(hub, "t")) == ["c"]


async def test_subscribe_acknowledges_after_the_run_is_recorded(hub: Hub) -> None:
    await hub.save_flow(flow_on("test.feed"), publish=True)
    runner = TriggerRunner(hub, reconcile_interval=0.05)
    task = asyncio.create_task(runner.run())
    try:
        for _ in range(100):
            if kit.FEED is not None:
                break
            await asyncio.sleep(0.01)
        assert kit.FEED is not None
        await kit.FEED.put({"n": 1})
        await kit.FEED.put({"n": 2})
        for _ in range(200):
            if len(kit.ACKED) == 2:
                break
            await asyncio.sleep(0.01)
        runs = await hub.list_runs(flow_id="t")
        assert len(runs) == 2
        assert sorted(r["trigger"]["n"] for r in runs) == [1, 2]
        assert all(r["trigger_type"] == "test.feed" for r in runs)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_runner_polls_on_its_own_and_stops_when_unpublished(hub: Hub) -> None:
    await hub.save_flow(flow_on("test.events"), publish=True)
    kit.EVENTS.append("x")
    runner = TriggerRunner(hub, reconcile_interval=0.05)
    task = asyncio.create_task(runner.run())
    try:
        for _ in range(200):
            if await hub.list_runs(flow_id="t"):
                break
            await asyncio.sleep(0.01)
        assert len(await hub.list_runs(flow_id="t")) == 1
        # A new version with another trigger: the poll stops.
        await hub.save_flow({**flow_on("manual"), "name": "now manual"}, publish=True)
        await asyncio.sleep(0.2)
        kit.EVENTS.append("y")
        await asyncio.sleep(0.3)
        assert len(await hub.list_runs(flow_id="t")) == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_redelivered_message_with_a_dedup_key_returns_the_run_it_started(hub: Hub) -> None:
    await hub.save_flow(flow_on("test.feed"), publish=True)
    runner = TriggerRunner(hub, reconcile_interval=0.05)
    task = asyncio.create_task(runner.run())
    try:
        for _ in range(100):
            if kit.FEED is not None:
                break
            await asyncio.sleep(0.01)
        assert kit.FEED is not None
        for _ in range(3):  # the broker delivers it again: the ack was lost
            await kit.FEED.put({"id": "msg-1", "n": 1})
        for _ in range(200):
            if len(kit.ACKED) == 3:
                break
            await asyncio.sleep(0.01)
        assert len({run_id for _message, run_id in kit.ACKED}) == 1
        assert len(await hub.list_runs(flow_id="t")) == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
