"""The flow builder's graph model: the trigger and the steps of a flow document as nodes,
``needs``, references, ``on_error`` and trigger edges between them.

:func:`build_graph` reads a document as it is being edited: it may be invalid or
half-written, so nothing here raises on a bad shape; what cannot be read is skipped (a step
without a valid, unique id is not a node; a ``needs`` entry naming no step draws no edge).
``needs`` are resolved by :class:`hub.flows.validate.FlowChecker` itself (explicit, ``[]``,
or absent: the previous non-handler step), and references by the hub's expressions
(:attr:`hub.expressions.Compiled.step_refs`), so the canvas never disagrees with
``hub flows validate``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any, Literal

from hub.expressions import Expressions
from hub.flows import FlowIssue
from hub.flows.validate import FlowChecker
from hub.web.builder.wiring import resolved_checker

EdgeKind = Literal["needs", "ref", "on_error", "trigger"]
NodeKind = Literal["trigger", "step"]

TRIGGER_ID = ":trigger"
"""The trigger node's id (a step id is an identifier, so no step can take it)."""

SUB_FLOW_ACTION = "flow.call"
EXPRESSION_FIELDS = ("input", "when", "for_each")
_STEP_LOCATION = re.compile(r"^steps\[(\d+)\]")
# Characters XML (so SVG) cannot hold; a document being typed may have them in a name.
_NOT_IN_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _printable(value: Any) -> str:
    """A name or an action as the canvas can draw it ('' for a non-string)."""
    return _NOT_IN_XML.sub("\ufffd", value) if isinstance(value, str) else ""


@dataclasses.dataclass(frozen=True, slots=True)
class Node:
    """The trigger or one step, with what the canvas shows of it.

    ``needs`` are the resolved needs (what the engine would wait for); ``handles`` the steps
    whose ``on_error`` names this one; ``retry`` the step's ``retry.max_attempts`` (1: no
    retry); ``issues`` how many validation issues are located in this step (or, for the
    trigger, in ``trigger``).
    """

    id: str
    kind: NodeKind
    name: str = ""
    action: str = ""
    index: int = -1
    for_each: bool = False
    concurrency: int | None = None
    has_when: bool = False
    is_handler: bool = False
    handles: tuple[str, ...] = ()
    on_error: str = "fail"
    retry: int = 1
    issues: int = 0
    needs: tuple[str, ...] = ()
    pinned: bool = False

    @property
    def label(self) -> str:
        """What the node reads as: the step's name, else its id (the trigger: its type)."""
        if self.kind == "trigger":
            return self.name or "Trigger"
        return self.name or self.id

    @property
    def connector(self) -> str:
        """The connector of the step's action (``http`` for ``http.request``), or ''."""
        return self.action.split(".", 1)[0] if "." in self.action else ""

    @property
    def sub_flow(self) -> bool:
        """True for a step that calls another flow (action ``flow.call``)."""
        return self.action == SUB_FLOW_ACTION

    @property
    def traits(self) -> tuple[str, ...]:
        """The node's markers as words (for accessible names, titles and the list view)."""
        words: list[str] = []
        if self.for_each:
            limit = f", {self.concurrency} at a time" if self.concurrency else ""
            words.append(f"for each item{limit}")
        if self.sub_flow:
            words.append("calls a sub-flow")
        if self.has_when:
            words.append("runs when a condition holds")
        if self.is_handler:
            words.append(f"error handler of {', '.join(self.handles)}")
        elif self.on_error not in ("fail", ""):
            words.append(
                "continues on error"
                if self.on_error == "continue"
                else f"on error: {self.on_error}"
            )
        if self.retry > 1:
            words.append(f"up to {self.retry} attempts")
        if self.pinned:
            words.append("output pinned (test runs do not call it)")
        if self.issues:
            words.append(f"{self.issues} issue{'s' if self.issues != 1 else ''}")
        return tuple(words)


@dataclasses.dataclass(frozen=True, slots=True)
class Edge:
    """``source`` -> ``target``: ``target`` needs ``source`` (``needs``), reads its output
    (``ref``), handles its failure (``on_error``), or is started by the trigger (``trigger``)."""

    source: str
    target: str
    kind: EdgeKind


