"""The JSON-Schema form renderer (hub/web/forms/): a value rendered as a form and that
form submitted as a browser would (its HTML parsed with the stdlib's html.parser) reads back
as the same value, for a schema of every construct; required marks, descriptions, secrets,
errors on their field, bounds, and rows added and removed without JavaScript."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from html.parser import HTMLParser
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.web.forms import (
    MISSING,
    Field,
    FormHooks,
    FormLimits,
    FormSchemaError,
    FormTooLarge,
    apply_op,
    field_id,
    parse_form,
    render_form,
    validation_errors,
)
from hub.web.templates import environment

ENV = environment("", [])

EVERYTHING: dict[str, Any] = {
    "$defs": {
        "header": {"type": "string", "maxLength": 50},
        "point": {
            "type": "object",
            "properties": {"x": {"type": "integer"}, "y": {"type": "number"}},
            "required": ["x", "y"],
        },
    },
    "type": "object",
    "properties": {
        "name": {"type": "string", "title": "Name", "description": "What people call it"},
        "when": {"type": "string", "format": "date-time"},
        "day": {"type": "string", "format": "date"},
        "email": {"type": "string", "format": "email"},
        "site": {"type": "string", "format": "uri"},
        "notes": {"type": "string", "x-multiline": True},
        "count": {"type": "integer", "minimum": 0, "maximum": 100},
        "ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        "half": {"type": "number", "multipleOf": 0.5},
        "active": {"type": "boolean", "default": True},
        "region": {"type": "string", "enum": ["eu", "us"], "x-enumNames": ["Europe", "USA"]},
        "level": {"oneOf": [{"const": 1, "title": "Low"}, {"const": 2, "title": "High"}]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "scores": {"type": "array", "items": {"type": "integer"}},
        "flags": {"type": "array", "items": {"type": "boolean"}},
        "days": {"type": "array", "items": {"enum": ["mon", "tue", "wed"]}, "uniqueItems": True},
        "sizes": {"type": "array", "items": {"enum": ["s", "m", 3]}},
        "points": {"type": "array", "items": {"$ref": "#/$defs/point"}},
        "address": {
            "type": "object",
            "properties": {"street": {"type": "string"}, "zip": {"type": "string"}},
            "required": ["street"],
        },
        "auth": {
            "oneOf": [
                {
                    "title": "API key",
                    "type": "object",
                    "properties": {"key": {"type": "string"}},
                    "required": ["key"],
                    "additionalProperties": False,
                },
                {
                    "title": "Basic",
                    "type": "object",
                    "properties": {"user": {"type": "string"}, "pass": {"type": "integer"}},
                    "required": ["user", "pass"],
                    "additionalProperties": False,
                },
            ]
        },
        "headers": {"type": "object", "additionalProperties": {"$ref": "#/$defs/header"}},
        "extra": {"description": "Anything"},
        "token": {"type": "string", "writeOnly": True},
    },
    "required": ["name", "active", "region"],
}


# -- a browser's form submission, from the HTML -----------------------------------------------


class Browser(HTMLParser):
    """Collects what a browser submits for a form: each successful control's name and value
    (inputs with their value sanitised as the HTML standard says, ticked boxes, selected
    options, textareas with their first newline dropped and line breaks sent as CRLF)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pairs: list[tuple[str, str]] = []
        self.controls: list[dict[str, str | None]] = []
        self.select: dict[str, Any] | None = None
        self.textarea: dict[str, Any] | None = None
        self.option: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in ("input", "select", "textarea", "button"):
            self.controls.append({"tag": tag, **a})
        if tag == "input":
            kind = (a.get("type") or "text").lower()
            name = a.get("name")
            if not name or "disabled" in a or kind in ("submit", "button", "reset", "image"):
                return
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self.pairs.append((name, a.get("value") or "on"))
                return
            value = a.get("value") or ""
            if kind in ("text", "search", "tel", "password", "url", "email"):
                value = value.replace("\r", "").replace("\n", "")
            if kind in ("url", "email"):
                value = value.strip(" \t\n\f\r")
            if kind == "number" and not re.fullmatch(
                r"-?(\d+(\.\d+)?|\.\d+)([eE][+-]?\d+)?", value
            ):
                value = ""
            self.pairs.append((name, value))
        elif tag == "select":
            self.select = {"name": a.get("name"), "options": []}
        elif tag == "option" and self.select is not None:
            self.option = {"value": a.get("value"), "selected": "selected" in a, "text": ""}
            self.select["options"].append(self.option)
        elif tag == "textarea":
            self.textarea = {"name": a.get("name"), "text": ""}

    def handle_data(self, data: str) -> None:
        if self.textarea is not None:
            self.textarea["text"] += data
        elif self.option is not None:
            self.option["text"] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "select" and self.select is not None:
            options = self.select["options"]
            chosen = [o for o in options if o["selected"]] or options[:1]
            for option in chosen:
                value = option["value"] if option["value"] is not None else option["text"]
                if self.select["name"]:
                    self.pairs.append((self.select["name"], value))
            self.select = None
        elif tag == "option":
            self.option = None
        elif tag == "textarea" and self.textarea is not None:
            text = self.textarea["text"]
            text = text[1:] if text.startswith("\n") else text
            if self.textarea["name"]:
                self.pairs.append((self.textarea["name"], text.replace("\n", "\r\n")))
            self.textarea = None


