"""Walking an action's output schema by the keys an expression reads.

What ``steps.X.output.a.b[0]`` may read is what X's action declares in its output schema
(JSON Schema). The declared ``properties`` are the contract: a name not among them is not
there, unless the object is opened explicitly (``additionalProperties`` that is not
``false``, or ``patternProperties``). The walker:

- follows local ``$ref``s (``#``, ``#/$defs/X``, ``#/definitions/X``: msgspec-derived
  schemas are ``{"$ref": "#/$defs/X", "$defs": {...}}``), to a bounded depth, so a
  recursive type cannot loop;
- reads ``anyOf``/``oneOf`` as a union (a field exists when a branch declares it; ``null``
  branches and branches that declare no structure are left out) and ``allOf`` as the
  composition of its parts (a field exists when a part declares it);
- follows ``items`` and ``prefixItems`` by integer index;
- treats a schema that declares no structure (``{}``, ``true``, no ``properties``, no
  ``items``, no ``type``) as open: it checks nothing.

:func:`child` answers for one key, :func:`walk` for a path from the top, :func:`fields`
lists what may follow a place (the flow builder's completion of ``steps.X.output.``).
Answers are :class:`Found` (the sub-schemas of the key, as :class:`Node`\\ s), :data:`OPEN`
(anything may be there) or :class:`Undeclared` (the names that do exist). Resolved schemas
are memoized per schema object, so the same registry schema is read once per process.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Iterable, Sequence
from typing import Any, Final, NamedTuple
from urllib.parse import unquote

import jsonpointer
from cachetools import LRUCache

__all__ = [
    "OPEN",
    "Answer",
    "Field",
    "Found",
    "Node",
    "Open",
    "Undeclared",
    "child",
    "fields",
    "node",
    "type_text",
    "walk",
]

# How many $refs in a chain, and nested allOf/anyOf/oneOf, one answer follows (a cycle stops
# at once): a deeper schema answers OPEN there.
MAX_DEPTH: Final = 32
_Key = str | int
_NO_STRUCTURE = object()  # an answer of a schema that says nothing about the key


@dataclasses.dataclass(frozen=True, eq=False)
class Node:
    """A sub-schema in its document: ``schema``, whose ``$ref``\\ s resolve in ``root``."""

    root: Any = dataclasses.field(repr=False)
    schema: Any


@dataclasses.dataclass(frozen=True)
class Found:
    """The key is declared: its schemas (several when a union declares it more than once;
    each schema once)."""

    nodes: tuple[Node, ...]

    def __post_init__(self) -> None:
        unique = {(id(n.root), id(n.schema)): n for n in self.nodes}
        if len(unique) < len(self.nodes):
            object.__setattr__(self, "nodes", tuple(unique.values()))


class Open:
    """Anything may be under the key: the schema does not say (or opens the object)."""

    _instance: Open | None = None

    def __new__(cls) -> Open:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "OPEN"


OPEN: Final = Open()


@dataclasses.dataclass(frozen=True)
class Undeclared:
    """The key is not declared: ``names`` are the fields that are (sorted), ``kinds`` the
    JSON types the schema allows when they are not objects (``("array",)`` for a field read
    from a list), ``key`` the key asked for."""

    key: _Key
    names: tuple[str, ...]
    kinds: tuple[str, ...] = ()


Answer = Found | Open | Undeclared


class Field(NamedTuple):
    """A field that may follow a place: its name, its schema, description and type text."""

    name: str
    schema: Node
    description: str
    type: str


class _Walker:
    """The memoized reading of one root schema (resolved ``$ref``\\ s per schema object)."""

    def __init__(self, root: Any) -> None:
        self.root = root
        self._resolved: dict[int, tuple[Any, Any]] = {}  # id -> (schema kept alive, resolved)
        self._lock = threading.Lock()

    def resolve(self, schema: Any) -> Any:
        """``schema`` with its ``$ref`` chain followed (siblings of a ``$ref`` win); a bool
        or dict; an unresolvable or too deep ``$ref`` gives ``True`` (open)."""
        key = id(schema)
        hit = self._resolved.get(key)
        if hit is not None and hit[0] is schema:
            return hit[1]
        resolved = self._follow(schema)
        with self._lock:
            self._resolved[key] = (schema, resolved)
        return resolved

    def _follow(self, schema: Any) -> Any:
        seen: list[dict[str, Any]] = []
        while isinstance(schema, dict) and "$ref" in schema:
            if len(seen) >= MAX_DEPTH or any(schema is s for s in seen):
                return True
            seen.append(schema)
            schema = self.pointer(schema["$ref"])
        if not isinstance(schema, dict):
            return schema is not False  # a target that is not a schema: open
        if not seen:
            return schema
        merged = dict(schema)
        for outer in reversed(seen):  # the outermost siblings win
            for k, v in outer.items():
                if k == "properties" and isinstance(merged.get(k), dict) and isinstance(v, dict):
                    merged[k] = {**merged[k], **v}
                elif k not in ("$ref", "$defs", "definitions"):
                    merged[k] = v
        return merged

    def pointer(self, ref: Any) -> Any:
        """The schema a local ``$ref`` points to; ``True`` (open) for any other."""
        if not isinstance(ref, str) or not ref.startswith("#"):
            return True
        target = self.root
        for part in ref[1:].split("/")[1:]:
            part = jsonpointer.unescape(unquote(part))
            if isinstance(target, dict):
                target = target.get(part, True)
            elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
                target = target[int(part)]
            else:
                return True
        return target

    # Answers ---------------------------------------------------------------------------

    def child(self, schema: Any, key: _Key, inside: frozenset[int] = frozenset()) -> Any:
        """The answer for ``key`` under ``schema``: Found, OPEN, Undeclared, or
        _NO_STRUCTURE when the schema says nothing about it. ``inside`` are the schemas
        whose allOf/anyOf/oneOf led here: meeting one again (a cycle) says nothing."""
        s = self.resolve(schema)
        if s is True or id(s) in inside:
            return _NO_STRUCTURE
        if s is False:
            return Undeclared(key, ())
        if len(inside) >= MAX_DEPTH:
            return OPEN
        inside = inside | {id(s)}
        answer = self._own(s, key)
        for part in _parts(s, "allOf"):
            answer = _compose(answer, self.child(part, key, inside), key)
        for union in ("anyOf", "oneOf"):
            if isinstance(s.get(union), list):
                answer = _compose(answer, self._union(s[union], key, inside), key)
        return answer

    def _union(self, branches: list[Any], key: _Key, inside: frozenset[int]) -> Any:
        answers = [
            self.child(b, key, inside)
            for b in branches
            if self.kinds(self.resolve(b)) != ("null",)  # `X | None`: read when present
        ]
        told = [a for a in answers if a is not _NO_STRUCTURE]
        if not told:
            return _NO_STRUCTURE
        if any(a is OPEN for a in told):
            return OPEN
        found = [n for a in told if isinstance(a, Found) for n in a.nodes]
        if found:
            return Found(tuple(found))
        names = {n for a in told if isinstance(a, Undeclared) for n in a.names}
        kinds = {k for a in told if isinstance(a, Undeclared) for k in a.kinds}
        return Undeclared(key, tuple(sorted(names)), tuple(sorted(kinds)))

    def _own(self, s: dict[str, Any], key: _Key) -> Any:
        """What the schema's own keywords (not allOf/anyOf/oneOf) say of ``key``."""
        kinds = self.kinds(s)
        props = s.get("properties")
        names = tuple(sorted(props)) if isinstance(props, dict) else ()
        if isinstance(key, int):
            return self._index(s, key, kinds, names)
        if isinstance(props, dict) and key in props:
            return self._found(props[key])
        patterns = s.get("patternProperties")
        if isinstance(patterns, dict) and patterns:
            matching = [sub for rx, sub in patterns.items() if _matches(rx, key)]
            return Found(tuple(Node(self.root, m) for m in matching)) if matching else OPEN
        extra = s.get("additionalProperties")
        if extra is not None and extra is not False:
            return self._found(extra)
        if kinds and "object" not in kinds:
            return Undeclared(key, names, kinds)
        if isinstance(props, dict) or extra is False:
            return Undeclared(key, names)
        return _NO_STRUCTURE

    def _index(self, s: dict[str, Any], key: int, kinds: tuple[str, ...], names: Any) -> Any:
        prefix = s.get("prefixItems")
        items = s.get("items")
        if isinstance(items, list):  # draft 4-7 tuples
            prefix, items = items, s.get("additionalItems")
        if isinstance(prefix, list) and 0 <= key < len(prefix):
            return self._found(prefix[key])
        if items is not None:
            return Undeclared(key, ()) if items is False else self._found(items)
        if isinstance(prefix, list):
            return OPEN  # past the tuple, or from the end: not known here
        if kinds and "array" not in kinds:
            return Undeclared(key, names, kinds)
        return _NO_STRUCTURE

    def _found(self, sub: Any) -> Any:
        resolved = self.resolve(sub)
        if resolved is True or resolved == {}:
            return OPEN
        return Found((Node(self.root, sub),))

    # Reading for people ----------------------------------------------------------------

    def kinds(self, s: Any) -> tuple[str, ...]:
        """The JSON types a resolved schema allows (``type``, ``const``, ``enum``); () when
        it does not say."""
        if not isinstance(s, dict):
            return ()
        kind = s.get("type")
        if isinstance(kind, str):
            return (kind,)
        if isinstance(kind, list):
            return tuple(str(k) for k in kind)
        return ()

    def fields(self, schema: Any, inside: frozenset[int] = frozenset()) -> dict[str, Field]:
        """The declared fields under ``schema``, through ``$ref``, allOf and unions
        (``inside``: the schemas that led here, as in :meth:`child`)."""
        s = self.resolve(schema)
        if not isinstance(s, dict) or id(s) in inside or len(inside) >= MAX_DEPTH:
            return {}
        inside = inside | {id(s)}
        found: dict[str, Field] = {}
        props = s.get("properties")
        if isinstance(props, dict):
            for name, sub in props.items():
                r = self.resolve(sub)
                text = (r.get("description") or r.get("title") or "") if isinstance(r, dict) else ""
                found[name] = Field(name, Node(self.root, sub), str(text), self.type_text(sub))
        for keyword in ("allOf", "anyOf", "oneOf"):
            for part in _parts(s, keyword):
                for name, f in self.fields(part, inside).items():
                    found.setdefault(name, f)
        return found

    def type_text(self, schema: Any, depth: int = 0) -> str:
        """A short name of what ``schema`` holds: ``string``, ``array of integer``, ``X``
        (a named definition), ``integer or null``, ``any``."""
        raw = schema if isinstance(schema, dict) else {}
        s = self.resolve(schema)
        if s is True or s == {} or depth > 3:
            return "any"
        if not isinstance(s, dict):
            return "nothing"
        ref = raw.get("$ref")
        for union in ("anyOf", "oneOf"):
            if isinstance(s.get(union), list):
                return " or ".join(dict.fromkeys(self.type_text(b, depth + 1) for b in s[union]))
        kinds = self.kinds(s)
        if "const" in s:
            kinds = kinds or (_json_type(s["const"]),)
        elif isinstance(s.get("enum"), list) and not kinds:
            kinds = tuple(dict.fromkeys(_json_type(v) for v in s["enum"]))
        if isinstance(ref, str) and ref.startswith("#/") and (kinds == ("object",) or not kinds):
            return ref.rsplit("/", 1)[-1]
        if not kinds and "properties" in s:
            kinds = ("object",)
        parts = []
        for kind in kinds:
            if kind == "array" and s.get("items") not in (None, True, {}):
                kind = f"array of {self.type_text(s['items'], depth + 1)}"
            parts.append(kind)
        text = " or ".join(parts) or "any"
        return f"{text} ({s['format']})" if isinstance(s.get("format"), str) else text


