"""The step panel's input form: the form generated from the action's input schema
(:mod:`hub.web.forms`) with the builder's additions (:class:`StepHooks`: every field may be
an expression, a field the action lists options for is a select loaded from the
connector), and what reading a posted form back keeps of the document (secrets left
empty, values that could not be read, keys the form does not show).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, unquote

from litestar import Request

from hub.api.deps import hub_of
from hub.expressions import ExpressionError
from hub.flows.locations import join_location
from hub.web.builder.state import pointer
from hub.web.forms import MISSING, FormHooks, Path, Raw, kind_of, resolve, value_at
from hub.web.forms.render import Field, Form
from hub.web.forms.schema import VALUE, is_secret

#: The marker posted with a field in expression mode (``<field name>.__expr__``).
EXPR = "__expr__"


class StepHooks(FormHooks):
    """The builder's additions to the generated form: every field may be an expression
    (drawn by ``builder/_step_field.html``), and a field the action lists options for is a
    select loaded from the connector (``builder/_step_options.html``)."""

    def __init__(
        self,
        is_template: Callable[[str], bool],
        value: Any,
        step_id: str,
        options: Mapping[str, Any] | None = None,
        options_href: str = "",
        root: Any = None,
    ) -> None:
        self.root = root
        self.is_template = is_template
        self.value = value
        self.step_id = step_id
        self.options = options or {}
        self.options_href = options_href

    def field(self, field: Field) -> Field:
        """Wrap the field in the Fixed | Expression switch; mark dynamic options."""
        if field.widget in ("const", "absent", "kv_row"):
            return field
        if field.widget == "choice" and field.children:
            # The chosen alternative has the choice's path: the choice carries the switch.
            field.children[0].extras.pop("template", None)
        value = value_at(self.value, field.path)
        expression = isinstance(value, str) and (self.is_template(value) or _misfit(field, value))
        field.extras.update(
            template="builder/_step_field.html",
            expression=expression,
            # A secret's text is shown only as an expression (never a literal secret).
            expression_text=value
            if isinstance(value, str) and (expression or not field.secret)
            else "",
            pointer=pointer(*field.path),
            step=self.step_id,
        )
        if (
            len(field.path) == 1
            and field.path[0] in self.options
            and field.widget in ("string", "number")
        ):
            field.extras["fixed_template"] = "builder/_step_options.html"
            field.extras["options_href"] = (
                f"{self.options_href}/{quote(str(field.path[0]), safe='')}"
            )
        return field

    def parse(self, schema: dict[str, Any], name: str, form: Mapping[str, list[str]]) -> Any:
        """A field in expression mode is its text, exactly (an empty one: absent). A text
        property left empty is absent too, required or not (so that the server's
        "required" message is shown at a required one); a row of a list or a value of a
        key-value row keeps its empty text."""
        if form.get(f"{name}.{EXPR}"):
            text = (form.get(name) or [""])[-1].replace("\r\n", "\n").replace("\r", "\n")
            return text if text != "" else Raw("")
        if form.get(name) != [""] or self.root is None or not _is_property(name):
            return MISSING
        kind = kind_of(schema, self.root)
        if kind in ("string", "json") and not is_secret(schema):
            return Raw("")
        if kind == "boolean":
            # A box left unticked writes false only where the document had the property.
            path = _path_of(name)
            if path is not None and value_at(self.value, path) is MISSING:
                return Raw("")
        return MISSING


def _path_of(name: str) -> Path | None:
    """The JSON path of a field name made of object properties only (None when it goes
    through a list's row or a key-value row, whose numbers are the form's own)."""
    parts = name.split(".")[1:]
    if any(p.isdigit() or p.startswith("__") for p in parts):
        return None
    return tuple(unquote(p) for p in parts)


def _misfit(field: Field, text: str) -> bool:
    """Whether a (static) string cannot be shown by the field's fixed control (a number
    field holding letters, an enum holding none of its options): it is shown as an
    expression, so that its text is kept as it is rather than lost."""
    if field.widget in ("number", "boolean", "object", "array", "checkboxes"):
        return True
    if field.widget == "enum":
        return not any(option.selected for option in field.options)
    return False


def _is_property(name: str) -> bool:
    """Whether a field name is an object's property (not a list's row, not the value of a
    key-value row)."""
    last = name.rsplit(".", 1)[-1]
    return not last.isdigit() and f".{VALUE}." not in name


def template_check(request: Request[Any, Any, Any]) -> Callable[[str], bool]:
    """Whether a string holds a template, by the hub's expressions (one that does not
    compile is a template too: it is shown as typed, with its error)."""
    expressions = hub_of(request).expressions

    def is_template(text: str) -> bool:
        if "{{" not in text and "{%" not in text:
            return False
        try:
            return not expressions.compile(text, "").is_static
        except ExpressionError:
            return True

    return is_template


def value_paths(value: Any, limit: int = 10_000) -> set[Path]:
    """Every path inside a value (a secret field at one of them says its value is stored:
    left empty, it keeps it; "Remove the stored value" takes it out)."""
    found: set[Path] = set()
    todo: list[tuple[Path, Any]] = [((), value)]
    while todo and len(found) < limit:
        path, item = todo.pop()
        if item is MISSING:
            continue
        found.add(path)
        if isinstance(item, dict):
            todo.extend(((*path, str(k)), v) for k, v in item.items())
        elif isinstance(item, list):
            todo.extend(((*path, i), v) for i, v in enumerate(item))
    return found


def input_locations(form: Form) -> dict[str, Path]:
    """Each field's location as the server's issues write it (``input.headers['X-A']``)."""
    return {join_location("input", list(path)): path for path in form.index}


def keep_secrets(value: Any, kept: set[Path], old: Any) -> Any:
    """Put back the secrets left empty (a secret field is never filled in: empty keeps the
    document's value)."""
    for path in sorted(kept, key=len):
        previous = value_at(old, path)
        if previous is MISSING:
            continue
        if not path:
            return copy.deepcopy(previous)
        parent = value_at(value, path[:-1])
        if isinstance(parent, dict) and isinstance(path[-1], str):
            parent[path[-1]] = copy.deepcopy(previous)
    return value


def keep_unreadable(value: Any, errors: Mapping[Path, list[str]], old: Any) -> Any:
    """Keep the document's value where the submitted text could not be read (a number
    field holding letters): the field shows the error, the document keeps what it had."""
    for path in errors:
        previous = value_at(old, path)
        if previous is MISSING or not path:
            continue
        parent = value_at(value, path[:-1])
        if isinstance(parent, dict) and isinstance(path[-1], str):
            parent[path[-1]] = copy.deepcopy(previous)
    return value


def keep_unknown(value: Any, old: Any, schema: Any) -> Any:
    """Keep the input's top-level keys the form does not show (not in the schema's
    properties): the form must not drop what it cannot draw."""
    if not isinstance(value, dict) or not isinstance(old, dict):
        return value
    resolved = resolve(schema, schema)
    if isinstance(resolved.get("additionalProperties"), dict):
        return value
    known = set(resolved.get("properties") or {})
    if not known:
        return value
    for key, item in old.items():
        if key not in known and key not in value:
            value[key] = copy.deepcopy(item)
    return value
