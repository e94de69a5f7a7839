"""The flow's types: what :func:`hub.flows.load_flow` builds, and its errors.

:class:`Flow` (with its :class:`StepSpec` steps, :class:`TriggerSpec` and
:class:`RetryPolicy`) is what the engine runs; :class:`FlowError` carries every
:class:`FlowIssue` found in a document; :func:`parse_duration` reads the durations of a
document. Its own module so that :mod:`hub.flows` and :mod:`hub.flows.validate` share these
without an import cycle; import them from :mod:`hub.flows`.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
from typing import Any, Literal

from hub.expressions import Compiled


class FlowError(ValueError):
    """A flow document could not be read or is invalid.

    ``issues`` lists every problem found, each with its location (``steps[1].input.email``)
    and message; ``str(error)`` shows them all, one a line.
    """

    def __init__(self, issues: list[FlowIssue], source: str = "") -> None:
        self.issues = issues
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__("\n".join(f"{prefix}{issue}" for issue in issues))


@dataclasses.dataclass(frozen=True)
class FlowIssue:
    """One problem in a flow document: where it is and what is wrong."""

    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """``max_attempts`` counts the first try; delays grow from ``initial`` up to ``max``."""

    max_attempts: int = 1
    backoff: Literal["constant", "exponential"] = "exponential"
    initial: float = 1.0
    max: float = 60.0
    jitter: bool = True

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if self.backoff == "constant":
            base = self.initial
        else:
            base = min(self.max, self.initial * (2 ** (attempt - 1)))
        base = min(base, self.max)
        if self.jitter:
            # "Equal jitter": keeps at least half the delay, spreads the rest.
            return base / 2 + random.uniform(0, base / 2)
        return base


@dataclasses.dataclass
class StepSpec:
    """One step of a flow, with its expressions compiled."""

    id: str
    action: str
    index: int
    input: Compiled
    connection: str | None = None
    when: Compiled | None = None
    for_each: Compiled | None = None
    concurrency: int | None = None
    needs: tuple[str, ...] = ()
    on_error: str = "fail"
    retry: RetryPolicy = dataclasses.field(default_factory=RetryPolicy)
    timeout: float | None = None
    is_handler: bool = False
    name: str = ""
    # The steps whose on_error names this step (empty unless is_handler).
    handles: tuple[str, ...] = ()


@dataclasses.dataclass
class TriggerSpec:
    """The flow's trigger: its type (``manual``, ``webhook``, ``schedule``, ...) and config."""

    type: str = "manual"
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    connection: str | None = None


@dataclasses.dataclass
class Flow:
    """A validated flow: the document and its compiled step graph."""

    id: str
    name: str
    document: dict[str, Any]
    trigger: TriggerSpec
    steps: dict[str, StepSpec]
    output: Compiled | None
    successors: dict[str, tuple[str, ...]]
    ancestors: dict[str, frozenset[str]]
    roots: tuple[str, ...]
    description: str = ""


# --- Durations ---------------------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_DURATION_TEXT = re.compile(r"^\s*(\d+(\.\d+)?\s*(ms|s|m|h|d)\s*)+$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
DURATION_HELP = (
    "must be a duration: seconds as a number (>= 0), or a string like 500ms, 30s, 1m, 2h, 1d"
)


def parse_duration(value: Any, location: str) -> float:
    """Seconds of a duration: a number of seconds, or text such as ``500ms``, ``1h30m``.

    Units: ``ms``, ``s``, ``m``, ``h``, ``d``; parts add up. Raises :class:`FlowError` at
    ``location`` for anything else (a negative number, a boolean, an unknown unit).
    """
    seconds = -1.0
    if isinstance(value, int | float) and not isinstance(value, bool):
        # An int past a float's range (10**400) is no duration either, not an OverflowError.
        seconds = float(value) if not isinstance(value, int) or value.bit_length() < 1000 else -1
    elif isinstance(value, str) and _DURATION_TEXT.match(value):
        seconds = sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(value))
    if 0 <= seconds < float("inf"):
        return seconds
    shown = (
        "a number too large"
        if isinstance(value, int) and value.bit_length() >= 1000
        else (json.dumps(value, default=str)[:100])
    )
    raise FlowError([FlowIssue(location, f"{DURATION_HELP} (got {shown})")])
