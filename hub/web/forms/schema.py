"""Schemas as the form renderer reads them: field names and ids from JSON paths, ``$ref``
and ``allOf`` resolved, what each schema is drawn as, and the words of its constraints
(see :mod:`hub.web.forms`)."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

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


def alternatives(schema: dict[str, Any]) -> list[Any] | None:
    """The ``oneOf`` (else ``anyOf``) alternatives of a schema, or None."""
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
    alts = alternatives(schema)
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
    if alternatives(schema):
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


@dataclasses.dataclass(frozen=True)
class Choice:
    """A choice field's value during a re-render: the alternative chosen and its value."""

    index: int
    value: Any


def json_type(value: Any) -> str:
    """The JSON Schema type of a value (``integer`` for ints, never ``number``)."""
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


def types_of(schema: dict[str, Any]) -> set[str]:
    """The JSON types a (resolved) schema says it takes."""
    kind = schema.get("type")
    kinds = set(kind) if isinstance(kind, list) else {kind} if isinstance(kind, str) else set()
    if "properties" in schema:
        kinds.add("object")
    if "integer" in kinds:
        kinds.add("number")
    return kinds


def same_json(a: Any, b: Any) -> bool:
    """JSON equality (``1`` is not ``true``)."""
    return json_type(a) == json_type(b) and a == b