def html_of(schema: Any, value: Any = MISSING, **options: Any) -> str:
    form = render_form(schema, value, action="/here", **options)
    return ENV.get_template("forms/form.html").render(form=form)


def submitted(html: str, button: tuple[str, str] | None = None) -> list[tuple[str, str]]:
    browser = Browser()
    browser.feed(html)
    browser.close()
    return browser.pairs + ([button] if button else [])


def controls(html: str) -> list[dict[str, str | None]]:
    browser = Browser()
    browser.feed(html)
    return browser.controls


# -- values of the schema ------------------------------------------------------------------

LINE = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=12)
LINES = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\x00"))
SOME_LINE = LINE.filter(bool)
FINITE = st.floats(allow_nan=False, allow_infinity=False)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | FINITE | LINES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(LINES, inner, max_size=3),
    max_leaves=6,
)


@st.composite
def everything(draw: st.DrawFn) -> dict[str, Any]:
    """A valid value of EVERYTHING (optional fields present or not)."""
    value: dict[str, Any] = {
        "name": draw(LINE),
        "active": draw(st.booleans()),
        "region": draw(st.sampled_from(["eu", "us"])),
    }
    optional = {
        "when": st.datetimes(
            min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(2100, 1, 1)
        ).map(lambda d: d.replace(microsecond=0).isoformat() + "Z"),
        "day": st.dates(min_value=dt.date(1, 1, 1)).map(lambda d: d.isoformat()),
        "email": st.from_regex(r"[a-z]{1,8}@[a-z]{1,8}\.com", fullmatch=True),
        "site": st.from_regex(r"https://[a-z]{1,10}\.example/[a-z]{0,5}", fullmatch=True),
        "notes": LINES.filter(lambda t: t != "" and t.replace("\n", "") != ""),
        "count": st.integers(0, 100),
        "ratio": st.floats(0, 1, exclude_min=True, exclude_max=True),
        "half": st.integers(-40, 40).map(lambda i: i * 0.5),
        "level": st.sampled_from([1, 2]),
        "tags": st.lists(LINES, max_size=3),
        "scores": st.lists(st.integers(-(10**20), 10**20), max_size=3),
        "flags": st.lists(st.booleans(), max_size=3),
        "days": st.sets(st.sampled_from(["mon", "tue", "wed"]), min_size=1).map(
            lambda s: [d for d in ["mon", "tue", "wed"] if d in s]
        ),
        "sizes": st.lists(st.sampled_from(["s", "m", 3]), max_size=3),
        "points": st.lists(st.fixed_dictionaries({"x": st.integers(), "y": FINITE}), max_size=2),
        "address": st.fixed_dictionaries({"street": SOME_LINE}, optional={"zip": SOME_LINE}),
        "auth": st.fixed_dictionaries({"key": SOME_LINE})
        | st.fixed_dictionaries({"user": LINE, "pass": st.integers()}),
        "headers": st.dictionaries(SOME_LINE, LINE, max_size=3),
        "extra": JSON,
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            item = draw(strategy)
            if item in ([], {}):  # an optional empty list or object is left out
                continue
            value[key] = item
    return value


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(everything())
def test_a_value_rendered_and_submitted_reads_back_the_same(value: dict[str, Any]) -> None:
    assert validation_errors(EVERYTHING, value) == {}
    html = html_of(EVERYTHING, value)
    submission = parse_form(EVERYTHING, submitted(html))
    assert submission.errors == {}
    assert submission.value == value
    assert submission.kept == {("token",)}  # the secret field left empty: keep it


def test_a_secret_typed_in_is_read_and_a_secret_is_never_rendered() -> None:
    secret = "hunter2-very-secret"
    html = html_of(EVERYTHING, {"name": "n", "active": True, "region": "eu", "token": secret})
    assert secret not in html
    token = next(c for c in controls(html) if c.get("name") == "v.token")
    assert token["type"] == "password" and token["value"] == ""
    assert token["autocomplete"] == "new-password"
    pairs = [(k, secret if k == "v.token" else v) for k, v in submitted(html)]
    submission = parse_form(EVERYTHING, pairs)
    assert submission.value["token"] == secret and submission.kept == set()


def test_a_stored_secret_says_so_and_is_not_required() -> None:
    schema = {
        "type": "object",
        "properties": {"key": {"type": "string", "format": "password"}},
        "required": ["key"],
    }
    fresh = controls(html_of(schema))
    assert "required" in next(c for c in fresh if c.get("name") == "v.key")
    html = html_of(schema, {}, stored=[("key",)])
    assert "Stored — leave empty to keep it." in html
    key = next(c for c in controls(html) if c.get("name") == "v.key")
    assert "required" not in key
    assert "f-v-key-hint" in str(key["aria-describedby"])


def test_every_control_has_a_label_and_unique_ids() -> None:
    value = {
        "name": "n", "active": True, "region": "eu", "tags": ["a", "b"],
        "points": [{"x": 1, "y": 2.5}], "headers": {"h": "v"}, "days": ["mon"],
        "auth": {"user": "u", "pass": 3}, "flags": [True], "sizes": ["s"],
    }  # fmt: skip
    html = html_of(EVERYTHING, value)
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert len(ids) == len(set(ids))
    labelled = set(re.findall(r'<label for="([^"]+)"', html))
    for control in controls(html):
        if control["tag"] == "button" or control.get("type") == "hidden":
            continue
        assert control.get("id") in labelled, control


def test_required_fields_are_marked_and_descriptions_linked() -> None:
    html = html_of(EVERYTHING, fresh=True)
    name = next(c for c in controls(html) if c.get("name") == "v.name")
    assert "required" in name and name.get("aria-required") == "true"
    assert re.search(
        r'<label for="f-v-name">Name<span class="req" aria-hidden="true"> \*</span>', html
    )
    assert name["aria-describedby"] == "f-v-name-hint"
    assert '<p class="hint" id="f-v-name-hint">What people call it</p>' in html
    count = next(c for c in controls(html) if c.get("name") == "v.count")
    assert "required" not in count  # optional: no mark, no attribute
    assert (count["min"], count["max"], count["step"]) == ("0", "100", "1")
    active = next(
        c for c in controls(html) if c.get("name") == "v.active" and c.get("type") == "checkbox"
    )
    assert "checked" in active  # the default prefills a new form


def test_errors_are_shown_under_their_field() -> None:
    value = {"name": "n", "active": True, "region": "eu", "count": 500,
             "points": [{"x": 1, "y": 2}, {"x": 3}]}  # fmt: skip
    errors = validation_errors(EVERYTHING, value)
    assert set(errors) == {("count",), ("points", 1, "y")}
    html = html_of(EVERYTHING, value, errors=errors)
    count = next(c for c in controls(html) if c.get("name") == "v.count")
    assert count["aria-invalid"] == "true"
    assert "f-v-count-error" in str(count["aria-describedby"])
    assert re.search(r'id="f-v-count-error"><p>500 is greater than the maximum of 100</p>', html)
    y = next(c for c in controls(html) if c.get("name") == "v.points.1.y")
    assert y["aria-invalid"] == "true" and "required: fill this in" in html
    assert '<a href="#f-v-points-1-y">' in html  # the summary links to the field


def test_a_number_that_is_not_one_is_an_error_naming_the_field() -> None:
    html = html_of(EVERYTHING, {"name": "n", "active": True, "region": "eu", "scores": [1]})
    pairs = [(k, "twelve" if k == "v.scores.0" else v) for k, v in submitted(html)]
    submission = parse_form(EVERYTHING, pairs)
    assert submission.errors == {
        ("scores", 0): ["Scores 1: 'twelve' is not a whole number (like 42)"]
    }
    again = ENV.get_template("forms/form.html").render(
        form=render_form(EVERYTHING, submission.tree, errors=submission.errors)
    )
    assert 'value="twelve"' in again and 'aria-invalid="true"' in again


def test_rows_are_added_and_removed_by_submit_buttons() -> None:
    html = html_of(EVERYTHING, {"name": "n", "active": True, "region": "eu", "tags": ["a", "b"]})
    buttons = [c for c in controls(html) if c["tag"] == "button"]
    assert {"name": "_form_op", "value": "add:v.tags"}.items() <= next(
        b for b in buttons if b.get("value") == "add:v.tags"
    ).items()
    added = parse_form(EVERYTHING, submitted(html, ("_form_op", "add:v.tags")))
    tree, focus = apply_op(EVERYTHING, added)
    assert focus == ("tags", 2)
    html = ENV.get_template("forms/form.html").render(
        form=render_form(EVERYTHING, tree, focus=focus)
    )
    assert re.search(r'id="f-v-tags-2" name="v.tags.2"[^>]*autofocus', html)
    removed = parse_form(EVERYTHING, submitted(html, ("_form_op", "remove:v.tags.0")))
    tree, _ = apply_op(EVERYTHING, removed)
    html = ENV.get_template("forms/form.html").render(form=render_form(EVERYTHING, tree))
    assert parse_form(EVERYTHING, submitted(html)).value["tags"] == ["b", ""]
    entry = parse_form(EVERYTHING, submitted(html, ("_form_op", "add:v.headers")))
    tree, _ = apply_op(EVERYTHING, entry)
    html = ENV.get_template("forms/form.html").render(form=render_form(EVERYTHING, tree))
    pairs = [(k, {"v.headers.__key__.0": "X-Key", "v.headers.__value__.0": "1"}.get(k, v))
             for k, v in submitted(html)]  # fmt: skip
    assert parse_form(EVERYTHING, pairs).value["headers"] == {"X-Key": "1"}


def test_a_choice_shows_the_chosen_alternatives_fields() -> None:
    html = html_of(EVERYTHING, {"name": "n", "active": True, "region": "eu", "auth": {"key": "k"}})
    assert 'name="v.auth.key"' in html and 'name="v.auth.user"' not in html
    pairs = [(k, "1" if k == "v.auth.__choice__" else v) for k, v in submitted(html)]
    switched = parse_form(EVERYTHING, [*pairs, ("_form_op", "refresh")])
    html = ENV.get_template("forms/form.html").render(form=render_form(EVERYTHING, switched.tree))
    assert 'name="v.auth.user"' in html and 'name="v.auth.key"' not in html


def test_an_optional_choice_of_tagged_objects_left_alone_stays_absent() -> None:
    tagged = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "content": {
                "oneOf": [
                    {
                        "type": "object",
                        "properties": {"kind": {"const": "a"}, "x": {"type": "string"}},
                        "required": ["kind", "x"],
                    },
                    {
                        "type": "object",
                        "properties": {"kind": {"const": "b"}, "y": {"type": "string"}},
                        "required": ["kind", "y"],
                    },
                ]
            },
        },
    }
    html = html_of(tagged, {"name": "n"})
    assert 'name="v.content.kind"' in html  # the const's hidden input is sent
    assert parse_form(tagged, submitted(html)).value == {"name": "n"}
    typed = [(k, "1" if k == "v.content.x" else v) for k, v in submitted(html)]
    assert parse_form(tagged, typed).value == {"name": "n", "content": {"kind": "a", "x": "1"}}


