"""Drawing a form: a schema and a value become a tree of :class:`Field` s that the
templates ``forms/widgets/<widget>.html`` draw (see :mod:`hub.web.forms`)."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import Any

from jsonschema import Draft202012Validator

from hub.web.forms.schema import (
    INPUT_TYPES,
    KEY,
    KV,
    MISSING,
    ROOT,
    VALUE,
    Choice,
    FormLimits,
    FormTooLarge,
    Path,
    Raw,
    alternatives,
    checkbox_set,
    child_name,
    constraint_hints,
    enum_choices,
    field_id,
    humanize,
    is_multiline,
    is_secret,
    json_type,
    kind_of,
    name_of,
    number_text,
    option_texts,
    resolve,
    same_json,
    types_of,
)


@dataclasses.dataclass
class Option:
    """One choice of a select or a checkbox group."""

    value: str
    label: str
    selected: bool = False
    id: str = ""


@dataclasses.dataclass
class Field:
    """One control (or group of controls) as the templates draw it.

    ``widget`` names the template (``forms/widgets/<widget>.html``); ``children`` are the
    properties of an object, the rows of an array (each row a field), the key and value of
    a key-value row, or the chosen alternative of a choice; ``extras`` is free for hooks.
    """

    widget: str
    name: str
    id: str
    path: Path
    label: str
    schema: dict[str, Any]
    required: bool = False
    description: str = ""
    hints: list[str] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)
    text: str = ""
    checked: bool = False
    input_type: str = "text"
    attrs: dict[str, str] = dataclasses.field(default_factory=dict)
    options: list[Option] = dataclasses.field(default_factory=list)
    children: list[Field] = dataclasses.field(default_factory=list)
    secret: bool = False
    stored: bool = False  # a secret with a stored value (empty keeps it)
    row: int | None = None  # the row number of an array item or a key-value row
    hide_label: bool = False
    autofocus: bool = False
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def hint_id(self) -> str:
        """The id of the field's description and hints."""
        return f"{self.id}-hint"

    @property
    def error_id(self) -> str:
        """The id of the field's error messages."""
        return f"{self.id}-error"

    @property
    def described_by(self) -> str:
        """The ``aria-describedby`` of the control (its hint, then its errors)."""
        ids = []
        if self.description or self.hints or self.stored:
            ids.append(self.hint_id)
        if self.errors:
            ids.append(self.error_id)
        return " ".join(ids)


@dataclasses.dataclass
class Form:
    """A rendered form: its root field, the errors that belong to no field, and every
    field by path (for the error summary's links)."""

    root: Field
    action: str
    errors: list[str]
    index: dict[Path, Field]

    def summary(self) -> list[tuple[str, str, str]]:
        """Every error as ``(field id, field label, message)``, in the order of the form."""
        out = [("", "", message) for message in self.errors]
        for field in self.index.values():
            out.extend((field.id, field.label, message) for message in field.errors)
        return out


class FormHooks:
    """Extension points (the flow builder adds expressions and dynamic options): override
    and pass an instance to :func:`render_form` and :func:`parse_form`."""

    def field(self, field: Field) -> Field:
        """Change a field before it is drawn (its ``widget``, ``extras``, options...)."""
        return field

    def parse(self, schema: dict[str, Any], name: str, form: Mapping[str, list[str]]) -> Any:
        """The value of the field ``name`` read another way, or :data:`MISSING` to read it
        as the renderer does."""
        return MISSING


NO_HOOKS = FormHooks()


# -- rendering ------------------------------------------------------------------------------


