"""The bounds of the expression sandbox: the Jinja2 environment that :mod:`hub.expressions`
compiles and renders with.

:class:`SandboxEnvironment` is an :class:`~jinja2.sandbox.ImmutableSandboxedEnvironment`
with strict (but chainable) undefined values, ``a.b`` reading the key ``b`` of a mapping
first, and the bounds of :class:`Limits` enforced at every operation that can grow a value
(``*``, ``+``, ``~``, ``%``, ``**``, ``format``, padding filters and methods, list and dict
literals, loops, macro calls, text output): its code generator routes those through counting
hooks, and its filters (:mod:`.filters`) are guarded copies of Jinja's plus the hub's extra
ones (``fromjson``, ``b64encode``, ``b64decode``, ``sha256``, ``md5``).

Every render also spends one budget of work and of bytes built (:mod:`.budget`), by
mechanism rather than by a list: every entry of ``filters`` and ``tests`` is metered when it
is stored (also those that plugins add later), every call from a template goes through
:meth:`SandboxEnvironment.call`, every arithmetic operator through ``call_binop``, every
comparison operand, slice, literal, ``~``, loop iteration and piece of output through a
hook of the code generator; each charges what it reads and what it builds, and the charge
checks the deadline. See ``docs/expressions.md``.
"""

from __future__ import annotations

import functools
import itertools
import re
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, operators
from jinja2.exceptions import SecurityError
from jinja2.runtime import (
    BlockReference,
    ChainableUndefined,
    Context,
    LoopContext,
    Macro,
    StrictUndefined,
    Undefined,
)
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from jinja2.utils import Namespace, pass_context

from hub.expressions import filters
from hub.expressions.budget import (
    BUDGET,
    BYTE_COST,
    CALL_COST,
    LAZY_ITEM_COST,
    LOOP_COST,
    MACRO_COST,
    PLAIN_TYPES,
    STR_BYTES,
    Budget,
    LimitExceeded,
    Limits,
    RenderMoved,
    charge,
    charge_built,
    scan_cost,
    spend,
)
from hub.expressions.budget import json_size as _size

__all__ = ["BUDGET", "PLAIN_TYPES", "Budget", "LimitExceeded", "Limits", "RenderMoved"]
__all__ += ["SandboxEnvironment"]


_MAX_INT_BITS = 65_536
_REFUSED_ATTRS = frozenset({"translate", "maketrans", "expandtabs", "to_bytes", "fromkeys"})
_BYTES_ATTRS = frozenset({"decode", "hex"})
_PADDING_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})
_PERCENT = re.compile(r"%(?:\(([^)]*)\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?(.)", re.S)
_DIGITS = re.compile(r"\d+")


