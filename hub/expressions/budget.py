"""One render's budget: the bounds of :class:`Limits`, what is left of them while a render
runs (:class:`Budget`, in :data:`BUDGET`), and what the sandbox charges against it.

Every filter, test, call, operator, literal, loop iteration and piece of output of a render
spends **work** (units of roughly a nanosecond of CPU, measured on a slow shared core: a
character read is 10, a byte built 1, an item of a container 100, a call 1,000, a macro call
11,000; filters that do more per character or item say so in :data:`FILTER_COSTS`) and every
value it builds spends **bytes** (an estimate of the memory the value holds). :func:`charge`
takes both, and checks the deadline (``max_render_seconds``) and the inline slice
(:class:`RenderMoved`) each time.
Bytes built are cumulative: what a render frees is not given back, so the memory a render
can hold at once is at most ``max_render_bytes`` (plus its input, and one operation's result
over the last check, itself bounded by ``max_output``).
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import ItemsView, KeysView, Mapping, ValuesView
from contextvars import ContextVar
from typing import Any

from jinja2.exceptions import SecurityError
from jinja2.utils import Namespace

# What one unit of work stands for, per kind of operation (roughly nanoseconds).
CALL_COST = 1_000
"""A call of a filter, test, method, function or macro (besides what it reads and builds)."""
ITEM_COST = 100
"""An item of a container read or built by an operation."""
LAZY_ITEM_COST = 1_000
"""An item produced by a lazy filter (``map``, ``select``, ``unique``, ``batch``...)."""
LOOP_COST = 1_000
"""One iteration of a ``{% for %}`` loop (besides its body)."""
MACRO_COST = 10_000
"""A call of a macro, besides :data:`CALL_COST`: Jinja makes a new context and frame for
each (measured: 4 to 12 µs a call in a recursion, growing with its depth)."""
NODE_COST = 300
"""One object visited while measuring a value's size (a Python-level walk)."""
CHAR_COST = 10
"""A character or byte read by a call, a filter or a comparison."""
BYTE_COST = 1
"""A character or byte written (output, a value built)."""

FILTER_COSTS: dict[str, tuple[int, int]] = {
    # (work per character, per item) of the value a filter reads, where Python-level or
    # regex work makes it costlier than CHAR_COST and ITEM_COST (measured at 1 MB and
    # 100,000 items: docs/expressions.md)
    "title": (400, ITEM_COST),
    "wordcount": (40, ITEM_COST),
    "striptags": (150, ITEM_COST),
    "urlencode": (60, 2_500),
    "xmlattr": (CHAR_COST, 2_000),
    "pprint": (CHAR_COST, 2_000),
    "sort": (CHAR_COST, 2_500),
    "dictsort": (CHAR_COST, 1_500),
    "groupby": (CHAR_COST, 3_500),
    "tojson": (CHAR_COST, 300),
    "min": (CHAR_COST, 300),
    "max": (CHAR_COST, 300),
    "sum": (CHAR_COST, 300),
}

# Estimates of the memory Python needs for a value (CPython 3.11, 64 bits, rounded up).
_STR = 49
_CONTAINER = 56
_SLOT = 8
_DICT_ENTRY = 40
_OBJECT = 32

PLAIN_TYPES = frozenset({str, int, float, bool, type(None)})
"""Types whose values are plain data as they are (no container to look into)."""
_PLAIN = PLAIN_TYPES
STR_BYTES = 49
"""What a str object holds besides its characters."""
_VIEWS = (KeysView, ValuesView, ItemsView)
_CONTAINERS = frozenset({list, tuple, dict, set, frozenset, range})


