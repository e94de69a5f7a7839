"""The hub's one JSON-Schema form renderer: a schema and a value become an accessible HTML
form (server-side, Jinja2 templates under ``ui/templates/forms/``), and the submitted form
(``application/x-www-form-urlencoded``, multi-valued) becomes the JSON value again.

Connections use it for their connector's connection schema; the flow builder reuses it for
an action's input schema and extends it through :class:`FormHooks` (a field's ``widget`` is
the template that draws it, ``forms/widgets/<widget>.html``, so a hook, a plugin or a
deployment's templates add or replace widgets).

**Field names** encode the JSON path: the root is ``v``; an object's property adds
``.<name>`` (the name with every character other than ``A-Z a-z 0-9 _`` percent-encoded as
UTF-8, and a leading ``__`` written ``%5F_``, so that no property clashes with a marker); an
array's item adds ``.<row>``. Markers (hidden inputs, never a property) start and end with
``__``:

- ``P.__row__``: one per row of the array at ``P``, its value the row's number; rows are
  read in the order of these markers (so rows may be numbered with gaps);
- ``P.__kv__``, ``P.__key__.<row>``, ``P.__value__.<row>``: a row of an object's
  ``additionalProperties`` (its key, and its value at ``P.__value__.<row>``);
- ``P.__choice__``: the chosen alternative of a ``oneOf``/``anyOf``;
- ``P.__set__``: an array of enum values shown as checkboxes (``uniqueItems``) was in the
  form (so "none ticked" differs from "not in the form");
- ``P.__clear__``: the person asked to remove a stored secret;
- a boolean is a hidden ``P=false`` followed by the checkbox ``P=true``: the field was in
  the form when either arrives, and it is true when ``true`` does.

The submit buttons that add and remove rows post ``_form_op``: ``add:<name of the array or
object>``, ``remove:<name of the row>``, or ``refresh`` (show another alternative's fields):
the page re-renders the form from what was submitted without saving (no JavaScript needed;
htmx swaps the form in place when it has loaded). Field ids are ``f-`` and the name with
``.`` written ``-`` and ``%`` written ``:`` (unique, stable, derived from the path).

**Controls.** strings: a text input (``format`` ``email``, ``uri``, ``date``: the matching
input type; ``date-time``: text with an example); a textarea when the schema says
``format: textarea`` or ``x-multiline: true``, when ``maxLength`` is over
:data:`MULTILINE_LENGTH`, or when the value holds a line break. Numbers and integers: a number
input with ``min``/``max``/``step`` (exclusive bounds and ``multipleOf`` said in the hint),
read from text with an error naming the field. Booleans: a checkbox. Enums (``enum``, titled
by ``x-enumNames``; or a ``oneOf``/``anyOf`` of ``const`` alternatives titled by their
``title``): a select. Arrays: rows with Add and Remove buttons; an array of enum values with
``uniqueItems``: checkboxes. Objects: a fieldset with a legend; ``additionalProperties``:
key-value rows. ``oneOf``/``anyOf``: a select of the alternatives and the chosen one's
fields. Anything else (no type, several types, an object without properties, tuples): a
JSON textarea. ``$ref`` (local: ``#/$defs/...``, ``#/definitions/...``) and ``allOf`` are
resolved. Secret fields (``writeOnly: true`` or ``format: password``, any type): password
inputs never filled with a value; left empty they mean "keep the stored secret"
(:attr:`Submission.kept`).

**What an empty field means.** An optional field left empty (text, number, enum, JSON, an
array or key-value list without rows, an object with nothing filled in) is left out of the
value; a required one gives ``""`` for a string (and an error for the others). A checkbox
always gives ``true`` or ``false`` once it was in the form. Defaults prefill a new form
(``fresh=True``) only: editing shows what is stored. Strings lose carriage returns (browsers
send line breaks as CRLF; the parser reads them as LF) and a single-line input never holds a
line break (a value with one is shown in a textarea).

**Bounds.** A schema nested deeper than ``max_document_depth`` (``$ref`` recursion
included), a form of more than :class:`FormLimits` ``max_fields`` fields, or a submission
of more rows or pairs than that is refused with :class:`FormTooLarge`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote

from jsonschema import Draft202012Validator

from hub.schemas import validator_for
from hub.security.secrets import Redactor, secret_values
from hub.services.errors import Invalid

ROOT = "v"
OP_FIELD = "_form_op"
ROW, KV, KEY, VALUE, CHOICE, SET, CLEAR = (
    "__row__",
    "__kv__",
    "__key__",
    "__value__",
    "__choice__",
    "__set__",
    "__clear__",
)
MULTILINE_LENGTH = 200  # a string allowed to be longer than this gets a textarea
MAX_FORM_FIELDS = 2_000  # a form's fields, whatever max_document_nodes allows
MAX_NUMBER_TEXT = 100  # characters of a number field read as a number
MAX_REF_HOPS = 32
MAX_MESSAGE = 300
INPUT_TYPES = {"email": "email", "uri": "url", "url": "url", "iri": "url", "date": "date"}
FORMAT_HINTS = {
    "date-time": "a date and time, like 2026-01-31T09:30:00Z",
    "date": "a date, like 2026-01-31",
    "time": "a time, like 09:30:00Z",
    "email": "an e-mail address",
    "uri": "a full address, like https://example.com/",
    "hostname": "a host name, like api.example.com",
    "ipv4": "an IPv4 address",
    "ipv6": "an IPv6 address",
    "uuid": "a UUID",
}
INTEGER_TEXT = re.compile(r"^[+-]?\d+$")
NUMBER_TEXT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
ROW_TEXT = re.compile(r"^\d{1,9}$")

Path = tuple[str | int, ...]
Schema = dict[str, Any]
FormValues = dict[str, list[str]]  # a submitted form: each name's values, in order


class _Missing:
    """No value (a field left out of the value)."""

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()


@dataclasses.dataclass(frozen=True)
class Raw:
    """Submitted text that could not be read as the field's type (shown again as typed)."""

    text: str


