"""What an expression may read at a step of a draft: the builder's completion, data tree and
preview share it.

A step's expressions read ``trigger``, ``steps.<A>.output`` for each ancestor ``A`` (as
:class:`hub.flows.validate.FlowChecker` resolves them: needs, implicit needs, handlers),
``run``, and inside a ``for_each`` step's ``input``/``when`` the current ``item`` and its
``index`` (what the engine puts in a step's context); a handler reads ``error`` too. The
flow's ``output`` reads every step that is not a handler.

What is known of each value is a :class:`Place`: its declared schema (walked with
:mod:`hub.flows.output_schema`: ``$ref``, unions, items) and a value to show (the draft's
pinned output, the latest run's output, the sample trigger data, or an example made from
the schema), each labelled by where it comes from. Completion offers the declared fields;
where the schema is open (``{}``) it offers the keys of the value instead.

Nothing here does I/O: :class:`DraftScopes` is built from a document, the registry and the
values the caller read, and memoizes each step's :class:`Scope`.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

from jinja2 import TemplateSyntaxError, meta

from hub.expressions import Compiled, Expressions
from hub.flows import output_schema
from hub.flows.checks import suggest
from hub.services.overview import example_value
from hub.web.builder.wiring import resolved_checker

if TYPE_CHECKING:
    from hub.connectors import Registry

__all__ = [
    "MISSING",
    "DraftScopes",
    "Option",
    "Place",
    "Scope",
    "completions",
    "expression_path",
    "filter_docs",
    "parse_path",
]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final[Any] = _Missing()
"""No value known (not the same as a ``null`` value)."""

# Where a shown value comes from.
PINS, LAST_RUN, SAMPLE, EXAMPLE = "pins", "last run", "sample", "schema example"
KEYWORDS = ("true", "false", "none", "and", "or", "not", "in", "is", "if", "else")
MAX_TEXT = 2_000  # completion reads at most this much before the cursor
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SEGMENT = re.compile(r"""\s*(?:\.\s*([A-Za-z_]\w*)|\[\s*(-?\d+|'[^'\\]*'|"[^"\\]*")\s*\])""")
_HEAD = re.compile(r"\s*([A-Za-z_]\w*)")
_PATH_THEN_DOT = re.compile(
    r"""([A-Za-z_]\w*(?:\s*\.\s*[A-Za-z_]\w*|\s*\[\s*(?:-?\d+|'[^'\\]*'|"[^"\\]*")\s*\])*)"""
    r"""\s*\.\s*([A-Za-z_]\w*)?$"""
)
_FILTER_TAIL = re.compile(r"\|\s*([A-Za-z_]\w*)?$")
_WORD_TAIL = re.compile(r"(?<![\w.\]'\"])([A-Za-z_]\w*)?$")
_SINGLE_PATH = re.compile(r"^\s*\{\{(.*)\}\}\s*$", re.S)


def json_type(value: Any) -> str:
    """The JSON type of a value (``object``, ``array``, ``string``, ``integer``...)."""
    if value is None:
        return "null"
    for kind, name in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string")):
        if isinstance(value, kind):
            return name
    return "array" if isinstance(value, (list, tuple)) else "object"


def expression_path(parts: tuple[str | int, ...]) -> str:
    """The expression reading ``parts`` (``steps.x.output.rows[0]['a-b']``)."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _IDENT.match(part):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part)}]"
    return text


def parse_path(text: str) -> tuple[str | int, ...] | None:
    """The constant path of ``text`` (``steps.x.output['a'][0]``), or None when it is not one."""
    head = _HEAD.match(text)
    if head is None:
        return None
    parts: list[str | int] = [head.group(1)]
    pos = head.end()
    while pos < len(text.rstrip()):
        seg = _SEGMENT.match(text, pos)
        if seg is None:
            return None
        name, index = seg.group(1), seg.group(2)
        if name is not None:
            parts.append(name)
        elif index[0] in "'\"":
            parts.append(index[1:-1])
        else:
            parts.append(int(index))
        pos = seg.end()
    return tuple(parts)


@dataclasses.dataclass(frozen=True, slots=True)
class Place:
    """What is known of the value at one path: its declared ``schema`` (None: open, nothing
    declared), a ``value`` to show (``MISSING``: none) and where it comes from (``source``).

    ``listed``: the value is the list of a for_each step's item outputs, each item declared
    by ``schema``. ``fixed``: children known by construction (``steps``, ``steps.X``), not
    read from a schema or value. ``kind``/``detail``/``info`` are what completion shows.
    """

    schema: output_schema.Node | output_schema.Found | None = None
    value: Any = MISSING
    source: str = ""
    listed: bool = False
    fixed: Mapping[str, Place] | None = None
    kind: str = "field"
    detail: str = ""
    info: str = ""

    @property
    def type(self) -> str:
        """What the place holds, as text (the schema's, else the value's JSON type)."""
        if self.detail:
            return self.detail
        if self.listed:
            item = output_schema.type_text(_first(self.schema)) if self.schema else "any"
            return f"array of {item}"
        if self.schema is not None:
            return output_schema.type_text(_first(self.schema))
        return json_type(self.value) if self.value is not MISSING else "any"

    def child(self, key: str | int) -> Place | None:
        """The place under ``key``; None when the schema declares no such key and no value
        has it (an open place answers an open, empty place)."""
        if self.fixed is not None:
            return self.fixed.get(key) if isinstance(key, str) else None
        value = _value_at(self.value, key)
        if self.listed:
            if isinstance(key, int):
                return Place(self.schema, value, self.source)
            return None
        if self.schema is None:
            return Place(None, value, self.source)
        answer = output_schema.child(self.schema, key)
        if isinstance(answer, output_schema.Found):
            return Place(answer, value, self.source, info=_description(answer))
        if answer is output_schema.OPEN:
            return Place(None, value, self.source)
        return None

    def children(self, *, values: bool = False) -> Iterator[tuple[str | int, Place]]:
        """The named places under this one: the declared fields (with their descriptions),
        and the value's keys where nothing is declared (every value key and list item too
        with ``values``, for the data tree)."""
        if self.fixed is not None:
            yield from self.fixed.items()
            return
        seen: set[str] = set()
        if self.schema is not None and not self.listed:
            for f in output_schema.fields(self.schema):
                seen.add(f.name)
                value = _value_at(self.value, f.name)
                found = output_schema.Found((f.schema,))
                yield f.name, Place(found, value, self.source, detail=f.type, info=f.description)
        declared = bool(seen)
        if isinstance(self.value, dict) and (values or not declared):
            for key, value in self.value.items():
                if isinstance(key, str) and key not in seen:
                    child = self.child(key) if not declared else None
                    yield key, child or Place(None, value, self.source)
        elif isinstance(self.value, list) and values:
            for index in range(len(self.value)):
                child = self.child(index)
                if child is not None:
                    yield index, child


def _first(where: output_schema.Node | output_schema.Found) -> output_schema.Node:
    return where.nodes[0] if isinstance(where, output_schema.Found) else where


def _description(found: output_schema.Found) -> str:
    schema = found.nodes[0].schema
    if isinstance(schema, dict):
        return str(schema.get("description") or schema.get("title") or "")
    return ""


def _value_at(value: Any, key: str | int) -> Any:
    if isinstance(value, dict) and isinstance(key, str):
        return value.get(key, MISSING)
    if isinstance(value, list) and isinstance(key, int) and -len(value) <= key < len(value):
        return value[key]
    return MISSING


@dataclasses.dataclass(frozen=True, slots=True)
class Option:
    """One completion: what CodeMirror's completion shows (``label``, ``type``, ``detail``,
    ``info``) and, when it differs from the label, the text it inserts (``apply``)."""

    label: str
    type: str
    detail: str = ""
    info: str = ""
    apply: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The option as the editor takes it."""
        out: dict[str, Any] = {"label": self.label, "type": self.type}
        if self.detail:
            out["detail"] = self.detail
        if self.info:
            out["info"] = self.info
        if self.apply is not None:
            out["apply"] = self.apply
        return out


