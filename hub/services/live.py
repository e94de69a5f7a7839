"""Following a run live: read it once, then apply the engine's pushed events.

:func:`follow_run` is what both live faces use (the API's ``/events`` stream and the web
UI's ``/live`` fragments). It starts watching the run's events (this process's engine's,
and in queue mode every process's through :mod:`hub.engine.events`) BEFORE it reads the
run, so that nothing falls between the read and the first event; then each event carries
the one attempt that changed (its input and output as stored, redacted), and is applied to
what was read: the run is not read again. A step event too big to publish whole
(``trimmed``) has its attempt read alone.

Events can be lost (Redis restarted, another hub process without Redis): a slow safety
poll (:data:`SAFETY_POLL_SECONDS`, :data:`DOWN_POLL_SECONDS` while the Redis subscription
is down) reads the run again and yields what differs, so a stream never hangs on a lost
message. When the run is final, it is read a last time (a cancel ends its steps without
an event each) and the feed ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from hub.db import runs as run_store
from hub.engine.events import QUIET_SECONDS

if TYPE_CHECKING:
    from hub.services.runs import RunsService

SAFETY_POLL_SECONDS = 5.0  # how often a live view reads the run in case an event was lost
DOWN_POLL_SECONDS = 1.0  # the same while the Redis subscription is down (queue mode)
SETTLE_SECONDS = QUIET_SECONDS + 0.2  # queue mode: the read after a watch starts
FINAL = frozenset({"succeeded", "failed", "cancelled"})
# a step event's status as its attempt's row stores it (a failed attempt to be retried)
STORED_STATUS = {"retrying": "failed"}
SATISFIED = frozenset({"done", "skipped"})  # an item's end that lets its step go on


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    """One change a live view shows: ``kind`` ``run`` (``data``: the run's record without
    its steps) or ``step`` (``data``: the attempt, as :func:`hub.db.runs.run_steps` gives
    each)."""

    kind: str
    data: dict[str, Any]


@dataclasses.dataclass
class RunState:
    """What a follower knows of a run: its record and its attempts by (key, attempt)."""

    run: dict[str, Any]
    steps: dict[tuple[str, int], dict[str, Any]]

    @classmethod
    def of(cls, record: dict[str, Any]) -> RunState:
        """The state of a run record read with its steps."""
        steps = {(s["key"], s["attempt"]): s for s in record.pop("steps", [])}
        return cls(record, steps)

    def all_changes(self) -> list[Change]:
        """Everything, as changes (the catch-up)."""
        return [Change("step", s) for s in self.steps.values()] + [Change("run", self.run)]

    def differences(self, record: dict[str, Any]) -> list[Change]:
        """Apply a fresh read of the run; return what differed."""
        changes: list[Change] = []
        for step in record.pop("steps", []):
            ident = (step["key"], step["attempt"])
            if self.steps.get(ident) != step:
                self.steps[ident] = step
                changes.append(Change("step", step))
        if _run_fields(record) != _run_fields(self.run):
            self.run = record
            changes.append(Change("run", record))
        return changes

    def apply_step(self, event: dict[str, Any]) -> Change | None:
        """Apply a step event (not ``trimmed``); the change, or None if nothing changed."""
        ident = (str(event["key"]), int(event["attempt"]))
        known = self.steps.get(ident)
        status = STORED_STATUS.get(event["status"], event["status"])
        step = dict(known) if known is not None else _new_attempt(event)
        step.update(
            status=status,
            input=event.get("input", step.get("input")),
            output=event.get("output"),
            error=event.get("error"),
            finished_at=event.get("finished_at"),
        )
        if step.get("started_at") is None:
            step["started_at"] = event.get("started_at")
        if known == step:
            return None
        self.steps[ident] = step
        return Change("step", step)

    def parent_of(self, item: dict[str, Any]) -> dict[str, Any]:
        """The newest attempt of an item's step."""
        attempts = [s for (key, _), s in self.steps.items() if key == item["step_id"]]
        return max(attempts, key=lambda s: int(s["attempt"]))

    def fanned_in(self, item: dict[str, Any]) -> bool:
        """Whether an item's end may have ended its step: its step waits, and every item
        of it that is known has ended well (an item not known yet makes this a guess: the
        step is then read to find out)."""
        if item["item_index"] is None or item["status"] not in SATISFIED:
            return False
        step_id = item["step_id"]
        if not any(key == step_id for key, _ in self.steps):
            return False
        if self.parent_of(item)["status"] != "waiting":
            return False
        items = [
            s
            for s in self.steps.values()
            if s["step_id"] == step_id and s["item_index"] is not None
        ]
        latest = {s["key"]: s for s in sorted(items, key=lambda s: int(s["attempt"]))}
        return all(s["status"] in SATISFIED for s in latest.values())

    def apply_run(self, event: dict[str, Any]) -> Change | None:
        """Apply a run event; the change, or None if nothing changed."""
        run = dict(self.run)
        run["status"] = event["status"]
        for name in ("output", "error"):
            if name in event:
                run[name] = event[name]
        if event["status"] in FINAL:
            run["finished_at"] = event.get("at") or run.get("finished_at")
        else:
            run["finished_at"] = None
        if run == self.run:
            return None
        self.run = run
        return Change("run", run)


