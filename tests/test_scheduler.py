"""The schedule trigger: cron in a time zone, once per tick across processes."""

from __future__ import annotations

import asyncio
import datetime as dt

from hub.runtime import Hub
from hub.settings import Settings
from hub.triggers.schedule import fire_due, next_tick
from tests.conftest import make_hub

UTC = dt.UTC


def schedule_flow(cron: str, tz: str = "UTC") -> dict:
    return {
        "id": "tick",
        "trigger": {"type": "schedule", "config": {"cron": cron, "timezone": tz}},
        "steps": [
            {"id": "a", "action": "data.set", "input": {"value": "{{ trigger.scheduled_at }}"}}
        ],
    }


def test_next_tick_respects_the_time_zone() -> None:
    # 09:00 in Paris is 08:00 UTC in winter and 07:00 UTC in summer.
    winter = next_tick("0 9 * * *", "Europe/Paris", dt.datetime(2026, 1, 10, 0, 0, tzinfo=UTC))
    summer = next_tick("0 9 * * *", "Europe/Paris", dt.datetime(2026, 7, 10, 0, 0, tzinfo=UTC))
    assert winter.astimezone(UTC).hour == 8
    assert summer.astimezone(UTC).hour == 7


async def test_a_tick_fires_once_and_the_run_gets_its_times(hub: Hub) -> None:
    await hub.save_flow(schedule_flow("*/5 * * * *"), publish=True)
    start = dt.datetime(2026, 11, 23, 10, 1, tzinfo=UTC)
    assert await fire_due(hub, start) == []  # first sight: counting starts, nothing back-filled
    assert await fire_due(hub, start + dt.timedelta(minutes=3)) == []  # 10:04, not due
    fired = await fire_due(hub, start + dt.timedelta(minutes=4))  # 10:05
    assert len(fired) == 1
    assert await fire_due(hub, start + dt.timedelta(minutes=4, seconds=30)) == []
    record = await hub.wait_for_run(fired[0], 5)
    assert record["status"] == "succeeded"
    assert record["output"] == "2026-11-23T10:05:00+00:00"
    run = await hub.get_run(fired[0], with_steps=False)
    assert run["trigger_type"] == "schedule"
    assert run["trigger"]["scheduled_at"] == "2026-11-23T10:05:00+00:00"


async def test_missed_ticks_while_down_fire_once_not_once_each(hub: Hub) -> None:
    await hub.save_flow(schedule_flow("* * * * *"), publish=True)
    start = dt.datetime(2026, 11, 23, 10, 0, 30, tzinfo=UTC)
    await fire_due(hub, start)
    fired = await fire_due(hub, start + dt.timedelta(minutes=30))
    assert len(fired) == 1


async def test_two_processes_fire_each_tick_once(settings: Settings) -> None:
    first, second = make_hub(settings), make_hub(settings)
    await first.start(migrate=False)
    await second.start(migrate=False)
    try:
        await first.save_flow(schedule_flow("* * * * *"), publish=True)
        start = dt.datetime(2026, 11, 23, 10, 0, 30, tzinfo=UTC)
        await fire_due(first, start)
        total = 0
        for minute in range(1, 6):
            now = start + dt.timedelta(minutes=minute)
            a, b = await asyncio.gather(fire_due(first, now), fire_due(second, now))
            assert len(a) + len(b) == 1
            total += len(a) + len(b)
        assert total == 5
    finally:
        await first.stop()
        await second.stop()


async def test_unpublished_and_non_schedule_flows_never_fire(hub: Hub) -> None:
    await hub.save_flow(schedule_flow("* * * * *"))  # saved, not published
    start = dt.datetime(2026, 11, 23, 10, 0, 30, tzinfo=UTC)
    await fire_due(hub, start)
    assert await fire_due(hub, start + dt.timedelta(minutes=2)) == []


async def test_a_bad_cron_or_time_zone_is_refused_at_validation(hub: Hub) -> None:
    from hub.flows import FlowError

    bad = schedule_flow("61 * * * *", "Mars/Olympus")
    try:
        await hub.save_flow(bad, publish=True)
    except FlowError as exc:
        text = str(exc)
    else:
        raise AssertionError("saved a schedule that can never fire")
    assert "trigger.config.cron: '61 * * * *' is not a valid cron expression" in text
    assert "trigger.config.timezone: unknown time zone 'Mars/Olympus'" in text
    assert await hub.list_flows() == []