class _Builder:
    """Builds the field tree of a schema and a value."""

    def __init__(
        self,
        root: Any,
        *,
        stored: set[Path],
        limits: FormLimits,
        hooks: FormHooks,
        fresh: bool,
        focus: Path | None,
    ) -> None:
        self.root = root
        self.stored = stored
        self.limits = limits
        self.hooks = hooks
        self.fresh = fresh
        self.focus = focus
        self.count = 0
        self.index: dict[Path, Field] = {}
        self.refs: list[str | None] = []  # the $refs being drawn, outermost first

    def build(
        self,
        schema: Any,
        value: Any,
        path: Path,
        name: str,
        label: str,
        required: bool,
        depth: int,
    ) -> Field:
        """The field of one schema at ``path``."""
        if depth > self.limits.max_depth:
            raise FormTooLarge(
                f"the schema nests deeper than {self.limits.max_depth} levels at {name_of(path)}",
                [{"location": name_of(path), "message": "too deep"}],
            )
        self.count += 1
        if self.count > self.limits.max_fields:
            raise FormTooLarge(
                f"the form would have more than {self.limits.max_fields} fields",
                [{"location": name_of(path), "message": "too many fields"}],
            )
        s = resolve(schema, self.root)
        if value is MISSING and self.fresh and "default" in s:
            value = copy.deepcopy(s["default"])
        kind = kind_of(s, self.root)
        field = Field(
            widget=kind,
            name=name,
            id=field_id(name),
            path=path,
            label=str(s.get("title") or label),
            schema=s,
            required=required,
            description=str(s.get("description") or ""),
            hints=constraint_hints(s, kind),
        )
        ref = str(schema["$ref"]) if isinstance(schema, dict) and "$ref" in schema else None
        if ref is not None and ref in self.refs and value is MISSING and not required:
            # A recursive schema's optional part, not set: drawn closed, with an Add button
            # (else the form would unfold it until the depth bound).
            field.widget = "absent"
            field.hints = []
        elif is_secret(s) and kind not in ("enum", "const"):
            self.secret(field, kind)
        else:
            self.refs.append(ref)
            try:
                getattr(self, f"kind_{kind}")(field, value, depth)
            finally:
                self.refs.pop()
        if self.focus is not None and path == self.focus:
            self.first_control(field).autofocus = True
        field = self.hooks.field(field)
        self.index[path] = field
        return field

    def first_control(self, field: Field) -> Field:
        while field.children and field.widget in ("object", "kv_row"):
            field = field.children[0]
        return field

    def secret(self, field: Field, kind: str) -> None:
        field.widget = "secret"
        field.secret = True
        field.input_type = "password"
        field.stored = field.path in self.stored
        if kind in ("object", "array", "json"):
            field.hints = ["JSON"]
        elif kind in ("integer", "number"):
            field.hints = [h for h in field.hints if h != "a whole number"] + (
                ["a whole number"] if kind == "integer" else ["a number"]
            )

    def kind_const(self, field: Field, value: Any, depth: int) -> None:
        field.text = json.dumps(field.schema["const"], ensure_ascii=False, sort_keys=True)

    def kind_json(self, field: Field, value: Any, depth: int) -> None:
        if isinstance(value, Raw):
            field.text = value.text
        elif value is not MISSING:
            field.text = json.dumps(value, indent=2, ensure_ascii=False)

    def kind_string(self, field: Field, value: Any, depth: int) -> None:
        s = field.schema
        text = value.text if isinstance(value, Raw) else value
        field.text = text if isinstance(text, str) else ("" if text is MISSING else str(text))
        if is_multiline(s, field.text):
            field.widget = "textarea"
            return
        fmt = s.get("format")
        field.input_type = INPUT_TYPES.get(fmt, "text") if isinstance(fmt, str) else "text"

    def kind_integer(self, field: Field, value: Any, depth: int) -> None:
        self.number(field, value, integer=True)

    def kind_number(self, field: Field, value: Any, depth: int) -> None:
        self.number(field, value, integer=False)

    def number(self, field: Field, value: Any, *, integer: bool) -> None:
        s = field.schema
        field.widget = "number"
        field.input_type = "number"
        field.text = value.text if isinstance(value, Raw) else number_text(value)
        for key, attr in (("minimum", "min"), ("maximum", "max")):
            bound = s.get(key)
            if isinstance(bound, int | float) and not isinstance(bound, bool):
                field.attrs[attr] = number_text(bound)
        step = s.get("multipleOf")
        if isinstance(step, int | float) and not isinstance(step, bool) and step > 0:
            field.attrs["step"] = number_text(step)
        else:
            field.attrs["step"] = "1" if integer else "any"
        field.attrs["inputmode"] = "numeric" if integer else "decimal"

    def kind_boolean(self, field: Field, value: Any, depth: int) -> None:
        field.checked = value is True

    def kind_enum(self, field: Field, value: Any, depth: int) -> None:
        choices = enum_choices(field.schema, self.root) or []
        texts = option_texts([v for v, _ in choices])
        for (choice, title), text in zip(choices, texts, strict=True):
            chosen = value is not MISSING and same_json(choice, value)
            field.options.append(Option(text, title, chosen))

    def kind_array(self, field: Field, value: Any, depth: int) -> None:
        s = field.schema
        rows = value if isinstance(value, list) else []
        choices = checkbox_set(s, self.root)
        if choices is not None:
            field.widget = "checkboxes"
            texts = option_texts([v for v, _ in choices])
            for i, ((choice, title), text) in enumerate(zip(choices, texts, strict=True)):
                chosen = any(same_json(choice, item) for item in rows)
                field.options.append(Option(text, title, chosen, f"{field.id}-{i}"))
            return
        label = field.label
        # A row is in the value whatever it holds (the parser reads it as required), but
        # the browser is not asked to refuse an empty one: a row is removed with Remove.
        for i, item in enumerate(rows):
            child = self.build(
                s.get("items"), item, (*field.path, i), child_name(field.name, i),
                f"{label} {i + 1}", False, depth + 1,
            )  # fmt: skip
            child.row = i
            child.hide_label = child.widget not in ("object", "array", "choice", "kv")
            field.children.append(child)

    def kind_object(self, field: Field, value: Any, depth: int) -> None:
        s = field.schema
        given = value if isinstance(value, dict) else {}
        required = set(s.get("required") or [])
        props = s.get("properties") or {}
        for key, sub in props.items():
            field.children.append(
                self.build(
                    sub, given.get(key, MISSING), (*field.path, key),
                    child_name(field.name, key), humanize(key), key in required, depth + 1,
                )
            )  # fmt: skip
        extra = s.get("additionalProperties")
        if not isinstance(extra, dict):
            return
        field.extras["kv"] = True
        for i, (key, item) in enumerate((k, v) for k, v in given.items() if k not in props):
            row = Field(
                widget="kv_row",
                name=f"{field.name}.{KV}.{i}",
                id=field_id(f"{field.name}.{KV}.{i}"),
                path=(*field.path, key),
                label=f"{field.label}: entry {i + 1}",
                schema={},
                row=i,
            )
            key_name = f"{field.name}.{KEY}.{i}"
            key_field = Field(
                widget="string",
                name=key_name,
                id=field_id(key_name),
                path=(*field.path, key, KEY),
                label=f"Key {i + 1}",
                schema={"type": "string"},
                text=key,
            )
            key_field.autofocus = self.focus == key_field.path
            self.count += 1
            value_field = self.build(
                extra, item, (*field.path, key), f"{field.name}.{VALUE}.{i}",
                f"Value {i + 1}", False, depth + 1,
            )  # fmt: skip
            row.children = [key_field, value_field]
            field.children.append(row)

    def kind_choice(self, field: Field, value: Any, depth: int) -> None:
        s = field.schema
        field.id = f"{field.id}-choice"  # the chosen alternative's field has the plain id
        alts = alternatives(s) or []
        chosen = self.chosen(alts, value)
        value = value.value if isinstance(value, Choice) else value
        for i, alt in enumerate(alts):
            r = resolve(alt, self.root)
            title = str(r.get("title") or r.get("type") or f"Option {i + 1}")
            field.options.append(Option(str(i), title, i == chosen))
        base = {k: v for k, v in s.items() if k not in ("oneOf", "anyOf", "title", "description")}
        alt_schema = {**base, **resolve(alts[chosen], self.root)}
        child = self.build(
            alt_schema, value, field.path, field.name, field.label, field.required, depth + 1
        )
        child.hide_label = True  # the choice's legend names it
        field.children.append(child)

    def chosen(self, alts: list[Any], value: Any) -> int:
        """The alternative a value is drawn with: the first it is valid against, else the
        first of its JSON type, else the first."""
        if isinstance(value, Choice):
            return value.index if 0 <= value.index < len(alts) else 0
        if value is MISSING:
            return 0
        for i, alt in enumerate(alts):
            try:
                if Draft202012Validator(self._rooted(alt)).is_valid(value):
                    return i
            except Exception:  # an alternative the validator cannot use
                continue
        for i, alt in enumerate(alts):
            if json_type(value) in types_of(resolve(alt, self.root)):
                return i
        return 0

    def _rooted(self, alt: Any) -> dict[str, Any]:
        """An alternative as a schema of its own that still resolves the root's ``$ref``."""
        resolved = resolve(alt, self.root)
        if isinstance(self.root, dict):
            defs = {k: self.root[k] for k in ("$defs", "definitions") if k in self.root}
            return {**defs, **resolved}
        return resolved


def render_form(
    schema: Any,
    value: Any = MISSING,
    *,
    action: str = "",
    errors: Mapping[Path, list[str]] | None = None,
    stored: Iterable[Path] = (),
    limits: FormLimits | None = None,
    hooks: FormHooks = NO_HOOKS,
    fresh: bool = False,
    focus: Path | None = None,
) -> Form:
    """The form of ``schema`` showing ``value``: ``errors`` are placed on their field (or
    the nearest field above their path, else the form), ``stored`` are the paths of secrets
    that have a stored value, ``fresh`` prefills defaults, ``focus`` gets ``autofocus``."""
    builder = _Builder(
        schema,
        stored=set(stored),
        limits=limits or FormLimits(),
        hooks=hooks,
        fresh=fresh,
        focus=focus,
    )
    root = builder.build(schema, value, (), ROOT, "Values", True, 0)
    form = Form(root=root, action=action, errors=[], index=builder.index)
    for path, messages in (errors or {}).items():
        place: Path = tuple(path)
        while place and place not in builder.index:
            place = place[:-1]
        target = builder.index.get(place)
        if target is None or (not place and target.widget == "object"):
            form.errors.extend(messages)
        else:
            target.errors.extend(messages)
    return form