def _run_fields(record: dict[str, Any]) -> tuple[Any, ...]:
    return (
        record["status"],
        record["started_at"],
        record["finished_at"],
        record["error"],
        record.get("output"),  # a run event too big to publish whole came without it
    )


def _new_attempt(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "key": event["key"],
        "step_id": event.get("step_id") or str(event["key"]).split("[", 1)[0],
        "item_index": event.get("item_index"),
        "attempt": event["attempt"],
        "status": event["status"],
        "input": None,
        "output": None,
        "error": None,
        "due_at": None,
        "created_at": event.get("started_at"),
        "started_at": event.get("started_at"),
        "finished_at": None,
    }


def poll_interval(service: RunsService) -> float:
    """How long a follower waits for an event before reading the run itself."""
    bus = service.hub.engine.events
    if bus is not None and not bus.connected:
        return DOWN_POLL_SECONDS
    return SAFETY_POLL_SECONDS


async def follow_run(
    service: RunsService, run_id: str, *, max_seconds: float = 600.0
) -> AsyncIterator[list[Change]]:
    """The changes of a run as they happen, a batch at a time: first everything (the
    catch-up), then what each event changed; ends once the run is final (after a last
    read) or after ``max_seconds``. :class:`~hub.services.errors.NotFound` for no run."""
    events: deque[dict[str, Any]] = deque()
    wake = asyncio.Event()

    def heard(event: dict[str, Any]) -> None:
        events.append(event)
        wake.set()

    with service.watch(heard, run_id):
        state = RunState.of(await service.get_run(run_id))
        yield state.all_changes()
        now = time.monotonic()
        deadline = now + max_seconds
        # in queue mode, a worker that found nobody watching drops the run's events for a
        # moment (hub.engine.events): read once more when that moment is over
        settle_at = None if service.hub.engine.events is None else now + SETTLE_SECONDS
        while state.run["status"] not in FINAL:
            now = time.monotonic()
            remaining = deadline - now
            if remaining <= 0:
                return
            wait = min(poll_interval(service), remaining)
            if settle_at is not None:
                wait = max(0.0, min(wait, settle_at - now))
            wake.clear()
            if not events:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), wait)
            pushed = bool(events)
            changes = await _apply(service, state, events) if pushed else []
            settling = settle_at is not None and time.monotonic() >= settle_at
            if settling or not pushed:  # settling, or nothing pushed for a while: read
                settle_at = None if settling else settle_at
                changes += state.differences(await service.get_run(run_id))
            if changes:
                yield changes
        last = state.differences(await service.get_run(run_id))
        if last:
            yield last


async def _apply(
    service: RunsService, state: RunState, events: deque[dict[str, Any]]
) -> list[Change]:
    changes: list[Change] = []
    while events:
        event = events.popleft()
        change: Change | None
        if event.get("type") == "step":
            if event.get("trimmed"):
                change = await _read_attempt(service, state, event)
            else:
                change = state.apply_step(event)
            if change is not None and state.fanned_in(change.data):
                # the last item ended its step in the same transaction, without an event
                changes.append(change)
                change = await _read_attempt(service, state, state.parent_of(change.data))
        elif event.get("type") == "run":
            change = state.apply_run(event)
        else:
            change = None
        if change is not None:
            changes.append(change)
    return changes


async def _read_attempt(
    service: RunsService, state: RunState, event: dict[str, Any]
) -> Change | None:
    run_id, key, attempt = state.run["id"], str(event["key"]), int(event["attempt"])
    step = await service.hub.db.read(lambda c: run_store.step_attempt(c, run_id, key, attempt))
    if step is None or state.steps.get((key, attempt)) == step:
        return None
    state.steps[(key, attempt)] = step
    return Change("step", step)