def _parts(s: dict[str, Any], keyword: str) -> list[Any]:
    """The subschemas of ``allOf``/``anyOf``/``oneOf`` (none when it is not a list)."""
    parts = s.get(keyword)
    return parts if isinstance(parts, list) else []


def _json_type(value: Any) -> str:
    for kind, name in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string")):
        if isinstance(value, kind):
            return name
    return "array" if isinstance(value, list) else "object" if isinstance(value, dict) else "null"


def _matches(pattern: str, name: str) -> bool:
    try:
        return re.search(pattern, name) is not None
    except re.error:
        return True  # a pattern Python cannot read: open, not an error


def _compose(a: Any, b: Any, key: _Key) -> Any:
    """Two answers about one value (a schema and its allOf part, or its union): a
    declaration wins, then openness, then the names both know."""
    if a is _NO_STRUCTURE:
        return b
    if b is _NO_STRUCTURE:
        return a
    if isinstance(a, Found) or isinstance(b, Found):
        nodes = (a.nodes if isinstance(a, Found) else ()) + (
            b.nodes if isinstance(b, Found) else ()
        )
        return Found(nodes)
    if a is OPEN or b is OPEN:
        return OPEN
    names = set(a.names) | set(b.names)
    kinds = set(a.kinds) & set(b.kinds) if a.kinds and b.kinds else set(a.kinds or b.kinds)
    return Undeclared(key, tuple(sorted(names)), tuple(sorted(kinds)))


