"""The YAML round trip (hub/flows/yaml_text.py): a JSON Patch applied to YAML text keeps its
comments, key order and styles, never wraps a line, and reads back (with the hub's own
reader) as the patch applied to the data; fresh YAML never wraps an expression either."""

from __future__ import annotations

import copy
import re
import textwrap
from pathlib import Path
from typing import Any

import jsonpatch
import jsonpointer
import pytest
import yaml
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

from hub.api.flows import to_yaml
from hub.flows.bounds import DocumentLimits
from hub.flows.checks import TextError, read_yaml
from hub.flows.yaml_text import PatchError, apply_patch_to_yaml, dump_yaml, same_data
from tests.test_cli import hub, ok

LONG_EXPRESSION = (
    "{{ trigger.customer.body.addresses[0].street ~ ', ' ~ "
    + " ~ ', ' ~ ".join(f"trigger.customer.body.field_{i} | default('')" for i in range(6))
    + " }}"
)

FLOW = """\
# The flow's own comment, first.
id: demo
name: Demo  # shown in the list
trigger: {type: manual}
steps:
  # Fetch the thing.
  - id: fetch
    action: data.set
    input:
      value: "{{ trigger.x }}"   # quoted on purpose
  # Then shape it.
  - id: shape
    action: data.set
    input:
      value: 'single'
"""


def one_line_value(line: str) -> Any:
    """The value of a ``key: value`` line, read alone: the whole value is on that line."""
    return next(iter(read_yaml(line.strip()).values()))


def patched(source: str, ops: list[dict[str, Any]]) -> str:
    """Apply ``ops`` and check the invariant against jsonpatch on the hub's reading."""
    result = apply_patch_to_yaml(source, ops)
    assert same_data(read_yaml(result), jsonpatch.apply_patch(read_yaml(source), ops))
    return result


def test_a_long_expression_is_one_line_in_the_api_export_and_dump_yaml() -> None:
    assert len(LONG_EXPRESSION) > 300
    document = {"id": "x", "steps": [{"id": "a", "input": {"value": LONG_EXPRESSION}}]}
    for text in (to_yaml(document), dump_yaml(document)):
        assert one_line_value(text.splitlines()[-1]) == LONG_EXPRESSION
        assert read_yaml(text) == document
    # The old writer (PyYAML at width 100) split it over several lines.
    old = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
    assert LONG_EXPRESSION not in old


def test_hub_flows_export_writes_a_long_expression_on_one_line(tmp_path: Path) -> None:
    flow = tmp_path / "long.yaml"
    flow.write_text(
        textwrap.dedent(
            f"""\
            id: long-expression
            name: Long expression
            trigger: {{type: manual}}
            steps:
              - id: a
                action: data.set
                input:
                  value: "{LONG_EXPRESSION}"
            """
        )
    )
    ok(hub(tmp_path, "flows", "apply", str(flow)))
    exported = ok(hub(tmp_path, "flows", "export", "long-expression")).stdout
    assert any(LONG_EXPRESSION in line for line in exported.splitlines()), exported
    assert read_yaml(exported)["steps"][0]["input"]["value"] == LONG_EXPRESSION


def test_dump_yaml_keeps_key_order_and_writes_multi_line_strings_as_blocks() -> None:
    text = dump_yaml({"zeta": 1, "alpha": {"b": "yes", "a": "two\nlines\n"}, "on": "1:20"})
    assert text == ("zeta: 1\nalpha:\n  b: 'yes'\n  a: |\n    two\n    lines\n'on': '1:20'\n")
    assert same_data(
        read_yaml(text), {"zeta": 1, "alpha": {"b": "yes", "a": "two\nlines\n"}, "on": "1:20"}
    )


def test_replacing_a_value_changes_that_value_alone() -> None:
    text = patched(FLOW, [{"op": "replace", "path": "/steps/1/input/value", "value": "new"}])
    assert text == FLOW.replace("value: 'single'", "value: 'new'")  # its place's quotes


