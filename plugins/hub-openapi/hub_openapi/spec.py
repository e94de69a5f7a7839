"""Reading an OpenAPI 3.0 / 3.1 document: loading, local ``$ref``s, schema conversion.

Only references inside the document (``#/...``) are followed: a document is read from a file
and nothing is ever fetched. Schemas become JSON Schema draft 2020-12 (what the hub uses):
component schemas (``#/components/schemas/X``) go to the converted schema's ``$defs`` (so
recursive schemas stay finite), OpenAPI 3.0's ``nullable``, boolean ``exclusiveMinimum`` /
``exclusiveMaximum`` and ``example`` are rewritten, and ``readOnly`` properties are not
required in requests (nor ``writeOnly`` ones in responses).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml

Direction = Literal["request", "response"]
COMPONENT_SCHEMA = "#/components/schemas/"
MAX_REF_DEPTH = 64

# Keywords whose value is one schema, a list of schemas, or a mapping of name -> schema.
_ONE = (
    "items",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "additionalProperties",
    "unevaluatedProperties",
    "unevaluatedItems",
    "additionalItems",
)
_MANY = ("allOf", "anyOf", "oneOf", "prefixItems")
_MAP = ("properties", "patternProperties", "dependentSchemas", "$defs", "definitions")
_DROPPED = ("discriminator", "xml", "externalDocs", "$id", "$schema", "$anchor", "$comment")


class SpecError(ValueError):
    """The document cannot be used; the message names the file and the place in it."""


def snake_case(text: str) -> str:
    """``listPets`` -> ``list_pets``, ``Get-User.byID`` -> ``get_user_by_id``."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", text)
    text = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()
    return re.sub(r"_+", "_", text)


def load_document(path: Path) -> dict[str, Any]:
    """Parse a YAML or JSON OpenAPI document and check that it is OpenAPI 3.0 or 3.1."""
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise SpecError(f"{path}: cannot be read as {path.suffix[1:].upper()}: {exc}") from exc
    if not isinstance(data, dict):
        raise SpecError(f"{path}: an OpenAPI document is a mapping, not {type(data).__name__}")
    version = str(data.get("openapi", ""))
    if not re.match(r"^3\.[01]\.", version):
        found = f"'openapi: {version}'" if version else "no 'openapi' field"
        raise SpecError(f"{path}: only OpenAPI 3.0 and 3.1 documents are supported ({found})")
    if not isinstance(data.get("paths") or {}, dict):
        raise SpecError(f"{path}: paths: must be a mapping")
    return data


class Document:
    """An OpenAPI document and its source, with local ``$ref`` resolution."""

    def __init__(self, data: dict[str, Any], source: str) -> None:
        self.data = data
        self.source = source
        self.is_31 = str(data.get("openapi", "")).startswith("3.1")

    def error(self, where: str, message: str) -> SpecError:
        """A :class:`SpecError` naming the file and the place."""
        return SpecError(f"{self.source}: {where}: {message}")

    def pointer(self, ref: str, where: str) -> Any:
        """The value a local reference (``#/a/b``) points at."""
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise self.error(
                where, f"only references inside the document are supported, not {ref!r}"
            )
        target: Any = self.data
        for raw in ref[1:].split("/")[1:] if ref != "#" else []:
            part = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(target, dict) and part in target:
                target = target[part]
            elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
                target = target[int(part)]
            else:
                raise self.error(where, f"the reference {ref!r} points at nothing")
        return target

    def deref(self, value: Any, where: str) -> Any:
        """Follow ``$ref`` chains of a non-schema object (parameter, response, body ...)."""
        seen: list[str] = []
        while isinstance(value, dict) and "$ref" in value:
            ref = value["$ref"]
            if ref in seen or len(seen) > MAX_REF_DEPTH:
                raise self.error(where, f"circular reference {' -> '.join([*seen, ref])}")
            seen.append(ref)
            value = self.pointer(ref, where)
        return value