_WALKERS: LRUCache[int, tuple[Any, _Walker]] = LRUCache(maxsize=512)
_WALKERS_LOCK = threading.Lock()


def _walker(root: Any) -> _Walker:
    """The walker of a root schema, memoized per schema object (the cache holds the root,
    so its id is not reused while cached)."""
    with _WALKERS_LOCK:
        hit = _WALKERS.get(id(root))
        if hit is not None and hit[0] is root:
            return hit[1]
        walker = _Walker(root)
        _WALKERS[id(root)] = (root, walker)
        return walker


def node(schema: Any) -> Node:
    """The top of a schema document (an action's ``output_schema``), as a :class:`Node`."""
    return Node(schema, schema)


def _nodes(where: Node | Found | Any) -> Iterable[Node]:
    if isinstance(where, Found):
        return where.nodes
    return (where if isinstance(where, Node) else node(where),)


def child(where: Node | Found | Any, key: str | int) -> Answer:
    """What may be under ``key`` (a field name, or an index into a list) at ``where``: a
    :class:`Node`, a :class:`Found` (any of its nodes), or a whole schema document.

    :class:`Found` with the key's schemas, :data:`OPEN` when the schema does not restrict
    it (``{}``, an object opened by ``additionalProperties: true``/``{}`` or by a
    ``patternProperties`` no pattern of which matches, a ``$ref`` cycle past the depth
    limit), or :class:`Undeclared` with the names that are declared.
    """
    answers = []
    for n in _nodes(where):
        answer = _walker(n.root).child(n.schema, key)
        answers.append(OPEN if answer is _NO_STRUCTURE else answer)
    if len(answers) == 1:
        result: Answer = answers[0]
        return result
    if any(a is OPEN for a in answers):
        return OPEN
    found = tuple(n for a in answers if isinstance(a, Found) for n in a.nodes)
    if found:
        return Found(found)
    names = sorted({n for a in answers if isinstance(a, Undeclared) for n in a.names})
    kinds = sorted({k for a in answers if isinstance(a, Undeclared) for k in a.kinds})
    return Undeclared(key, tuple(names), tuple(kinds))


