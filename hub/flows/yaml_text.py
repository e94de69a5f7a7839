"""YAML text that round-trips: a JSON Patch applied to YAML source, and fresh YAML.

The flow builder edits a document with RFC 6902 JSON Patch operations while a person may
also read and edit it as YAML. :func:`apply_patch_to_yaml` applies the operations to the
YAML text itself, through ruamel.yaml's round-trip tree, so that the comments, the key order
and the style of every scalar the patch does not touch are kept. :func:`dump_yaml` writes a
document as fresh YAML. Both write new values in block style, put a multi-line string in a
``|`` block, and never wrap a line (an expression ``{{ ... }}`` is never split).

The truth is the hub's own reader, :func:`hub.flows.checks.read_yaml` (PyYAML, YAML 1.1,
bounded): ``read_yaml(apply_patch_to_yaml(source, ops)) == jsonpatch.apply_patch(
read_yaml(source), ops)`` always holds. The source is read by ``read_yaml`` first (so
whatever it refuses, aliases past the limit or a document too large or deep, is refused
here with the same :class:`~hub.flows.checks.TextError`); the patch is applied to that data
with ``jsonpatch`` and, beside it, to the round-trip tree; the text written is read back and,
in the rare case where YAML 1.1 and ruamel's YAML 1.2 read the source differently (``0777``,
``on:`` as a key), the patched data is written fresh instead: correct, without the comments.
"""

from __future__ import annotations

import copy
import io
import re
from collections.abc import MutableMapping, MutableSequence
from typing import Any

import jsonpatch
import jsonpointer
import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import YAMLError as RuamelError
from ruamel.yaml.representer import RoundTripRepresenter
from ruamel.yaml.scalarstring import (
    DoubleQuotedScalarString,
    LiteralScalarString,
    SingleQuotedScalarString,
)

from hub.flows.bounds import DocumentLimits
from hub.flows.checks import read_yaml, shorten

#: Lines are never wrapped: an expression stays on its line, whatever its length.
NO_WRAP = 1 << 30
_INDEX = re.compile(r"0|[1-9][0-9]*")
_PYYAML_RESOLVER = yaml.resolver.Resolver()
_STR_TAG = "tag:yaml.org,2002:str"
_UNICODE_BREAKS = "\r\x85\u2028\u2029"
_NON_PRINTABLE = yaml.reader.Reader.NON_PRINTABLE


class PatchError(ValueError):
    """A patch that cannot be applied; ``path`` is the JSON Pointer at fault, ``index`` the
    operation's position in the patch (0-based)."""

    def __init__(self, index: int, op: str, path: str, message: str) -> None:
        super().__init__(f"operation {index} ({op}) at '{path}': {message}")
        self.index = index
        self.op = op
        self.path = path
        self.message = message


# --- Writing ---------------------------------------------------------------------------------


class _SourceFloat(float):
    """A float read from the source, written back exactly as it was written there (ruamel's
    own float writes can change the last digit)."""

    source: str


class _Constructor(RoundTripConstructor):
    """ruamel's round-trip constructor, keeping each float's text."""

    def construct_source_float(self, node: Any) -> Any:
        value = super().construct_yaml_float(node)
        if not isinstance(node.value, str) or not isinstance(value, float):
            return value
        kept = _SourceFloat(value)
        kept.source = node.value
        return kept


_Constructor.add_constructor("tag:yaml.org,2002:float", _Constructor.construct_source_float)


class _Representer(RoundTripRepresenter):
    """ruamel's round-trip representer: floats read from the source as they were written,
    new floats as PyYAML writes them (``1e+20`` is a string to YAML 1.1: ``1.0e+20``)."""

    def represent_source_float(self, data: _SourceFloat) -> Any:
        """A float of the source, in its own words."""
        return self.represent_scalar("tag:yaml.org,2002:float", data.source)

    def represent_plain_float(self, data: float) -> Any:
        """A finite float as PyYAML writes it (``1e+20`` is a string to YAML 1.1: ``1.0e+20``)."""
        if data != data or data in (float("inf"), float("-inf")):
            value = ".nan" if data != data else (".inf" if data > 0 else "-.inf")
        else:
            value = repr(data).lower()
            if "." not in value and "e" in value:
                value = value.replace("e", ".0e", 1)
        return self.represent_scalar("tag:yaml.org,2002:float", value)