@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds of the sandbox (defaults match :mod:`hub.settings`, which names each
    ``HUB_MAX_...``).

    ``max_output`` bounds the text a render produces and every string, list or dict an
    expression builds; ``max_repeat`` the length made by ``*``; ``max_render_work`` and
    ``max_render_bytes`` the work done and the bytes built by one render in total;
    ``max_render_seconds`` its wall-clock time, checked whenever the budget is charged.
    """

    max_output: int = 1_000_000
    max_loop_iterations: int = 100_000
    max_range: int = 100_000
    max_repeat: int = 1_000_000
    max_nesting: int = 64
    max_render_seconds: float = 5.0
    max_render_work: int = 1_000_000_000
    max_render_bytes: int = 64_000_000


class LimitExceeded(SecurityError):
    """A bound of :class:`Limits` was hit."""


class RenderMoved(BaseException):
    """The inline slice of a render ran out: the caller runs the render again off the event
    loop with the whole budget (see :meth:`hub.expressions.Compiled.render`'s ``inline``).

    A BaseException, so that nothing inside a template's evaluation catches it."""


class Budget:
    """What is left of one render's budget: loop iterations (``steps``), text output
    (``out``), ``work``, ``bytes`` built, and time (``deadline``).

    ``slice_end`` is when an inline render gives up and raises :class:`RenderMoved` (None:
    never; the render runs to its budget), and ``slice_work`` the work one charge may take
    inline: an operation charged more than the slice's worth before it runs moves the render
    at once rather than holding the event loop for its whole length.
    """

    __slots__ = (
        "bytes",
        "check_at",
        "deadline",
        "limits",
        "out",
        "slice_end",
        "slice_work",
        "steps",
        "work",
    )

    def __init__(self, limits: Limits, inline: float | None = None) -> None:
        now = time.monotonic()
        self.limits = limits
        self.steps = limits.max_loop_iterations
        self.out = limits.max_output
        self.work = limits.max_render_work
        self.check_at = self.work  # the clock is read once this much work is left
        self.bytes = limits.max_render_bytes
        self.deadline = now + limits.max_render_seconds
        self.slice_end = None if inline is None else now + inline
        self.slice_work = 0 if inline is None else int(inline * UNITS_PER_SECOND)


BUDGET: ContextVar[Budget | None] = ContextVar("hub_expression_budget", default=None)
"""The budget of the render in progress (None outside a render: nothing is counted)."""


UNITS_PER_SECOND = 1_000_000_000
"""Units of work in a second (a unit stands for about a nanosecond)."""

CHECK_EVERY = 5_000
"""The clock is read whenever this much work (about 5 µs) was charged since it last was."""


def charge(work: int, built: int = 0) -> None:
    """Spend ``work`` units and ``built`` bytes of the render in progress and check the
    bounds: raise :class:`LimitExceeded` naming the setting of the bound that is spent, or
    :class:`RenderMoved` when the inline slice is over. Outside a render, do nothing."""
    budget = BUDGET.get()
    if budget is not None:
        spend(budget, work, built)


def spend(budget: Budget, work: int, built: int = 0) -> None:
    """:func:`charge` to a given budget. The clock (deadline, inline slice) is read at
    least every :data:`CHECK_EVERY` units of work, and at every charge of more."""
    budget.work -= work
    budget.bytes -= built
    if budget.work >= budget.check_at and budget.bytes >= 0:
        return
    if budget.work < 0 or budget.bytes < 0:
        _spent(budget)
    budget.check_at = budget.work - CHECK_EVERY
    now = time.monotonic()
    if budget.slice_end is not None and (now > budget.slice_end or work > budget.slice_work):
        raise RenderMoved
    if now > budget.deadline:
        raise LimitExceeded(
            "the render took longer than its time limit "
            f"(HUB_MAX_RENDER_SECONDS={budget.limits.max_render_seconds:g})"
        )


def _spent(budget: Budget) -> None:
    if budget.work < 0:
        raise LimitExceeded(
            "the render's work budget is spent "
            f"(HUB_MAX_RENDER_WORK={budget.limits.max_render_work})"
        )
    raise LimitExceeded(
        "the render's budget of bytes built is spent "
        f"(HUB_MAX_RENDER_BYTES={budget.limits.max_render_bytes})"
    )


def scan_cost(value: Any, char: int = CHAR_COST, item: int = ITEM_COST) -> int:
    """The work of reading ``value`` once, shallowly: its characters, or its items."""
    kind = type(value)
    if kind is str or kind is bytes:
        return len(value) * char
    if kind in _CONTAINERS:
        return len(value) * item
    if kind in _PLAIN:
        return 0
    if isinstance(value, (str, bytes, bytearray)):
        return len(value) * char
    if isinstance(value, (list, tuple, dict, set, frozenset, *_VIEWS)):
        return len(value) * item
    return 0


def weight(value: Any) -> tuple[int, int]:
    """An estimate of the memory ``value`` holds (its own, and its direct items'), and the
    number of items looked at. Deeper levels are not walked: values nested deeper were
    charged when they were built, or are data the render was given."""
    kind = type(value)
    if kind is str or kind is bytes or kind is bytearray:
        return _STR + len(value), 0
    if kind is int:
        return _OBJECT + value.bit_length() // 8, 0
    if kind in _PLAIN:
        return _OBJECT, 0
    if isinstance(value, Mapping):
        total = _CONTAINER + _DICT_ENTRY * len(value)
        items: Any = itertools.chain(value.keys(), value.values())
    elif isinstance(value, (list, tuple, set, frozenset)):
        total = _CONTAINER + _SLOT * len(value)
        items = value
    elif isinstance(value, _VIEWS):  # a list of tuples once materialized, at most
        return _CONTAINER + (_SLOT + _CONTAINER) * len(value), len(value)
    else:
        return _OBJECT, 0
    for item in items:
        kind = type(item)
        if kind is str or kind is bytes:
            total += _STR + len(item)
        elif kind is list or kind is tuple or kind is dict or kind is set:
            total += _CONTAINER + _DICT_ENTRY * len(item)
        else:
            total += _OBJECT
    return total, len(value)


def charge_built(value: Any) -> None:
    """Charge a value just built: its weight as bytes, and as work (writing it)."""
    size, items = weight(value)
    charge(size * BYTE_COST + items * ITEM_COST, size)


def json_size(value: Any, limit: int) -> int:
    """Estimate the serialized size of ``value``; stop counting once past ``limit``. A long
    walk is charged to the render's work (:data:`NODE_COST` an object)."""
    if type(value) is str:
        return len(value)
    if type(value) is int:
        return value.bit_length() // 3 + 1
    if type(value) in PLAIN_TYPES:
        return 1
    total = 0
    visits = 0
    stack = [value]
    while stack:
        visits += 1
        v = stack.pop()
        if isinstance(v, (str, bytes, bytearray)):
            total += len(v)
        elif isinstance(v, (list, tuple, set, frozenset)):
            total += len(v) + 2
            visits += len(v)
            for item in v:
                if isinstance(item, str):
                    total += len(item)
                elif type(item) in PLAIN_TYPES:
                    total += 1
                else:
                    stack.append(item)
        elif isinstance(v, Mapping):
            total += 2 * len(v) + 2
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, Namespace):
            stack.append(v._Namespace__attrs)
        elif isinstance(v, int) and not isinstance(v, bool):
            total += v.bit_length() // 3 + 1
        else:
            total += 1
        if total > limit:
            break
    if visits > 64:
        charge(visits * NODE_COST)
    return total
