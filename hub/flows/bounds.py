"""Bounds on documents: size, nesting depth, node count, YAML aliases and distinct
expressions, checked before anything recurses over the data, expands it or compiles it.

:class:`DocumentLimits` holds the limits (``HUB_MAX_DOCUMENT_*`` and ``HUB_MAX_YAML_ALIASES``).
:func:`measure_yaml_graph` walks a composed YAML node graph once, memoized per node, so the
size of a document with aliases is known without expanding it (a "billion laughs" of 550
bytes is refused in microseconds). :class:`JsonDepthScan` finds how deep JSON text nests with
a linear scan over the bytes, before any decoder recurses, fed in chunks so that an async
caller can yield between them. :func:`measure_value` checks data already decoded.

Every function here is iterative: no input can exhaust Python's stack.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from itertools import accumulate, chain
from typing import TYPE_CHECKING, Any

import yaml

from hub.flows.locations import join_location

if TYPE_CHECKING:
    from hub.settings import Settings


@dataclasses.dataclass(frozen=True)
class DocumentLimits:
    """The bounds of one flow document; the defaults are the settings' defaults."""

    max_bytes: int = 1_000_000
    max_nodes: int = 100_000
    max_depth: int = 64
    max_aliases: int = 1_000
    max_templates: int = 5_000

    @classmethod
    def from_settings(cls, settings: Settings) -> DocumentLimits:
        """The limits named by ``HUB_MAX_DOCUMENT_BYTES``, ``_NODES``, ``_DEPTH``,
        ``_TEMPLATES`` and ``HUB_MAX_YAML_ALIASES``."""
        return cls(
            max_bytes=settings.max_document_bytes,
            max_nodes=settings.max_document_nodes,
            max_depth=settings.max_document_depth,
            max_aliases=settings.max_yaml_aliases,
            max_templates=settings.max_document_templates,
        )


class BoundExceeded(ValueError):
    """A document passes one of its bounds; ``location`` is where (may be ``""``)."""

    def __init__(self, location: str, message: str) -> None:
        super().__init__(f"{location}: {message}" if location else message)
        self.location = location
        self.message = message


def too_large(size: int, limits: DocumentLimits) -> BoundExceeded | None:
    """The error for a document of ``size`` bytes over ``max_bytes``, else ``None``."""
    if size <= limits.max_bytes:
        return None
    return BoundExceeded(
        "document",
        f"the document is {size} bytes, over the limit of {limits.max_bytes} "
        "(HUB_MAX_DOCUMENT_BYTES)",
    )


# --- YAML: the composed node graph -----------------------------------------------------------


def is_template(text: str) -> bool:
    """True for a string the flow's validation compiles (it holds ``{{`` or ``{%``)."""
    return "{{" in text or "{%" in text


class _Templates:
    """The distinct template strings seen so far, refused past ``max_templates``.

    Compiling one costs about a millisecond and the same text is compiled once (the
    expressions' cache), so the distinct ones are what validation pays for.
    """

    def __init__(self, limits: DocumentLimits) -> None:
        self.limit = limits.max_templates
        self.seen: set[str] = set()

    def add(self, text: str, location: str) -> None:
        if is_template(text) and text not in self.seen:
            self.seen.add(text)
            if len(self.seen) > self.limit:
                raise BoundExceeded(
                    location,
                    f"more than {self.limit} different expressions in one document "
                    "(HUB_MAX_DOCUMENT_TEMPLATES)",
                )


