"""What an expression may read at a step of a draft (hub.web.builder.scope): the steps in
scope as the validator resolves them (chain, branches, handlers, for_each), completion
after ``steps.``, ``steps.x.output.``, through ``$ref``, unions and items, after ``|``,
and the validator's messages for reads out of scope or undeclared.

Pure: a real registry and the hub's real Expressions, no database.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec

from hub import Action, Connector, action
from hub.connectors import Registry
from hub.expressions import Expressions
from hub.flows import FlowError, load_flow
from hub.web.builder.scope import (
    EXAMPLE,
    LAST_RUN,
    MISSING,
    PINS,
    SAMPLE,
    DraftScopes,
    completions,
    expression_path,
    parse_path,
)


class Customer(msgspec.Struct):
    """Who ordered."""

    name: str
    email: str


class Line(msgspec.Struct):
    sku: str
    quantity: int


class Order(msgspec.Struct):
    id: int
    customer: Customer | None
    lines: list[Line]


@action(title="Get an order")
async def get_order(ctx: Any, data: dict[str, Any]) -> Order:
    """Read one order."""
    raise NotImplementedError  # never run


async def _never(ctx: Any, data: Any) -> Any:
    raise NotImplementedError


FETCH_OUTPUT = {
    "type": "object",
    "properties": {
        "status": {"type": "integer", "description": "The HTTP status."},
        "body": {"type": "string", "description": "The body as text."},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
WHO_OUTPUT = {
    "anyOf": [
        {"type": "object", "properties": {"login": {"type": "string"}}},
        {"type": "object", "properties": {"app_id": {"type": "integer"}}},
        {"type": "null"},
    ]
}


def registry() -> Registry:
    reg = Registry()
    actions = [
        dataclasses.replace(get_order, name="order"),
        Action(name="fetch", run=_never, output_schema=FETCH_OUTPUT),
        Action(name="who", run=_never, output_schema=WHO_OUTPUT),
        Action(name="anything", run=_never, output_schema={}),
    ]
    reg.add("shop_plugin", [Connector(name="shop", actions=actions)])
    return reg


REGISTRY = registry()
EXPRESSIONS = Expressions()


def flow(*steps: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": "f", "trigger": {"type": "manual"}, "steps": list(steps), **extra}


def labels(scopes: DraftScopes, step: str | None, text: str, field: str = "input") -> list[str]:
    start, options = completions(scopes.scope(step, field), text)
    assert 0 <= start <= len(text)
    return [o.label for o in options]


def test_a_chain_reads_its_ancestors_only() -> None:
    scopes = DraftScopes(
        flow(
            {"id": "a", "action": "shop.fetch"},
            {"id": "b", "action": "shop.fetch"},
            {"id": "c", "action": "shop.fetch"},
        ),
        EXPRESSIONS,
        REGISTRY,
    )
    assert labels(scopes, "c", "{{ steps.") == ["a", "b"]
    assert labels(scopes, "b", "{{ steps.") == ["a"]
    assert labels(scopes, "a", "{{ steps.") == []
    assert labels(scopes, None, "{{ steps.") == ["a", "b", "c"]  # the flow's output
    start, options = completions(scopes.scope("c"), "x {{ steps.a.output.st")
    assert [o.label for o in options] == ["status"]
    assert start == len("x {{ steps.a.output.")
    status = options[0]
    assert (status.type, status.detail, status.info) == ("field", "integer", "The HTTP status.")
    steps_option = completions(scopes.scope("c"), "{{ steps.")[1][0]
    assert (steps_option.type, steps_option.detail) == ("step", "shop.fetch")


def test_branches_and_handlers_read_what_precedes_them() -> None:
    scopes = DraftScopes(
        flow(
            {"id": "start", "action": "shop.fetch"},
            {"id": "left", "action": "shop.fetch", "needs": ["start"]},
            {"id": "right", "action": "shop.fetch", "needs": ["start"], "on_error": "oops"},
            {"id": "join", "action": "shop.fetch", "needs": ["left", "right"]},
            {"id": "oops", "action": "shop.fetch"},
        ),
        EXPRESSIONS,
        REGISTRY,
    )
    assert labels(scopes, "left", "{{ steps.") == ["start"]
    assert labels(scopes, "right", "{{ steps.") == ["start"]  # not its sibling
    assert labels(scopes, "join", "{{ steps.") == ["start", "left", "right"]
    assert labels(scopes, "oops", "{{ steps.") == ["start", "right"]
    assert "error" in labels(scopes, "oops", "{{ ")
    assert "error" not in labels(scopes, "join", "{{ ")
    assert "oops" not in labels(scopes, None, "{{ steps.")  # the output reads no handler


def test_nested_refs_unions_and_items() -> None:
    scopes = DraftScopes(
        flow(
            {"id": "order", "action": "shop.order"},
            {"id": "who", "action": "shop.who"},
            {"id": "use", "action": "shop.fetch"},
        ),
        EXPRESSIONS,
        REGISTRY,
    )
    assert labels(scopes, "use", "{{ steps.order.output.") == ["id", "customer", "lines"]
    assert labels(scopes, "use", "{{ steps.order.output.customer.") == ["name", "email"]
    customer = completions(scopes.scope("use"), "{{ steps.order.output.cu")[1][0]
    assert customer.detail == "Customer or null"
    assert labels(scopes, "use", "{{ steps.order.output.lines[0].") == ["sku", "quantity"]
    assert labels(scopes, "use", "{{ steps.order.output.lines[0].q") == ["quantity"]
    assert labels(scopes, "use", "{{ steps.who.output.") == ["login", "app_id"]
    assert labels(scopes, "use", "{{ steps.order.output.nope.") == []


def test_for_each_items_and_its_output_list() -> None:
    scopes = DraftScopes(
        flow(
            {"id": "order", "action": "shop.order"},
            {
                "id": "each",
                "action": "shop.fetch",
                "for_each": "{{ steps.order.output.lines }}",
                "input": {"sku": "{{ item.sku }}"},
            },
            {"id": "after", "action": "shop.fetch"},
        ),
        EXPRESSIONS,
        REGISTRY,
    )
    roots = labels(scopes, "each", "{{ ")
    assert "item" in roots and "index" in roots
    assert "item" not in labels(scopes, "each", "{{ ", field="for_each")
    assert "item" not in labels(scopes, "after", "{{ ")
    assert labels(scopes, "each", "{{ item.") == ["sku", "quantity"]  # the items' schema
    # A for_each step's output is the list of its items' outputs.
    assert labels(scopes, "after", "{{ steps.each.output.") == []
    assert labels(scopes, "after", "{{ steps.each.output[0].") == ["status", "body", "headers"]
    out = scopes.output_place("each")
    assert out is not None and out.type == "array of object" and isinstance(out.value, list)


def test_filters_keywords_and_outside_an_expression() -> None:
    scopes = DraftScopes(flow({"id": "a", "action": "shop.fetch"}), EXPRESSIONS, REGISTRY)
    start, options = completions(scopes.scope("a"), "{{ trigger.name | up")
    assert [o.label for o in options] == ["upper"]
    assert options[0].type == "filter" and options[0].info
    assert start == len("{{ trigger.name | ")
    every = [o.label for o in completions(scopes.scope("a"), "{{ x |")[1]]
    assert {"tojson", "fromjson", "default", "sha256"} <= set(every)
    assert labels(scopes, "a", "plain text steps.") == []
    assert labels(scopes, "a", "{{ steps.a }} and steps.") == []
    assert labels(scopes, "a", "{{ 'steps.") == []  # inside a string
    assert labels(scopes, "a", "{{ tr") == ["trigger", "true"]
    assert labels(scopes, "a", "{% if steps.") == []  # 'a' has no ancestor
    assert labels(scopes, "a", "{{ steps . ") == []


def test_values_where_the_schema_is_open() -> None:
    document = flow(
        {"id": "free", "action": "shop.anything"},
        {"id": "fetch", "action": "shop.fetch"},
        {"id": "use", "action": "shop.fetch"},
    )
    scopes = DraftScopes(
        document,
        EXPRESSIONS,
        REGISTRY,
        sample={"customer": {"email": "a@example.com"}},
        pins={"fetch": {"status": 201, "body": "ok", "extra": 1}},
        last_outputs={"free": {"rows": [{"id": 7}]}, "fetch": {"status": 500}},
    )
    assert labels(scopes, "use", "{{ steps.free.output.") == ["rows"]  # last run, open
    assert labels(scopes, "use", "{{ steps.free.output.rows[0].") == ["id"]
    assert labels(scopes, "use", "{{ steps.fetch.output.") == ["status", "body", "headers"]
    assert labels(scopes, "use", "{{ trigger.customer.") == ["email"]  # the sample
    scope = scopes.scope("use")
    context = scopes.context(scope)
    assert context["steps"]["fetch"]["output"]["status"] == 201  # pins first
    assert context["trigger"] == {"customer": {"email": "a@example.com"}}
    assert scopes.output_place("fetch").source == PINS  # type: ignore[union-attr]
    assert scopes.output_place("free").source == LAST_RUN  # type: ignore[union-attr]
    assert scopes.trigger.source == SAMPLE
    bare = DraftScopes(document, EXPRESSIONS, REGISTRY)
    assert bare.output_place("fetch").source == EXAMPLE  # type: ignore[union-attr]
    assert bare.output_place("free").value is MISSING  # type: ignore[union-attr]


BAD_REF, BAD_FIELD = "{{ steps.b.output }}", "{{ steps.a.output.bdy }}"


def test_problems_are_the_validators_messages() -> None:
    document = flow(
        {"id": "a", "action": "shop.fetch"},
        {"id": "b", "action": "shop.fetch", "needs": []},
        {"id": "c", "action": "shop.fetch", "needs": ["a"], "input": {"x": BAD_REF}},
        {"id": "d", "action": "shop.fetch", "needs": ["a"], "input": {"x": BAD_FIELD}},
    )
    scopes = DraftScopes(document, EXPRESSIONS, REGISTRY)
    try:
        load_flow(document, expressions=EXPRESSIONS, registry=REGISTRY)
    except FlowError as exc:
        expected = {i.message for i in exc.issues}
    found = set()
    for step, text in (("c", BAD_REF), ("d", BAD_FIELD)):
        compiled = EXPRESSIONS.compile(text, "x")
        problems = scopes.problems(scopes.scope(step), compiled)
        assert len(problems) == 1
        found.add(problems[0][1])
    assert found == expected
    assert any("did you mean 'body'" in m for m in found)
    ok = EXPRESSIONS.compile("{{ steps.a.output.status }}", "x")
    assert scopes.problems(scopes.scope("c"), ok) == []


def test_paths_read_and_written() -> None:
    assert parse_path("steps.x.output['a-b'][0].c") == ("steps", "x", "output", "a-b", 0, "c")
    assert parse_path("steps.x + 1") is None
    assert expression_path(("steps", "x", "output", "a-b", 0, "c")) == (
        'steps.x.output["a-b"][0].c'
    )


def test_completion_on_300_steps() -> None:
    """Every upstream step of the last of 300 is offered, and a nested field completes (how
    fast: bench/builder.py)."""
    steps = [{"id": "s0", "action": "shop.order"}]
    steps += [{"id": f"s{i}", "action": "shop.fetch"} for i in range(1, 300)]
    scopes = DraftScopes(flow(*steps), EXPRESSIONS, REGISTRY)
    scope = scopes.scope("s299")
    assert len(completions(scope, "{{ steps.")[1]) == 299
    assert completions(scope, "{{ steps.s0.output.customer.em")[1][0].label == "email"


def test_steps_x_holds_only_its_output() -> None:
    scopes = DraftScopes(
        flow({"id": "a", "action": "shop.fetch"}, {"id": "b", "action": "shop.fetch"}),
        EXPRESSIONS,
        REGISTRY,
    )
    assert labels(scopes, "b", "{{ steps.a.") == ["output"]
    compiled = EXPRESSIONS.compile("{{ steps.a.outptu }}", "x")
    [(ref, message)] = scopes.problems(scopes.scope("b"), compiled)
    assert ref == "a" and "read steps.a.output" in message