def test_names_escape_property_names_that_look_like_markers() -> None:
    schema = {
        "type": "object",
        "properties": {
            "__row__": {"type": "string"},
            "a.b": {"type": "string"},
            "é": {"type": "integer"},
        },
    }
    value = {"__row__": "x", "a.b": "y", "é": 3}
    html = html_of(schema, value)
    assert 'name="v.%5F_row__"' in html and 'name="v.a%2Eb"' in html and 'name="v.%C3%A9"' in html
    assert field_id("v.a%2Eb") == "f-v-a:2Eb"
    assert parse_form(schema, submitted(html)).value == value


def test_forms_over_the_bounds_are_refused() -> None:
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(10):
        deep = {"type": "object", "properties": {"x": deep}}
    with pytest.raises(FormTooLarge, match="nests deeper than 5 levels"):
        render_form(deep, limits=FormLimits(max_depth=5, max_fields=100))
    node = {"type": "object", "properties": {"next": {"$ref": "#/$defs/n"}}, "required": ["next"]}
    recursive = {"$defs": {"n": node}, "$ref": "#/$defs/n"}  # a required part never ends
    with pytest.raises(FormTooLarge, match="nests deeper than 64 levels"):
        render_form(recursive)
    many = {"type": "array", "items": {"type": "integer"}}
    with pytest.raises(FormTooLarge, match="more than 10 fields"):
        render_form(many, list(range(20)), limits=FormLimits(max_depth=5, max_fields=10))
    rows = [("v.__row__", str(i)) for i in range(20)]
    with pytest.raises(FormTooLarge, match="more than 10 rows"):
        parse_form(many, rows, limits=FormLimits(max_depth=5, max_fields=10))
    with pytest.raises(FormTooLarge, match="more than 40 values"):
        parse_form(many, rows * 3, limits=FormLimits(max_depth=5, max_fields=10))
    with pytest.raises(FormSchemaError, match="local references only"):
        render_form({"$ref": "https://example.com/schema.json"})


