"""A layered (Sugiyama-style) layout of the builder's graph, left to right or top to bottom.

1. **Cycles** (a document being edited may have them): a depth-first search from the
   trigger, then from the steps in document order, drops the edges that close a cycle from
   the layering (they are still drawn, as backward edges). Deterministic.
2. **Layers**: longest path from the trigger over ``needs``, ``on_error`` and trigger edges;
   every step is at least in layer 1. A valid reference reads an ancestor, in an earlier
   layer already; one that does not (an error being fixed) pushes its reader to a later
   layer too, unless it would close a cycle (the first 100 such are checked).
3. **Long edges** are split by one dummy vertex per layer they cross (up to a budget of
   about three per node, past which the rest are drawn as one curve), so that they are
   ordered with the nodes and routed straight through the layers they cross.
4. **Order within layers**: barycenter heuristic, alternating down and up sweeps, ties kept
   in their previous order.
5. **Coordinates** across the layers: each vertex moves towards the mean of its neighbours
   in the previous (or next) layer, the layer's order and gaps kept, over a few sweeps.
6. **Edges**: cubic Bézier curves across the gaps between layers, straight through the
   layers a long edge crosses; an edge going back (a cycle) is one S-curve.

Measured with CPython 3.11 on the project's shared dev machine (best of 5; chains with
fan-outs, explicit ``needs`` and references, as in ``tests/test_builder_graph.py``): 300
steps lay out in 10-13 ms, 1,000 in 42-45 ms; :func:`~hub.web.builder.graph.build_graph`
takes about 3 ms for 300 steps and 15-35 ms for 1,000 (expressions already cached).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import deque
from collections.abc import Iterator
from typing import Literal

from hub.web.builder.graph import Edge, Graph, Node

Direction = Literal["LR", "TB"]
DIRECTIONS: tuple[Direction, ...] = ("LR", "TB")

NODE_WIDTH = 200
NODE_HEIGHT = 56
LAYER_GAP = 72  # between two layers, where edges bend
NODE_GAP = 24  # between two nodes of a layer
DUMMY_GAP = 12  # beside a long edge passing through a layer
MARGIN = 24
BACK_LOOP = 60  # how far a backward edge swings out of its nodes
SWEEPS = 4
DUMMY_BUDGET_PER_NODE = 3
REF_CHECKS = 100  # references against the layers checked for a cycle (each costs a search)
_LAYERING_KINDS = frozenset({"needs", "on_error", "trigger"})


@dataclasses.dataclass(frozen=True, slots=True)
class PlacedNode:
    """A node with its box (top-left ``x``, ``y``), its layer and its position in the layer
    (0 first; among the nodes only, long edges' vertices not counted)."""

    node: Node
    x: int
    y: int
    width: int
    height: int
    layer: int
    position: int

    @property
    def id(self) -> str:
        """The node's id."""
        return self.node.id


@dataclasses.dataclass(frozen=True, slots=True)
class PlacedEdge:
    """An edge with its SVG path (``d``); ``backward`` when it closes a cycle or stays in
    its source's layer."""

    edge: Edge
    path: str
    backward: bool = False

    @property
    def kind(self) -> str:
        """The edge's kind (``needs``, ``ref``, ``on_error``, ``trigger``)."""
        return self.edge.kind


@dataclasses.dataclass(frozen=True, slots=True)
class Layout:
    """The placed nodes in layout order (by layer, then position), the edges with their
    paths, and the size of the drawing (its viewBox is ``0 0 width height``)."""

    direction: Direction
    nodes: tuple[PlacedNode, ...]
    edges: tuple[PlacedEdge, ...]
    width: int
    height: int

    def node(self, node_id: str) -> PlacedNode | None:
        """The placed node with this id, or None."""
        return next((n for n in self.nodes if n.id == node_id), None)


def _break_cycles(n: int, out: list[list[int]], targets: list[int]) -> set[int]:
    """Indexes of the edges that close a cycle, by a DFS from vertex 0, 1, ... in order."""
    state = [0] * n  # 0 unseen, 1 on the stack, 2 done
    back: set[int] = set()
    for root in range(n):
        if state[root]:
            continue
        state[root] = 1
        stack = [(root, iter(out[root]))]
        while stack:
            vertex, edges = stack[-1]
            for index in edges:
                target = targets[index]
                if state[target] == 0:
                    state[target] = 1
                    stack.append((target, iter(out[target])))
                    break
                if state[target] == 1:
                    back.add(index)
            else:
                state[vertex] = 2
                stack.pop()
    return back


def _reaches(succ: list[list[int]], start: int, goal: int) -> bool:
    """Whether ``goal`` can be reached from ``start`` (or is it)."""
    seen = {start}
    stack = [start]
    while stack:
        vertex = stack.pop()
        if vertex == goal:
            return True
        for target in succ[vertex]:
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return False


def _layers(n: int, pairs: list[tuple[int, int]]) -> list[int]:
    """Longest-path layers over acyclic ``pairs``: vertex 0 (the trigger) in layer 0, the
    rest in layer 1 or later."""
    succ: list[list[int]] = [[] for _ in range(n)]
    indegree = [0] * n
    for source, target in pairs:
        succ[source].append(target)
        indegree[target] += 1
    layer = [1] * n
    layer[0] = 0
    queue = deque(v for v in range(n) if indegree[v] == 0)
    while queue:
        vertex = queue.popleft()
        for target in succ[vertex]:
            if layer[vertex] + 1 > layer[target]:
                layer[target] = layer[vertex] + 1
            indegree[target] -= 1
            if indegree[target] == 0:
                queue.append(target)
    return layer


def _sweeps(
    rows: list[list[int]], up: list[list[int]], down: list[list[int]]
) -> Iterator[tuple[list[int], list[list[int]]]]:
    """The rows visited by :data:`SWEEPS` alternate sweeps (down from the second row, then
    up from the one before last...), each with the neighbours it is placed against (the
    row above on the way down, the row below on the way up)."""
    for sweep in range(SWEEPS):
        downward = sweep % 2 == 0
        indexes = range(1, len(rows)) if downward else range(len(rows) - 2, -1, -1)
        neighbours = up if downward else down
        for index in indexes:
            yield rows[index], neighbours


def _gap(a: int, b: int) -> float:
    """The distance between the centres of two neighbours of a row, of sizes ``a`` and
    ``b`` (0: a dummy vertex of a long edge)."""
    return (a + b) / 2 + (NODE_GAP if a and b else DUMMY_GAP)


def _order(
    rows: list[list[int]], up: list[list[int]], down: list[list[int]], pos: list[int]
) -> None:
    """Barycenter sweeps over ``rows`` (each a layer's vertices), in place; ``pos`` follows."""
    for row, neighbours in _sweeps(rows, up, down):
        keys: dict[int, tuple[float, int]] = {}
        for vertex in row:
            near = neighbours[vertex]
            here = pos[vertex]
            keys[vertex] = (sum(pos[w] for w in near) / len(near) if near else here, here)
        row.sort(key=keys.__getitem__)
        for position, vertex in enumerate(row):
            pos[vertex] = position


def _place_row(row: list[int], wanted: list[float], size: list[int], cross: list[float]) -> None:
    """Put the row's vertices as near ``wanted`` as their order and gaps allow (the mean of
    the placement pushed from the start and the one pushed from the end)."""
    count = len(row)
    if not count:
        return
    gaps = [0.0] * count
    for i in range(1, count):
        gaps[i] = _gap(size[row[i - 1]], size[row[i]])
    forward = [0.0] * count
    for i in range(count):
        forward[i] = wanted[i] if i == 0 else max(wanted[i], forward[i - 1] + gaps[i])
    backward = [0.0] * count
    for i in range(count - 1, -1, -1):
        backward[i] = wanted[i] if i == count - 1 else min(wanted[i], backward[i + 1] - gaps[i + 1])
    for i, vertex in enumerate(row):
        cross[vertex] = (forward[i] + backward[i]) / 2


def _coordinates(
    rows: list[list[int]], up: list[list[int]], down: list[list[int]], size: list[int]
) -> list[float]:
    """Cross-axis centres of every vertex."""
    cross = [0.0] * len(size)
    for row in rows:
        start = 0.0
        for i, vertex in enumerate(row):
            if i:
                start += _gap(size[row[i - 1]], size[vertex])
            cross[vertex] = start
        for vertex in row:
            cross[vertex] -= start / 2
    for row, neighbours in _sweeps(rows, up, down):
        wanted = [
            sum(cross[w] for w in neighbours[v]) / len(neighbours[v]) if neighbours[v] else cross[v]
            for v in row
        ]
        _place_row(row, wanted, size, cross)
    return cross


def layout(graph: Graph, direction: Direction = "LR") -> Layout:
    """Lay ``graph`` out in layers, left to right (``LR``) or top to bottom (``TB``)."""
    if direction not in DIRECTIONS:
        direction = "LR"
    nodes = list(graph.nodes)
    n = len(nodes)
    index = {node.id: i for i, node in enumerate(nodes)}
    edges = [e for e in graph.edges if e.source in index and e.target in index]
    sources = [index[e.source] for e in edges]
    targets = [index[e.target] for e in edges]

    out: list[list[int]] = [[] for _ in range(n)]
    for i, edge in enumerate(edges):
        if edge.kind in _LAYERING_KINDS and sources[i] != targets[i]:
            out[sources[i]].append(i)
    back = _break_cycles(n, out, targets)
    layering = [(sources[i], targets[i]) for row in out for i in row if i not in back]
    layer = _layers(n, layering)
    # A reference to a step not upstream (an error being fixed) pushes its reader down,
    # unless that would close a cycle.
    refs = [i for i, e in enumerate(edges) if e.kind == "ref"]
    against = [i for i in refs if layer[sources[i]] >= layer[targets[i]]][:REF_CHECKS]
    if against:
        succ: list[list[int]] = [[] for _ in range(n)]
        for source, target in layering:
            succ[source].append(target)
        for i in against:
            if not _reaches(succ, targets[i], sources[i]):
                succ[sources[i]].append(targets[i])
                layering.append((sources[i], targets[i]))
        layer = _layers(n, layering)

    # Vertices: the nodes, then one dummy per layer a long forward edge crosses.
    size_main, size_cross = (
        (NODE_WIDTH, NODE_HEIGHT) if direction == "LR" else (NODE_HEIGHT, NODE_WIDTH)
    )
    size = [size_cross] * n
    budget = DUMMY_BUDGET_PER_NODE * n
    chains: list[list[int]] = []
    for i in range(len(edges)):
        s, t = sources[i], targets[i]
        span = layer[t] - layer[s]
        if span <= 0 or (span > 1 and span - 1 > budget):
            chains.append([])  # drawn as one curve, not ordered
            continue
        chain = [s]
        for step in range(1, span):
            layer.append(layer[s] + step)
            size.append(0)
            chain.append(len(layer) - 1)
        budget -= span - 1
        chain.append(t)
        chains.append(chain)
    total = len(layer)
    up: list[list[int]] = [[] for _ in range(total)]
    down: list[list[int]] = [[] for _ in range(total)]
    for chain in chains:
        for a, b in itertools.pairwise(chain):
            down[a].append(b)
            up[b].append(a)

    rows: list[list[int]] = [[] for _ in range(max(layer) + 1)]
    for vertex in range(total):
        rows[layer[vertex]].append(vertex)
    pos = [0] * total
    for row in rows:
        for position, vertex in enumerate(row):
            pos[vertex] = position
    _order(rows, up, down, pos)
    cross = _coordinates(rows, up, down, size)

    low = min(cross[v] - size[v] / 2 for v in range(total))
    shift = MARGIN - low
    centre = [round(c + shift) for c in cross]
    pitch = size_main + LAYER_GAP

    def start(vertex: int) -> int:  # the main-axis start of the vertex's layer
        return MARGIN + layer[vertex] * pitch

    def point(main: float, across: float) -> str:
        x, y = (main, across) if direction == "LR" else (across, main)
        return f"{round(x)} {round(y)}"

    placed_edges: list[PlacedEdge] = []
    for i, edge in enumerate(edges):
        s, t = sources[i], targets[i]
        head = (start(s) + size_main, centre[s])
        tail = (start(t), centre[t])
        chain = chains[i]
        if not chain and layer[t] <= layer[s]:
            c1 = point(head[0] + BACK_LOOP, head[1])
            c2 = point(tail[0] - BACK_LOOP, tail[1])
            path = f"M{point(*head)} C{c1} {c2} {point(*tail)}"
            placed_edges.append(PlacedEdge(edge, path, backward=True))
            continue
        stops = [head]
        for dummy in chain[1:-1]:
            stops.append((start(dummy), centre[dummy]))
            stops.append((start(dummy) + size_main, centre[dummy]))
        stops.append(tail)
        parts = [f"M{point(*head)}"]
        for k in range(1, len(stops)):
            (m0, c0), (m1, c1_) = stops[k - 1], stops[k]
            if k % 2 == 0:  # through a layer, straight
                parts.append(f"L{point(m1, c1_)}")
            else:
                middle = (m0 + m1) / 2
                parts.append(f"C{point(middle, c0)} {point(middle, c1_)} {point(m1, c1_)}")
        placed_edges.append(PlacedEdge(edge, " ".join(parts)))

    order = sorted(range(n), key=lambda v: (layer[v], pos[v]))
    placed: list[PlacedNode] = []
    last_layer, position = -1, 0
    for vertex in order:
        position = position + 1 if layer[vertex] == last_layer else 0
        last_layer = layer[vertex]
        main0, cross0 = start(vertex), centre[vertex] - size_cross // 2
        x, y = (main0, cross0) if direction == "LR" else (cross0, main0)
        placed.append(
            PlacedNode(nodes[vertex], x, y, NODE_WIDTH, NODE_HEIGHT, layer[vertex], position)
        )

    extent_main = MARGIN + (max(layer) + 1) * pitch - LAYER_GAP + MARGIN
    extent_cross = max(centre[v] + size[v] / 2 for v in range(total)) + MARGIN
    across = round(extent_cross)
    width, height = (extent_main, across) if direction == "LR" else (across, extent_main)
    return Layout(direction, tuple(placed), tuple(placed_edges), width, height)
