"""Helpers of flow validation: locations, the flow schema, JSON Schema errors as problems.

:mod:`hub.flows` and :mod:`hub.flows.validate` build their :class:`~hub.flows.FlowIssue`
objects from the ``(location, message)`` pairs returned here; this module knows nothing of
flows beyond their schema, so it has no import cycle with either.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from hub import schemas
from hub.flows import bounds
from hub.flows.bounds import DocumentLimits
from hub.flows.locations import join_location

Problem = tuple[str, str]
"""One problem found: ``(location, message)``, e.g. ``("steps[1].retry", "...")``."""

_MAX_MESSAGE = 300

# Keywords whose errors are decided by parts of the instance outside the error's own subtree
# (``then``/``else`` depend on how ``if`` judged the parent): never trusted on templated input.
_CONDITIONAL_KEYWORDS = frozenset({"then", "else"})

# Keywords that judge a container by its shape only (its keys, its length, its own type),
# which rendering cannot change: trusted even when some of the container's values are
# templates.
_SHAPE_KEYWORDS = frozenset(
    {
        "type",
        "required",
        "dependentRequired",
        "additionalProperties",
        "minProperties",
        "maxProperties",
        "minItems",
        "maxItems",
    }
)


def suggest(name: str, choices: Iterable[str]) -> str:
    """A ``"; did you mean 'x'?"`` suffix naming the closest choices, or ``""``."""
    close = difflib.get_close_matches(name, sorted(set(choices)), n=3, cutoff=0.6)
    if not close:
        return ""
    return "; did you mean " + " or ".join(f"'{c}'" for c in close) + "?"


def shorten(text: str, limit: int = _MAX_MESSAGE) -> str:
    """Cut ``text`` to ``limit`` characters (messages may quote large instances)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def flow_schema() -> dict[str, Any]:
    """The flow document's JSON Schema, ``schemas/flow.schema.json`` (read once)."""
    return schemas.load_schema("flow.schema.json")


@functools.cache
def flow_validator() -> Draft202012Validator:
    """The compiled validator of the flow schema (built once per process)."""
    schema = flow_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def validator_for(schema: Mapping[str, Any] | bool) -> Draft202012Validator:
    """The cached validator of an action's or trigger's schema (the one the engine uses)."""
    return schemas.validator_for(schema)


def _problems_of(error: ValidationError, base: str) -> list[Problem]:
    """Turn one jsonschema error into clear problems at precise locations."""
    location = join_location(base, [p for p in error.absolute_path if isinstance(p, str | int)])
    schema = error.schema if isinstance(error.schema, dict) else {}
    validator = str(error.validator)
    custom = schema.get("x-messages", {})
    if isinstance(custom, dict) and validator in custom:
        got = shorten(json.dumps(error.instance, default=str), 80)
        return [(location, f"{custom[validator]} (got {got})")]
    if (
        validator == "additionalProperties"
        and schema.get("additionalProperties") is False
        and isinstance(error.instance, dict)
    ):
        known = schema.get("properties", {})
        patterns = schema.get("patternProperties", {})
        extras = [
            key
            for key in error.instance
            if key not in known and not any(re.search(p, str(key)) for p in patterns)
        ]
        if extras:
            problems = []
            for key in extras:
                hint = suggest(str(key), known) or (
                    f" (allowed: {', '.join(sorted(known))})" if known else ""
                )
                problems.append((join_location(location, [str(key)]), f"unknown field{hint}"))
            return problems
    return [(location, shorten(error.message))]


def schema_problems(
    validator: Draft202012Validator, instance: Any, base: str = ""
) -> list[Problem]:
    """Every error of ``instance`` against ``validator``, located under ``base``."""
    problems: list[Problem] = []
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.path)))
    for error in errors:
        problems.extend(_problems_of(error, base))
    return problems


def is_static_value(value: Any, is_template: Callable[[str], bool]) -> bool:
    """True when ``value`` holds no template anywhere (keys included)."""
    if isinstance(value, str):
        return not is_template(value)
    if isinstance(value, dict):
        return all(
            not (isinstance(k, str) and is_template(k)) and is_static_value(v, is_template)
            for k, v in value.items()
        )
    if isinstance(value, list):
        return all(is_static_value(v, is_template) for v in value)
    return True


def _has_static_shape(value: Any, is_template: Callable[[str], bool]) -> bool:
    """True for a dict or list whose shape (keys, length) rendering cannot change."""
    if isinstance(value, dict):
        return not any(isinstance(k, str) and is_template(k) for k in value)
    return isinstance(value, list)


def partial_problems(
    validator: Draft202012Validator,
    instance: Any,
    base: str,
    is_template: Callable[[str], bool],
) -> list[Problem]:
    """The errors of a partly templated ``instance`` that no rendering could cure.

    A template may render to any value (a string that is exactly one ``{{ ... }}`` keeps its
    native type), so an error is kept only when it is decided by static data alone: either
    the value it is about holds no template at all, or the keyword judges a container by its
    shape (a missing required key, an unknown key, a wrong count of items). Errors that went
    through ``then``/``else`` are dropped, because ``if`` may have looked at a template.
    """
    problems: list[Problem] = []
    for error in validator.iter_errors(instance):
        if _CONDITIONAL_KEYWORDS.intersection(map(str, error.absolute_schema_path)):
            continue
        if is_static_value(error.instance, is_template) or (
            error.validator in _SHAPE_KEYWORDS and _has_static_shape(error.instance, is_template)
        ):
            problems.extend(_problems_of(error, base))
    return problems