def test_adding_a_step_keeps_the_comments_above_the_steps_around_it() -> None:
    step = {"id": "log", "action": "data.set", "input": {"value": LONG_EXPRESSION}}
    text = patched(FLOW, [{"op": "add", "path": "/steps/1", "value": step}])
    lines = text.splitlines()
    assert lines[:10] == FLOW.splitlines()[:10]
    assert one_line_value(lines[13]) == LONG_EXPRESSION
    assert lines[10:16] == [
        "  - id: log",
        "    action: data.set",
        "    input:",
        lines[13],
        "  # Then shape it.",
        "  - id: shape",
    ]


def test_removing_a_step_keeps_the_comment_of_the_next_one_and_drops_its_own() -> None:
    text = patched(FLOW, [{"op": "remove", "path": "/steps/0"}])
    assert "Fetch the thing" in text  # above the list: kept above what is now first
    three = FLOW + "  # Third.\n  - id: third\n    action: data.set\n"
    text = patched(three, [{"op": "remove", "path": "/steps/1"}])
    assert "# Then shape it." not in text
    assert "  # Fetch the thing.\n  - id: fetch\n" in text
    assert "quoted on purpose\n  # Third.\n  - id: third\n" in text
    assert text.startswith("# The flow's own comment, first.\nid: demo\nname: Demo  # shown")


def test_moving_and_copying_steps_and_a_new_key_keep_the_key_order() -> None:
    text = patched(
        FLOW,
        [
            {"op": "move", "from": "/steps/1", "path": "/steps/0"},
            {"op": "copy", "from": "/steps/1/input", "path": "/steps/0/extra"},
            {"op": "add", "path": "/description", "value": "A demo.\nTwo lines."},
            {"op": "test", "path": "/steps/0/id", "value": "shape"},
        ],
    )
    data = read_yaml(text)
    assert list(data) == ["id", "name", "trigger", "steps", "description"]
    assert [s["id"] for s in data["steps"]] == ["shape", "fetch"]
    assert "description: |-\n  A demo.\n  Two lines.\n" in text
    assert "# The flow's own comment, first." in text and "# shown in the list" in text


def test_pointer_escapes_and_the_end_of_a_list() -> None:
    source = "a/b: 1\nc~d: 2\nlist: [1]\n"
    text = patched(
        source,
        [
            {"op": "replace", "path": "/a~1b", "value": 10},
            {"op": "remove", "path": "/c~0d"},
            {"op": "add", "path": "/list/-", "value": 2},
        ],
    )
    assert read_yaml(text) == {"a/b": 10, "list": [1, 2]}


def test_an_empty_source_starts_from_the_document_written_fresh() -> None:
    text = apply_patch_to_yaml(
        "", [{"op": "add", "path": "/name", "value": "x"}], document={"id": "a"}
    )
    assert text == "id: a\nname: x\n"
    assert apply_patch_to_yaml("", [{"op": "add", "path": "/id", "value": "b"}]) == "id: b\n"


@pytest.mark.parametrize(
    ("op", "named"),
    [
        ({"op": "replace", "path": "/steps/7/id", "value": "x"}, "/steps/7/id"),
        ({"op": "remove", "path": "/nope"}, "/nope"),
        ({"op": "add", "path": "/steps/x/id", "value": 1}, "/steps/x/id"),
        ({"op": "add", "path": "steps", "value": 1}, "steps"),
        ({"op": "move", "from": "/steps", "path": "/steps/0/sub"}, "/steps/0/sub"),
        ({"op": "test", "path": "/id", "value": "other"}, "/id"),
        ({"op": "copy", "from": "/missing", "path": "/x"}, "/missing"),
    ],
)
def test_an_operation_that_cannot_apply_is_an_error_naming_its_path(
    op: dict[str, Any], named: str
) -> None:
    ops = [{"op": "test", "path": "/id", "value": "demo"}, op]
    with pytest.raises(PatchError) as caught:
        apply_patch_to_yaml(FLOW, ops)
    assert f"'{named}'" in str(caught.value)
    assert caught.value.index == 1 and caught.value.path == named
    with pytest.raises((jsonpatch.JsonPatchException, Exception)):
        jsonpatch.apply_patch(read_yaml(FLOW), ops)