def test_validation_messages_never_quote_a_secret() -> None:
    schema = {"type": "object", "properties": {"key": {"type": "string", "writeOnly": True,
                                                      "maxLength": 3}}}  # fmt: skip
    errors = validation_errors(schema, {"key": "topsecretvalue"}, secrets={"topsecretvalue"})
    assert errors == {("key",): ["'[redacted]' is too long"]}


def test_everything_a_user_typed_is_escaped() -> None:
    payload = '"><script>alert(1)</script>'
    html = html_of(EVERYTHING, {"name": payload, "active": True, "region": "eu",
                                "notes": payload, "headers": {payload: "x"}})  # fmt: skip
    assert "<script>" not in html
    assert parse_form(EVERYTHING, submitted(html)).value["headers"] == {payload: "x"}


class Expressions(FormHooks):
    """What the flow builder does: a number field may hold an expression instead."""

    def field(self, field: Field) -> Field:
        if field.widget == "number":
            field.widget, field.input_type = "string", "text"
            field.hints.append("or an expression like {{ trigger.n }}")
        return field

    def parse(self, schema: dict[str, Any], name: str, form: Mapping[str, list[str]]) -> Any:
        text = (form.get(name) or [""])[-1]
        return text if text.startswith("{{") else MISSING


def test_hooks_change_how_a_field_is_drawn_and_read() -> None:
    schema = {"type": "object", "properties": {"count": {"type": "integer"}}}
    value = {"count": "{{ trigger.n }}"}
    hooks = Expressions()
    html = ENV.get_template("forms/form.html").render(form=render_form(schema, value, hooks=hooks))
    assert 'type="text" id="f-v-count" name="v.count"' in html
    assert "or an expression like {{ trigger.n }}" in html
    assert parse_form(schema, submitted(html), hooks=hooks).value == value
    assert parse_form(schema, [("v.count", "7")], hooks=hooks).value == {"count": 7}