def iter_leaves(value: Any, base: str) -> Iterable[tuple[str, str]]:
    """Every string inside ``value`` (keys excluded) with its location."""
    if isinstance(value, str):
        yield base, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from iter_leaves(item, join_location(base, [str(key)]))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from iter_leaves(item, join_location(base, [index]))


_LOCATION_TOKEN = re.compile(
    r"""\[(\d+)\]|\[('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")\]|\.?([^.\[]+)"""
)
_TOP_ORDER = {"": 0, "id": 1, "name": 2, "description": 3, "trigger": 4, "steps": 5, "output": 6}


def location_key(location: str) -> tuple[tuple[int, int | str], ...]:
    """A sort key putting locations in document order (``steps[2]`` before ``steps[10]``)."""
    if location.startswith("line "):
        numbers = [int(n) for n in re.findall(r"\d+", location)]
        return ((-1, 0), *((0, n) for n in numbers))
    parts: list[tuple[int, int | str]] = []
    for match in _LOCATION_TOKEN.finditer(location):
        index, quoted, name = match.groups()
        if index is not None:
            parts.append((0, int(index)))
        else:
            token = quoted[1:-1] if quoted is not None else name
            if not parts:
                parts.append((0, _TOP_ORDER.get(token, len(_TOP_ORDER))))
            parts.append((1, token))
    return tuple(parts)


def first_content_position(text: str) -> tuple[int, int]:
    """1-based line and column of the first character that is not blank, a comment or ``---``."""
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "%")) or stripped == "---":
            continue
        return number, len(line) - len(line.lstrip()) + 1
    return 1, 1


def _json_key(key: Any) -> str:
    """The key JSON would write for a YAML scalar key (``200`` -> ``"200"``, ``true``)."""
    return key if isinstance(key, str) else json.dumps(key, default=str)


# About 1,000 decimal digits: YAML's hex, octal and binary ints skip int()'s 4,300-digit
# limit, and a number past it could not be written back as JSON.
MAX_INT_BITS = 3_300


def to_json_data(value: Any, path: Sequence[str | int], problems: list[Problem]) -> Any:
    """``value`` as JSON data: scalar keys become strings, as JSON would write them.

    Values JSON cannot hold (bytes, sets, dates from explicit YAML tags) are reported in
    ``problems`` at their location and kept as they are.
    """
    if isinstance(value, dict):
        return {
            _json_key(k): to_json_data(v, [*path, _json_key(k)], problems) for k, v in value.items()
        }
    if isinstance(value, list):
        return [to_json_data(v, [*path, i], problems) for i, v in enumerate(value)]
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:  # 0b1..., 0x...
        problems.append((join_location("", path), "a number of more than 1,000 digits"))
    elif value is not None and not isinstance(value, str | int | float | bool):
        problems.append(
            (
                join_location("", path),
                f"a {type(value).__name__} is not JSON data "
                "(use a string, number, boolean, null, list or mapping)",
            )
        )
    return value


# --- Reading text with line and column locations ----------------------------------------


class TextError(ValueError):
    """Text that is not a readable document; ``location`` is ``line L, column C`` (1-based)."""

    def __init__(self, location: str, message: str) -> None:
        super().__init__(f"{location}: {message}" if location else message)
        self.location = location
        self.message = message


if TYPE_CHECKING:  # the stubs type the pure-Python loader; the C one has the same interface
    _YAML_BASE = yaml.SafeLoader
else:
    _YAML_BASE = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _FlowLoader(_YAML_BASE):
    """PyYAML's safe loader (the C one when available), refusing duplicate keys.

    Dates stay strings: a flow document is JSON data, and ``2024-01-01`` read as a
    ``datetime.date`` could not be stored or validated as JSON.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """Build a mapping, raising a located error on a key that appears twice."""
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _value_node in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # unhashable: the base constructor reports it
                    continue
                if first is not None:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"duplicate key {key!r} (first at line {first.line + 1})",
                        key_node.start_mark,
                    )
                seen[key] = key_node.start_mark
        result: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return result

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """Build a value; one its tag cannot read (a 5,000-digit int, ``!!float abc``,
        ``!!timestamp 2020-02-30``) is a located error, not a ``ValueError``."""
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError) as exc:
            reason = str(exc).split(";")[0]  # not Python's advice on sys.set_int_max_str_digits
            tag = node.tag.rsplit(":", 1)[-1]
            raise yaml.constructor.ConstructorError(
                None, None, f"this {tag} cannot be read: {reason}", node.start_mark
            ) from None


_FlowLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP_TAG]
    for first, resolvers in _YAML_BASE.yaml_implicit_resolvers.items()
}


class _DuplicateKeyError(ValueError):
    """A JSON object has the same key twice (the json module gives no position)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(key)
        result[key] = value
    return result


