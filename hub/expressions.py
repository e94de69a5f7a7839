"""The sandboxed Jinja2 expressions of flows.

A value from a flow document (scalar, string, list, dict, nested) is compiled once with
:meth:`Expressions.compile` and rendered per step with :meth:`Compiled.render`:

- a string that is exactly one ``{{ ... }}`` is an *expression* and keeps its native type;
- any other string holding ``{{`` or ``{%`` is a *text template* and renders to a string;
- anything else is static and returned as is (the very same object: do not mutate it).

Templates run in an :class:`~jinja2.sandbox.ImmutableSandboxedEnvironment` with strict
(but chainable) undefined values, ``a.b`` reading the key ``b`` of a mapping first, and the
bounds of :class:`Limits` enforced at every operation that can grow a value (``*``, ``+``,
``~``, ``%``, ``**``, ``format``, padding filters and methods, list and dict literals,
loops, macro calls, text output). See ``docs/expressions.md``.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import itertools
import json
import re
import threading
import time
import types
from collections.abc import Callable, ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from cachetools import LRUCache
from jinja2 import filters as jfilters
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import (
    FilterArgumentError,
    SecurityError,
    TemplateSyntaxError,
    UndefinedError,
)
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
from jinja2.utils import Namespace, pass_context, pass_environment, pass_eval_context


class ExpressionError(ValueError):
    """An expression could not be compiled or rendered; ``location`` names the field."""

    def __init__(self, location: str, message: str) -> None:
        self.location = location
        self.message = message
        super().__init__(f"{location}: {message}" if location else message)


@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds of the sandbox (defaults match hub.settings).

    ``max_output`` bounds the text a render produces and every string, list or dict an
    expression builds; ``max_repeat`` the length made by ``*``; ``max_render_seconds`` is a
    wall-clock backstop checked at every loop iteration and macro call.
    """

    max_output: int = 1_000_000
    max_loop_iterations: int = 100_000
    max_range: int = 100_000
    max_repeat: int = 1_000_000
    max_nesting: int = 64
    max_render_seconds: float = 5.0


class _LimitExceeded(SecurityError):
    """A bound of :class:`Limits` was hit."""


class _Budget:
    """What is left of one render's budget (loop iterations, text output, time)."""

    __slots__ = ("deadline", "out", "steps")

    def __init__(self, limits: Limits) -> None:
        self.steps = limits.max_loop_iterations
        self.out = limits.max_output
        self.deadline = time.monotonic() + limits.max_render_seconds


_BUDGET: ContextVar[_Budget | None] = ContextVar("hub_expression_budget", default=None)
_MAX_INT_BITS = 65_536
_REFUSED_ATTRS = frozenset({"translate", "maketrans", "expandtabs", "to_bytes", "fromkeys"})
_BYTES_ATTRS = frozenset({"decode", "hex"})
_PADDING_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})
_PERCENT = re.compile(r"%(?:\(([^)]*)\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?(.)", re.S)
_DIGITS = re.compile(r"\d+")
_PLAIN = frozenset({str, int, float, bool, type(None)})
_LAZY = (range, Iterator, KeysView, ValuesView, ItemsView)


def _size(value: Any, limit: int) -> int:
    """Estimate the serialized size of ``value``; stop counting once past ``limit``."""
    total = 0
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, (str, bytes, bytearray)):
            total += len(v)
        elif isinstance(v, (list, tuple, set, frozenset)):
            total += len(v) + 2
            for item in v:
                if isinstance(item, str):
                    total += len(item)
                elif type(item) in _PLAIN:
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
            return total
    return total


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


class _Formatter(SandboxedFormatter):
    """``str.format`` in the sandbox, with bounded widths and output."""

    def __init__(self, env: _Environment, **kwargs: Any) -> None:
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