@pytest.mark.parametrize(
    "field",
    [
        {"type": "string", "format": "textarea"},
        {"type": "string", "x-multiline": True},
        {"type": "string", "maxLength": 1000},
    ],
)
def test_long_or_multi_line_strings_are_textareas(field: dict[str, Any]) -> None:
    schema = {"type": "object", "properties": {"text": field}}
    html = html_of(schema, {"text": "one"})
    assert re.search(r'<textarea id="f-v-text" name="v.text"', html)
    assert '<input type="text" id="f-v-text"' in html_of(
        {"type": "object", "properties": {"text": {"type": "string", "maxLength": 200}}}
    )


def test_all_of_and_definitions_are_resolved() -> None:
    schema = {
        "definitions": {
            "named": {"properties": {"name": {"type": "string"}}, "required": ["name"]}
        },
        "allOf": [{"$ref": "#/definitions/named"}, {"properties": {"age": {"type": "integer"}}}],
    }
    html = html_of(schema, {"name": "Ann", "age": 42})
    assert 'name="v.name"' in html and 'name="v.age"' in html
    assert re.search(r'<label for="f-v-name">Name<span class="req"', html)
    assert parse_form(schema, submitted(html)).value == {"name": "Ann", "age": 42}


@pytest.mark.parametrize(
    ("schema", "text", "message"),
    [
        ({"type": "number"}, "1e400", "Values: '1e400' is not a number (like 4.5)"),
        ({"type": "integer"}, "4.5", "Values: '4.5' is not a whole number (like 42)"),
        ({"type": "integer"}, "9" * 200, "is not a whole number"),
        ({"type": "array", "items": {"type": "integer"}}, "", "Values 1: enter a whole number"),
        ({}, "{oops", "Values: enter JSON (Expecting property name"),
    ],
)
def test_text_that_is_not_the_fields_type_is_an_error_naming_it(
    schema: dict[str, Any], text: str, message: str
) -> None:
    name = "v.0" if schema.get("type") == "array" else "v"
    pairs = [("v.__set__", "1"), ("v.__row__", "0")] if name == "v.0" else []
    submission = parse_form(schema, [*pairs, (name, text)])
    (messages,) = submission.errors.values()
    assert message in messages[0]