@dataclasses.dataclass(frozen=True, slots=True)
class StepInfo:
    """A step that expressions may read: its action, whether it runs for_each, its
    declared output schema (None: unknown action) and its name."""

    id: str
    action: str
    for_each: bool
    schema: Any
    name: str = ""


@dataclasses.dataclass
class Scope:
    """What the expressions of one field may read: the top-level names (``roots``) and the
    steps readable as ``steps.X`` (``readable``, in document order); ``step`` is None for
    the flow's ``output``."""

    step: str | None
    field: str
    roots: dict[str, Place]
    readable: tuple[str, ...]
    filters: Mapping[str, str]

    def place(self, path: tuple[str | int, ...]) -> Place | None:
        """The place a path reads, or None when nothing is known to be there."""
        if not path or not isinstance(path[0], str):
            return None
        where = self.roots.get(path[0])
        for key in path[1:]:
            if where is None:
                return None
            where = where.child(key)
        return where


def filter_docs(expressions: Expressions) -> dict[str, str]:
    """The sandbox's filters, each with the first line of its documentation (sorted)."""
    docs: dict[str, str] = {}
    for name, func in sorted(expressions.env.filters.items()):
        doc = (getattr(func, "__doc__", None) or "").strip()
        docs[name] = doc.splitlines()[0].strip() if doc else ""
    return docs