class SchemaConverter:
    """Converts the schemas of one action into one JSON Schema with shared ``$defs``."""

    def __init__(self, doc: Document, direction: Direction) -> None:
        self.doc = doc
        self.direction = direction
        self.defs: dict[str, Any] = {}
        self._inlining: list[str] = []

    def finish(self, schema: dict[str, Any]) -> dict[str, Any]:
        """``schema`` with the component schemas it uses attached as ``$defs``."""
        if self.defs:
            return {**schema, "$defs": dict(sorted(self.defs.items()))}
        return schema

    def convert(self, schema: Any, where: str) -> Any:
        """One schema, converted (see the module docstring)."""
        if isinstance(schema, bool):
            return schema
        if not isinstance(schema, dict):
            raise self.error_at(where, f"a schema must be a mapping, not {type(schema).__name__}")
        out: dict[str, Any] = {}
        for key, value in schema.items():
            if key in _DROPPED or key.startswith("x-"):
                continue
            if key == "$ref":
                out.update(self._ref(value, where))
            elif key in _ONE:
                out[key] = self.convert(value, f"{where}.{key}")
            elif key in _MANY and isinstance(value, list):
                out[key] = [self.convert(v, f"{where}.{key}[{i}]") for i, v in enumerate(value)]
            elif key in _MAP and isinstance(value, dict):
                target = "$defs" if key == "definitions" else key
                out[target] = {k: self.convert(v, f"{where}.{key}.{k}") for k, v in value.items()}
            elif key == "example":
                out.setdefault("examples", [value])
            else:
                out[key] = value
        if not self.doc.is_31:
            self._from_30(out)
        self._drop_required_by_direction(out)
        return out

    def error_at(self, where: str, message: str) -> SpecError:
        """A :class:`SpecError` for a place in the document."""
        return self.doc.error(where, message)

    def _ref(self, ref: Any, where: str) -> dict[str, Any]:
        if isinstance(ref, str) and ref.startswith(COMPONENT_SCHEMA):
            name = ref[len(COMPONENT_SCHEMA) :].replace("~1", "/").replace("~0", "~")
            if "/" not in name:
                if name not in self.defs:
                    self.defs[name] = {}  # placeholder: a recursive schema refers to itself
                    target = self.doc.pointer(ref, where)
                    self.defs[name] = self.convert(target, f"components.schemas.{name}")
                return {"$ref": f"#/$defs/{name.replace('~', '~0').replace('/', '~1')}"}
        if ref in self._inlining:
            raise self.error_at(where, f"circular reference {ref!r} outside components.schemas")
        self._inlining.append(ref)
        try:
            target = self.doc.pointer(ref, where)
            converted = self.convert(target, str(ref))
        finally:
            self._inlining.pop()
        return converted if isinstance(converted, dict) else ({} if converted else {"not": {}})

    def _from_30(self, out: dict[str, Any]) -> None:
        """Rewrite OpenAPI 3.0's schema dialect into JSON Schema 2020-12, in place."""
        for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            flag = out.get(bound)
            if isinstance(flag, bool):
                del out[bound]
                if flag and limit in out:
                    out[bound] = out.pop(limit)
        if out.pop("nullable", False) is True:
            kind = out.get("type")
            if isinstance(kind, str):
                out["type"] = [kind, "null"]
            elif isinstance(kind, list) and "null" not in kind:
                out["type"] = [*kind, "null"]
            if isinstance(out.get("enum"), list) and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
            if "type" not in out:
                inner = dict(out)
                out.clear()
                out["anyOf"] = [inner, {"type": "null"}]

    def _drop_required_by_direction(self, out: dict[str, Any]) -> None:
        required = out.get("required")
        props = out.get("properties")
        if not isinstance(required, list) or not isinstance(props, dict):
            return
        hidden = "readOnly" if self.direction == "request" else "writeOnly"
        keep = [name for name in required if not self._flag(props.get(name), hidden)]
        if keep != required:
            if keep:
                out["required"] = keep
            else:
                del out["required"]

    def _flag(self, schema: Any, flag: str) -> bool:
        if not isinstance(schema, dict):
            return False
        if schema.get(flag) is True:
            return True
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            target = self.defs.get(ref[len("#/$defs/") :].replace("~1", "/").replace("~0", "~"))
            return isinstance(target, dict) and target.get(flag) is True
        return False
