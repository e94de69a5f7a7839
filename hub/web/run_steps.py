"""A run's page as the templates draw it: the run's attempts grouped by step (a
``for_each``'s items under their step), the timeline (an SVG bar per attempt on one time
axis) and the runs its steps started. Pure functions of what the run's reads returned."""

from __future__ import annotations

import dataclasses
import json
from typing import Any
from urllib.parse import quote

# The timeline's geometry, in SVG user units
LABEL_WIDTH = 180
CHART_WIDTH = 820
ROW_HEIGHT = 20
AXIS_HEIGHT = 24
MIN_BAR = 2.0
LABEL_CHARS = 24  # a lane's label on the timeline
PREVIEW_CHARS = 160  # an item's output or error in its row
MAX_STARTED = 50  # the runs a step started, linked from its section


@dataclasses.dataclass
class StepKey:
    """One step key of a run (the step itself, an item of its ``for_each``, a handler):
    its attempts, oldest first."""

    key: str
    item_index: int | None
    attempts: list[dict[str, Any]]

    @property
    def latest(self) -> dict[str, Any]:
        """The newest attempt."""
        return self.attempts[-1]

    @property
    def preview(self) -> str:
        """The newest attempt's error message, else its output, as a short line of JSON
        (an item's row; the whole values are in its step's output)."""
        latest = self.latest
        error = latest["error"]
        if error:
            text = str(error.get("message", error)) if isinstance(error, dict) else str(error)
        else:
            text = json.dumps(latest["output"], ensure_ascii=False, default=str)
        return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


@dataclasses.dataclass
class StepGroup:
    """A step of the flow as the run page shows it: its own key, and under it the items
    of its ``for_each`` (and other keys of the step, such as handlers)."""

    step_id: str
    own: StepKey | None
    children: list[StepKey]

    @property
    def status(self) -> str:
        """The status shown for the step (its own key's newest attempt)."""
        if self.own is not None:
            return str(self.own.latest["status"])
        return str(self.children[-1].latest["status"]) if self.children else "queued"

    @property
    def anchor(self) -> str:
        """The id of its section on the page."""
        return "step-" + quote(self.step_id, safe="")

    def step_keys(self) -> list[StepKey]:
        """Its keys: its own first, then the items (by index) and other keys."""
        return ([self.own] if self.own is not None else []) + self.children


def group_steps(steps: list[dict[str, Any]]) -> list[StepGroup]:
    """The run's attempts grouped by step (in the order steps first appear), each key's
    attempts together, a ``for_each``'s items under their step by index."""
    groups: dict[str, StepGroup] = {}
    keys: dict[str, StepKey] = {}
    for attempt in steps:
        group = groups.get(attempt["step_id"])
        if group is None:
            group = groups[attempt["step_id"]] = StepGroup(attempt["step_id"], None, [])
        found = keys.get(attempt["key"])
        if found is None:
            found = keys[attempt["key"]] = StepKey(attempt["key"], attempt["item_index"], [])
            if attempt["key"] == attempt["step_id"]:
                group.own = found
            else:
                group.children.append(found)
        found.attempts.append(attempt)
    for group in groups.values():
        for key in group.step_keys():
            key.attempts.sort(key=lambda a: a["attempt"])
        group.children.sort(key=lambda k: (k.item_index is None, k.item_index or 0, k.key))
    return list(groups.values())


@dataclasses.dataclass
class Bar:
    """One attempt on the timeline."""

    x: float
    width: float
    status: str
    title: str


@dataclasses.dataclass
class Lane:
    """One row of the timeline: a step key and its attempts."""

    label: str
    item: bool
    y: float
    bars: list[Bar]
    anchor: str  # the id of its step's section


@dataclasses.dataclass
class Timeline:
    """The run's timeline: lanes, size and axis ticks (``(x, label)``)."""

    lanes: list[Lane]
    width: int
    height: int
    ticks: list[tuple[float, str]]


def _seconds_label(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def timeline(run: dict[str, Any], groups: list[StepGroup], now: int) -> Timeline:
    """A bar per attempt on one time axis, from the run's start to its end (or now)."""
    attempts = [a for g in groups for k in g.step_keys() for a in k.attempts]
    starts = [a["started_at"] for a in attempts if a["started_at"] is not None]
    start = run["started_at"] or run["created_at"]
    if starts:
        start = min([start, *starts])
    ends = [a["finished_at"] for a in attempts if a["finished_at"] is not None]
    end = run["finished_at"] or now
    end = max([end, *ends, start + 1])
    span = end - start
    scale = CHART_WIDTH / span

    def x_of(moment: int) -> float:
        return float(LABEL_WIDTH + (moment - start) * scale)

    lanes: list[Lane] = []
    y = float(AXIS_HEIGHT)
    for group in groups:
        for key in group.step_keys():
            bars = []
            for a in key.attempts:
                if a["started_at"] is None:
                    continue
                finish = a["finished_at"] or (now if a["status"] == "running" else a["started_at"])
                took = (finish - a["started_at"]) / 1e6
                bars.append(
                    Bar(
                        x=round(x_of(a["started_at"]), 1),
                        width=round(max(MIN_BAR, (finish - a["started_at"]) * scale), 1),
                        status=str(a["status"]),
                        title=f"{key.key} attempt {a['attempt']}: {a['status']}, "
                        f"{_seconds_label(took)}",
                    )
                )
            label = key.key if key.item_index is None else f"[{key.item_index}]"
            if len(label) > LABEL_CHARS:
                label = label[: LABEL_CHARS - 1] + "…"
            lanes.append(Lane(label, key.item_index is not None, y, bars, group.anchor))
            y += ROW_HEIGHT
    ticks = [
        (round(LABEL_WIDTH + CHART_WIDTH * i / 4, 1), _seconds_label(span / 1e6 * i / 4))
        for i in range(5)
    ]
    return Timeline(lanes, LABEL_WIDTH + CHART_WIDTH + 40, int(y) + 4, ticks)


def started_runs(children: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The runs a run's steps started, by step id (an item's under its step), at most
    :data:`MAX_STARTED` a step."""
    found: dict[str, list[dict[str, Any]]] = {}
    for child in children:
        step_id = str(child["parent_step_key"] or "").split("[", 1)[0]
        shown = found.setdefault(step_id, [])
        if len(shown) < MAX_STARTED:
            shown.append(child)
    return found