class _CodeGenerator(CodeGenerator):
    """Jinja's code generator with hooks that count and bound what a template builds."""

    def visit(self, node: nodes.Node, *args: Any, **kwargs: Any) -> Any:
        if id(node) not in getattr(self, "hub_counted", ()):
            return super().visit(node, *args, **kwargs)
        self.write("environment.hub_iter(")  # the iterable of a {% for %}: count it
        super().visit(node, *args, **kwargs)
        self.write(")")

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        self.hub_counted: set[int] = getattr(self, "hub_counted", set())
        self.hub_counted.add(id(node.iter))
        super().visit_For(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.hub_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def _made(self, visit: Callable[[Any, Frame], None], node: Any, frame: Frame) -> None:
        self.write("environment.hub_made(")
        visit(node, frame)
        self.write(")")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self._made(super().visit_List, node, frame)

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self._made(super().visit_Dict, node, frame)

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx == "load":
            self._made(super().visit_Tuple, node, frame)
        else:
            super().visit_Tuple(node, frame)

    def _output_const_repr(self, group: Iterable[Any]) -> str:
        return f"environment.hub_text({super()._output_const_repr(group)})"

    def visit_Compare(self, node: nodes.Compare, frame: Frame) -> None:
        # each operand is charged what comparing it may scan (a long string, a big list)
        self.write("(environment.hub_scan(")
        self.visit(node.expr, frame)
        self.write(")")
        for operand in node.ops:
            hook = "hub_scan_in" if operand.op in ("in", "notin") else "hub_scan"
            self.write(f" {operators[operand.op]} environment.{hook}(")
            self.visit(operand.expr, frame)
            self.write(")")
        self.write(")")

    def visit_Getitem(self, node: nodes.Getitem, frame: Frame) -> None:
        if not isinstance(node.arg, nodes.Slice):
            super().visit_Getitem(node, frame)
            return
        self.write("environment.hub_sliced(")  # x[a:b] copies: charge what it builds
        super().visit_Getitem(node, frame)
        self.write(")")


class _Formatter(SandboxedFormatter):
    """``str.format`` in the sandbox, with bounded widths and output."""

    def __init__(self, env: SandboxEnvironment, **kwargs: Any) -> None:
        super().__init__(env, **kwargs)
        self._hub = env
        self._total = 0

    def vformat(self, format_string: str, args: Any, kwargs: Any) -> str:
        self._total = len(format_string)
        return super().vformat(format_string, args, kwargs)

    def format_field(self, value: Any, format_spec: str) -> Any:
        for digits in _DIGITS.findall(format_spec):
            self._hub.check_width(int(digits) if len(digits) < 12 else 10**12)
        rv = super().format_field(value, format_spec)
        self._total += len(rv)
        self._hub.check_length(self._total, "str.format()")
        return rv


class SandboxEnvironment(ImmutableSandboxedEnvironment):
    """The hub's sandbox: key-first attribute access, bounded operations."""

    code_generator_class = _CodeGenerator
    intercepted_binops = frozenset({"*", "**", "%", "+", "-", "/", "//"})

    def __init__(self, limits: Limits) -> None:
        super().__init__(
            autoescape=False,
            undefined=_Undefined,
            finalize=pass_context(lambda _context, value: self.hub_finalize(value)),
            keep_trailing_newline=True,
            cache_size=0,
            optimized=False,  # no constant folding: filters run at render time, bounded
        )
        self.limits = limits
        for name in ("lipsum", "cycler", "joiner"):
            self.globals.pop(name, None)
        self.globals["range"] = self.hub_range
        self.globals["now"] = _now
        # Whatever is stored in these, now or later (plugins' filters), is metered.
        meter = functools.partial(filters.meter, self)
        self.filters = filters.MeteredDict(meter, self.filters)
        self.tests = filters.MeteredDict(meter, self.tests)
        filters.guard_filters(self)

    # -- bounds -------------------------------------------------------------------------

    def check_length(self, length: int, what: str) -> None:
        """Refuse a string, list or dict larger than ``max_output``."""
        if length > self.limits.max_output:
            raise LimitExceeded(
                f"{what} would exceed the limit of {self.limits.max_output} (HUB_MAX_RENDER_OUTPUT)"
            )

    def check_width(self, width: Any) -> None:
        """Refuse a padding width, precision or indent larger than ``max_output``."""
        if isinstance(width, int) and width > self.limits.max_output:
            raise LimitExceeded(
                f"width {width} exceeds the limit of {self.limits.max_output} "
                "(HUB_MAX_RENDER_OUTPUT)"
            )

    def tick(self) -> None:
        """Count one loop iteration or macro call against the render's budget."""
        budget = BUDGET.get()
        if budget is None:
            return
        budget.steps -= 1
        if budget.steps < 0:
            raise LimitExceeded(
                f"more than {self.limits.max_loop_iterations} loop iterations or macro calls "
                "(HUB_MAX_LOOP_ITERATIONS)"
            )
        charge(LOOP_COST)

    def _emit(self, length: int) -> None:
        budget = BUDGET.get()
        if budget is not None:
            budget.out -= length
            if budget.out < 0:
                self.check_length(self.limits.max_output - budget.out, "the output")
            budget.work -= length * BYTE_COST  # spend(), inlined: this runs per output
            budget.bytes -= length
            if budget.work < budget.check_at or budget.bytes < 0:
                spend(budget, 0)

    # -- hooks called by the generated code ---------------------------------------------

    def hub_iter(self, iterable: Iterable[Any]) -> Iterator[Any]:
        """The iterable of a ``{% for %}``, counted."""
        for item in iterable:
            self.tick()
            yield item

    def hub_concat(self, parts: tuple[Any, ...]) -> str:
        """The ``~`` operator, bounded."""
        lim = self.limits.max_output
        total = 0
        for part in parts:
            total += len(part) if isinstance(part, str) else _size(part, lim)
        self.check_length(total, "the ~ concatenation")
        charge(total * BYTE_COST, total)
        return "".join([str(part) for part in parts])

    def hub_made(self, value: Any) -> Any:
        """A list, tuple or dict literal, bounded (repeated references count each time)."""
        self.check_length(_size(value, self.limits.max_output), "the list or dict built")
        charge_built(value)
        return value

    def hub_scan(self, value: Any) -> Any:
        """An operand of a comparison (``==``, ``<``, ``in``...): charge what comparing it
        may scan."""
        if type(value) in PLAIN_TYPES and type(value) is not str:
            return value
        cost = scan_cost(value)
        if cost > CALL_COST:
            charge(cost)
        return value

    def hub_scan_in(self, value: Any) -> Any:
        """The right operand of ``in``: a hashed lookup in a mapping, set or range is not a
        scan; a string or list is."""
        if isinstance(value, (Mapping, set, frozenset, range)):
            return value
        return self.hub_scan(value)

    def hub_sliced(self, value: Any) -> Any:
        """The result of ``x[a:b]`` (a copy), charged."""
        if isinstance(value, (str, bytes, list, tuple)):
            charge_built(value)
        return value

    def hub_text(self, text: str) -> str:
        """Literal template text about to be output, counted."""
        self._emit(len(text))
        return text

    def hub_finalize(self, value: Any) -> Any:
        """A ``{{ }}`` value about to be output as text, counted before str() runs."""
        self._emit(len(value) if isinstance(value, str) else _size(value, self.limits.max_output))
        return value

    def hub_range(self, *args: int) -> range:
        """``range()`` with at most ``max_range`` items."""
        try:
            rng = range(*args)
            size = len(rng)
        except OverflowError:
            size = self.limits.max_range + 1
        if size > self.limits.max_range:
            raise LimitExceeded(
                f"range() larger than the limit of {self.limits.max_range} (HUB_MAX_RANGE)"
            )
        return rng

    # -- sandbox overrides --------------------------------------------------------------

    def getattr(self, obj: Any, attribute: str) -> Any:
        """``a.b``: the key ``b`` of a mapping first, else the (safe) attribute."""
        if isinstance(obj, Mapping):
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                pass
            rv = super().getattr(obj, attribute)
            if isinstance(rv, Undefined) and not hasattr(obj, attribute):
                keys = ", ".join(sorted(str(k) for k in itertools.islice(obj, 20))) or "none"
                return self.undefined(
                    hint=f"no key {attribute!r} (keys: {keys})", obj=obj, name=attribute
                )
            return rv
        return super().getattr(obj, attribute)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        """The sandbox's rules, minus the few methods that can blow up sizes."""
        if attr in _REFUSED_ATTRS:
            return False
        if isinstance(obj, (bytes, bytearray)) and attr not in _BYTES_ATTRS:
            return False
        return super().is_safe_attribute(obj, attr, value)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``str.format``/``format_map`` through a formatter with bounded widths."""
        if not isinstance(value, (types.MethodType, types.BuiltinMethodType)) or (
            value.__name__ not in ("format", "format_map")
        ):
            return None
        f_self = value.__self__
        if not isinstance(f_self, str):
            return None
        formatter = _Formatter(self)  # (autoescape is off: Markup.format need not escape)
        is_map = value.__name__ == "format_map"
        str_type = type(f_self)

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                kwargs, args = args[0], ()
            return str_type(formatter.vformat(f_self, args, kwargs))

        return functools.update_wrapper(wrapper, value)

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Call from a template (a method, a global function, a plugin's function, a macro):
        charge what it reads and builds; count macro calls; bound string methods."""
        if isinstance(obj, (Macro, LoopContext, BlockReference)):
            self.tick()
            if isinstance(obj, LoopContext) and args:  # a recursive loop's next level
                args = (self.hub_iter(args[0]), *args[1:])
        owner = getattr(obj, "__self__", None)
        work = CALL_COST + scan_cost(owner) + (MACRO_COST if isinstance(obj, Macro) else 0)
        for arg in args:
            work += scan_cost(arg)
        for arg in kwargs.values():
            work += scan_cost(arg)
        charge(work)
        if isinstance(owner, str):
            args = self._check_str_method(owner, getattr(obj, "__name__", ""), args)
        rv = super().call(context, obj, *args, **kwargs)
        if obj is dict or obj is Namespace:
            self.hub_made(rv)
        elif isinstance(rv, str) and not (isinstance(owner, str) and len(owner) >= len(rv)):
            self.check_length(len(rv), "the result of a call")
        return self.charge_result(rv, owner, args, kwargs)

    def charge_result(self, rv: Any, owner: Any, args: Any, kwargs: Mapping[str, Any]) -> Any:
        """Charge the result of a call or filter as built, unless it is one of its inputs
        (passed through); meter it if it is lazy."""
        kind = type(rv)
        if rv is None or rv is owner or kind is bool or kind is float:
            return rv
        for arg in args:
            if rv is arg:
                return rv
        if kind is str:
            budget = BUDGET.get()
            if budget is not None:
                spend(budget, len(rv) * BYTE_COST, STR_BYTES + len(rv))
        elif kind is types.GeneratorType:
            return self._metered_items(rv)
        elif (kind is not int or rv.bit_length() >= 4096) and all(
            rv is not v for v in kwargs.values()
        ):
            charge_built(rv)
        return rv

    def _metered_items(self, items: Iterator[Any]) -> Iterator[Any]:
        """The items of a lazy result (``map``, ``select``, ``batch``...), each charged as it
        is produced: new lists and tuples as built, everything as read."""
        budget = BUDGET.get()
        if budget is None:
            yield from items
            return
        for item in items:
            if type(item) is list or type(item) is tuple:
                charge_built(item)
            budget.work -= LAZY_ITEM_COST  # spend(), inlined: this runs per item
            if budget.work < budget.check_at:
                spend(budget, 0)
            yield item

    def _check_str_method(self, s: str, name: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
        if name in _PADDING_METHODS and args:
            self.check_width(args[0])
        elif name == "replace" and len(args) >= 2:
            old, new = str(args[0]), str(args[1])
            count = s.count(old) if old else len(s) + 1
            if len(args) > 2 and isinstance(args[2], int) and args[2] >= 0:
                count = min(count, args[2])
            self.check_length(len(s) + count * (len(new) - len(old)), "replace()")
        elif name == "join" and args:
            items = list(args[0])
            total = len(s) * max(len(items) - 1, 0)
            total += sum(len(i) for i in items if isinstance(i, str))
            self.check_length(total, "join()")
            args = (items, *args[1:])
        return args

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """The arithmetic operators: ``*``, ``**``, ``%`` and ``+`` bounded; each charged
        what it builds, and arithmetic on big integers what it computes."""
        rv = self._binop(operator, left, right)
        kind = type(rv)
        if kind is str or kind is list or kind is tuple or kind is bytes:
            charge_built(rv)
        elif (
            kind is int
            and type(left) is int
            and type(right) is int
            and (left.bit_length() + right.bit_length() > 256 or rv.bit_length() > 256)
        ):
            # schoolbook cost in 30-bit digits (``**``: squarings of the result), about 3
            # units a digit product, for big operands only
            digits = rv.bit_length() // 30 + 1
            if operator == "**":
                cost = digits * digits
            else:
                cost = (left.bit_length() // 30 + 1) * (right.bit_length() // 30 + 1)
            if cost > 64 or digits > 128:
                charge(3 * cost + digits * 4, digits * 4)
        return rv

    def _binop(self, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            return self._multiply(left, right)
        if operator == "**":
            big = isinstance(left, int) and isinstance(right, int) and abs(left) > 1
            if big and abs(left).bit_length() * right > _MAX_INT_BITS:
                raise LimitExceeded(
                    f"the result of {left} ** {right} is too large (a fixed bound: "
                    f"{_MAX_INT_BITS} bits)"
                )
        elif operator == "%" and isinstance(left, str):
            return self.percent(left, right)
        elif operator == "%" and isinstance(left, (bytes, bytearray)):
            raise SecurityError("% formatting of bytes is not allowed")
        elif operator == "+":
            if isinstance(left, (str, bytes)) and isinstance(right, (str, bytes)):
                self.check_length(len(left) + len(right), "the + concatenation")
            elif isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
                lim = self.limits.max_output
                self.check_length(_size(left, lim) + _size(right, lim), "the + concatenation")
        return self.binop_table[operator](left, right)

    def _multiply(self, left: Any, right: Any) -> Any:
        seqs = (str, bytes, list, tuple)
        if isinstance(left, int) and isinstance(right, seqs):
            left, right = right, left
        if isinstance(left, seqs) and isinstance(right, int) and right > 0:
            if len(left) * right > self.limits.max_repeat:
                raise LimitExceeded(
                    f"repetition longer than the limit of {self.limits.max_repeat} (HUB_MAX_REPEAT)"
                )
            lim = self.limits.max_output
            self.check_length(_size(left, lim // right) * right, "the repetition")
        elif (
            isinstance(left, int)
            and isinstance(right, int)
            and (left.bit_length() + right.bit_length() > _MAX_INT_BITS)
        ):
            raise LimitExceeded(
                f"the result of * is too large (a fixed bound: {_MAX_INT_BITS} bits)"
            )
        return left * right

    def percent(self, fmt: str, args: Any) -> str:
        """``fmt % args`` (the ``%`` operator and the ``format`` filter), bounded."""
        lim = self.limits.max_output
        total = len(fmt)
        keyed = isinstance(args, Mapping)
        for match in _PERCENT.finditer(fmt):
            key, width, precision, conversion = match.groups()
            if conversion == "%":
                continue
            for number in (width, precision):
                if number == "*":
                    raise LimitExceeded("'*' widths are not allowed in % formatting")
                if number:
                    self.check_width(int(number) if len(number) < 12 else 10**12)
                    total += int(number)
            if keyed and key is not None:
                total += _size(args.get(key), lim)
        if not keyed:
            items = args if isinstance(args, tuple) else (args,)
            total += sum(_size(item, lim) for item in items)
        self.check_length(total, "% formatting")
        rv: str = fmt % args
        return rv


class _Undefined(ChainableUndefined, StrictUndefined):
    """Strict on use (str, bool, iteration...), chainable on access, so that
    ``a.b.c is defined`` and ``a.b.c | default(x)`` work and errors name the first gap."""

    __slots__ = ()


def _now() -> str:
    """The current time, UTC, ISO 8601."""
    return datetime.now(UTC).isoformat()