class _Environment(ImmutableSandboxedEnvironment):
    """The hub's sandbox: key-first attribute access, bounded operations."""

    code_generator_class = _CodeGenerator
    intercepted_binops = frozenset({"*", "**", "%", "+"})

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
        self._guard_filters()

    # -- bounds -------------------------------------------------------------------------

    def check_length(self, length: int, what: str) -> None:
        """Refuse a string, list or dict larger than ``max_output``."""
        if length > self.limits.max_output:
            raise _LimitExceeded(f"{what} would exceed the limit of {self.limits.max_output}")

    def check_width(self, width: Any) -> None:
        """Refuse a padding width, precision or indent larger than ``max_output``."""
        if isinstance(width, int) and width > self.limits.max_output:
            raise _LimitExceeded(f"width {width} exceeds the limit of {self.limits.max_output}")

    def tick(self) -> None:
        """Count one loop iteration or macro call against the render's budget."""
        budget = _BUDGET.get()
        if budget is None:
            return
        budget.steps -= 1
        if budget.steps < 0:
            raise _LimitExceeded(
                f"more than {self.limits.max_loop_iterations} loop iterations or macro calls"
            )
        if time.monotonic() > budget.deadline:
            raise _LimitExceeded(f"rendering took more than {self.limits.max_render_seconds}s")

    def _emit(self, length: int) -> None:
        budget = _BUDGET.get()
        if budget is not None:
            budget.out -= length
            self.check_length(self.limits.max_output - budget.out, "the output")

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
        return "".join([str(part) for part in parts])

    def hub_made(self, value: Any) -> Any:
        """A list, tuple or dict literal, bounded (repeated references count each time)."""
        self.check_length(_size(value, self.limits.max_output), "the list or dict built")
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
            raise _LimitExceeded(f"range() larger than the limit of {self.limits.max_range}")
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
        """Call from a template: count macro calls, bound string methods and results."""
        if isinstance(obj, (Macro, LoopContext, BlockReference)):
            self.tick()
            if isinstance(obj, LoopContext) and args:  # a recursive loop's next level
                args = (self.hub_iter(args[0]), *args[1:])
        owner = getattr(obj, "__self__", None)
        if isinstance(owner, str):
            args = self._check_str_method(owner, getattr(obj, "__name__", ""), args)
        rv = super().call(context, obj, *args, **kwargs)
        if obj is dict or obj is Namespace:
            self.hub_made(rv)
        elif isinstance(rv, str) and not (isinstance(owner, str) and len(owner) >= len(rv)):
            self.check_length(len(rv), "the result of a call")
        return rv

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
        """``*``, ``**``, ``%`` and ``+``, bounded."""
        if operator == "*":
            return self._multiply(left, right)
        if operator == "**":
            big = isinstance(left, int) and isinstance(right, int) and abs(left) > 1
            if big and abs(left).bit_length() * right > _MAX_INT_BITS:
                raise _LimitExceeded(f"the result of {left} ** {right} is too large")
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
                raise _LimitExceeded(
                    f"repetition longer than the limit of {self.limits.max_repeat}"
                )
            lim = self.limits.max_output
            self.check_length(_size(left, lim // right) * right, "the repetition")
        elif (
            isinstance(left, int)
            and isinstance(right, int)
            and (left.bit_length() + right.bit_length() > _MAX_INT_BITS)
        ):
            raise _LimitExceeded("the result of * is too large")
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
                    raise _LimitExceeded("'*' widths are not allowed in % formatting")
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

    # -- filters ------------------------------------------------------------------------

    def _guard_filters(self) -> None:
        lim = self.limits.max_output
        env = self
        f = self.filters

        def center(value: Any, width: int = 80) -> str:
            env.check_width(width)
            return jfilters.do_center(value, width)

        def indent(s: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
            text = str(s)
            w = len(width) if isinstance(width, str) else width
            env.check_width(w)
            if isinstance(w, int):
                env.check_length(len(text) + (text.count("\n") + 1) * w, "indent()")
            return jfilters.do_indent(text, width, first, blank)

        @pass_environment
        def wordwrap(environment: Any, s: str, width: int = 79, *args: Any, **kw: Any) -> str:
            text = str(s)
            wrap = kw.get("wrapstring", args[1] if len(args) > 1 else None)
            sep = len(str(wrap)) if wrap is not None else 1
            spaces = text.count(" ") + text.count("\n") + text.count("\t")
            lines = len(text) // max(int(width), 1) + spaces + 1
            env.check_length(len(text) + lines * sep, "wordwrap()")
            return jfilters.do_wordwrap(environment, text, width, *args, **kw)

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
                total += _size(item, lim)
                env.check_length(total, "join()")
            return jfilters.sync_do_join(eval_ctx, items, d)

        def format_(value: Any, *args: Any, **kwargs: Any) -> str:
            if args and kwargs:
                raise FilterArgumentError("can't handle positional and keyword args")
            return env.percent(str(value), kwargs or args)

        def filled(name: Any, count: int, fill_with: Any) -> None:
            if isinstance(count, int) and count > env.limits.max_repeat:
                raise _LimitExceeded(f"{name} larger than the limit of {env.limits.max_repeat}")
            if fill_with is not None and isinstance(count, int) and count > 0:
                env.check_length(_size(fill_with, lim // count) * count, f"{name} filling")

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
            items, total = list(start), _size(start, lim)
            for item in iterable:  # concatenation in linear time, bounded
                env.tick()
                if type(item) is not type(start):
                    raise TypeError(f"cannot add {type(item).__name__} to {type(start).__name__}")
                total += _size(item, lim)
                env.check_length(total, "sum()")
                items.extend(item)
            return type(start)(items)

        @pass_eval_context
        def tojson(eval_ctx: Any, value: Any, indent: Any = None) -> Any:
            width = len(indent) if isinstance(indent, str) else indent
            if indent is not None and not (isinstance(width, int) and width <= 16):
                raise _LimitExceeded("tojson() indent must be at most 16")
            return jfilters.do_tojson(eval_ctx, value, indent)

        f.update(center=center, indent=indent, wordwrap=wordwrap, replace=replace, join=join)
        f.update(format=format_, batch=batch, slice=slice_, sum=sum_, tojson=tojson)
        f.update(fromjson=_fromjson, b64encode=_b64encode, b64decode=_b64decode)
        f.update(sha256=_hash("sha256"), md5=_hash("md5"))
        for name, func in list(f.items()):
            f[name] = self._bounded(name, func)

    def _bounded(self, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        """Refuse a filter's string result above max_output, unless it did not grow."""
        index = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0
        lim = self.limits.max_output

        @functools.wraps(func)
        def bounded(*args: Any, **kwargs: Any) -> Any:
            rv = func(*args, **kwargs)
            if isinstance(rv, str) and len(rv) > lim:
                value = args[index] if len(args) > index else None
                if not (isinstance(value, str) and len(value) >= len(rv)):
                    self.check_length(len(rv), f"the result of |{name}")
            return rv

        return bounded


class _Undefined(ChainableUndefined, StrictUndefined):
    """Strict on use (str, bool, iteration...), chainable on access, so that
    ``a.b.c is defined`` and ``a.b.c | default(x)`` work and errors name the first gap."""

    __slots__ = ()


def _now() -> str:
    """The current time, UTC, ISO 8601."""
    return datetime.now(UTC).isoformat()


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("utf-8")


def _fromjson(value: Any) -> Any:
    """Parse a JSON string."""
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


def _describe(exc: BaseException) -> str:
    """What went wrong, for an :class:`ExpressionError` message."""
    if isinstance(exc, _LimitExceeded):
        return f"limit exceeded: {exc}"
    if isinstance(exc, SecurityError):
        return f"refused by the sandbox: {exc}"
    if isinstance(exc, UndefinedError):
        return f"undefined: {exc}"
    if isinstance(exc, TemplateSyntaxError):
        return f"{exc.message} (line {exc.lineno})"
    if isinstance(exc, RecursionError):
        return "too deeply nested or recursive"
    if isinstance(exc, MemoryError):
        return "out of memory"
    return f"{type(exc).__name__}: {exc}"


def _native(value: Any, deep: bool = True) -> Any:
    """An expression's result as plain data: lazy sequences become lists, undefined values
    (anywhere inside it when ``deep``) and functions are errors."""
    if type(value) in _PLAIN:
        return value
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if isinstance(value, str):
        return str(value)
    if isinstance(value, _LAZY):
        value = list(value)
    elif callable(value):
        name = getattr(value, "__name__", type(value).__name__)
        raise TypeError(f"the expression gives the function {name!r}: call it or read a key")
    stack = [value] if deep else []
    while stack:
        v = stack.pop()
        pairs = v.items() if isinstance(v, dict) else enumerate(v)
        for key, item in pairs:
            if isinstance(item, Undefined):
                item._fail_with_undefined_error()
            if isinstance(item, _LAZY) and not isinstance(v, tuple):
                v[key] = item = list(item)
            if isinstance(item, (list, tuple, dict)):
                stack.append(item)
    return value


def _is_steps(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Name) and node.name == "steps"


def _step_refs(tree: nodes.Node) -> frozenset[str] | None:
    """Step ids read as ``steps.X``/``steps['X']``; None when ``steps`` is used otherwise."""
    refs: set[str] = set()
    stack = [tree]
    while stack:
        parent = stack.pop()
        callee = parent.node if isinstance(parent, nodes.Call) else None
        if isinstance(callee, nodes.Getattr) and _is_steps(callee.node):
            return None  # steps.items(), steps.get(...)
        for child in parent.iter_child_nodes():
            if not _is_steps(child):
                stack.append(child)
            elif isinstance(parent, nodes.Getattr) and parent.node is child:
                refs.add(parent.attr)
            elif (
                isinstance(parent, nodes.Getitem)
                and parent.node is child
                and isinstance(parent.arg, nodes.Const)
                and isinstance(parent.arg.value, str)
            ):
                refs.add(parent.arg.value)
            else:
                return None
    return frozenset(refs)


def _single_expression(tree: nodes.Template) -> nodes.Expr | None:
    """The expression of a template that is exactly one ``{{ ... }}``, else None."""
    if len(tree.body) != 1 or not isinstance(tree.body[0], nodes.Output):
        return None
    parts = [
        n
        for n in tree.body[0].nodes
        if not (isinstance(n, nodes.TemplateData) and not n.data.strip())
    ]
    if len(parts) == 1 and not isinstance(parts[0], nodes.TemplateData):
        return parts[0]
    return None


def _as_path(expr: nodes.Expr) -> tuple[str, tuple[tuple[bool, Any], ...]] | None:
    """``name.a['b'].c`` as (name, ((is_attr, key), ...)); None for anything else."""
    ops: list[tuple[bool, Any]] = []
    node: nodes.Node = expr
    while True:
        if isinstance(node, nodes.Getattr):
            ops.append((True, node.attr))
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            ops.append((False, node.arg.value))
        elif isinstance(node, nodes.Name) and node.ctx == "load":
            return node.name, tuple(reversed(ops))
        else:
            return None
        node = node.node


Render = Callable[[Mapping[str, Any]], Any]
_Entry = tuple[Render, frozenset[str] | None]  # a compiled source: its renderer, its step refs


class Compiled:
    """A value (scalar, string, list, dict, nested) with its template strings compiled.

    ``render`` returns the stored value itself when ``is_static`` and shares static parts
    of partly dynamic values: callers must not mutate what it returns.
    """

    __slots__ = ("_limits", "_render", "_value", "is_static", "location", "step_refs")

    step_refs: frozenset[str] | None
    is_static: bool
    location: str

    def __init__(
        self,
        render: Render | None,
        value: Any,
        step_refs: frozenset[str] | None,
        location: str,
        limits: Limits,
    ) -> None:
        self._render = render
        self._value = value
        self._limits = limits
        self.step_refs = step_refs
        self.is_static = render is None
        self.location = location

    def __repr__(self) -> str:
        return f"<Compiled {self.location!r} static={self.is_static} refs={self.step_refs}>"

    def render(self, context: Mapping[str, Any]) -> Any:
        """Render against ``context``; raise ExpressionError naming the location."""
        if self._render is None:
            return self._value
        token = _BUDGET.set(_Budget(self._limits))
        try:
            return self._render(context)
        finally:
            _BUDGET.reset(token)


def _child(location: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{location}[{key}]"
    if isinstance(key, str) and key.isidentifier():
        return f"{location}.{key}" if location else key
    return f"{location}[{key!r}]"


def _union(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    return None if a is None or b is None else a | b


class Expressions:
    """The hub's sandboxed environment (with plugin filters and globals).

    ``cache`` is the LRU of compiled template strings, keyed by source (per instance, so
    the filters of one hub never serve another).
    """

    def __init__(
        self,
        limits: Limits | None = None,
        filters: Mapping[str, Callable[..., Any]] | None = None,
        globals: Mapping[str, Any] | None = None,
    ) -> None:
        self.limits = limits or Limits()
        self.env = _Environment(self.limits)
        self.env.filters.update(filters or {})
        self.env.globals.update(globals or {})
        self.cache: LRUCache[str, _Entry] = LRUCache(maxsize=4096)
        self._lock = threading.Lock()

    def compile(self, value: Any, location: str) -> Compiled:
        """Compile every template string inside ``value``."""
        render, refs = self._compile(value, location, 0)
        return Compiled(render, value, refs, location, self.limits)

    def _compile(
        self, value: Any, location: str, depth: int
    ) -> tuple[Render | None, frozenset[str] | None]:
        if depth > self.limits.max_nesting:
            raise ExpressionError(location, f"nested deeper than {self.limits.max_nesting}")
        if isinstance(value, str):
            if "{{" not in value and "{%" not in value:
                return None, frozenset()
            entry = self._entry(value, location)
            return self._leaf(entry[0], location), entry[1]
        if isinstance(value, (dict, list, tuple)):
            pairs = value.items() if isinstance(value, dict) else enumerate(value)
            parts: list[tuple[Any, Render | None, Any]] = []
            refs: frozenset[str] | None = frozenset()
            for key, item in pairs:
                render, item_refs = self._compile(item, _child(location, key), depth + 1)
                refs = _union(refs, item_refs)
                parts.append((key, render, item))
            if all(render is None for _, render, _ in parts):
                return None, frozenset()
            if isinstance(value, dict):
                return lambda ctx: {k: v if r is None else r(ctx) for k, r, v in parts}, refs
            kind = tuple if isinstance(value, tuple) else list
            return lambda ctx: kind([v if r is None else r(ctx) for _, r, v in parts]), refs
        return None, frozenset()

    @staticmethod
    def _leaf(render: Render, location: str) -> Render:
        def leaf(context: Mapping[str, Any]) -> Any:
            try:
                return render(context)
            except ExpressionError as exc:
                raise ExpressionError(location, exc.message) from exc
            except Exception as exc:
                raise ExpressionError(location, _describe(exc)) from exc

        return leaf

    def _entry(self, source: str, location: str) -> _Entry:
        with self._lock:
            entry = self.cache.get(source)
        if entry is not None:
            return entry
        try:
            tree = self.env.parse(source)
            refs = _step_refs(tree)
            expr = _single_expression(tree)
            path = _as_path(expr) if expr is not None else None
            if path is not None:
                render = self._path_render(*path)
            elif expr is not None:
                assign = nodes.Assign(nodes.Name("result", "store"), expr, lineno=expr.lineno)
                template = nodes.Template([assign], lineno=1)
                template.set_environment(self.env)
                render = self._native_render(self.env.from_string(template))
            else:
                render = self._text_render(self.env.from_string(tree))
        except TemplateSyntaxError as exc:
            raise ExpressionError(location, f"{exc.message} (line {exc.lineno})") from None
        except Exception as exc:
            raise ExpressionError(location, f"cannot compile: {_describe(exc)}") from None
        entry = (render, refs)
        with self._lock:
            self.cache[source] = entry
        return entry

    def _context(self, template: Any, context: Mapping[str, Any]) -> Context:
        env = self.env
        return env.context_class(
            env, {**env.globals, **context}, None, template.blocks, env.globals
        )

    def _path_render(self, name: str, ops: tuple[tuple[bool, Any], ...]) -> Render:
        env = self.env

        def render(context: Mapping[str, Any]) -> Any:
            try:
                value = context[name]
            except KeyError:
                value = env.globals.get(name, env.undefined(name=name))
            for is_attr, key in ops:
                value = env.getattr(value, key) if is_attr else env.getitem(value, key)
            return _native(value, deep=False)

        return render

    def _native_render(self, template: Any) -> Render:
        def render(context: Mapping[str, Any]) -> Any:
            ctx = self._context(template, context)
            for _ in template.root_render_func(ctx):
                pass
            return _native(ctx.vars["result"])

        return render

    def _text_render(self, template: Any) -> Render:
        lim = self.limits.max_output

        def render(context: Mapping[str, Any]) -> str:
            text = "".join(template.root_render_func(self._context(template, context)))
            if len(text) > lim:
                raise _LimitExceeded(f"output exceeds the limit of {lim}")
            return text

        return render