def _line_column(text: str, position: int) -> str:
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    return f"line {line}, column {column}"


def read_yaml(text: str, limits: DocumentLimits | None = None) -> Any:
    """Read YAML with the safe loader, within ``limits``; raise :class:`TextError` with the
    line and column.

    The text is composed into its node graph first (libyaml bounds the nesting it parses),
    the graph is measured with its aliases expanded (:func:`bounds.measure_yaml_graph`,
    linear in the text), and only a document within the limits is constructed.
    """
    loader = _FlowLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        bounds.measure_yaml_graph(node, limits or DocumentLimits())
        return loader.construct_document(node)
    except bounds.BoundExceeded as exc:
        raise TextError(exc.location, exc.message) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        location = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        message = exc.problem or exc.context or "invalid YAML"
        if exc.problem and exc.context:
            where = ""
            cmark = exc.context_mark
            if cmark is not None and mark is not None and cmark.line != mark.line:
                where = f" at line {cmark.line + 1}, column {cmark.column + 1}"
            message = f"{exc.problem} ({exc.context}{where})"
        raise TextError(location, message) from exc
    except yaml.reader.ReaderError as exc:
        message = f"character {exc.character!r} is not allowed ({exc.reason})"
        raise TextError(_line_column(text, exc.position), message) from exc
    except yaml.YAMLError as exc:
        raise TextError("", f"invalid YAML: {exc}") from exc
    except RecursionError:  # the pure-Python composer, without libyaml's nesting bound
        raise TextError("", "nested too deep for the YAML reader") from None
    finally:
        loader.dispose()


def read_json(text: str, limits: DocumentLimits | None = None) -> Any:
    """Read JSON (refusing duplicate keys) within ``limits``; raise :class:`TextError` with
    the line and column.

    The nesting depth is measured on the text before the decoder recurses into it
    (:func:`bounds.json_too_deep`); the decoded data is then counted against ``max_nodes``.
    """
    limits = limits or DocumentLimits()
    data = text.encode()
    deep_at = bounds.json_too_deep(data, limits.max_depth)
    if deep_at is not None:
        raise TextError(
            bounds.line_column(data, deep_at),
            f"nested deeper than {limits.max_depth} levels (HUB_MAX_DOCUMENT_DEPTH)",
        )
    try:
        value = json.loads(text, object_pairs_hook=_unique_pairs)
    except json.JSONDecodeError as exc:
        raise TextError(f"line {exc.lineno}, column {exc.colno}", exc.msg) from exc
    except _DuplicateKeyError as exc:
        # JSON is YAML: the YAML reader of the same text gives the duplicate's position.
        try:
            read_yaml(text, limits)
        except TextError as located:
            if "duplicate key" in located.message:
                raise located from exc
        raise TextError("", f"duplicate key {exc.key!r}") from exc
    except ValueError as exc:  # a number of more than 4,300 digits
        raise TextError("", f"a value cannot be read: {str(exc).split(';')[0]}") from None
    try:
        bounds.measure_value(value, limits)
    except bounds.BoundExceeded as exc:
        raise TextError(exc.location, exc.message) from None
    return value


# --- The step graph ------------------------------------------------------------------------


def find_cycles(needs: Mapping[str, Sequence[str]], order: Mapping[str, int]) -> list[list[str]]:
    """Cycles of the ``needs`` graph, each once, starting at its first step in ``order``.

    ``needs`` maps a step to the steps it waits for (names outside ``needs`` are ignored);
    a cycle ``[a, b]`` reads "a needs b, b needs a". Depth-first and iterative, so a long
    chain of steps cannot exhaust the recursion limit.
    """
    white, gray, black = 0, 1, 2
    color = dict.fromkeys(needs, white)
    cycles: list[list[str]] = []
    seen: set[frozenset[str]] = set()
    for start in needs:
        if color[start] != white:
            continue
        color[start] = gray
        path = [start]
        stack = [iter(needs[start])]
        while stack:
            following = next(stack[-1], None)
            if following is None:
                color[path.pop()] = black
                stack.pop()
            elif color.get(following) == white:
                color[following] = gray
                path.append(following)
                stack.append(iter(needs[following]))
            elif color.get(following) == gray:
                loop = path[path.index(following) :]
                if frozenset(loop) not in seen:
                    seen.add(frozenset(loop))
                    at = loop.index(min(loop, key=lambda s: order.get(s, 0)))
                    cycles.append(loop[at:] + loop[:at])
    return cycles


def transitive_needs(needs: Mapping[str, Sequence[str]], start: str) -> frozenset[str]:
    """Every step ``start`` waits for, directly or not (terminates on cycles too)."""
    found: set[str] = set()
    pending = list(needs.get(start, ()))
    while pending:
        current = pending.pop()
        if current not in found:
            found.add(current)
            pending.extend(needs.get(current, ()))
    return frozenset(found)
