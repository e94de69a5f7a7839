"""The filters of the sandbox: Jinja's, guarded where they can grow a value or loop, the
hub's own (``fromjson``, ``b64encode``, ``b64decode``, ``sha256``, ``md5``), and the
metering that every filter and test of an environment gets when it is stored
(:class:`MeteredDict`, :func:`meter`): the render's budget (:mod:`.budget`) is charged what
each call reads and builds. See ``docs/expressions.md``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from jinja2 import filters as jfilters
from jinja2.exceptions import FilterArgumentError
from jinja2.utils import pass_environment, pass_eval_context

from hub.expressions import textops
from hub.expressions.budget import (
    BUDGET,
    BYTE_COST,
    CALL_COST,
    CHAR_COST,
    FILTER_COSTS,
    ITEM_COST,
    PLAIN_TYPES,
    STR_BYTES,
    Budget,
    LimitExceeded,
    charge,
    json_size,
    scan_cost,
    spend,
)

if TYPE_CHECKING:
    from hub.expressions.sandbox import SandboxEnvironment

MAX_WRAP_LINES = 50_000
"""The most lines one ``wordwrap`` may cut (1 to 4 µs each, measured: at most about 0.1 s)."""
WRAP_LINE_COST = 4_000
MAX_URLIZE_BACKTRACK = 1_000_000
"""The most backtracking steps (squared punctuation runs) one ``urlize`` may take (40 ms)."""
MAX_URLIZE_TEXT = 100_000
"""The longest text one ``urlize`` takes (it works word by word in Python: about 1 µs a
character on short words, 0.1 s for this many)."""
URLIZE_BYTE_COST = 1_000
URLIZE_STEP_COST = 40
FROMJSON_BYTE_COST = 40
FROMJSON_VALUE_BYTES = 40
"""What one parsed JSON value holds in memory besides its text, on average (a value follows
each ``,``, ``:``, ``[`` and ``{``; small ints and repeated keys are shared)."""


def guard_filters(env: SandboxEnvironment) -> None:
    """Replace Jinja's filters that can grow a value or loop with guarded copies, add the
    hub's own, and bound every filter's string result (:func:`meter`).

    Over 80 lines on purpose: it is a list of small closures, each a few lines over the
    same environment and output limit; one function keeps the guards side by side.
    """
    lim = env.limits.max_output
    f = env.filters

    def center(value: Any, width: int = 80) -> str:
        env.check_width(width)
        return jfilters.do_center(value, width)

    def indent(s: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
        text = str(s)
        w = len(width) if isinstance(width, str) else width
        env.check_width(w)
        if isinstance(w, int):
            env.check_length(len(text) + (text.count("\n") + 1) * w, "indent()")
            charge(w * BYTE_COST, w)  # the indentation string, built even if unused
        return jfilters.do_indent(text, width, first, blank)

    @pass_environment
    def wordwrap(
        environment: Any,
        s: Any,
        width: int = 79,
        break_long_words: bool = True,
        wrapstring: str | None = None,
        break_on_hyphens: bool = True,
    ) -> str:
        # Jinja's wordwrap, with textwrap's lines cut in linear time (textops)
        text, width = str(s), int(width)
        wrap = environment.newline_sequence if wrapstring is None else str(wrapstring)
        paragraphs = text.splitlines()
        lines = 2 * len(text) // max(width, 1) + len(paragraphs) + 1  # at most
        if lines > MAX_WRAP_LINES:
            raise LimitExceeded(
                f"wordwrap() would cut more than {MAX_WRAP_LINES} lines (a fixed bound)"
            )
        charge(lines * WRAP_LINE_COST)
        # a break turns a space into the wrapstring, or adds it inside a long word
        env.check_length(len(text) + lines * max(len(wrap) - 1, 0), "wordwrap()")
        return wrap.join(
            [
                wrap.join(textops.wrap_lines(p, width, break_long_words, break_on_hyphens))
                for p in paragraphs
            ]
        )

    @pass_eval_context
    def urlize(eval_ctx: Any, value: Any, *args: Any, **kwargs: Any) -> str:
        text = str(value)
        if len(text) > MAX_URLIZE_TEXT:
            raise LimitExceeded(
                f"urlize() of more than {MAX_URLIZE_TEXT} characters (a fixed bound)"
            )
        cost = textops.urlize_cost(text)
        if cost - len(text) > MAX_URLIZE_BACKTRACK:
            raise LimitExceeded(
                "urlize() of runs of punctuation this long would take too long (a fixed bound)"
            )
        charge(len(text) * URLIZE_BYTE_COST + (cost - len(text)) * URLIZE_STEP_COST)
        return jfilters.do_urlize(eval_ctx, text, *args, **kwargs)

    def whole(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        # a filter that serializes a whole value: its size is checked before it runs
        index = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0

        @functools.wraps(func)
        def checked(*args: Any, **kwargs: Any) -> Any:
            if len(args) > index and type(args[index]) not in PLAIN_TYPES:
                env.check_length(json_size(args[index], lim), f"|{name}")
            return func(*args, **kwargs)

        return checked

    @pass_eval_context
    def replace(eval_ctx: Any, s: Any, old: Any, new: Any, count: int | None = None) -> str:
        text = str(s)
        env._check_str_method(text, "replace", (old, new, -1 if count is None else count))
        return jfilters.do_replace(eval_ctx, s, old, new, count)

    @pass_eval_context
    def join(eval_ctx: Any, value: Any, d: str = "", attribute: Any = None) -> str:
        if attribute is not None:
            value = map(jfilters.make_attrgetter(env, attribute), value)
        items = list(value)
        total = len(str(d)) * max(len(items) - 1, 0)
        for item in items:
            total += json_size(item, lim)
            env.check_length(total, "join()")
        return jfilters.sync_do_join(eval_ctx, items, d)

    def format_(value: Any, *args: Any, **kwargs: Any) -> str:
        if args and kwargs:
            raise FilterArgumentError("can't handle positional and keyword args")
        return env.percent(str(value), kwargs or args)

    def filled(name: Any, count: int, fill_with: Any) -> None:
        if isinstance(count, int) and count > env.limits.max_repeat:
            raise LimitExceeded(
                f"{name} larger than the limit of {env.limits.max_repeat} (HUB_MAX_REPEAT)"
            )
        if fill_with is not None and isinstance(count, int) and count > 0:
            env.check_length(json_size(fill_with, lim // count) * count, f"{name} filling")

    def batch(value: Any, linecount: int, fill_with: Any = None) -> Any:
        filled("batch()", linecount if fill_with is not None else 0, fill_with)
        return jfilters.do_batch(value, linecount, fill_with)

    def slice_(value: Any, slices: int, fill_with: Any = None) -> Any:
        filled("slice()", slices, fill_with)
        return jfilters.sync_do_slice(value, slices, fill_with)

    @pass_environment
    def sum_(environment: Any, iterable: Any, attribute: Any = None, start: Any = 0) -> Any:
        if not isinstance(start, (list, tuple)):
            return jfilters.sync_do_sum(environment, iterable, attribute, start)
        if attribute is not None:
            iterable = map(jfilters.make_attrgetter(env, attribute), iterable)
        items, total = list(start), json_size(start, lim)
        for item in iterable:  # concatenation in linear time, bounded
            env.tick()
            if type(item) is not type(start):
                raise TypeError(f"cannot add {type(item).__name__} to {type(start).__name__}")
            total += json_size(item, lim)
            env.check_length(total, "sum()")
            items.extend(item)
        return type(start)(items)

    @pass_eval_context
    def tojson(eval_ctx: Any, value: Any, indent: Any = None) -> Any:
        width = len(indent) if isinstance(indent, str) else indent
        if indent is not None and not (isinstance(width, int) and width <= 16):
            raise LimitExceeded("tojson() indent must be at most 16")
        return jfilters.do_tojson(eval_ctx, value, indent)

    f.update(center=center, indent=indent, wordwrap=wordwrap, replace=replace, join=join)
    f.update(format=format_, batch=batch, slice=slice_, sum=sum_, urlize=urlize)
    f.update(fromjson=_fromjson, b64encode=_b64encode, b64decode=_b64decode)
    f.update(sha256=_hash("sha256"), md5=_hash("md5"))
    f.update(tojson=whole("tojson", tojson))
    for name in ("string", "pprint", "urlencode", "xmlattr"):
        f[name] = whole(name, env.filters[name])


def meter(env: SandboxEnvironment, name: str, func: Any) -> Any:
    """``func`` (a filter or test of ``env``) metered: each call is charged :data:`CALL_COST` and
    what it reads before it runs, then what it builds (a lazy result, item by item), and
    a string result above ``max_output`` is refused unless it did not grow."""
    if getattr(func, "hub_metered", False) or not callable(func):
        return func
    index = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0
    lim = env.limits.max_output
    char, item = FILTER_COSTS.get(name, (CHAR_COST, ITEM_COST))
    costly_items = item > ITEM_COST

    @functools.wraps(func)
    def metered(*args: Any, **kwargs: Any) -> Any:
        budget = BUDGET.get()
        if budget is None:
            return func(*args, **kwargs)
        work = CALL_COST
        for arg in args[index:]:
            work += scan_cost(arg, char, item)
        for arg in kwargs.values():
            work += scan_cost(arg)
        spend(budget, work)
        if costly_items and len(args) > index and _is_iterator(args[index]):
            # a lazy value read whole by a filter that works hard per item: charge
            # each item as the filter takes it
            read = _read_items(budget, args[index], item)
            args = (*args[:index], read, *args[index + 1 :])
        rv = func(*args, **kwargs)
        if type(rv) is not str:
            return env.charge_result(rv, None, args[index:], kwargs)
        size = len(rv)
        value = args[index] if len(args) > index else None
        if size > lim and not (isinstance(value, str) and len(value) >= size):
            env.check_length(size, f"the result of |{name}")
        if rv is not value:  # (spend(), inlined: the common case of every filter)
            budget.work -= size * BYTE_COST
            budget.bytes -= STR_BYTES + size
            if budget.work < budget.check_at or budget.bytes < 0:
                spend(budget, 0)
        return rv

    metered.hub_metered = True  # type: ignore[attr-defined]
    return metered


def _read_items(budget: Budget, items: Iterator[Any], cost: int) -> Iterator[Any]:
    """``items``, each charged ``cost`` as it is read."""
    for item in items:
        budget.work -= cost
        if budget.work < budget.check_at:
            spend(budget, 0)
        yield item


def _is_iterator(value: Any) -> bool:
    kind = type(value)
    return kind not in PLAIN_TYPES and hasattr(kind, "__next__")


class MeteredDict(dict[str, Any]):
    """The environment's filters or tests: every value stored is metered first (by
    :func:`meter`), whoever stores it and whenever."""

    def __init__(self, meter: Callable[[str, Any], Any], items: Mapping[str, Any]) -> None:
        super().__init__()
        self._meter = meter
        self.update(items)

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, self._meter(key, value))

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Store each entry through :meth:`__setitem__`."""
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key: str, default: Any = None) -> Any:
        """Store ``default`` (metered) if ``key`` is missing; return the stored value."""
        if key not in self:
            self[key] = default
        return self[key]

    def __ior__(self, other: Any) -> MeteredDict:  # type: ignore[override,misc]
        self.update(other)
        return self


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("utf-8")


def _fromjson(value: Any) -> Any:
    """Parse a JSON string (charged before it runs: its text read, and what it will build:
    the text, plus :data:`FROMJSON_VALUE_BYTES` per value)."""
    if isinstance(value, (str, bytes, bytearray)):
        text = value if isinstance(value, str) else value.decode("latin-1")
        values = 1 + sum(text.count(mark) for mark in (",", ":", "[", "{"))
        built = len(value) + values * FROMJSON_VALUE_BYTES
        charge(len(value) * FROMJSON_BYTE_COST, built)
    return json.loads(value)


def _b64encode(value: Any, urlsafe: bool = False) -> str:
    """Base64 of the UTF-8 bytes of ``value``."""
    return (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(_bytes(value)).decode()


def _b64decode(value: Any, urlsafe: bool = False) -> str:
    """Decode base64 to a UTF-8 string."""
    return (base64.urlsafe_b64decode if urlsafe else base64.b64decode)(_bytes(value)).decode()


def _hash(name: str) -> Callable[[Any], str]:
    def digest(value: Any) -> str:
        return hashlib.new(name, _bytes(value)).hexdigest()

    digest.__name__ = name
    digest.__doc__ = f"The hex {name} digest of the UTF-8 bytes of the value."
    return digest