class DraftScopes:
    """The scopes of one draft's fields, memoized per (step, field).

    ``sample`` is the draft's sample trigger data (MISSING: none), ``pins`` its pinned step
    outputs, ``last_outputs`` the latest run's step outputs and ``last_trigger`` its
    trigger data (MISSING: no run).
    """

    def __init__(
        self,
        document: Mapping[str, Any],
        expressions: Expressions,
        registry: Registry | None,
        *,
        sample: Any = MISSING,
        pins: Mapping[str, Any] | None = None,
        last_outputs: Mapping[str, Any] | None = None,
        last_trigger: Any = MISSING,
    ) -> None:
        self.document = document
        self.expressions = expressions
        self.registry = registry
        checker = resolved_checker(document, expressions, registry)
        checker.compute_ancestors()
        self.checker = checker
        self.filters = filter_docs(expressions)
        self.steps: dict[str, StepInfo] = {}
        for step_id, raw in checker.steps.items():
            action = raw.data.get("action")
            action_name = action if isinstance(action, str) else ""
            found = registry.action(action_name) if registry and action_name else None
            name = raw.data.get("name")
            self.steps[step_id] = StepInfo(
                step_id,
                action_name,
                raw.data.get("for_each") is not None,
                found.output_schema if found is not None else None,
                name if isinstance(name, str) else "",
            )
        self._trigger = self._trigger_place(sample, last_trigger)
        self._outputs = {
            step_id: self._output_place(info, pins or {}, last_outputs or {})
            for step_id, info in self.steps.items()
        }
        self._scopes: dict[tuple[str | None, str], Scope] = {}
        #: What the caller built these scopes of (compared to reuse them).
        self.made_of: Any = None

    # Places --------------------------------------------------------------------------

    def _trigger_place(self, sample: Any, last: Any) -> Place:
        info = "The trigger's data"
        if sample is not MISSING and sample is not None:
            return Place(None, sample, SAMPLE, kind="variable", info=info + " (the sample)")
        raw = self.document.get("trigger")
        kind = raw.get("type") if isinstance(raw, dict) else None
        trigger = (
            self.registry.triggers.get(kind) if self.registry and isinstance(kind, str) else None
        )
        schema = trigger.output_schema if trigger is not None else None
        where = output_schema.node(schema) if _declares(schema) else None
        if last is not MISSING:
            return Place(where, last, LAST_RUN, kind="variable", info=info)
        value = example_value(schema) if where is not None else MISSING
        return Place(where, value, EXAMPLE if where else "", kind="variable", info=info)

    def _output_place(
        self, info: StepInfo, pins: Mapping[str, Any], last: Mapping[str, Any]
    ) -> Place:
        schema = info.schema
        where = output_schema.node(schema) if _declares(schema) else None
        if info.id in pins:
            value, source = pins[info.id], PINS
        elif info.id in last:
            value, source = last[info.id], LAST_RUN
        elif where is not None:
            example = example_value(schema)
            value, source = ([example] if info.for_each else example), EXAMPLE
        else:
            value, source = MISSING, ""
        who = f"The output of '{info.id}'" + (f" ({info.action})" if info.action else "")
        if info.for_each:
            who += ": the list of its items' outputs"
        return Place(where, value, source, listed=info.for_each, info=who)

    def output_place(self, step_id: str) -> Place | None:
        """The place of ``steps.<step_id>.output`` (any step of the draft)."""
        return self._outputs.get(step_id)

    @property
    def trigger(self) -> Place:
        """The place of ``trigger``."""
        return self._trigger

    # Scopes --------------------------------------------------------------------------

    def readable(self, step: str | None) -> tuple[str, ...]:
        """The steps ``step`` may read (None: the flow's output), in document order."""
        if step is None:
            allowed: frozenset[str] = frozenset(
                s for s in self.steps if s not in self.checker.handles
            )
        else:
            allowed = self.checker.ancestors.get(step, frozenset())
        return tuple(s for s in self.steps if s in allowed)

    def scope(self, step: str | None, field: str = "input") -> Scope:
        """The scope of ``field`` (``input``, ``when``, ``for_each``) of ``step`` (None:
        the flow's output)."""
        key = (step, field)
        hit = self._scopes.get(key)
        if hit is None:
            hit = self._scopes[key] = self._build(step, field)
        return hit

    def _build(self, step: str | None, field: str) -> Scope:
        readable = self.readable(step)
        steps_fixed: dict[str, Place] = {}
        for step_id in readable:
            info = self.steps[step_id]
            output = self._outputs[step_id]
            steps_fixed[step_id] = Place(
                fixed={"output": output},
                kind="step",
                detail=info.action,
                info=info.name or output.info,
                source=output.source,
            )
        roots: dict[str, Place] = {
            "trigger": self._trigger,
            "steps": Place(
                fixed=steps_fixed, kind="variable", detail="steps", info="The steps upstream"
            ),
            "run": Place(
                fixed={
                    "id": Place(kind="field", detail="string", info="The run's id"),
                    "flow_id": Place(kind="field", detail="string", info="The flow's id"),
                    "flow_version": Place(kind="field", detail="integer", info="The version"),
                },
                kind="variable",
                detail="object",
                info="The run",
            ),
        }
        raw = self.checker.steps.get(step) if step is not None else None
        if raw is not None and raw.data.get("for_each") is not None and field != "for_each":
            partial = Scope(step, field, dict(roots), readable, self.filters)
            roots["item"] = self._item_place(partial, raw.data.get("for_each"))
            roots["index"] = Place(
                None, 0, kind="variable", detail="integer", info="The item's index (from 0)"
            )
        if step is not None and step in self.checker.handles:
            handled = ", ".join(self.checker.handles[step])
            roots["error"] = Place(
                kind="variable", info=f"The error of the failed step ({handled})"
            )
        return Scope(step, field, roots, readable, self.filters)

    def _item_place(self, partial: Scope, for_each: Any) -> Place:
        """``item``: an item of what for_each reads, when it reads one path."""
        info = "The current item of for_each"
        if isinstance(for_each, list):
            first = for_each[0] if for_each else MISSING
            return Place(None, first, SAMPLE, kind="variable", info=info)
        match = _SINGLE_PATH.match(for_each) if isinstance(for_each, str) else None
        path = parse_path(match.group(1)) if match else None
        where = partial.place(path) if path else None
        item = where.child(0) if where is not None else None
        if item is None:
            return Place(kind="variable", info=info)
        return dataclasses.replace(item, kind="variable", info=info)

    # Checks --------------------------------------------------------------------------

    def problems(self, scope: Scope, compiled: Compiled) -> list[tuple[str, str]]:
        """What the validator would say of ``compiled`` in ``scope``: (``steps.Y`` read,
        message) for each read of a step it may not read or of an output field its
        action does not declare; the same messages as ``hub flows validate``."""
        found: list[tuple[str, str]] = []
        refs = compiled.step_refs
        if refs is None:
            return found
        allowed = set(scope.readable)
        for ref in sorted(refs - allowed):
            found.append((ref, self._ref_message(scope.step, ref)))
        for ref, path in sorted(compiled.step_paths or (), key=repr):
            if ref in allowed and path:
                problem = self.checker.output_read_problem(ref, path)
                if problem is not None:
                    found.append((ref, problem))
        return found

    def _ref_message(self, step: str | None, ref: str) -> str:
        if step is not None:
            return self.checker.ref_message(step, ref)
        if ref not in self.steps:  # the flow's output: FlowChecker.check_refs' words
            return f"reads steps.{ref}, but there is no step '{ref}'{suggest(ref, self.steps)}"
        return (
            f"reads steps.{ref}, an error handler: the output may read only steps "
            "that run in the normal order"
        )

    # Preview -------------------------------------------------------------------------

    def context(self, scope: Scope) -> dict[str, Any]:
        """The context a preview renders with: the known values of the scope's names."""
        context: dict[str, Any] = {
            "run": {"id": "preview", "flow_id": self.document.get("id"), "flow_version": 0}
        }
        trigger = scope.roots["trigger"].value
        context["trigger"] = {} if trigger is MISSING else trigger
        steps: dict[str, Any] = {}
        for step_id in scope.readable:  # an output not known reads as null
            value = self._outputs[step_id].value
            steps[step_id] = {"output": None if value is MISSING else value}
        context["steps"] = steps
        for name in ("item", "index", "error"):
            place = scope.roots.get(name)
            if place is not None:
                context[name] = None if place.value is MISSING else place.value
        return context

    def sources(self, scope: Scope, compiled: Compiled, text: str) -> list[str]:
        """Where the values that ``text`` (compiled: ``compiled``) reads come from
        (distinct, in reading order: the steps read, then the trigger)."""
        labels: list[str] = []
        refs = compiled.step_refs
        names = scope.readable if refs is None else tuple(r for r in scope.readable if r in refs)
        for step_id in names:
            labels.append(self._outputs[step_id].source)
        try:
            read = meta.find_undeclared_variables(self.expressions.env.parse(text))
        except TemplateSyntaxError:
            read = {"trigger"}
        if "trigger" in read:
            labels.append(scope.roots["trigger"].source)
        return [label for label in dict.fromkeys(labels) if label]