def test_what_read_yaml_refuses_is_refused_before_ruamel_sees_it() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
    )
    with pytest.raises(TextError):
        read_yaml(bomb)
    with pytest.raises(TextError):
        apply_patch_to_yaml(bomb, [{"op": "remove", "path": "/a"}])
    with pytest.raises(TextError):
        apply_patch_to_yaml("a: [1\n", [])
    with pytest.raises(TextError):
        apply_patch_to_yaml("a: 1\n" * 3, [], limits=DocumentLimits(max_bytes=5))


def test_aliases_within_the_limits_still_give_the_data_jsonpatch_gives() -> None:
    source = "base: &b {retries: 3}\none: *b\ntwo: *b\n"
    text = patched(source, [{"op": "replace", "path": "/one/retries", "value": 5}])
    assert read_yaml(text)["one"]["retries"] == 5


# --- The invariant, over random documents and random patches ----------------------------------

KEY_TEXT = st.text(
    alphabet=st.sampled_from("ab/~ -:#{}'\"yesno1.\u00e9"), min_size=0, max_size=6
) | st.sampled_from(["yes", "no", "on", "null", "~", "1", "0o7", "1:20", "2024-01-01", "-", "<<"])
VALUE_TEXT = (
    st.text(max_size=40)
    | st.sampled_from(
        ["yes", "Off", "", " lead", "trail ", "a\nb", "a\n", "\n\nx", "x  \ny", "{{ x }}", "#"]
    )
    | st.just(LONG_EXPRESSION)
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | VALUE_TEXT
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEY_TEXT, inner, max_size=4),
    max_leaves=12,
)
DOCUMENTS = st.dictionaries(KEY_TEXT, VALUES, min_size=1, max_size=5)


def _escape(part: str | int) -> str:
    return "/" + str(part).replace("~", "~0").replace("/", "~1")