def _mark(node: yaml.Node) -> str:
    mark = node.start_mark
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def _children(node: yaml.Node) -> Iterator[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return chain.from_iterable(node.value)
    if isinstance(node, yaml.SequenceNode):
        return iter(node.value)
    return iter(())


def measure_yaml_graph(root: yaml.Node, limits: DocumentLimits) -> None:
    """Refuse a composed YAML document that passes a bound, before it is constructed.

    A node reached again through an alias is the same node object, so one depth-first walk
    that remembers each node's expanded size and height costs time linear in the text, while
    the sizes it computes are those of the document with every alias expanded. Raises
    :class:`BoundExceeded` naming the line and column and the limit: more alias uses than
    ``max_aliases``, an alias to a node that contains it (a recursive document), more than
    ``max_nodes`` nodes once expanded, deeper than ``max_depth`` once expanded, or more than
    ``max_templates`` different template strings.
    """
    max_nodes, max_aliases = limits.max_nodes, limits.max_aliases
    templates = _Templates(limits)
    size: dict[int, int] = {}
    height: dict[int, int] = {}
    open_nodes = {id(root)}
    aliases = 0
    # A frame: the node, its children still to see, and [expanded size, tallest child].
    stack: list[tuple[yaml.Node, Iterator[yaml.Node], list[int]]] = [
        (root, _children(root), [1, 0])
    ]
    while stack:
        node, kids, acc = stack[-1]
        for child in kids:
            key = id(child)
            if key in size:  # seen before: an alias
                aliases += 1
                if aliases > max_aliases:
                    raise BoundExceeded(
                        _mark(node), f"more than {max_aliases} alias uses (HUB_MAX_YAML_ALIASES)"
                    )
                acc[0] += size[key]
                acc[1] = max(acc[1], height[key])
                if acc[0] > max_nodes:
                    raise BoundExceeded(_mark(node), _too_many(limits))
                continue
            if child.__class__ is yaml.ScalarNode:
                if "{" in child.value:
                    templates.add(child.value, _mark(child))
                size[key] = height[key] = 1
                acc[0] += 1
                acc[1] = max(acc[1], 1)
                continue
            if key in open_nodes:
                raise BoundExceeded(
                    _mark(node), "an alias refers to a node that contains it (a recursive alias)"
                )
            open_nodes.add(key)
            stack.append((child, _children(child), [1, 0]))
            break
        else:
            stack.pop()
            key = id(node)
            open_nodes.discard(key)
            size[key], height[key] = acc[0], acc[1] + 1
            if acc[0] > max_nodes:
                raise BoundExceeded(_mark(node), _too_many(limits))
            if stack:
                parent = stack[-1][2]
                parent[0] += acc[0]
                parent[1] = max(parent[1], acc[1] + 1)
    if height.get(id(root), 1) > limits.max_depth:
        raise BoundExceeded(_mark(_deepest(root, height, limits.max_depth)), _too_deep(limits))


def _too_many(limits: DocumentLimits) -> str:
    return (
        f"more than {limits.max_nodes} nodes here, counting what aliases repeat "
        "(HUB_MAX_DOCUMENT_NODES)"
    )


def _deepest(root: yaml.Node, height: dict[int, int], depth: int) -> yaml.Node:
    """The node at ``depth + 1`` levels on the way down to the deepest leaf."""
    node = root
    for _ in range(depth):
        node = max(_children(node), key=lambda k: height[id(k)])
    return node


def _too_deep(limits: DocumentLimits) -> str:
    return f"nested deeper than {limits.max_depth} levels (HUB_MAX_DOCUMENT_DEPTH)"


# --- Data already decoded --------------------------------------------------------------------


def _place(path: tuple[str | int, ...]) -> str:
    return join_location("", path, key_chars=40)


def measure_value(value: Any, limits: DocumentLimits, base: tuple[str | int, ...] = ()) -> None:
    """Refuse decoded data (dicts, lists, scalars) deeper than ``max_depth``, with more than
    ``max_nodes`` nodes (keys count as nodes, as they do in YAML) or more than
    ``max_templates`` different template strings; the location of a depth or expression
    error is a path into the document (``steps[3].input``), of a node count ``document``.
    Iterative, and stops at the first bound passed."""
    nodes = 0
    templates = _Templates(limits)
    stack: list[tuple[Any, int, tuple[str | int, ...]]] = [(value, 1, base)]
    while stack:
        node, depth, path = stack.pop()
        nodes += 1
        if nodes > limits.max_nodes:
            raise BoundExceeded(
                "document",
                f"the document has more than {limits.max_nodes} nodes (HUB_MAX_DOCUMENT_NODES)",
            )
        if depth > limits.max_depth:
            raise BoundExceeded(_place(path) or "document", _too_deep(limits))
        if isinstance(node, str):
            templates.add(node, _place(path) or "document")
        elif isinstance(node, dict):
            nodes += len(node)
            stack.extend((item, depth + 1, (*path, str(key))) for key, item in node.items())
        elif isinstance(node, list):
            stack.extend((item, depth + 1, (*path, index)) for index, item in enumerate(node))


# --- JSON text: depth before decoding --------------------------------------------------------

_WEIGHTS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
CHUNK = 256 * 1024


class JsonDepthScan:
    """How deep JSON text nests, outside strings, in one linear pass fed in chunks.

    Escapes are masked first (``\\\\`` and ``\\"`` by two harmless bytes, which keeps every
    offset), strings are cut out between their quotes, and the brackets left are summed
    (``[{`` +1, ``]}`` -1) by :func:`itertools.accumulate` over a signed byte view: every
    step runs in C, about 30 ms a megabyte. Invalid JSON gives some depth; the decoder that
    follows refuses it. :meth:`feed` returns the offset (from the start of the text) where
    the depth first passes ``limit``, or ``None``.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.depth = 0
        self.offset = 0
        self.in_string = False
        self.escaped = False  # the previous chunk ended on a lone backslash in a string

    def feed(self, chunk: bytes) -> int | None:
        """Scan the next piece of the text; the offset where it gets too deep, or ``None``."""
        start, was_in_string = self.offset, self.in_string
        self.offset += len(chunk)
        masked = chunk
        if self.escaped and masked:
            masked = b"_" + masked[1:]
            self.escaped = False
        if b"\\" in masked:
            masked = masked.replace(b"\\\\", b"__").replace(b'\\"', b"__")
            if masked.endswith(b"\\"):
                masked = masked[:-1] + b"_"
                self.escaped = True
        pieces = masked.split(b'"')
        outside = pieces[1::2] if self.in_string else pieces[::2]
        if len(pieces) % 2 == 0:
            self.in_string = not self.in_string
        brackets = b"".join(outside).translate(_WEIGHTS, _NOT_BRACKETS)
        if not brackets:
            return None
        steps = memoryview(brackets).cast("b")
        deepest = max(accumulate(steps, initial=self.depth))
        if deepest > self.limit:
            return start + self._where(masked, self.depth, was_in_string)
        self.depth += len(brackets) - 2 * brackets.count(b"\xff")
        return None

    def _where(self, masked: bytes, depth: int, in_string: bool) -> int:
        """The offset in ``masked`` where the depth first passes the limit (rare: slower).

        ``depth`` and ``in_string`` are the state before ``masked``.
        """
        offset = 0
        for index, piece in enumerate(masked.split(b'"')):
            if (index % 2 == 1) != in_string:  # inside a string
                offset += len(piece) + 1
                continue
            for position, byte in enumerate(piece):
                if byte in b"[{":
                    depth += 1
                    if depth > self.limit:
                        return offset + position
                elif byte in b"]}":
                    depth -= 1
            offset += len(piece) + 1
        return 0


def chunks(data: bytes, size: int = CHUNK) -> Iterator[bytes]:
    """``data`` in pieces of ``size`` bytes (views are not needed: slicing is cheap here)."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def json_too_deep(data: bytes, limit: int) -> int | None:
    """The offset where JSON ``data`` nests deeper than ``limit``, or ``None`` (synchronous)."""
    if data.count(b"[") + data.count(b"{") <= limit:
        return None
    scan = JsonDepthScan(limit)
    for piece in chunks(data):
        found = scan.feed(piece)
        if found is not None:
            return found
    return None


def line_column(data: bytes, offset: int) -> str:
    """``line L, column C`` (1-based, columns in characters) of a byte offset in UTF-8 text."""
    before = data[:offset]
    line = before.count(b"\n") + 1
    column = len(before[before.rfind(b"\n") + 1 :].decode("utf-8", errors="replace")) + 1
    return f"line {line}, column {column}"