def _declares(schema: Any) -> bool:
    """True for a schema that declares something (not ``{}``, ``true`` or missing)."""
    return isinstance(schema, dict) and bool(schema)


# Completion --------------------------------------------------------------------------


def _open_expression(text: str) -> int | None:
    """Where the ``{{``/``{%`` expression the text ends inside starts (after the
    delimiter), or None when the text does not end inside one (or ends inside a string)."""
    start = max(text.rfind("{{"), text.rfind("{%"))
    if start < 0:
        return None
    inner = text[start + 2 :]
    if "}}" in inner or "%}" in inner:
        return None
    if inner.count("'") % 2 or inner.count('"') % 2:
        return None
    return start + 2


def _options(place: Place, prefix: str) -> list[Option]:
    wanted = prefix.lower()
    out = []
    for key, child in place.children():
        if not isinstance(key, str) or not _IDENT.match(key):
            continue
        if key.lower().startswith(wanted):
            out.append(Option(key, child.kind, child.type, child.info))
    return out


def completions(scope: Scope, text: str) -> tuple[int, list[Option]]:
    """The completions at the end of ``text`` (the field's text before the cursor): where
    the word being replaced starts, and the options (empty outside ``{{ }}``/``{% %}``).

    After ``a.b.`` the fields under ``a.b`` (declared, or the value's keys where the schema
    is open); after ``|`` the filters; else the names in scope and a few keywords.
    """
    offset = max(0, len(text) - MAX_TEXT)
    tail = text[offset:]
    start = _open_expression(tail)
    if start is None:
        return len(text), []
    inner = tail[start:]
    base = offset + start
    filt = _FILTER_TAIL.search(inner)
    if filt is not None:
        prefix = filt.group(1) or ""
        options = [
            Option(name, "filter", "filter", doc)
            for name, doc in scope.filters.items()
            if name.startswith(prefix)
        ]
        return base + len(inner) - len(prefix), options
    dotted = _PATH_THEN_DOT.search(inner)
    if dotted is not None:
        prefix = dotted.group(2) or ""
        path = parse_path(dotted.group(1))
        place = scope.place(path) if path else None
        options = _options(place, prefix) if place is not None else []
        return base + len(inner) - len(prefix), options
    word = _WORD_TAIL.search(inner)
    if word is None:
        return len(text), []
    prefix = word.group(1) or ""
    options = [
        Option(name, place.kind, place.type, place.info)
        for name, place in scope.roots.items()
        if name.startswith(prefix)
    ]
    if prefix:
        options += [Option(k, "keyword") for k in KEYWORDS if k.startswith(prefix)]
    return base + len(inner) - len(prefix), options