def _pointers(value: Any, here: str = "") -> list[tuple[str, Any]]:
    found = [(here, value)]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _pointers(item, here + _escape(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _pointers(item, here + _escape(index))
    return found


@st.composite
def patch_for(draw: st.DrawFn, document: dict[str, Any]) -> list[dict[str, Any]]:
    """A patch that applies to ``document`` (each op chosen on the data as patched so far)."""
    ops: list[dict[str, Any]] = []
    current = copy.deepcopy(document)
    for _ in range(draw(st.integers(min_value=1, max_value=5))):
        everything = _pointers(current)
        inner = [(p, v) for p, v in everything if p]
        containers = [(p, v) for p, v in everything if isinstance(v, dict | list)]
        if not containers:
            break
        kind = draw(st.sampled_from(["add", "add", "remove", "replace", "move", "copy", "test"]))
        if kind in ("remove", "replace", "move", "copy", "test") and not inner:
            kind = "add"
        if kind in ("add", "move", "copy"):
            where, box = draw(st.sampled_from(containers))
            if isinstance(box, dict):
                keys = [*box, draw(KEY_TEXT)]
                target = where + _escape(draw(st.sampled_from(keys)))
            else:
                target = where + draw(
                    st.sampled_from(["/-", *(f"/{i}" for i in range(len(box) + 1))])
                )
        if kind == "add":
            op = {"op": "add", "path": target, "value": draw(VALUES)}
        elif kind == "remove":
            op = {"op": "remove", "path": draw(st.sampled_from(inner))[0]}
        elif kind == "replace":
            op = {"op": "replace", "path": draw(st.sampled_from(inner))[0], "value": draw(VALUES)}
        elif kind == "test":
            path, value = draw(st.sampled_from(inner))
            op = {"op": "test", "path": path, "value": value}
        else:
            source = draw(st.sampled_from(inner))[0]
            if kind == "move" and (target + "/").startswith(source + "/"):
                continue
            op = {"op": kind, "from": source, "path": target}
        try:
            current = jsonpatch.apply_patch(current, [op])
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, LookupError):
            continue  # e.g. a move whose target's list shrank: not a patch to test
        ops.append(op)
    return ops


def has_breaks(value: Any) -> bool:
    """True when a string in ``value`` (a key too) holds a line break."""
    if isinstance(value, str):
        return bool(re.search("[\r\n\x85\u2028\u2029]", value))
    if isinstance(value, dict):
        return any(has_breaks(k) or has_breaks(v) for k, v in value.items())
    return isinstance(value, list) and any(map(has_breaks, value))


def null_items(value: Any) -> bool:
    """True when a list in ``value`` holds a null."""
    if isinstance(value, dict):
        return any(map(null_items, value.values()))
    return isinstance(value, list) and any(v is None or null_items(v) for v in value)


BLOCK_START = re.compile(r"(?:^|[:-])\s+[|>][-+0-9]*$")


def with_comments(text: str, seed: int) -> str:
    """``text`` with full-line and end-of-line comments added where YAML allows them (never
    inside a block scalar)."""
    out = ["# head comment"]
    block_indent: int | None = None
    for number, line in enumerate(text.splitlines()):
        indent = len(line) - len(line.lstrip(" "))
        if block_indent is not None and (not line.strip() or indent > block_indent):
            out.append(line)
            continue
        block_indent = None
        if (number + seed) % 3 == 0:
            out.append(" " * indent + f"# about line {number}")
        if BLOCK_START.search(line):
            block_indent = indent
            out.append(line)
        else:
            out.append(line + (f"  # end {number}" if (number + seed) % 2 else ""))
    return "\n".join(out) + "\n"


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data(), document=DOCUMENTS, seed=st.integers(0, 5), pyyaml=st.booleans())
def test_the_text_patched_reads_as_the_data_patched(
    data: st.DataObject, document: dict[str, Any], seed: int, pyyaml: bool
) -> None:
    fresh = (
        yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=1 << 30)
        if pyyaml
        else dump_yaml(document)
    )
    if pyyaml:  # PyYAML's own writing of '\x85' does not read back
        assume(same_data(read_yaml(fresh), document))
    # PyYAML writes a string's line breaks as lines of a quoted scalar: no comment there.
    source = fresh if pyyaml and has_breaks(document) else with_comments(fresh, seed)
    note(source)
    assert same_data(read_yaml(source), document)
    ops = data.draw(patch_for(document))
    result = apply_patch_to_yaml(source, ops)
    note(result)
    assert same_data(read_yaml(result), jsonpatch.apply_patch(document, ops))
    if not pyyaml and not null_items(document) and not any(op["path"] == "" for op in ops):
        note("comments kept" if result.startswith("# head comment\n") else "written afresh")


EXAMPLE_FILES = sorted((Path(__file__).parent.parent / "examples").rglob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_step_edits_on_every_example_keep_its_comments(path: Path) -> None:
    source = path.read_text()
    steps = read_yaml(source)["steps"]
    step = {"id": "added", "action": "data.set", "input": {"value": LONG_EXPRESSION}}
    ops: list[dict[str, Any]] = [
        {"op": "replace", "path": "/name", "value": "Renamed: {{ not an expression }}"},
        {"op": "add", "path": "/steps/1", "value": step},
        {"op": "add", "path": "/steps/-", "value": dict(step, id="last", needs=["added"])},
        {"op": "move", "from": f"/steps/{len(steps) + 1}", "path": "/steps/0"},
        {"op": "remove", "path": "/steps/0"},
        {"op": "replace", "path": "/steps/1/id", "value": "added_too"},
    ]
    result = patched(source, ops)
    kept = [line.strip() for line in result.splitlines() if line.strip().startswith("#")]
    # Every comment above the steps is kept, in order, and so is every full-line comment
    # written above a step (none of the steps it was written above was removed).
    head = source[: source.index("\nsteps:")]
    comments = [line.strip() for line in source.splitlines() if line.strip().startswith("#")]
    assert [c for c in kept if c in head] == [c for c in comments if c in head]
    assert sorted(kept) == sorted(comments)
    assert any(LONG_EXPRESSION in line for line in result.splitlines())
