"""The schedule trigger: fires each published cron flow once per tick.

The last tick of each flow is kept in ``trigger_state`` (:mod:`hub.db.trigger_state`); a
tick is claimed with a compare-and-set in the transaction that starts its run
(:func:`hub.triggers.events.start_event_runs`), so however many ``hub serve`` processes run the
scheduler, each tick fires once. A hub that was down does not fire the ticks it missed
(it resumes from the next tick), which is what users of cron expect.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import zoneinfo
from typing import Any

from croniter import croniter

from hub.db import flows as flow_store
from hub.db import trigger_state
from hub.triggers.events import start_event_runs
from hub.triggers.parts import TriggerParts

log = logging.getLogger("hub.scheduler")
STATE_KEY = "schedule"


def next_tick(cron: str, timezone: str, after: dt.datetime) -> dt.datetime:
    """The first tick of ``cron`` (in ``timezone``) strictly after ``after``."""
    tz = zoneinfo.ZoneInfo(timezone)
    tick: dt.datetime = croniter(cron, after.astimezone(tz)).get_next(dt.datetime)
    return tick


class TickTaken(Exception):
    """Another process fired this tick first."""


def take_tick(conn: Any, workspace_id: str, flow_id: str, previous: str | None, tick: str) -> None:
    """Claim a tick inside the transaction that starts its run; raise if it is taken."""
    if not claim_tick(conn, workspace_id, flow_id, previous, tick):
        raise TickTaken(tick)


def claim_tick(conn: Any, workspace_id: str, flow_id: str, previous: str | None, tick: str) -> bool:
    """Move a flow's last tick from ``previous`` to ``tick``; False if another process did."""
    expected = None if previous is None else {"last_tick": previous}
    return trigger_state.swap(conn, workspace_id, flow_id, STATE_KEY, expected, {"last_tick": tick})


def last_tick(conn: Any, workspace_id: str, flow_id: str) -> str | None:
    """The last tick fired for a flow, as ISO 8601, or None."""
    state = trigger_state.load(conn, workspace_id, flow_id, STATE_KEY)
    return (state or {}).get("last_tick")


async def fire_due(hub: TriggerParts, now: dt.datetime | None = None) -> list[str]:
    """Start a run for every schedule tick that is due; return the run ids."""
    now = now or dt.datetime.now(dt.UTC)
    started: list[str] = []
    flows = await hub.db.read(flow_store.published_flows)
    for flow in flows:
        trigger: dict[str, Any] = flow["document"].get("trigger") or {}
        if trigger.get("type") != "schedule":
            continue
        config = trigger.get("config") or {}
        ws, flow_id = flow["workspace_id"], flow["id"]
        ids = {"workspace_id": ws, "flow_id": flow_id}
        previous = await hub.db.read(functools.partial(last_tick, workspace_id=ws, flow_id=flow_id))
        try:
            if previous is None:
                # First sight: start counting from now, do not back-fill.
                stamp = now.isoformat()
                await hub.db.write(functools.partial(claim_tick, **ids, previous=None, tick=stamp))
                continue
            tick = next_tick(
                config["cron"], config.get("timezone", "UTC"), dt.datetime.fromisoformat(previous)
            )
        except (KeyError, ValueError, zoneinfo.ZoneInfoNotFoundError) as exc:
            log.error("flow %s: bad schedule %r: %s", flow_id, config, exc)
            continue
        if tick > now:
            continue
        # Fire the latest due tick only (missed ones while down are skipped).
        while True:
            following = next_tick(config["cron"], config.get("timezone", "UTC"), tick)
            if following > now:
                break
            tick = following
        stamp = tick.isoformat()
        data = {"scheduled_at": stamp, "fired_at": now.isoformat()}
        try:
            # The tick and its run are written in one transaction: never one without the other.
            runs = await start_event_runs(
                hub.engine,
                ws,
                flow_id,
                [data],
                version=flow["published_version"],
                trigger_type="schedule",
                also=functools.partial(take_tick, **ids, previous=previous, tick=stamp),
            )
        except TickTaken:
            continue
        started.extend(runs.run_ids)
    return started


async def run_scheduler(hub: TriggerParts, interval: float = 1.0) -> None:
    """Check schedules every ``interval`` seconds for the life of the hub."""
    while True:
        try:
            await fire_due(hub)
        except Exception:
            log.exception("scheduler pass failed")
        await asyncio.sleep(interval)
