"""Reading a connector's JSON Schemas for people: one row per field, a short type name, an
example value.

Shared by the markdown pages of ``hub plugins docs`` (:mod:`hub.plugin_kit.docs`) and the
web UI's reference pages (:mod:`hub.web.connectors`), so both show the same fields with the
same types. Only local ``$ref``s (``#/...``) are followed, to a bounded depth.
"""

from __future__ import annotations

import json
from typing import Any

MAX_REF_DEPTH = 20
DOCS_DEPTH = 2  # the markdown pages nest fields three levels deep (a.b.c)

# Example strings of the formats people meet most (any other format: its name).
FORMAT_EXAMPLES = {
    "email": "user@example.com",
    "idn-email": "user@example.com",
    "uri": "https://example.com/",
    "iri": "https://example.com/",
    "url": "https://example.com/",
    "uri-reference": "/path",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "date-time": "2026-01-01T09:00:00Z",
    "date": "2026-01-01",
    "time": "09:00:00Z",
    "duration": "PT1H",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "password": "********",
}


def as_json(value: Any) -> str:
    """A value as compact, deterministic JSON (keys sorted)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


class SchemaReader:
    """Reads a JSON Schema: resolves local ``$ref``s, names types, lists fields, makes an
    example value."""

    def __init__(self, root: Any) -> None:
        self.root = root if isinstance(root, dict) else {}

    def resolve(self, schema: Any, depth: int = 0) -> dict[str, Any]:
        """The schema with a local ``$ref`` (``#/...``) followed, siblings merged in."""
        if not isinstance(schema, dict):
            return {}
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/") and depth < MAX_REF_DEPTH:
            target: Any = self.root
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                target = target.get(part) if isinstance(target, dict) else None
            merged = {**self.resolve(target, depth + 1), **schema}
            merged.pop("$ref", None)
            return merged
        return schema

    def type_name(self, schema: Any, depth: int = 0) -> str:
        """A short name of what a schema accepts: ``string (email)``, ``array of integer``."""
        if schema is True or schema == {}:
            return "any"
        raw = schema if isinstance(schema, dict) else {}
        ref = raw.get("$ref")
        named = ref.rsplit("/", 1)[-1] if isinstance(ref, str) else ""
        s = self.resolve(schema)
        if "const" in s:
            return f"`{as_json(s['const'])}`"
        if "enum" in s:
            return "one of " + ", ".join(f"`{as_json(v)}`" for v in s["enum"])
        for key in ("anyOf", "oneOf"):
            if isinstance(s.get(key), list) and depth < 3:
                return " or ".join(self.type_name(sub, depth + 1) for sub in s[key])
        kind = s.get("type")
        if isinstance(kind, list):
            base = " or ".join(str(k) for k in kind)
        else:
            base = str(kind) if kind else (named or "any")
        if kind == "array" or (isinstance(kind, list) and "array" in kind):
            items = s.get("items")
            if items is not None and depth < 3:
                base = base.replace("array", f"array of {self.type_name(items, depth + 1)}")
        if s.get("format"):
            base += f" ({s['format']})"
        if named and kind == "object":
            base = f"object ({named})"
        return base

    def branches(self, schema: Any) -> list[dict[str, Any]]:
        """The object-like alternatives of a union (``anyOf``/``oneOf``: ``Address | None``
        gives Address), resolved; the schema itself when it is no union."""
        s = self.resolve(schema)
        for key in ("anyOf", "oneOf"):
            if isinstance(s.get(key), list):
                found = [self.resolve(sub) for sub in s[key]]
                return [b for b in found if b.get("type") != "null"]
        return [s]

    def fields(
        self,
        schema: Any,
        prefix: str = "",
        depth: int = 0,
        *,
        max_depth: int = DOCS_DEPTH,
        unions: bool = False,
    ) -> list[dict[str, Any]]:
        """One row per property, nested objects flattened as ``a.b`` and arrays as ``a[].b``,
        ``max_depth`` levels below the top; with ``unions``, the properties of a union's
        object alternatives too.

        A row has ``name``, ``type``, ``required``, ``secret`` and ``description`` (the
        description or title, with the default, read-only and deprecated said: what the
        markdown pages show), and the parts on their own: ``depth``, ``summary`` (the
        description or title alone), ``has_default`` and ``default``, ``enum`` (a list or
        None), ``format``, ``examples`` (a list), ``read_only``, ``deprecated``.
        """
        s = self.resolve(schema)
        props = s.get("properties")
        if not isinstance(props, dict):
            return []
        required = set(s.get("required") or [])
        rows: list[dict[str, Any]] = []
        for name, sub in props.items():
            resolved = self.resolve(sub)
            summary = str(resolved.get("description") or resolved.get("title") or "")
            description = summary
            if "default" in resolved:
                description = f"{description} Default: `{as_json(resolved['default'])}`.".strip()
            for flag, said in (("readOnly", "Read-only."), ("deprecated", "Deprecated.")):
                if resolved.get(flag) is True:
                    description = f"{said} {description}".strip()
            enum = resolved.get("enum")
            examples = resolved.get("examples")
            rows.append(
                {
                    "name": f"{prefix}{name}",
                    "type": self.type_name(sub),
                    "required": name in required,
                    "secret": bool(
                        resolved.get("writeOnly") or resolved.get("format") == "password"
                    ),
                    "description": description,
                    "depth": depth,
                    "summary": summary,
                    "has_default": "default" in resolved,
                    "default": resolved.get("default"),
                    "enum": list(enum) if isinstance(enum, list) else None,
                    "format": str(resolved.get("format") or ""),
                    "examples": list(examples) if isinstance(examples, list) else [],
                    "read_only": resolved.get("readOnly") is True,
                    "deprecated": resolved.get("deprecated") is True,
                }
            )
            if depth < max_depth:
                for inner in self.branches(sub) if unions else [resolved]:
                    rows += self.fields(
                        inner,
                        f"{prefix}{name}.",
                        depth + 1,
                        max_depth=max_depth,
                        unions=unions,
                    )
                    items = inner.get("items")
                    if inner.get("type") == "array" and items is not None:
                        for item in self.branches(items) if unions else [items]:
                            rows += self.fields(
                                item,
                                f"{prefix}{name}[].",
                                depth + 1,
                                max_depth=max_depth,
                                unions=unions,
                            )
        return rows

    def _merged(self, parts: list[Any]) -> dict[str, Any]:
        """Schemas merged into one: their properties together, their required lists
        joined, any other keyword from the last one that has it."""
        merged: dict[str, Any] = {}
        props: dict[str, Any] = {}
        required: list[str] = []
        for part in parts:
            resolved = self.resolve(part)
            merged.update(resolved)
            if isinstance(resolved.get("properties"), dict):
                props.update(resolved["properties"])
            required += [r for r in resolved.get("required") or [] if r not in required]
        if props:
            merged["properties"] = props
        if required:
            merged["required"] = required
        return merged

    def example(self, schema: Any, depth: int = 0) -> Any:
        """An example value the schema accepts (often, not always: a pattern or a format
        it does not know is not followed): its first ``examples`` entry, its ``default``,
        ``const`` or first ``enum`` value, else one made from its type. An object has its
        required properties; a union takes its first alternative (but null), merged with
        the schema's own properties when it has some (``oneOf`` of required fields)."""
        s = self.resolve(schema)
        for key in ("examples", "enum"):
            if isinstance(s.get(key), list) and s[key]:
                return s[key][0]
        for key in ("default", "const"):
            if key in s:
                return s[key]
        if depth > 8:
            return None
        for key in ("anyOf", "oneOf"):
            if isinstance(s.get(key), list) and s[key]:
                chosen = [b for b in s[key] if self.resolve(b).get("type") != "null"]
                first = (chosen or s[key])[0]
                rest = {k: v for k, v in s.items() if k not in ("anyOf", "oneOf")}
                if "properties" in rest or rest.get("type") == "object":
                    return self.example(self._merged([rest, first]), depth + 1)
                return self.example(first, depth + 1)
        if isinstance(s.get("allOf"), list) and s["allOf"]:
            rest = {k: v for k, v in s.items() if k != "allOf"}
            return self.example(self._merged([rest, *s["allOf"]]), depth + 1)
        kind = s.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            kind = "object" if "properties" in s else "array" if "items" in s else None
        if kind == "object":
            found = s.get("properties")
            props: dict[str, Any] = found if isinstance(found, dict) else {}
            wanted = [p for p in s.get("required") or [] if p in props]
            return {name: self.example(props[name], depth + 1) for name in wanted}
        if kind == "array":
            count = max(1, int(s.get("minItems") or 1))
            return [self.example(s.get("items", {}), depth + 1) for _ in range(count)]
        if kind == "string":
            text = FORMAT_EXAMPLES.get(str(s.get("format") or ""), "text")
            if s.get("format") and s["format"] not in FORMAT_EXAMPLES:
                text = str(s["format"])
            low, high = int(s.get("minLength") or 0), s.get("maxLength")
            text += "x" * max(0, low - len(text))
            return text[: int(high)] if isinstance(high, int) else text
        if kind in ("integer", "number"):
            bound = s.get("minimum", s.get("exclusiveMinimum"))
            number = 0 if bound is None else bound + (1 if "exclusiveMinimum" in s else 0)
            return int(number) if kind == "integer" else number
        if kind == "boolean":
            return False
        if kind == "null":
            return None
        return "value"
