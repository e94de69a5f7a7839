"""A benchmark probe plugin: records when each step's action starts and when its result is
recorded, so the step handoff is measured as the user sees it (successor's action called ->
predecessor's completion committed), not from timestamps that an eager claim makes equal.

Loaded with ``HUB_PLUGIN_MODULES=bench.probe``; worker processes append to the file named by
``HUB_PROBE_FILE`` (one line per event: ``kind run_id key epoch_seconds``).
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Any

from hub import hookimpl

EVENTS: list[tuple[str, str, str, float]] = []
_FILE = os.environ.get("HUB_PROBE_FILE")
_handle = open(_FILE, "a", buffering=1) if _FILE else None  # noqa: SIM115


def _record(kind: str, ctx: Any) -> None:
    event = (kind, ctx.run_id, ctx.step_key, time.time())
    if _handle is not None:
        _handle.write(" ".join(map(str, event)) + "\n")
    else:
        EVENTS.append(event)


@hookimpl
def hub_before_step(ctx: Any) -> None:
    """The action is about to be called."""
    _record("start", ctx)


@hookimpl
def hub_after_step(ctx: Any, result: dict[str, Any]) -> None:
    """The step's result has been committed."""
    _record("done", ctx)


def handoffs_ms(events: list[tuple[str, str, str, float]], order: list[str]) -> list[float]:
    """Milliseconds from each step's committed completion to its successor's action start."""
    times: dict[tuple[str, str, str], float] = {}
    for kind, run_id, key, at in events:
        times[(kind, run_id, key)] = float(at)
    runs = {run_id for _k, run_id, _key, _t in events}
    found = []
    for run_id in runs:
        for a, b in itertools.pairwise(order):
            done, start = times.get(("done", run_id, a)), times.get(("start", run_id, b))
            if done is not None and start is not None:
                found.append((start - done) * 1000)
    return found


def read_file(path: str) -> list[tuple[str, str, str, float]]:
    """Events written by worker processes."""
    events = []
    with open(path) as fh:
        for line in fh:
            kind, run_id, key, at = line.split()
            events.append((kind, run_id, key, float(at)))
    return events