_Representer.add_representer(float, _Representer.represent_plain_float)
_Representer.add_representer(_SourceFloat, _Representer.represent_source_float)


def _yaml(mapping: int = 2, sequence: int = 4, offset: int = 2) -> YAML:
    """A round-trip YAML instance: quotes kept, no wrapping, the indentation given."""
    instance = YAML(typ="rt")
    instance.Representer = _Representer
    instance.Constructor = _Constructor
    instance.preserve_quotes = True
    instance.width = NO_WRAP
    instance.allow_unicode = True
    instance.indent(mapping=mapping, sequence=sequence, offset=offset)
    return instance


def _resolve(text: str) -> str:
    """The tag PyYAML (YAML 1.1, the hub's reader) gives ``text`` written plain."""
    tag: str = _PYYAML_RESOLVER.resolve(yaml.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
    return tag


def _string(text: str) -> Any:
    """A new string, styled so it reads back as the same string: a ``|`` block when it has
    several lines, quoted when YAML 1.1 would read it plain as something else (``yes``,
    ``1:20``, ``2024-01-01``, ``null``)."""
    if any(ch in text for ch in _UNICODE_BREAKS) or _NON_PRINTABLE.search(text):
        return DoubleQuotedScalarString(text)  # escaped: a block would hold them raw
    if "\n" in text:
        return LiteralScalarString(text)
    if _resolve(text) != _STR_TAG:
        return SingleQuotedScalarString(text)
    return text


def _node(value: Any) -> Any:
    """A JSON value as a round-trip tree (mappings, sequences and styled strings)."""
    if isinstance(value, dict):
        mapping = CommentedMap()
        for key, item in value.items():
            mapping[_string(key) if isinstance(key, str) else key] = _node(item)
        return mapping
    if isinstance(value, list):
        return CommentedSeq(_node(item) for item in value)
    if isinstance(value, str):
        return _string(value)
    return value


def _dump(tree: Any, instance: YAML) -> str:
    out = io.StringIO()
    instance.dump(tree, out)
    return out.getvalue()


def dump_yaml(document: Any) -> str:
    """A document as fresh YAML: keys in the order given, block style, ``|`` for a
    multi-line string, no line ever wrapped."""
    return _dump(_node(document), _yaml())


# --- Reading the source's indentation ---------------------------------------------------------


def _indentation(source: str) -> tuple[int, int, int]:
    """``(mapping, sequence, offset)`` as the source indents (ruamel's ``indent``), from its
    first nested mapping and its first block sequence; ``(2, 4, 2)`` where it has none."""
    mapping: int | None = None
    offset: int | None = None
    key_only: int | None = None  # indentation of the last ``key:`` line
    for line in source.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        lead = len(line) - len(line.lstrip(" "))
        if key_only is not None and lead > key_only:
            if stripped.startswith("- ") or stripped == "-":
                offset = lead - key_only if offset is None else offset
            elif mapping is None:
                mapping = lead - key_only
        if mapping is not None and offset is not None:
            break
        key_only = lead if stripped.endswith(":") and not stripped.startswith("- ") else None
        if stripped.startswith("- ") and stripped.endswith(":"):
            key_only = lead + 2
    mapping = mapping if mapping and mapping <= 8 else 2
    offset = offset if offset is not None and offset <= 8 else 2
    return mapping, offset + 2, offset


# --- Comments between items -------------------------------------------------------------------
# ruamel keeps the full-line comments written before an item at the end of the previous item
# (in the comment slot of that item's deepest last scalar, after its end-of-line comment), so
# that they follow the wrong item once an item is removed or inserted. These helpers move them
# to stay before the item they were written above.


def _tail(container: Any, key: Any) -> tuple[dict[Any, Any], Any, int]:
    """``(ca.items, key, slot)``: where the comment after the last scalar of the item at
    ``key`` in ``container`` is kept (its deepest last item's, for a block collection)."""
    while True:
        value = container[key]
        if (
            isinstance(value, CommentedMap | CommentedSeq)
            and len(value) > 0
            and not value.fa.flow_style()
        ):
            container = value
            key = next(reversed(value)) if isinstance(value, CommentedMap) else len(value) - 1
            continue
        return container.ca.items, key, 2 if isinstance(container, CommentedMap) else 0


def _split_tail(container: Any, key: Any) -> tuple[str, str, Any]:
    """The comment after the item's last scalar (:func:`_tail`), cut in two: the end-of-line
    comment (with its newline, or ``""``) and the full lines after it (the comments above
    what follows); with the token holding them (or ``None``)."""
    items, key, slot = _tail(container, key)
    entry = items.get(key)
    token = entry[slot] if entry and len(entry) > slot else None
    if token is None or not isinstance(getattr(token, "value", None), str):
        return "", "", None
    value: str = token.value
    cut = value.find("\n") + 1 if "\n" in value else len(value)
    return value[:cut], value[cut:], token


def _set_tail(container: Any, key: Any, eol: str, rest: str, model: Any) -> None:
    """Set the comment after the item's last scalar (``model``: a token to copy)."""
    if model is None:
        return
    items, key, slot = _tail(container, key)
    entry = items.get(key)
    value = (eol or "\n") + rest if rest else eol
    if not value:
        if entry and len(entry) > slot:
            entry[slot] = None
        return
    if entry is None:
        entry = items[key] = [None, None, None, None]
    token = copy.copy(entry[slot] if entry[slot] is not None else model)  # may be shared
    token.value = value
    entry[slot] = token


def _fit_value_comments(container: Any, key: Any) -> None:
    """The comments between a mapping's key and a block value below it go when the value
    is now written on the key's line (a scalar, ``{}`` or ``[]``), and the key's own for a
    flow collection: ruamel would write them where the value then no longer reads."""
    if not isinstance(container, CommentedMap) or key not in container:
        return
    value = container[key]
    if isinstance(value, CommentedMap | CommentedSeq) and value and not value.fa.flow_style():
        return
    entry = container.ca.items.get(key)
    if entry and len(entry) > 3:
        entry[3] = None
        if isinstance(value, CommentedMap | CommentedSeq):
            entry[2] = None  # ruamel writes it before a "{}" or "[]" value, on its own line


def _key(container: Any, position: int) -> Any:
    return list(container)[position] if isinstance(container, CommentedMap) else position


def _before_remove(container: Any, position: int) -> None:
    """Removing item ``position``: the comments above the next item stay above it."""
    if position == 0 or not isinstance(container, CommentedMap | CommentedSeq):
        return
    previous, key = _key(container, position - 1), _key(container, position)
    eol, _, prev_token = _split_tail(container, previous)
    _, rest, token = _split_tail(container, key)
    _set_tail(container, previous, eol, rest, prev_token or token)


def _after_insert(container: Any, position: int) -> None:
    """Inserted at ``position``: the comments above the item that was there stay above it."""
    if position == 0 or position + 1 >= len(container) or not isinstance(container, CommentedSeq):
        return
    eol, rest, token = _split_tail(container, position - 1)
    if rest:
        _set_tail(container, position - 1, eol, "", token)
        _set_tail(container, position, "", rest, token)


# --- Applying a patch to the round-trip tree --------------------------------------------------


def _parts(path: str, index: int, op: str) -> list[str]:
    """The reference tokens of a JSON Pointer (``~1`` is ``/``, ``~0`` is ``~``)."""
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(index, op, path, "a JSON Pointer starts with '/' (or is '' for all)")
    return [jsonpointer.unescape(p) for p in path[1:].split("/")]


class _Tree:
    """The round-trip tree of one document, edited by JSON Pointer."""

    def __init__(self, root: Any) -> None:
        self.root = root

    def _parent(self, parts: list[str], index: int, op: str, path: str) -> Any:
        node = self.root
        walked = ""
        for part in parts[:-1]:
            walked += "/" + jsonpointer.escape(part)
            if isinstance(node, MutableMapping):
                if part not in node:
                    raise PatchError(index, op, path, f"'{walked}' does not exist")
                node = node[part]
            elif isinstance(node, MutableSequence):
                node = node[self._index(node, part, index, op, path, walked)]
            else:
                raise PatchError(index, op, path, f"'{walked}' is inside a scalar")
        return node

    @staticmethod
    def _index(
        seq: MutableSequence[Any], part: str, index: int, op: str, path: str, where: str
    ) -> int:
        if not _INDEX.fullmatch(part):
            raise PatchError(index, op, path, f"'{part}' is not a list index (at '{where}')")
        position = int(part)
        if position >= len(seq):
            raise PatchError(
                index, op, path, f"no item {position} in a list of {len(seq)} (at '{where}')"
            )
        return position

    def get(self, path: str, index: int, op: str) -> Any:
        parts = _parts(path, index, op)
        if not parts:
            return self.root
        parent = self._parent(parts, index, op, path)
        last = parts[-1]
        if isinstance(parent, MutableMapping):
            if last not in parent:
                raise PatchError(index, op, path, f"'{path}' does not exist")
            return parent[last]
        if isinstance(parent, MutableSequence):
            return parent[self._index(parent, last, index, op, path, path)]
        raise PatchError(index, op, path, "the parent is a scalar")

    def add(self, path: str, value: Any, index: int, op: str) -> None:
        parts = _parts(path, index, op)
        if not parts:
            self.root = value
            return
        parent = self._parent(parts, index, op, path)
        last = parts[-1]
        if isinstance(parent, MutableMapping):
            parent[last if last in parent else _string(last)] = value
            _fit_value_comments(parent, last)
        elif isinstance(parent, MutableSequence):
            if last == "-":
                parent.append(value)
                return
            if not _INDEX.fullmatch(last) or int(last) > len(parent):
                raise PatchError(
                    index, op, path, f"'{last}' is not a position in a list of {len(parent)}"
                )
            parent.insert(int(last), value)
            _after_insert(parent, int(last))
        else:
            raise PatchError(index, op, path, "the parent is a scalar")

    def remove(self, path: str, index: int, op: str) -> Any:
        parts = _parts(path, index, op)
        if not parts:
            raise PatchError(index, op, path, "the whole document cannot be removed")
        value = self.get(path, index, op)
        parent = self._parent(parts, index, op, path)
        if isinstance(parent, MutableMapping):
            _before_remove(parent, list(parent).index(parts[-1]))
            del parent[parts[-1]]
            if isinstance(parent, CommentedMap):
                parent.ca.items.pop(parts[-1], None)
        else:
            _before_remove(parent, int(parts[-1]))
            del parent[int(parts[-1])]
        if not parent and isinstance(parent, CommentedMap | CommentedSeq):
            # Written "{}" or "[]": no comment can stay inside (ruamel would write it where
            # it breaks the YAML).
            parent.ca.items.clear()
            if len(parts) > 1:  # the document's own first comments stay above "{}"
                parent.ca.comment = None
                _fit_value_comments(self._parent(parts[:-1], index, op, path), parts[-2])
        return value

    def replace(self, path: str, value: Any, index: int, op: str) -> None:
        parts = _parts(path, index, op)
        if not parts:
            self.root = value
            return
        self.get(path, index, op)  # it must exist
        parent = self._parent(parts, index, op, path)
        if isinstance(parent, MutableMapping):
            parent[parts[-1]] = value
            _fit_value_comments(parent, parts[-1])
        else:
            parent[int(parts[-1])] = value


def _apply_to_tree(tree: _Tree, op: dict[str, Any], index: int) -> None:
    """Apply one operation to the round-trip tree (``test`` is judged on the data)."""
    name = str(op.get("op", ""))
    path = op.get("path")
    if not isinstance(path, str):
        raise PatchError(index, name, str(path), "the operation has no string 'path'")
    if name in ("add", "replace"):
        if "value" not in op:
            raise PatchError(index, name, path, "the operation has no 'value'")
        value = _node(op["value"])
        (tree.add if name == "add" else tree.replace)(path, value, index, name)
    elif name == "remove":
        tree.remove(path, index, name)
    elif name in ("move", "copy"):
        source = op.get("from")
        if not isinstance(source, str):
            raise PatchError(index, name, path, "the operation has no string 'from'")
        if name == "move":
            if source == path:
                return
            if path.startswith(source + "/"):
                raise PatchError(index, name, path, f"'{source}' cannot move into itself")
            tree.add(path, tree.remove(source, index, name), index, name)
        else:
            tree.add(path, copy.deepcopy(tree.get(source, index, name)), index, name)
    elif name == "test":
        tree.get(path, index, name)
    else:
        raise PatchError(index, name, path, f"unknown operation '{name}'")


def _apply_to_data(data: Any, op: dict[str, Any], index: int) -> Any:
    """Apply one operation to the plain data with ``jsonpatch`` (the semantics of record)."""
    try:
        return jsonpatch.apply_patch(data, [op], in_place=True)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, LookupError) as exc:
        raise PatchError(
            index, str(op.get("op", "")), str(op.get("path", "")), shorten(str(exc), 200)
        ) from None