def walk(schema: Any, path: Sequence[str | int]) -> Answer:
    """What ``path`` reads from a schema document (``walk(output_schema, ["rows", 0])``):
    the answer of its last key, or the first :class:`Undeclared` on the way (its ``key``
    says which), or :data:`OPEN` as soon as a place is open."""
    where: Node | Found = node(schema)
    for key in path:
        answer = child(where, key)
        if not isinstance(answer, Found):
            return answer
        where = answer
    return where if isinstance(where, Found) else Found((where,))


def fields(where: Node | Found | Any) -> list[Field]:
    """The declared fields that may follow ``where`` (a :class:`Node`, a :class:`Found`, or
    a whole schema document), in their declared order, through ``$ref``, ``allOf`` and
    the branches of unions (a name once, from its first declaration). A list's items are
    read by index: ``fields(child(where, 0))``. An open place lists only what it declares.
    """
    found: dict[str, Field] = {}
    for n in _nodes(where):
        for name, f in _walker(n.root).fields(n.schema).items():
            found.setdefault(name, f)
    return list(found.values())


def type_text(where: Node | Any) -> str:
    """A short name of what a schema holds (``string``, ``array of Item``, ``any``)."""
    n = where if isinstance(where, Node) else node(where)
    return _walker(n.root).type_text(n.schema)
