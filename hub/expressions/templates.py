"""The sandboxed Jinja2 expressions of flows.

A value from a flow document (scalar, string, list, dict, nested) is compiled once with
:meth:`Expressions.compile` and rendered per step with :meth:`Compiled.render`:

- a string that is exactly one ``{{ ... }}`` is an *expression* and keeps its native type;
- any other string holding ``{{`` or ``{%`` is a *text template* and renders to a string;
- anything else is static and returned as is (the very same object: do not mutate it).

Templates run in the sandbox of :mod:`hub.expressions.sandbox` (a bounded
:class:`~jinja2.sandbox.ImmutableSandboxedEnvironment`, with the bounds of :class:`Limits`);
this module compiles values against it, renders them, and finds the steps an expression
reads (``step_refs``) and the constant paths it reads in them (``step_paths``). See
``docs/expressions.md``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, ItemsView, Iterator, KeysView, Mapping, ValuesView
from typing import Any, TypeVar

from cachetools import LRUCache
from jinja2 import nodes
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.runtime import Context, Undefined

from hub.expressions.sandbox import (
    BUDGET,
    PLAIN_TYPES,
    Budget,
    LimitExceeded,
    Limits,
    SandboxEnvironment,
)

__all__ = ["Compiled", "ExpressionError", "Expressions", "Limits", "Render", "StepPath"]


class ExpressionError(ValueError):
    """An expression could not be compiled or rendered; ``location`` names the field."""

    def __init__(self, location: str, message: str) -> None:
        self.location = location
        self.message = message
        super().__init__(f"{location}: {message}" if location else message)


# What an expression may give lazily; _native makes it a list.
_LAZY = (range, Iterator, KeysView, ValuesView, ItemsView)


def _describe(exc: BaseException) -> str:
    """What went wrong, for an :class:`ExpressionError` message."""
    if isinstance(exc, LimitExceeded):
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
    if type(value) in PLAIN_TYPES:
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


StepPath = tuple[str, tuple[str | int, ...]]  # a step id, and the constant keys read after it


def _const_key(node: nodes.Node) -> str | int | None:
    """The key of ``x[key]`` when it is a constant string or integer (``-1`` too), else None."""
    if isinstance(node, nodes.Neg):
        inner = _const_key(node.node)
        return -inner if isinstance(inner, int) else None
    if isinstance(node, nodes.Const):
        value = node.value
        if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
            return value
    return None


def _chain(node: nodes.Node) -> list[str | int] | None:
    """``steps.a['b'][0]`` as ``['a', 'b', 0]``: the constant keys read from ``steps``,
    outermost last; None when ``node`` is no such chain."""
    keys: list[str | int] = []
    while True:
        if isinstance(node, nodes.Getattr):
            keys.append(node.attr)
        elif isinstance(node, nodes.Getitem):
            key = _const_key(node.arg)
            if key is None:
                return None
            keys.append(key)
        elif _is_steps(node):
            return keys[::-1]
        else:
            return None
        node = node.node


def _step_paths(tree: nodes.Node) -> frozenset[StepPath]:
    """Every ``steps.X.<path>`` read: the step id and the constant keys after it, up to the
    first key computed at run time (``steps.x.output[item.key]`` gives ``('output',)``) or
    the method called (``steps.x.output.get('a')`` gives ``('output',)``).

    Meaningful only when :func:`_step_refs` is not None (``steps`` read only by constant
    ids)."""
    paths: set[StepPath] = set()
    stack: list[tuple[nodes.Node, nodes.Node | None]] = [(tree, None)]
    while stack:
        node, parent = stack.pop()
        keys = _chain(node) if isinstance(node, (nodes.Getattr, nodes.Getitem)) else None
        extended = (
            isinstance(parent, nodes.Getattr)
            or (isinstance(parent, nodes.Getitem) and _const_key(parent.arg) is not None)
        ) and parent.node is node
        if keys and not extended:
            if isinstance(parent, nodes.Call) and parent.node is node and len(keys) > 1:
                keys = keys[:-1]  # a method: steps.x.output.get('a')
            if isinstance(keys[0], str):
                paths.add((keys[0], tuple(keys[1:])))
        stack.extend((child, node) for child in node.iter_child_nodes())
    return frozenset(paths)


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
# A compiled source: its renderer, its step refs and its step paths (see Compiled).
_Entry = tuple[Render, frozenset[str] | None, frozenset[StepPath] | None]
_Parts = tuple[Render | None, frozenset[str] | None, frozenset[StepPath] | None]


class Compiled:
    """A value (scalar, string, list, dict, nested) with its template strings compiled.

    ``render`` returns the stored value itself when ``is_static`` and shares static parts
    of partly dynamic values: callers must not mutate what it returns.

    ``step_refs`` are the step ids read (``steps.X``), None when ``steps`` is read in
    another way (``steps[name]``, ``steps.items()``). ``step_paths`` are the reads
    themselves: ``(X, path)`` for each ``steps.X.<path>``, the path being the constant keys
    after ``steps.X`` up to the first one computed at run time or the method called
    (``steps.x.output.rows[0]['id']`` gives ``('x', ('output', 'rows', 0, 'id'))``); None
    exactly when ``step_refs`` is None.
    """

    __slots__ = (
        "_limits",
        "_render",
        "_value",
        "is_static",
        "location",
        "step_paths",
        "step_refs",
    )

    step_refs: frozenset[str] | None
    step_paths: frozenset[StepPath] | None
    is_static: bool
    location: str

    def __init__(
        self,
        render: Render | None,
        value: Any,
        step_refs: frozenset[str] | None,
        location: str,
        limits: Limits,
        step_paths: frozenset[StepPath] | None = frozenset(),
    ) -> None:
        self._render = render
        self._value = value
        self._limits = limits
        self.step_refs = step_refs
        self.step_paths = None if step_refs is None else step_paths
        self.is_static = render is None
        self.location = location

    def __repr__(self) -> str:
        return f"<Compiled {self.location!r} static={self.is_static} refs={self.step_refs}>"

    def render(self, context: Mapping[str, Any], *, inline: float | None = None) -> Any:
        """Render against ``context``; raise ExpressionError naming the location.

        With ``inline`` (seconds), a render still going after that long raises
        :class:`~hub.expressions.sandbox.RenderMoved` instead of finishing: the caller (on an
        event loop) runs it again in a thread with the whole budget.
        """
        if self._render is None:
            return self._value
        token = BUDGET.set(Budget(self._limits, inline))
        try:
            return self._render(context)
        finally:
            BUDGET.reset(token)


def _child(location: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{location}[{key}]"
    if isinstance(key, str) and key.isidentifier():
        return f"{location}.{key}" if location else key
    return f"{location}[{key!r}]"


_T = TypeVar("_T")


def _union(a: frozenset[_T] | None, b: frozenset[_T] | None) -> frozenset[_T] | None:
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
        self.env = SandboxEnvironment(self.limits)
        self.env.filters.update(filters or {})
        self.env.globals.update(globals or {})
        self.cache: LRUCache[str, _Entry] = LRUCache(maxsize=4096)
        self._lock = threading.Lock()

    def compile(self, value: Any, location: str) -> Compiled:
        """Compile every template string inside ``value``."""
        render, refs, paths = self._compile(value, location, 0)
        return Compiled(render, value, refs, location, self.limits, paths)

    def _compile(self, value: Any, location: str, depth: int) -> _Parts:
        if depth > self.limits.max_nesting:
            raise ExpressionError(location, f"nested deeper than {self.limits.max_nesting}")
        if isinstance(value, str):
            if "{{" not in value and "{%" not in value:
                return None, frozenset(), frozenset()
            entry = self._entry(value, location)
            return self._leaf(entry[0], location), entry[1], entry[2]
        if isinstance(value, (dict, list, tuple)):
            pairs = value.items() if isinstance(value, dict) else enumerate(value)
            parts: list[tuple[Any, Render | None, Any]] = []
            refs: frozenset[str] | None = frozenset()
            paths: frozenset[StepPath] | None = frozenset()
            for key, item in pairs:
                render, item_refs, item_paths = self._compile(
                    item, _child(location, key), depth + 1
                )
                refs = _union(refs, item_refs)
                paths = _union(paths, item_paths)
                parts.append((key, render, item))
            if all(render is None for _, render, _ in parts):
                return None, frozenset(), frozenset()
            if isinstance(value, dict):
                return (
                    lambda ctx: {k: v if r is None else r(ctx) for k, r, v in parts},
                    refs,
                    paths,
                )
            kind = tuple if isinstance(value, tuple) else list
            return lambda ctx: kind([v if r is None else r(ctx) for _, r, v in parts]), refs, paths
        return None, frozenset(), frozenset()

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
            paths = None if refs is None else _step_paths(tree)
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
        entry = (render, refs, paths)
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
                raise LimitExceeded(f"output exceeds the limit of {lim} (HUB_MAX_RENDER_OUTPUT)")
            return text

        return render