# --- The round trip ---------------------------------------------------------------------------


def apply_patch_to_yaml(
    source: str,
    ops: list[dict[str, Any]],
    *,
    document: Any = None,
    limits: DocumentLimits | None = None,
) -> str:
    """``source`` with the JSON Patch ``ops`` applied, as YAML text that keeps the source's
    comments, key order, indentation and untouched scalars' styles.

    An empty (or blank) ``source`` starts from ``dump_yaml(document)`` (``{}`` when
    ``document`` is ``None``). Raises :class:`~hub.flows.checks.TextError` for a source
    ``read_yaml`` refuses (bad YAML, past ``limits``) and :class:`PatchError`, naming the
    operation and its path, for an operation that cannot be applied.
    """
    if not source.strip():
        source = dump_yaml({} if document is None else document)
    data = read_yaml(source, limits)  # the truth; refuses what the hub refuses
    try:
        instance = _yaml(*_indentation(source))
        tree: _Tree | None = _Tree(instance.load(source))
    except (RuamelError, ValueError, RecursionError):
        tree = None  # YAML that PyYAML reads and ruamel does not: written fresh below
    for index, op in enumerate(ops):
        if not isinstance(op, dict):
            raise PatchError(index, "", "", "an operation is an object")
        if tree is not None:
            try:
                _apply_to_tree(tree, op, index)
            except PatchError as error:
                try:
                    data = _apply_to_data(data, op, index)
                except PatchError:
                    raise error from None  # the tree's message names the path better
                tree = None  # the two readings diverged: the data goes on alone
                continue
            except Exception:  # ruamel's own bookkeeping of comments failed
                tree = None
        data = _apply_to_data(data, op, index)
    if tree is not None:
        try:
            text = _dump(tree.root, instance)
            if same_data(read_yaml(text, limits), data):
                return text
        except Exception:  # ruamel refused its own tree, or wrote what does not read back
            pass
    return dump_yaml(data)


def same_data(left: Any, right: Any) -> bool:
    """True when two JSON values are equal with their types and key order (``1`` is not
    ``True`` nor ``1.0``, ``{"a": 1, "b": 2}`` is not ``{"b": 2, "a": 1}``)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return list(left) == list(right) and all(same_data(v, right[k]) for k, v in left.items())
    if isinstance(left, list):
        return len(left) == len(right) and all(map(same_data, left, right))
    return bool(left == right)
