"""What the builder's canvas and list templates read: :class:`CanvasView`, one laid-out
graph with the selected step and the links that select a step.

The canvas (``builder/_canvas.html``) and the list view (``builder/_steps_list.html``) both
render from one view, so they always show the same steps and dependencies.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from hub.expressions import Expressions
from hub.flows import FlowIssue
from hub.web.builder.graph import TRIGGER_ID, Graph, Node, build_graph
from hub.web.builder.layout import Direction, Layout, PlacedEdge, PlacedNode, layout


class CanvasView:
    """A laid-out graph for the templates.

    ``base_url`` is the builder page's URL without a query: a step is selected by
    ``{base_url}?step={id}``, the trigger by ``{base_url}?panel=trigger``. ``selected`` is
    the selected step's id (or :data:`~hub.web.builder.graph.TRIGGER_ID`), or None.
    """

    def __init__(
        self,
        graph: Graph,
        base_url: str,
        *,
        selected: str | None = None,
        direction: Direction = "LR",
    ) -> None:
        self.graph = graph
        self.layout: Layout = layout(graph, direction)
        self.base_url = base_url
        self.selected = selected
        self.direction: Direction = self.layout.direction

    @classmethod
    def from_document(
        cls,
        document: Any,
        expressions: Expressions,
        base_url: str,
        *,
        selected: str | None = None,
        direction: Direction = "LR",
        issues: Iterable[FlowIssue | str] = (),
    ) -> CanvasView:
        """Build the graph of ``document`` (see :func:`build_graph`) and lay it out."""
        graph = build_graph(document, expressions, issues)
        return cls(graph, base_url, selected=selected, direction=direction)

    @property
    def nodes(self) -> tuple[PlacedNode, ...]:
        """The placed nodes (the trigger among them) in layout order."""
        return self.layout.nodes

    @property
    def edges(self) -> tuple[PlacedEdge, ...]:
        """The edges with their SVG paths."""
        return self.layout.edges

    @property
    def steps(self) -> tuple[Node, ...]:
        """The steps in document order (the list view)."""
        return self.graph.steps

    @property
    def width(self) -> int:
        """The drawing's width (its viewBox is ``0 0 width height``)."""
        return self.layout.width

    @property
    def height(self) -> int:
        """The drawing's height."""
        return self.layout.height

    @property
    def _keep(self) -> str:
        """What the canvas's links carry of its view (``&direction=TB``; LR is the default)."""
        return "&direction=TB" if self.direction == "TB" else ""

    @property
    def trigger_href(self) -> str:
        """The link that opens the trigger's panel."""
        return f"{self.base_url}?panel=trigger{self._keep}"

    def step_href(self, step_id: str) -> str:
        """The link that selects step ``step_id`` (the trigger's panel for the trigger)."""
        if step_id == TRIGGER_ID:
            return self.trigger_href
        return f"{self.base_url}?step={quote(step_id, safe='')}{self._keep}"

    def direction_href(self, direction: Direction) -> str:
        """The builder laid out in ``direction``, with the selected step kept."""
        selected = ""
        if self.selected is not None and self.selected != TRIGGER_ID:
            selected = f"&step={quote(self.selected, safe='')}"
        return f"{self.base_url}?direction={direction}{selected}"

    def is_selected(self, node_id: str) -> bool:
        """True for the selected node."""
        return self.selected is not None and node_id == self.selected
