"""The flow builder's graph, layout and canvas (issue 16, "The canvas"): the graph model of a
flow document (needs as the validator resolves them, references, error handlers), the layered
layout, and the SVG and list macros rendered with the UI's own Jinja environment.

No browser: the macros' output is parsed as XML.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.expressions import Expressions
from hub.flows import FlowIssue, load_flow
from hub.web.builder.canvas import CanvasView
from hub.web.builder.graph import TRIGGER_ID, Edge, Graph, build_graph
from hub.web.builder.layout import Layout, layout
from hub.web.templates import environment

EXPRESSIONS = Expressions()
ENV = environment("", [])
SVG = "{http://www.w3.org/2000/svg}"


def step(step_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "action": "data.set", "input": {}, **fields}


def flow(*steps: dict[str, Any], trigger: Any = None) -> dict[str, Any]:
    return {"id": "f", "trigger": trigger or {"type": "manual"}, "steps": list(steps)}


def edges(graph: Graph, kind: str) -> set[tuple[str, str]]:
    return {(e.source, e.target) for e in graph.edges if e.kind == kind}


def big_flow(count: int) -> dict[str, Any]:
    """A chain with fan-outs, explicit needs to earlier steps and references further back."""
    steps: list[dict[str, Any]] = []
    for i in range(count):
        fields: dict[str, Any] = {}
        if i % 7 == 3:
            fields["needs"] = [f"s{i - 3}", f"s{i - 2}"]
        if i % 5 == 4 and i > 10:
            fields["input"] = {"v": f"{{{{ steps.s{i - 10}.output }}}}"}
        if i % 11 == 0:
            fields["needs"] = [f"s{i - 1}"] if i else []
        steps.append(step(f"s{i}", **fields))
    return flow(*steps)


# --- The graph ----------------------------------------------------------------------------


def test_absent_needs_are_the_previous_non_handler_step_and_roots_hang_off_the_trigger() -> None:
    graph = build_graph(
        flow(
            step("a", on_error="h"),
            step("h"),
            step("b"),
            step("c", needs=[]),
            step("d", needs=["a", "c", "a", "nope"]),
        ),
        EXPRESSIONS,
    )
    assert [s.id for s in graph.steps] == ["a", "h", "b", "c", "d"]
    assert edges(graph, "needs") == {("a", "b"), ("a", "d"), ("c", "d")}
    assert edges(graph, "trigger") == {(TRIGGER_ID, "a"), (TRIGGER_ID, "c")}
    assert edges(graph, "on_error") == {("a", "h")}
    handler = graph.step("h")
    assert handler is not None and handler.is_handler and handler.handles == ("a",)
    assert handler.needs == ()


def test_graph_needs_are_the_ones_the_validator_resolves() -> None:
    document = flow(
        step("a", on_error="h"),
        step("h"),
        step("b"),
        step("c", needs=[]),
        step("d", needs=["b", "c"]),
        step("e"),
    )
    specs = load_flow(document, expressions=EXPRESSIONS).steps
    graph = build_graph(document, EXPRESSIONS)
    assert {s.id: s.needs for s in graph.steps} == {k: v.needs for k, v in specs.items()}


def test_references_are_ref_edges_unless_already_needs_or_handled() -> None:
    graph = build_graph(
        flow(
            step("a", on_error="h"),
            step("b"),
            step(
                "c",
                input={"x": "{{ steps.a.output.id }}", "y": "{{ steps['b'].output }}"},
                when="{{ steps.a.output.ok }}",
            ),
            step("d", for_each="{{ steps.c.output.items }}", input="{{ steps.zz.output }}"),
            step("h", input={"err": "{{ steps.a.error }}"}),
            step("bad", input="{{ steps.a.output "),
        ),
        EXPRESSIONS,
    )
    # c needs b (implicit): b's reference is a needs edge already; a's is a reference.
    # d's reference to c is its implicit need; zz does not exist; h reads what it handles;
    # the unparsable expression reads nothing.
    assert edges(graph, "ref") == {("a", "c")}
    assert ("b", "c") in edges(graph, "needs")


def test_step_flags_and_issue_counts() -> None:
    graph = build_graph(
        flow(
            step("loop", for_each="{{ trigger.items }}", concurrency=4, retry={"max_attempts": 3}),
            step("sub", action="flow.call", when="{{ true }}", name="Call the other flow"),
            step("odd", action=7, concurrency=True, retry={"max_attempts": "x"}),
            trigger={"type": "webhook"},
        ),
        EXPRESSIONS,
        issues=[
            FlowIssue("steps[0].input.x", "bad"),
            "steps[0]",
            "steps[2].action",
            "trigger.config.path",
            "output",
        ],
    )
    loop, sub, odd = graph.steps
    assert (loop.for_each, loop.concurrency, loop.retry, loop.issues) == (True, 4, 3, 2)
    assert (sub.sub_flow, sub.has_when, sub.label, sub.connector) == (
        True,
        True,
        "Call the other flow",
        "flow",
    )
    assert (odd.action, odd.concurrency, odd.retry, odd.issues) == ("", None, 1, 1)
    assert graph.trigger.name == "webhook" and graph.trigger.issues == 1
    assert "for each item, 4 at a time" in loop.traits and "2 issues" in loop.traits


def test_cycles_are_kept_in_the_graph_and_laid_out_backward() -> None:
    graph = build_graph(
        flow(step("a", needs=["c"]), step("b", needs=["a"]), step("c", needs=["b"]), step("d")),
        EXPRESSIONS,
    )
    assert edges(graph, "needs") == {("c", "a"), ("a", "b"), ("b", "c"), ("c", "d")}
    placed = layout(graph)
    backward = [e.edge for e in placed.edges if e.backward]
    assert len(backward) == 1
    assert_no_overlap(placed)
    assert placed == layout(graph)


junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)
step_ids = st.sampled_from(["a", "b", "c", "d", "fail", "1x", ""])
step_junk = st.fixed_dictionaries(
    {},
    optional={
        "id": step_ids | junk,
        "needs": st.lists(step_ids | junk, max_size=3) | junk,
        "on_error": step_ids | junk,
        "input": st.sampled_from(["{{ steps.a.output }}", "{{ steps", "{% for %}"]) | junk,
        "when": junk,
        "for_each": junk,
        "action": st.sampled_from(["flow.call", "a.b", "x"]) | junk,
        "name": junk,
        "concurrency": junk,
        "retry": junk,
    },
)
documents = junk | st.fixed_dictionaries(
    {"steps": st.lists(step_junk | junk, max_size=6) | junk},
    optional={"trigger": junk, "id": junk},
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents, st.sampled_from(["LR", "TB"]))
def test_any_document_builds_lays_out_and_renders(document: Any, direction: Any) -> None:
    view = CanvasView.from_document(
        document, EXPRESSIONS, "/b", direction=direction, issues=["steps[0]", "trigger", 3]
    )
    assert_no_overlap(view.layout)
    assert len(view.nodes) == len(view.steps) + 1
    root = render_svg(view)
    links = root.findall(f".//{SVG}a")
    assert len(links) == len(view.steps) + 1


# --- The layout ---------------------------------------------------------------------------


def assert_no_overlap(placed: Layout) -> None:
    boxes = sorted((n.x, n.y, n.x + n.width, n.y + n.height, n.id) for n in placed.nodes)
    for i, (x0, y0, x1, y1, name) in enumerate(boxes):
        assert x0 >= 0 and y0 >= 0 and x1 <= placed.width and y1 <= placed.height, name
        for ox0, oy0, _, oy1, other in boxes[i + 1 :]:
            if ox0 >= x1:
                break
            assert oy0 >= y1 or oy1 <= y0, f"{name} overlaps {other}"


@pytest.mark.parametrize("direction", ["LR", "TB"])
def test_layout_separates_nodes_and_edges_go_forward(direction: Any) -> None:
    graph = build_graph(big_flow(120), EXPRESSIONS)
    placed = layout(graph, direction)
    assert_no_overlap(placed)
    where = {n.id: n for n in placed.nodes}
    assert where[TRIGGER_ID].layer == 0
    for edge in placed.edges:
        source, target = where[edge.edge.source], where[edge.edge.target]
        assert source.layer < target.layer and not edge.backward
        if direction == "LR":
            assert source.x + source.width < target.x
            assert edge.path.startswith(f"M{source.x + source.width} ")
        else:
            assert source.y + source.height < target.y
    # positions are 0.. within each layer, in layout order
    by_layer: dict[int, list[int]] = {}
    for node in placed.nodes:
        by_layer.setdefault(node.layer, []).append(node.position)
    assert all(p == list(range(len(p))) for p in by_layer.values())


def test_fan_out_shares_a_layer_and_a_join_waits_for_the_longest_path() -> None:
    graph = build_graph(
        flow(
            step("a"),
            step("b", needs=["a"]),
            step("c", needs=["a"]),
            step("d", needs=["c"]),
            step("e", needs=["b", "d"]),
        ),
        EXPRESSIONS,
    )
    placed = layout(graph)
    layer = {n.id: n.layer for n in placed.nodes}
    assert layer == {TRIGGER_ID: 0, "a": 1, "b": 2, "c": 2, "d": 3, "e": 4}
    long_edge = next(e for e in placed.edges if e.edge == Edge("b", "e", "needs"))
    assert " L" in long_edge.path  # straight through the layer it crosses


def test_layout_is_deterministic_and_300_steps_are_measured() -> None:
    document = big_flow(300)
    graph = build_graph(document, EXPRESSIONS)
    started = time.perf_counter()
    first = layout(graph)
    elapsed = time.perf_counter() - started
    print(f"300 steps: layout {elapsed * 1000:.1f} ms")
    assert first == layout(build_graph(document, EXPRESSIONS))
    assert len(first.nodes) == 301
    assert_no_overlap(first)


# --- The templates ------------------------------------------------------------------------


def render_svg(view: CanvasView) -> ET.Element:
    html = ENV.from_string(
        '{% from "builder/_canvas.html" import canvas %}{{ canvas(view) }}'
    ).render(view=view)
    assert "style=" not in html and "<script" not in html
    start, end = html.index("<svg"), html.index("</svg>") + len("</svg>")
    return ET.fromstring(html[start:end])


def test_canvas_renders_a_link_per_step_edges_by_kind_and_the_selection() -> None:
    document = flow(
        step("fetch", name="Fetch <orders>", on_error="alert"),
        step("each", for_each="{{ steps.fetch.output.items }}", concurrency=5, needs=[]),
        step("sub", action="flow.call", needs=["fetch"], input={"x": "{{ steps.fetch.output }}"}),
        step("alert", action="slack.post"),
    )
    view = CanvasView.from_document(
        document, EXPRESSIONS, "/w/default/flows/f/build", selected="each", issues=["steps[2]"]
    )
    root = render_svg(view)
    assert root.get("viewBox") == f"0 0 {view.width} {view.height}"
    assert root.get("role") == "group" and "4 steps" in (root.get("aria-label") or "")
    links = {a.get("data-step"): a for a in root.iter(f"{SVG}a")}
    assert set(links) == {TRIGGER_ID, "fetch", "each", "sub", "alert"}
    assert links["each"].get("href") == "/w/default/flows/f/build?step=each"
    assert links[TRIGGER_ID].get("href") == "/w/default/flows/f/build?panel=trigger"
    assert "selected" in (links["each"].get("class") or "").split()
    assert links["each"].get("aria-current") == "true"
    assert "for-each" in (links["each"].get("class") or "")
    assert "sub-flow" in (links["sub"].get("class") or "")
    assert "handler" in (links["alert"].get("class") or "")
    assert links["sub"].find(f"{SVG}g[@class='badge-issues']") is not None
    title = links["fetch"].find(f"{SVG}title")
    assert title is not None and "Fetch <orders>" in (title.text or "")
    marks = "".join(links["each"].itertext())
    assert "↻5" in marks
    paths = root.findall(f".//{SVG}g[@class='edges']/{SVG}path")
    kinds = {(p.get("data-from"), p.get("data-to")): p.get("class") for p in paths}
    assert kinds[("fetch", "sub")] == "edge edge-needs"
    assert kinds[("fetch", "each")] == "edge edge-ref"
    assert kinds[("fetch", "alert")] == "edge edge-on_error"
    assert kinds[(TRIGGER_ID, "fetch")] == "edge edge-trigger"
    for path in paths:
        kind = (path.get("class") or "").split()[1].removeprefix("edge-")
        assert path.get("marker-end") == f"url(#builder-canvas-arrow-{kind})"
        marker = root.find(f".//{SVG}marker[@id='builder-canvas-arrow-{kind}']")
        assert marker is not None


def test_list_view_shows_the_same_steps_in_order_with_their_needs() -> None:
    document = flow(step("a", on_error="h"), step("b"), step("c", needs=["a", "b"]), step("h"))
    view = CanvasView.from_document(document, EXPRESSIONS, "/b", selected="b")
    html = ENV.from_string(
        '{% from "builder/_steps_list.html" import steps_list %}{{ steps_list(view) }}'
    ).render(view=view)
    assert "style=" not in html
    root = ET.fromstring(html)
    items = root.findall(".//li")
    assert [li.get("data-step") for li in items] == ["a", "b", "c", "h"]
    texts = [" ".join("".join(li.itertext()).split()) for li in items]
    assert "starts from the trigger" in texts[0]
    assert "needs a" in texts[1]
    assert "needs a, b" in texts[2]
    assert "handles the failure of a" in texts[3]
    current = root.findall(".//a[@aria-current='true']")
    assert [a.get("href") for a in current] == ["/b?step=b"]
    canvas_ids = {n.id for n in view.nodes} - {TRIGGER_ID}
    assert canvas_ids == {li.get("data-step") for li in items}


def test_a_pinned_step_is_marked() -> None:
    document = {
        "id": "f",
        "trigger": {"type": "manual"},
        "steps": [{"id": "a", "action": "data.set"}, {"id": "b", "action": "data.set"}],
    }
    graph = build_graph(document, EXPRESSIONS, pinned={"b"})
    assert [n.pinned for n in graph.steps] == [False, True]
    assert "output pinned (test runs do not call it)" in graph.steps[1].traits