@dataclasses.dataclass(frozen=True, slots=True)
class Graph:
    """The trigger, the steps in document order, and the edges (sources before targets in
    each kind's order of discovery: deterministic for one document)."""

    trigger: Node
    steps: tuple[Node, ...]
    edges: tuple[Edge, ...]

    @property
    def nodes(self) -> tuple[Node, ...]:
        """The trigger, then the steps."""
        return (self.trigger, *self.steps)

    def step(self, step_id: str) -> Node | None:
        """The step node with this id, or None."""
        return next((s for s in self.steps if s.id == step_id), None)


def _trigger_node(document: Mapping[str, Any], issues: int) -> Node:
    raw = document.get("trigger")
    kind = raw.get("type") if isinstance(raw, dict) else None
    return Node(TRIGGER_ID, "trigger", name=_printable(kind), issues=issues)


def _step_refs(checker: FlowChecker, index: int, data: Mapping[str, Any]) -> frozenset[str]:
    """The steps read as ``steps.X`` in the step's input, when and for_each ('' on error)."""
    refs: set[str] = set()
    for field in EXPRESSION_FIELDS:
        if data.get(field) is None:
            continue
        try:
            compiled = checker.compile(data[field], f"steps[{index}].{field}")
        except Exception:  # a shape the compiler does not expect: no references known
            continue
        if compiled is not None and compiled.step_refs is not None:
            refs |= compiled.step_refs
    return frozenset(refs)


def _issue_counts(issues: Iterable[FlowIssue | str]) -> tuple[dict[int, int], int]:
    """Issues per step index, and the trigger's count, from the issues' locations."""
    per_step: dict[int, int] = {}
    trigger = 0
    for issue in issues:
        location = issue.location if isinstance(issue, FlowIssue) else str(issue)
        match = _STEP_LOCATION.match(location)
        if match:
            index = int(match.group(1))
            per_step[index] = per_step.get(index, 0) + 1
        elif location == "trigger" or location.startswith(("trigger.", "trigger[")):
            trigger += 1
    return per_step, trigger


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def build_graph(
    document: Any,
    expressions: Expressions,
    issues: Iterable[FlowIssue | str] = (),
    pinned: Collection[str] = (),
) -> Graph:
    """The graph of ``document`` (any value: a non-mapping gives the trigger alone).

    ``issues`` (validation issues, or their locations) are counted per node by location
    (``steps[3].input.url`` counts for the step at index 3); ``pinned`` names the steps
    whose output the draft pins (try-it).
    """
    per_step, trigger_issues = _issue_counts(issues)
    if not isinstance(document, Mapping):
        return Graph(_trigger_node({}, trigger_issues), (), ())
    checker = resolved_checker(document, expressions)
    steps: list[Node] = []
    edges: list[Edge] = []
    ref_edges: list[Edge] = []
    handler_edges: list[Edge] = []
    for step in checker.steps.values():
        data = step.data
        action = data.get("action")
        on_error = data.get("on_error", "fail")
        retry = data.get("retry")
        attempts = _int(retry.get("max_attempts")) if isinstance(retry, dict) else None
        name = data.get("name")
        needs = checker.needs.get(step.id, ())
        node = Node(
            id=step.id,
            kind="step",
            name=_printable(name),
            action=_printable(action),
            index=step.index,
            for_each=data.get("for_each") is not None,
            concurrency=_int(data.get("concurrency")),
            has_when=data.get("when") is not None,
            is_handler=step.id in checker.handles,
            handles=tuple(checker.handles.get(step.id, ())),
            on_error=on_error if isinstance(on_error, str) else "fail",
            retry=max(attempts or 1, 1),
            issues=per_step.get(step.index, 0),
            needs=needs,
            pinned=step.id in pinned,
        )
        steps.append(node)
        if not needs and not node.is_handler:
            edges.append(Edge(TRIGGER_ID, step.id, "trigger"))
        edges.extend(Edge(source, step.id, "needs") for source in needs)
        linked = set(needs) | set(node.handles)
        for ref in sorted(_step_refs(checker, step.index, data)):
            if ref in checker.steps and ref != step.id and ref not in linked:
                ref_edges.append(Edge(ref, step.id, "ref"))
        if node.on_error in checker.steps and node.on_error != step.id:
            handler_edges.append(Edge(step.id, node.on_error, "on_error"))
    return Graph(
        _trigger_node(document, trigger_issues),
        tuple(steps),
        (*edges, *handler_edges, *ref_edges),
    )
