"""The output-schema check: ``steps.X.output.<path>`` names what X's action declares.

The walker (:mod:`hub.flows.output_schema`) on its own, the paths an expression reads
(``Compiled.step_paths``), the check in :class:`~hub.flows.validate.FlowChecker` over a real
registry (a msgspec-typed action among others), and the same message through ``hub flows
validate`` and the API's ``_validate``.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from hub import Action, Connector, action
from hub.connectors import Registry
from hub.expressions import Expressions
from hub.flows import FlowError, load_flow
from hub.flows import output_schema as walker
from hub.flows.output_schema import OPEN, Found, Undeclared
from hub.settings import Settings
from tests.api_kit import Api, started_api

ROOT = Path(__file__).resolve().parent.parent
HUB = shutil.which("hub", path=str(Path(sys.executable).parent)) or str(
    Path(sys.executable).parent / "hub"
)

# -- a connector whose actions declare output schemas of every kind ------------------------


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
    tags: dict[str, str]


@action(title="Get an order")
async def get_order(ctx: Any, data: dict[str, Any]) -> Order:
    """Read one order."""
    raise NotImplementedError  # validated, never run


async def _never(ctx: Any, data: Any) -> Any:
    raise NotImplementedError


FETCH_OUTPUT = {
    "type": "object",
    "properties": {
        "status": {"type": "integer", "description": "The HTTP status."},
        "body": {"type": "string"},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "json": {"description": "The parsed body, anything."},
    },
}
UNION_OUTPUT = {
    "oneOf": [
        {"type": "object", "properties": {"kind": {"const": "user"}, "login": {"type": "string"}}},
        {"type": "object", "properties": {"kind": {"const": "bot"}, "app_id": {"type": "integer"}}},
        {"type": "null"},
    ]
}
PAIR_OUTPUT = {
    "type": "array",
    "prefixItems": [
        {"type": "object", "properties": {"first": {"type": "string"}}},
        {"type": "object", "properties": {"second": {"type": "string"}}},
    ],
    "items": False,
}
LABELS_OUTPUT = {
    "type": "object",
    "properties": {"count": {"type": "integer"}},
    "patternProperties": {
        "^label_": {"type": "object", "properties": {"color": {"type": "string"}}}
    },
}


def registry() -> Registry:
    """A real registry with the ``shop`` connector (validated as a plugin's would be)."""
    reg = Registry()
    actions = [
        dataclasses.replace(get_order, name="order"),
        Action(name="fetch", run=_never, output_schema=FETCH_OUTPUT),
        Action(name="who", run=_never, output_schema=UNION_OUTPUT),
        Action(name="pair", run=_never, output_schema=PAIR_OUTPUT),
        Action(name="labels", run=_never, output_schema=LABELS_OUTPUT),
        Action(name="anything", run=_never, output_schema={}),
    ]
    reg.add("shop_plugin", [Connector(name="shop", actions=actions)])
    return reg


REGISTRY = registry()
EXPRESSIONS = Expressions()


def flow(*steps: dict[str, Any], output: Any = None) -> dict[str, Any]:
    """A manual flow of ``steps`` (the first ones are lookups the last one reads)."""
    document: dict[str, Any] = {"id": "f", "trigger": {"type": "manual"}, "steps": list(steps)}
    if output is not None:
        document["output"] = output
    return document


LOOKUPS = [
    {"id": "order", "action": "shop.order", "needs": []},
    {"id": "fetch", "action": "shop.fetch", "needs": []},
    {"id": "who", "action": "shop.who", "needs": []},
    {"id": "pair", "action": "shop.pair", "needs": []},
    {"id": "labels", "action": "shop.labels", "needs": []},
    {"id": "anything", "action": "shop.anything", "needs": []},
    {"id": "each", "action": "shop.order", "needs": [], "for_each": "{{ [1, 2] }}"},
]
ALL = [s["id"] for s in LOOKUPS]


def issues(value: Any, field: str = "input", output: Any = None) -> list[tuple[str, str]]:
    """The issues of a flow whose last step ``use`` has ``field`` = ``value``."""
    use = {"id": "use", "action": "shop.anything", "needs": ALL, "input": {}}
    use[field] = value
    try:
        load_flow(flow(*LOOKUPS, use, output=output), expressions=EXPRESSIONS, registry=REGISTRY)
    except FlowError as exc:
        return [(i.location, i.message) for i in exc.issues]
    return []


def valid(expression: str) -> bool:
    return issues({"v": expression}) == []


# -- Compiled.step_paths --------------------------------------------------------------------


def test_step_paths_are_the_constant_keys_read_after_each_step() -> None:
    compiled = EXPRESSIONS.compile(
        {
            "a": "{{ steps.fetch.output.json['items'][0].id }}",
            "b": "x {{ steps['who'].output[item.key].name }} {{ steps.pair.output[-1] }}",
            "c": ["{{ steps.order.output.customer.name.upper() }}", "{{ steps.order }}"],
        },
        "input",
    )
    assert compiled.step_refs == {"fetch", "who", "pair", "order"}
    assert compiled.step_paths == {
        ("fetch", ("output", "json", "items", 0, "id")),
        ("who", ("output",)),  # stops at the key computed at run time
        ("pair", ("output", -1)),
        ("order", ("output", "customer", "name")),  # not the method called
        ("order", ()),
    }


def test_step_paths_are_none_when_steps_is_read_by_a_computed_id() -> None:
    compiled = EXPRESSIONS.compile("{{ steps[name].output.x }} {{ steps.a.output.y }}", "v")
    assert compiled.step_refs is None and compiled.step_paths is None
    assert EXPRESSIONS.compile("plain", "v").step_paths == frozenset()


# -- the walker -----------------------------------------------------------------------------


def test_walker_follows_msgspec_refs_and_unions_with_null() -> None:
    schema = get_order.output_schema
    assert schema["$ref"] == "#/$defs/Order"  # what msgspec derives: the walker must resolve it
    email = walker.walk(schema, ["customer", "email"])
    assert isinstance(email, Found) and email.nodes[0].schema == {"type": "string"}
    missing = walker.walk(schema, ["customer", "mail"])
    assert missing == Undeclared("mail", ("email", "name"))
    assert walker.walk(schema, ["lines", 3, "sku"]) != OPEN
    assert isinstance(walker.walk(schema, ["lines", 3, "sku"]), Found)
    assert walker.walk(schema, ["lines", "sku"]) == Undeclared("sku", (), ("array",))
    assert walker.walk(schema, ["tags", "any-name"]) != OPEN  # additionalProperties: a string
    assert walker.walk(schema, ["tags", "x", "y"]) == Undeclared("y", (), ("string",))


def test_walker_reads_anyof_and_oneof_as_a_union() -> None:
    assert isinstance(walker.walk(UNION_OUTPUT, ["login"]), Found)
    assert isinstance(walker.walk(UNION_OUTPUT, ["app_id"]), Found)
    assert walker.walk(UNION_OUTPUT, ["name"]) == Undeclared("name", ("app_id", "kind", "login"))
    any_of = {"anyOf": [{"type": "string"}, {"type": "object", "properties": {"a": {}}}]}
    assert walker.walk(any_of, ["b"]) == Undeclared("b", ("a",), ("string",))
    # A branch that declares no structure (a constraint only) does not open the object.
    rules = {
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
        "oneOf": [{"required": ["a"]}, {"required": ["b"]}],
    }
    assert walker.walk(rules, ["c"]) == Undeclared("c", ("a", "b"))
    assert walker.walk({"anyOf": [{"type": "object"}, {"type": "null"}]}, ["c"]) is OPEN


def test_walker_reads_allof_as_the_composition_of_its_parts() -> None:
    schema = {
        "$defs": {"Base": {"type": "object", "properties": {"id": {"type": "integer"}}}},
        "allOf": [{"$ref": "#/$defs/Base"}, {"properties": {"extra": {"type": "string"}}}],
    }
    assert isinstance(walker.walk(schema, ["id"]), Found)
    assert isinstance(walker.walk(schema, ["extra"]), Found)
    assert walker.walk(schema, ["other"]) == Undeclared("other", ("extra", "id"))


def test_walker_follows_items_and_prefix_items_by_index() -> None:
    assert isinstance(walker.walk(PAIR_OUTPUT, [1, "second"]), Found)
    assert walker.walk(PAIR_OUTPUT, [0, "second"]) == Undeclared("second", ("first",))
    assert walker.walk(PAIR_OUTPUT, [2]) == Undeclared(2, ())  # items: false
    old_tuple = {"type": "array", "items": [{"type": "object", "properties": {"x": {}}}]}
    assert walker.walk(old_tuple, [0, "x"]) is OPEN  # x: {} holds anything
    assert walker.walk(old_tuple, [0, "y"]) == Undeclared("y", ("x",))
    fetch_index = walker.walk(FETCH_OUTPUT, [0])
    assert fetch_index == Undeclared(0, ("body", "headers", "json", "status"), ("object",))


def test_walker_treats_open_schemas_as_checking_nothing() -> None:
    for schema in ({}, True, {"type": "object"}, {"description": "anything"}):
        assert walker.walk(schema, ["whatever", 0, "deeper"]) is OPEN, schema
    opened = {"type": "object", "properties": {"a": {}}, "additionalProperties": True}
    assert walker.walk(opened, ["b"]) is OPEN
    assert walker.walk(FETCH_OUTPUT, ["json", "any", "thing"]) is OPEN  # a field of {}
    assert isinstance(walker.walk(LABELS_OUTPUT, ["label_red", "color"]), Found)
    assert walker.walk(LABELS_OUTPUT, ["label_red", "size"]) == Undeclared("size", ("color",))
    assert walker.walk(LABELS_OUTPUT, ["other"]) is OPEN  # patternProperties open the object
    closed = {"type": "object", "properties": {}}
    assert walker.walk(closed, ["a"]) == Undeclared("a", ())


def test_walker_stops_on_ref_cycles() -> None:
    selfish = {"$ref": "#/$defs/A", "$defs": {"A": {"allOf": [{"$ref": "#/$defs/A"}]}}}
    assert walker.walk(selfish, ["a", "b"]) is OPEN
    assert walker.walk({"$ref": "#"}, ["a"]) is OPEN
    tree = {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#"}}}}
    deep = ["kids", 0] * 200 + ["kid"]
    assert walker.walk(tree, deep) == Undeclared("kid", ("kids",))
    assert walker.walk({"$ref": "https://example.com/x.json"}, ["a"]) is OPEN
    # Unions and allOf that lead back to themselves are read once each, not 2**depth times.
    tangled = {
        "$ref": "#/$defs/A",
        "$defs": {
            "A": {"anyOf": [{"$ref": "#/$defs/A"}, {"$ref": "#/$defs/B"}, {"$ref": "#/$defs/A"}]},
            "B": {
                "allOf": [{"$ref": "#/$defs/A"}, {"$ref": "#/$defs/B"}],
                "properties": {"x": {"type": "string"}},
            },
        },
    }
    x = walker.walk(tangled, ["x"])
    assert isinstance(x, Found) and len(x.nodes) == 1
    assert walker.walk(tangled, ["y"]) == Undeclared("y", ("x",))
    assert [f.name for f in walker.fields(tangled)] == ["x"]


def test_fields_lists_what_may_follow_with_descriptions_and_types() -> None:
    listed = walker.fields(FETCH_OUTPUT)
    assert [(f.name, f.type, f.description) for f in listed] == [
        ("status", "integer", "The HTTP status."),
        ("body", "string", ""),
        ("headers", "object", ""),
        ("json", "any", "The parsed body, anything."),
    ]
    order = walker.fields(get_order.output_schema)
    assert [(f.name, f.type) for f in order] == [
        ("id", "integer"),
        ("customer", "Customer or null"),
        ("lines", "array of Line"),
        ("tags", "object"),
    ]
    customer = walker.walk(get_order.output_schema, ["customer"])
    assert [f.name for f in walker.fields(customer)] == ["name", "email"]
    line = walker.walk(get_order.output_schema, ["lines", 0])
    assert [f.name for f in walker.fields(line)] == ["sku", "quantity"]
    assert [f.name for f in walker.fields(UNION_OUTPUT)] == ["kind", "login", "app_id"]
    assert walker.fields({}) == []
    nested = walker.fields(walker.walk(get_order.output_schema, ["customer"]))[0]
    assert walker.type_text(nested.schema) == "string"


# -- the check in the flow validation -------------------------------------------------------


def test_a_misspelt_field_is_an_error_on_the_field_holding_the_expression() -> None:
    found = issues({"text": "Hello {{ steps.fetch.output.bdy }}", "ok": "{{ 1 }}"})
    assert found == [
        (
            "steps[7].input.text",
            "steps.fetch.output.bdy: 'fetch' (shop.fetch) declares no output field 'bdy'; "
            "did you mean 'body'? (fields: body, headers, json, status)",
        )
    ]


def test_msgspec_typed_outputs_are_checked_through_their_refs() -> None:
    assert valid("{{ steps.order.output.customer.email }}")
    assert valid("{{ steps.order.output.lines[0].sku }}")
    assert valid("{{ steps.order.output.tags.anything }}")
    [(location, message)] = issues({"v": "{{ steps.order.output.customer.mail }}"})
    assert location == "steps[7].input.v"
    assert message == (
        "steps.order.output.customer.mail: 'order' (shop.order) declares no field 'mail' in "
        "output.customer; did you mean 'email'? (fields: email, name)"
    )
    [(_, message)] = issues({"v": "{{ steps.order.output.lines.sku }}"})
    assert "declares output.lines as array: it has no field 'sku'" in message


def test_unions_items_and_open_objects_in_flows() -> None:
    assert valid("{{ steps.who.output.login or steps.who.output.app_id }}")
    assert not valid("{{ steps.who.output.nickname }}")
    assert valid("{{ steps.pair.output[1].second }}")
    [(_, message)] = issues({"v": "{{ steps.pair.output[0].second }}"})
    assert "declares no field 'second' in output[0]" in message
    assert valid("{{ steps.fetch.output.headers['x-trace'] }}")
    assert valid("{{ steps.labels.output.label_blue.color }}")
    assert valid("{{ steps.labels.output.anything_else }}")
    assert valid("{{ steps.anything.output.a.b[3].c }}")
    assert valid("{{ steps.fetch.output.json.whatever.deep }}")


def test_keys_computed_at_run_time_are_not_checked() -> None:
    assert valid("{{ steps.fetch.output[trigger.field] }}")
    assert valid("{{ steps.fetch.output.get('bdy') }}")
    assert valid("{{ steps[trigger.step].output.bdy }}")
    assert valid("{% for k in ['a'] %}{{ steps.fetch.output[k] }}{% endfor %}")


def test_a_for_each_steps_output_is_the_list_of_its_items_outputs() -> None:
    assert valid("{{ steps.each.output[0].customer.name }}")
    assert valid("{{ steps.each.output | map(attribute='id') | list }}")
    [(_, message)] = issues({"v": "{{ steps.each.output[1].nme }}"})
    assert message.startswith("steps.each.output[1].nme: 'each' (shop.order) declares no output")
    [(_, message)] = issues({"v": "{{ steps.each.output.id }}"})
    assert message.startswith("steps.each.output.id: 'each' (shop.order) runs for_each")


def test_when_for_each_and_the_flow_output_are_checked_too() -> None:
    [(location, _)] = issues("{{ steps.fetch.output.stat == 200 }}", field="when")
    assert location == "steps[7].when"
    [(location, _)] = issues("{{ steps.order.output.line }}", field="for_each")
    assert location == "steps[7].for_each"
    found = issues({}, output={"total": "{{ steps.order.output.totl }}", "n": 1})
    assert found == [
        (
            "output.total",
            "steps.order.output.totl: 'order' (shop.order) declares no output field 'totl' "
            "(fields: customer, id, lines, tags)",
        )
    ]


def test_a_step_is_read_only_through_its_output() -> None:
    [(location, message)] = issues({"v": "{{ steps.fetch.ouput.body }}"})
    assert location == "steps[7].input.v"
    assert message == (
        "steps.fetch.ouput: steps.fetch holds only its output: read steps.fetch.output; "
        "did you mean 'output'?"
    )
    assert valid("{{ steps.fetch is defined and steps.fetch.output.body }}")
    # No registry is needed to know it.
    use = {"id": "use", "action": "shop.anything", "input": {"v": "{{ steps.fetch.status }}"}}
    with pytest.raises(FlowError, match=r"steps\.fetch holds only its output"):
        load_flow(flow(LOOKUPS[1], dict(use, needs=["fetch"])), expressions=EXPRESSIONS)


def test_reads_other_checks_refuse_are_not_reported_twice() -> None:
    use = {"id": "use", "action": "shop.anything", "input": {"v": "{{ steps.fetch.output.x }}"}}
    fetch = {"id": "fetch", "action": "shop.fetch", "needs": ["use"]}
    with pytest.raises(FlowError) as caught:
        load_flow(flow(use, fetch), expressions=EXPRESSIONS, registry=REGISTRY)
    [issue] = caught.value.issues
    assert "not an ancestor" in issue.message
    # Without a registry there is nothing to check against.
    load_flow(flow(LOOKUPS[1], dict(use, needs=["fetch"])), expressions=EXPRESSIONS)


# -- the faces: CLI and API -----------------------------------------------------------------

HTTP_FLOW = {
    "id": "misspelt",
    "trigger": {"type": "manual"},
    "steps": [
        {"id": "fetch", "action": "http.request", "input": {"url": "https://example.com/"}},
        {"id": "show", "action": "data.set", "input": {"value": "{{ steps.fetch.output.txt }}"}},
    ],
}
HTTP_MESSAGE = (
    "steps.fetch.output.txt: 'fetch' (http.request) declares no output field 'txt'; "
    "did you mean 'text'? (fields: headers, json, status, text)"
)


def test_hub_flows_validate_prints_the_undeclared_field(tmp_path: Path) -> None:
    path = tmp_path / "misspelt.yaml"
    path.write_text(yaml.safe_dump(HTTP_FLOW, sort_keys=False))
    env = {"HUB_DATA_DIR": str(tmp_path / "data"), "PATH": str(Path(sys.executable).parent)}
    result = subprocess.run(
        [HUB, "flows", "validate", str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        encoding="utf-8",
        timeout=60,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"  steps[1].input.value: {HTTP_MESSAGE}" in result.stdout.splitlines()


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async for value in started_api(settings):
        yield value


async def test_the_api_validate_and_save_name_the_undeclared_field(api: Api) -> None:
    base = "/api/w/default/flows"
    check = await api.call("POST", f"{base}/_validate", api.viewer, json={"document": HTTP_FLOW})
    assert check.status_code == 200, check.text
    assert check.json()["valid"] is False
    assert {"location": "steps[1].input.value", "message": HTTP_MESSAGE} in [
        {"location": i["location"], "message": i["message"]} for i in check.json()["issues"]
    ]
    saved = await api.call("POST", base, api.editor, json={"document": HTTP_FLOW})
    assert saved.status_code == 422
    assert HTTP_MESSAGE in saved.text
    fixed = {**HTTP_FLOW, "steps": [HTTP_FLOW["steps"][0], {**HTTP_FLOW["steps"][1]}]}
    fixed["steps"][1]["input"] = {"value": "{{ steps.fetch.output.text }}"}
    check = await api.call("POST", f"{base}/_validate", api.viewer, json={"document": fixed})
    assert check.json()["valid"] is True, check.text