def test_a_key_given_twice_is_an_error_on_the_object() -> None:
    schema = {"type": "object", "additionalProperties": {"type": "string"}}
    pairs = [("v.__kv__", "0"), ("v.__key__.0", "a"), ("v.__value__.0", "1"),
             ("v.__kv__", "1"), ("v.__key__.1", "a"), ("v.__value__.1", "2"),
             ("v.__kv__", "2"), ("v.__key__.2", ""), ("v.__value__.2", "")]  # fmt: skip
    submission = parse_form(schema, pairs)
    assert submission.errors == {(): ["Values: the key 'a' appears twice"]}
    assert submission.value == {"a": "1"}  # the empty third row is no entry


def test_a_recursive_schema_draws_its_optional_parts_closed_until_added() -> None:
    schema = {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {"label": {"type": "string"}, "next": {"$ref": "#/$defs/node"}},
            }
        },
        "$ref": "#/$defs/node",
    }
    value = {"label": "a", "next": {"label": "b"}}
    html = html_of(schema, value)
    assert 'name="v.next.label"' in html and 'value="add:v.next.next"' in html
    assert parse_form(schema, submitted(html)).value == value
    added = parse_form(schema, submitted(html, ("_form_op", "add:v.next.next")))
    tree, focus = apply_op(schema, added)
    assert focus == ("next", "next")
    html = ENV.get_template("forms/form.html").render(form=render_form(schema, tree, focus=focus))
    assert re.search(r'name="v.next.next.label"[^>]*autofocus', html)
    assert 'value="add:v.next.next.next"' in html