class FormSchemaError(Invalid):
    """The schema cannot be drawn as a form (an external ``$ref``, a ``$ref`` loop)."""


class FormTooLarge(FormSchemaError):
    """The form, or the submission, is over the bounds."""


@dataclasses.dataclass(frozen=True)
class FormLimits:
    """How big a form may be: its depth (``$ref`` recursion included) and its fields."""

    max_depth: int = 64
    max_fields: int = MAX_FORM_FIELDS

    @classmethod
    def of(cls, settings: Any) -> FormLimits:
        """The hub's document bounds (``max_document_depth``, ``max_document_nodes``),
        fields capped at :data:`MAX_FORM_FIELDS`."""
        return cls(
            max_depth=int(settings.max_document_depth),
            max_fields=min(int(settings.max_document_nodes), MAX_FORM_FIELDS),
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


# -- names and ids --------------------------------------------------------------------------


def segment(key: str) -> str:
    """A property name as one segment of a field name (see the module's docstring)."""
    out = []
    for char in key:
        if char.isascii() and (char.isalnum() or char == "_"):
            out.append(char)
        else:
            out.append("".join(f"%{byte:02X}" for byte in char.encode()))
    text = "".join(out)
    return "%5F" + text[1:] if text.startswith("__") else text


def child_name(name: str, part: str | int) -> str:
    """The name of a property (str) or row (int) of the field ``name``."""
    return f"{name}.{part}" if isinstance(part, int) else f"{name}.{segment(part)}"


def field_id(name: str) -> str:
    """The id of the control named ``name``."""
    return "f-" + name.replace(".", "-").replace("%", ":")


def name_of(path: Iterable[str | int]) -> str:
    """The field name of a JSON path (rows numbered by position, as rendered)."""
    name = ROOT
    for part in path:
        name = child_name(name, part)
    return name


def humanize(key: str) -> str:
    """A label from a property name: ``api_key`` -> ``Api key``."""
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", key).replace("_", " ").replace("-", " ")
    words = " ".join(words.split())
    return words[:1].upper() + words[1:] if words else key


# -- schemas --------------------------------------------------------------------------------


def _pointer(root: Any, ref: str) -> Any:
    """The local schema a ``$ref`` points at."""
    if not ref.startswith("#"):
        raise FormSchemaError(
            f"the schema refers to {ref!r}: a form follows local references only",
            [{"location": "$ref", "message": "not a local reference"}],
        )
    target = root
    for raw in [p for p in ref[1:].split("/") if p != ""]:
        part = unquote(raw).replace("~1", "/").replace("~0", "~")
        if isinstance(target, dict) and part in target:
            target = target[part]
        elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
            target = target[int(part)]
        else:
            raise FormSchemaError(
                f"the schema's reference {ref!r} leads nowhere",
                [{"location": "$ref", "message": "unresolved reference"}],
            )
    return target


def resolve(schema: Any, root: Any) -> dict[str, Any]:
    """``schema`` with its ``$ref`` followed (siblings win) and its ``allOf`` merged."""
    if schema is True or schema is None:
        return {}
    if not isinstance(schema, dict):
        return {}
    hops = 0
    while "$ref" in schema:
        hops += 1
        if hops > MAX_REF_HOPS:
            raise FormSchemaError(
                "the schema's references go round in a loop",
                [{"location": "$ref", "message": "reference loop"}],
            )
        target = _pointer(root, str(schema["$ref"]))
        target = target if isinstance(target, dict) else {}
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    if isinstance(schema.get("allOf"), list):
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            sub = resolve(part, root)
            props = {**(sub.get("properties") or {}), **(merged.get("properties") or {})}
            required = [*merged.get("required", []), *sub.get("required", [])]
            merged = {**sub, **merged}
            if props:
                merged["properties"] = props
            if required:
                merged["required"] = list(dict.fromkeys(required))
        schema = merged
    return dict(schema)


def _alternatives(schema: dict[str, Any]) -> list[Any] | None:
    alts = schema.get("oneOf") or schema.get("anyOf")
    return alts if isinstance(alts, list) and alts else None


def enum_choices(schema: dict[str, Any], root: Any) -> list[tuple[Any, str]] | None:
    """The ``(value, title)`` choices of an enum field, or None for another kind."""
    if isinstance(schema.get("enum"), list):
        names = schema.get("x-enumNames")
        names = names if isinstance(names, list) else []
        out = []
        for i, value in enumerate(schema["enum"]):
            title = names[i] if i < len(names) and isinstance(names[i], str) else None
            out.append((value, title if title is not None else display(value)))
        return out
    alts = _alternatives(schema)
    if alts:
        resolved = [resolve(a, root) for a in alts]
        if all("const" in a for a in resolved):
            return [(a["const"], str(a.get("title") or display(a["const"]))) for a in resolved]
    return None


def display(value: Any) -> str:
    """A JSON value as a person reads it in a select."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def option_texts(values: list[Any]) -> list[str]:
    """What each enum value is submitted as: itself when every value is a non-empty string,
    else its JSON text."""
    if all(isinstance(v, str) and v for v in values):
        return list(values)
    return [json.dumps(v, ensure_ascii=False, sort_keys=True) for v in values]


def kind_of(schema: dict[str, Any], root: Any) -> str:
    """What a (resolved) schema is drawn as: const, enum, choice, object, array, string,
    integer, number, boolean or json."""
    if "const" in schema:
        return "const"
    if enum_choices(schema, root) is not None:
        return "enum"
    if _alternatives(schema):
        return "choice"
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
    if kind is None:
        if "properties" in schema or isinstance(schema.get("additionalProperties"), dict):
            kind = "object"
        elif "items" in schema:
            kind = "array"
        else:
            return "json"
    if kind == "object":
        has_fields = schema.get("properties") or isinstance(
            schema.get("additionalProperties"), dict
        )
        return "object" if has_fields else "json"
    if kind == "array":
        return "json" if "prefixItems" in schema or isinstance(schema.get("items"), list) else kind
    return kind if kind in ("string", "integer", "number", "boolean") else "json"


def is_secret(schema: dict[str, Any]) -> bool:
    """Whether a field is write-only (a password input, never filled in)."""
    return bool(schema.get("writeOnly")) or schema.get("format") == "password"


def is_multiline(schema: dict[str, Any], value: Any) -> bool:
    """Whether a string field is a textarea."""
    max_length = schema.get("maxLength")
    return (
        schema.get("format") == "textarea"
        or bool(schema.get("x-multiline"))
        or (isinstance(max_length, int) and max_length > MULTILINE_LENGTH)
        or (isinstance(value, str) and ("\n" in value or "\r" in value))
    )


def checkbox_set(schema: dict[str, Any], root: Any) -> list[tuple[Any, str]] | None:
    """The choices of an array drawn as checkboxes (unique enum values), else None."""
    if not schema.get("uniqueItems"):
        return None
    return enum_choices(resolve(schema.get("items"), root), root)


def number_text(value: Any) -> str:
    """A number as its field shows it (floats by their shortest round-tripping text)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "" if value is None or value is MISSING else str(value)
    return repr(value) if isinstance(value, float) else str(value)


def constraint_hints(schema: dict[str, Any], kind: str) -> list[str]:
    """What the schema asks of a value, in words."""
    hints = []
    if kind in ("integer", "number"):
        if kind == "integer":
            hints.append("a whole number")
        for key, words in (
            ("minimum", "at least"),
            ("exclusiveMinimum", "more than"),
            ("maximum", "at most"),
            ("exclusiveMaximum", "less than"),
            ("multipleOf", "a multiple of"),
        ):
            bound = schema.get(key)
            if isinstance(bound, int | float) and not isinstance(bound, bool):
                hints.append(f"{words} {number_text(bound)}")
    elif kind == "string":
        if isinstance(schema.get("format"), str) and schema["format"] in FORMAT_HINTS:
            hints.append(FORMAT_HINTS[schema["format"]])
        if isinstance(schema.get("minLength"), int) and schema["minLength"] > 0:
            hints.append(f"at least {schema['minLength']} characters")
        if isinstance(schema.get("maxLength"), int):
            hints.append(f"at most {schema['maxLength']} characters")
    elif kind == "array":
        if isinstance(schema.get("minItems"), int) and schema["minItems"] > 0:
            hints.append(f"at least {schema['minItems']} items")
        if isinstance(schema.get("maxItems"), int):
            hints.append(f"at most {schema['maxItems']} items")
    elif kind == "json":
        hints.append("JSON")
    return hints


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
        if is_secret(s) and kind not in ("enum", "const"):
            self.secret(field, kind)
        else:
            getattr(self, f"kind_{kind}")(field, value, depth)
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
            chosen = value is not MISSING and _same(choice, value)
            field.options.append(Option(text, title, chosen))

    def kind_array(self, field: Field, value: Any, depth: int) -> None:
        s = field.schema
        rows = value if isinstance(value, list) else []
        choices = checkbox_set(s, self.root)
        if choices is not None:
            field.widget = "checkboxes"
            texts = option_texts([v for v, _ in choices])
            for i, ((choice, title), text) in enumerate(zip(choices, texts, strict=True)):
                chosen = any(_same(choice, item) for item in rows)
                field.options.append(Option(text, title, chosen, f"{field.id}-{i}"))
            return
        label = field.label
        for i, item in enumerate(rows):
            child = self.build(
                s.get("items"), item, (*field.path, i), child_name(field.name, i),
                f"{label} {i + 1}", True, depth + 1,
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
                required=True,
                text=key,
            )
            key_field.autofocus = self.focus == key_field.path
            self.count += 1
            value_field = self.build(
                extra, item, (*field.path, key), f"{field.name}.{VALUE}.{i}",
                f"Value {i + 1}", True, depth + 1,
            )  # fmt: skip
            row.children = [key_field, value_field]
            field.children.append(row)

    def kind_choice(self, field: Field, value: Any, depth: int) -> None:
        s = field.schema
        field.id = f"{field.id}-choice"  # the chosen alternative's field has the plain id
        alts = _alternatives(s) or []
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
            if _json_type(value) in _types_of(resolve(alt, self.root)):
                return i
        return 0

    def _rooted(self, alt: Any) -> dict[str, Any]:
        """An alternative as a schema of its own that still resolves the root's ``$ref``."""
        resolved = resolve(alt, self.root)
        if isinstance(self.root, dict):
            defs = {k: self.root[k] for k in ("$defs", "definitions") if k in self.root}
            return {**defs, **resolved}
        return resolved


@dataclasses.dataclass(frozen=True)
class Choice:
    """A choice field's value during a re-render: the alternative chosen and its value."""

    index: int
    value: Any


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _types_of(schema: dict[str, Any]) -> set[str]:
    kind = schema.get("type")
    kinds = set(kind) if isinstance(kind, list) else {kind} if isinstance(kind, str) else set()
    if "properties" in schema:
        kinds.add("object")
    if "integer" in kinds:
        kinds.add("number")
    return kinds


def _same(a: Any, b: Any) -> bool:
    """JSON equality (``1`` is not ``true``)."""
    return _json_type(a) == _json_type(b) and a == b


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


# -- parsing --------------------------------------------------------------------------------


@dataclasses.dataclass
class Submission:
    """A submitted form read back: the value (with :class:`Raw` text where a field could
    not be read, and :class:`Choice` where a choice was made), the errors of reading it by
    path, the secrets left empty (``kept``) or to remove (``cleared``), every array's and
    row's path by name (for ``_form_op``), and the operation asked for."""

    tree: Any
    errors: dict[Path, list[str]]
    kept: set[Path]
    cleared: set[Path]
    paths: dict[str, Path]
    op: str
    secret_paths: set[Path]

    @property
    def value(self) -> Any:
        """The JSON value (:class:`Raw` leaves dropped; only meaningful without errors)."""
        return plain(self.tree)

    def secret_texts(self) -> set[str]:
        """The submitted secret values (to redact from any message)."""
        found: set[str] = set()
        for path in self.secret_paths:
            found |= secret_values(_get(self.value, path))
        return found


def plain(tree: Any) -> Any:
    """A parsed tree as JSON: :class:`Choice` unwrapped, :class:`Raw` and missing dropped."""
    if isinstance(tree, Choice):
        return plain(tree.value)
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            item = plain(v)
            if item is not MISSING:
                out[k] = item
        return out
    if isinstance(tree, list):
        return [x for x in (plain(v) for v in tree) if x is not MISSING]
    if isinstance(tree, Raw):
        return MISSING
    return tree


def _get(value: Any, path: Path) -> Any:
    for part in path:
        if isinstance(value, dict) and isinstance(part, str) and part in value:
            value = value[part]
            continue
        if isinstance(value, list) and isinstance(part, int) and part < len(value):
            value = value[part]
            continue
        return None
    return value


def form_data(pairs: Iterable[tuple[str, str]], limits: FormLimits | None = None) -> FormValues:
    """Submitted ``(name, value)`` pairs as name -> values (in order); more than the bound's
    fields (times four: markers and checkboxes) is :class:`FormTooLarge`."""
    bound = (limits or FormLimits()).max_fields * 4
    out: dict[str, list[str]] = {}
    for count, (name, value) in enumerate(pairs, 1):
        if count > bound:
            raise FormTooLarge(
                f"the form sent more than {bound} values",
                [{"location": "form", "message": "too many values"}],
            )
        out.setdefault(str(name), []).append(str(value))
    return out


class _Reader:
    """Reads a submission, led by the schema."""

    def __init__(self, root: Any, form: FormValues, limits: FormLimits, hooks: FormHooks) -> None:
        self.root = root
        self.form = form
        self.limits = limits
        self.hooks = hooks
        self.errors: dict[Path, list[str]] = {}
        self.kept: set[Path] = set()
        self.cleared: set[Path] = set()
        self.paths: dict[str, Path] = {}
        self.secret_paths: set[Path] = set()
        self.rows = 0

    def error(self, path: Path, message: str) -> None:
        self.errors.setdefault(path, []).append(message)

    def first(self, name: str) -> str | None:
        values = self.form.get(name)
        return values[-1] if values else None

    def read(
        self, schema: Any, path: Path, name: str, label: str, required: bool, depth: int
    ) -> Any:
        if depth > self.limits.max_depth:
            raise FormTooLarge(
                f"the schema nests deeper than {self.limits.max_depth} levels",
                [{"location": name, "message": "too deep"}],
            )
        s = resolve(schema, self.root)
        label = str(s.get("title") or label)
        hooked = self.hooks.parse(s, name, self.form)
        if hooked is not MISSING:
            return hooked
        kind = kind_of(s, self.root)
        if is_secret(s) and kind not in ("enum", "const"):
            return self.secret(s, kind, path, name, label)
        reader = getattr(self, f"read_{kind}")
        result: Any = reader(s, path, name, label, required, depth)
        return result

    def secret(self, s: dict[str, Any], kind: str, path: Path, name: str, label: str) -> Any:
        self.secret_paths.add(path)
        text = self.first(name)
        if text is None:
            return MISSING
        if text == "":
            if self.first(f"{name}.{CLEAR}"):
                self.cleared.add(path)
            else:
                self.kept.add(path)
            return MISSING
        if kind == "string":
            return text
        if kind in ("integer", "number"):
            # never quote a secret back in an error
            parsed = _number(text, kind == "integer")
            if parsed is None:
                self.error(path, f"{label}: enter {_number_words(kind)}")
                return MISSING
            return parsed
        if kind == "boolean":
            return text.strip().lower() in ("true", "1", "yes", "on")
        try:
            return json.loads(text)
        except ValueError:
            self.error(path, f"{label}: enter JSON (the text is not valid JSON)")
            return MISSING

    def read_const(self, s: Schema, path: Path, name: str, label: str, req: bool, d: int) -> Any:
        return MISSING if self.first(name) is None else copy.deepcopy(s["const"])

    def read_json(self, s: Schema, path: Path, name: str, label: str, req: bool, d: int) -> Any:
        text = self.first(name)
        if text is None or (not text.strip() and not req):
            return MISSING
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            self.error(path, f"{label}: enter JSON ({exc.msg} at line {exc.lineno})")
            return Raw(text)

    def read_string(self, s: Schema, path: Path, name: str, label: str, req: bool, d: int) -> Any:
        text = self.first(name)
        if text is None:
            return MISSING
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        return MISSING if text == "" and not req else text

    def read_integer(self, s: Schema, path: Path, name: str, label: str, req: bool, d: int) -> Any:
        return self.number(path, name, label, req, integer=True)

    def read_number(self, s: Schema, path: Path, name: str, label: str, req: bool, d: int) -> Any:
        return self.number(path, name, label, req, integer=False)

    def number(self, path: Path, name: str, label: str, req: bool, *, integer: bool) -> Any:
        text = self.first(name)
        if text is None:
            return MISSING
        if not text.strip():
            if req:
                self.error(path, f"{label}: enter {_number_words('integer' if integer else '')}")
                return Raw(text)
            return MISSING
        parsed = _number(text, integer)
        if parsed is None:
            shown = text if len(text) <= 40 else text[:40] + "…"
            words = _number_words("integer" if integer else "number")
            self.error(path, f"{label}: {shown!r} is not {words}")
            return Raw(text)
        return parsed

    def read_boolean(self, s: Schema, path: Path, name: str, label: str, req: bool, d: int) -> Any:
        values = self.form.get(name)
        return MISSING if values is None else "true" in values

    def read_enum(self, s: Schema, path: Path, name: str, label: str, req: bool, d: int) -> Any:
        text = self.first(name)
        if text is None or text == "":
            return MISSING
        return self.enum_value(s, path, label, text)

    def enum_value(self, s: Schema, path: Path, label: str, text: str) -> Any:
        choices = enum_choices(s, self.root) or []
        texts = option_texts([v for v, _ in choices])
        for (choice, _title), candidate in zip(choices, texts, strict=True):
            if candidate == text:
                return copy.deepcopy(choice)
        self.error(path, f"{label}: choose one of the options")
        return Raw(text)

    def read_array(self, s: Schema, path: Path, name: str, label: str, req: bool, d: int) -> Any:
        self.paths[name] = path
        items_schema = resolve(s.get("items"), self.root)
        if checkbox_set(s, self.root) is not None:
            if self.first(f"{name}.{SET}") is None:
                return MISSING
            texts = self.form.get(name, [])
            self.count_rows(len(texts), name)
            values = [self.enum_value(items_schema, path, label, t) for t in texts]
            return values if values or req else MISSING
        markers = self.form.get(f"{name}.{ROW}") or []
        if not markers and self.first(f"{name}.{SET}") is None:
            return MISSING
        self.count_rows(len(markers), name)
        out: list[Any] = []
        seen: set[str] = set()
        for marker in markers:
            if not ROW_TEXT.match(marker) or marker in seen:
                continue
            seen.add(marker)
            row_name, row_path = f"{name}.{marker}", (*path, len(out))
            self.paths[row_name] = row_path
            item = self.read(s.get("items"), row_path, row_name, f"{label} {len(out) + 1}", True,
                             d + 1)  # fmt: skip
            out.append(item)
        return out if out or req else MISSING

    def count_rows(self, count: int, name: str) -> None:
        self.rows += count
        if self.rows > self.limits.max_fields:
            raise FormTooLarge(
                f"the form sent more than {self.limits.max_fields} rows",
                [{"location": name, "message": "too many rows"}],
            )

    def read_object(self, s: Schema, path: Path, name: str, label: str, req: bool, d: int) -> Any:
        self.paths[name] = path
        if not req and not self.filled(name):
            return MISSING  # an optional object left empty
        required = set(s.get("required") or [])
        props = s.get("properties") or {}
        out: dict[str, Any] = {}
        for key, sub in props.items():
            item = self.read(sub, (*path, key), child_name(name, key), humanize(key),
                             key in required, d + 1)  # fmt: skip
            if item is not MISSING:
                out[key] = item
        extra = s.get("additionalProperties")
        if isinstance(extra, dict):
            markers = self.form.get(f"{name}.{KV}") or []
            self.count_rows(len(markers), name)
            for marker in dict.fromkeys(markers):
                if not ROW_TEXT.match(marker):
                    continue
                key = self.first(f"{name}.{KEY}.{marker}")
                value_name = f"{name}.{VALUE}.{marker}"
                if key is None or (key == "" and not self.filled(value_name)):
                    continue  # an empty row
                item = self.read(extra, (*path, key), value_name, f"Value for {key!r}", True,
                                 d + 1)  # fmt: skip
                self.paths[value_name] = (*path, key)
                if key in props or key in out:
                    self.error(path, f"{label}: the key {key!r} appears twice")
                    continue
                out[key] = item
        return out if out or req else MISSING

    def filled(self, name: str) -> bool:
        """Whether anything was typed, ticked or chosen in the field ``name`` or under it."""
        prefix = name + "."
        return any(
            (k == name or k.startswith(prefix)) and any(v not in ("", "false") for v in values)
            for k, values in self.form.items()
            if not k.endswith((ROW, KV, SET, CHOICE))
        )

    def read_choice(self, s: Schema, path: Path, name: str, label: str, req: bool, d: int) -> Any:
        alts = _alternatives(s) or []
        marker = self.first(f"{name}.{CHOICE}")
        if marker is None:
            return MISSING
        index = int(marker) if ROW_TEXT.match(marker) and int(marker) < len(alts) else 0
        base = {k: v for k, v in s.items() if k not in ("oneOf", "anyOf", "title", "description")}
        alt_schema = {**base, **resolve(alts[index], self.root)}
        # Kept even when empty: a re-rendered form shows the alternative chosen.
        return Choice(index, self.read(alt_schema, path, name, label, req, d + 1))


def _number(text: str, integer: bool) -> int | float | None:
    """A number from text, or None (too long, not a number, not finite)."""
    text = text.strip()
    if len(text) > MAX_NUMBER_TEXT:
        return None
    if INTEGER_TEXT.match(text):
        return int(text)
    if integer or not NUMBER_TEXT.match(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def _number_words(kind: str) -> str:
    return "a whole number (like 42)" if kind == "integer" else "a number (like 4.5)"


def parse_form(
    schema: Any,
    pairs: Iterable[tuple[str, str]],
    *,
    limits: FormLimits | None = None,
    hooks: FormHooks = NO_HOOKS,
) -> Submission:
    """Read a submitted form (its ``(name, value)`` pairs, as a browser sends them) back
    into a value, led by the schema."""
    bounds = limits or FormLimits()
    form = form_data(pairs, bounds)
    reader = _Reader(schema, form, bounds, hooks)
    tree = reader.read(schema, (), ROOT, "Values", True, 0)
    op = (form.get(OP_FIELD) or [""])[-1]
    return Submission(
        tree=tree,
        errors=reader.errors,
        kept=reader.kept,
        cleared=reader.cleared,
        paths=reader.paths,
        op=op,
        secret_paths=reader.secret_paths,
    )


# -- operations: adding and removing rows ---------------------------------------------------


def apply_op(schema: Any, submission: Submission) -> tuple[Any, Path | None]:
    """The tree after the submission's ``_form_op`` (``add:``, ``remove:``, ``refresh``),
    and the path to focus on the re-rendered form."""
    op, _, target = submission.op.partition(":")
    tree = submission.tree
    path = submission.paths.get(target)
    if path is None or op not in ("add", "remove"):
        return tree, None
    if op == "remove":
        parent_path, last = path[:-1], path[-1]
        parent = _node(tree, parent_path)
        if isinstance(parent, list) and isinstance(last, int) and last < len(parent):
            del parent[last]
        elif isinstance(parent, dict) and isinstance(last, str):
            parent.pop(last, None)
        return tree, parent_path
    field_schema = _schema_at(schema, path)
    holder = _node(tree, path)
    if holder is None or holder is MISSING:
        holder = [] if kind_of(field_schema, schema) == "array" else {}
        tree = _set(tree, path, holder)
    if isinstance(holder, list):
        holder.append(blank(field_schema.get("items"), schema))
        return tree, (*path, len(holder) - 1)
    extra = field_schema.get("additionalProperties")
    if isinstance(holder, dict) and "" not in holder:
        holder[""] = blank(extra, schema)
    return tree, (*path, "", KEY)


def _node(tree: Any, path: Path) -> Any:
    for part in path:
        if isinstance(tree, Choice):
            tree = tree.value
        if isinstance(tree, dict) and isinstance(part, str):
            tree = tree.get(part, MISSING)
        elif isinstance(tree, list) and isinstance(part, int) and part < len(tree):
            tree = tree[part]
        else:
            return MISSING
    return tree.value if isinstance(tree, Choice) else tree


def _set(tree: Any, path: Path, value: Any) -> Any:
    if not path:
        return value
    parent = _node(tree, path[:-1])
    if isinstance(parent, dict) and isinstance(path[-1], str):
        parent[path[-1]] = value
    return tree


def _schema_at(root: Any, path: Path) -> dict[str, Any]:
    """The resolved schema of the field at ``path`` (choices: the first alternative that
    has the part)."""
    s = resolve(root, root)
    for part in path:
        alts = _alternatives(s)
        if alts and enum_choices(s, root) is None:
            for alt in alts:
                r = resolve(alt, root)
                if (isinstance(part, str) and part in (r.get("properties") or {})) or (
                    isinstance(part, int) and "items" in r
                ):
                    s = r
                    break
        if isinstance(part, int):
            s = resolve(s.get("items"), root)
        else:
            props = s.get("properties") or {}
            s = resolve(props[part] if part in props else s.get("additionalProperties"), root)
    return s


def blank(schema: Any, root: Any) -> Any:
    """The value of a new row: its default, else an empty value of its kind."""
    s = resolve(schema, root)
    if "default" in s:
        return copy.deepcopy(s["default"])
    kind = kind_of(s, root)
    return {"string": "", "boolean": False, "object": {}, "array": []}.get(kind, Raw(""))


# -- validation -----------------------------------------------------------------------------


def validation_errors(
    schema: Any, value: Any, secrets: Iterable[str] = ()
) -> dict[Path, list[str]]:
    """Every way ``value`` breaks ``schema``, by the path of the field it belongs to (a
    missing required property: the property's own path); messages never quote a secret."""
    redactor = Redactor(secrets)
    out: dict[Path, list[str]] = {}
    for error in validator_for(schema).iter_errors(value):
        path: Path = tuple(error.absolute_path)
        message = error.message
        if error.validator == "required" and isinstance(error.instance, dict):
            missing = [
                p
                for p in (error.validator_value or [])
                if p not in error.instance and repr(p) in error.message
            ]
            if missing:
                path = (*path, missing[0])
                message = "required: fill this in"
        message = redactor.text(message)
        if len(message) > MAX_MESSAGE:
            message = message[:MAX_MESSAGE] + "…"
        out.setdefault(path, []).append(message)
    return out
