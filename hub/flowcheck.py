"""Helpers of flow validation: locations, the flow schema, JSON Schema errors as problems.

:mod:`hub.flows` builds its :class:`~hub.flows.FlowIssue` objects from the ``(location,
message)`` pairs returned here; this module knows nothing of flows beyond their schema, so it
has no import cycle with :mod:`hub.flows`.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from hub import schemas

Problem = tuple[str, str]
"""One problem found: ``(location, message)``, e.g. ``("steps[1].retry", "...")``."""

_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_MAX_MESSAGE = 300

# Where the flow schema lives: inside the package once installed (the wheel ships
# schemas/ as hub/schemas/), at the top of the repository in a source checkout.
_SCHEMA_CANDIDATES = (
    Path(__file__).resolve().parent / "schemas" / "flow.schema.json",
    Path(__file__).resolve().parent.parent / "schemas" / "flow.schema.json",
)

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


def join_location(base: str, path: Iterable[str | int]) -> str:
    """Append a JSON path to a location: ``("steps[1]", ["retry", "max"])`` -> ``steps[1].retry.max``.

    Integers become ``[i]``; keys that are identifier-like become ``.key``; any other key is
    quoted (``["X Header"]``) so that the location stays unambiguous.
    """
    location = base
    for part in path:
        if isinstance(part, int):
            location += f"[{part}]"
        elif _KEY_RE.match(part):
            location += f".{part}" if location else part
        else:
            location += f"[{json.dumps(part)}]"
    return location


def suggest(name: str, choices: Iterable[str]) -> str:
    """A ``"; did you mean 'x'?"`` suffix naming the closest choices, or ``""``."""
    close = difflib.get_close_matches(name, sorted(set(choices)), n=3, cutoff=0.6)
    if not close:
        return ""
    return "; did you mean " + " or ".join(f"'{c}'" for c in close) + "?"


def shorten(text: str, limit: int = _MAX_MESSAGE) -> str:
    """Cut ``text`` to ``limit`` characters (messages may quote large instances)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def flow_schema_path() -> Path:
    """The path of ``flow.schema.json`` (installed package first, then the source tree)."""
    for candidate in _SCHEMA_CANDIDATES:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        "flow.schema.json not found in " + ", ".join(str(c) for c in _SCHEMA_CANDIDATES)
    )


@functools.cache
def flow_schema() -> dict[str, Any]:
    """The flow document's JSON Schema (read once)."""
    with flow_schema_path().open(encoding="utf-8") as fh:
        schema: dict[str, Any] = json.load(fh)
    return schema


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


_LOCATION_TOKEN = re.compile(r'\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]|\.?([^.\[]+)')
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
            token = quoted if quoted is not None else name
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
    """The key JSON would write for a YAML scalar key (``200`` -> ``"200"``, ``true`` -> ``"true"``)."""
    return key if isinstance(key, str) else json.dumps(key, default=str)


def to_json_data(value: Any, path: Sequence[str | int], problems: list[Problem]) -> Any:
    """``value`` as JSON data: scalar keys become strings, as JSON would write them.

    Values JSON cannot hold (bytes, sets, dates from explicit YAML tags) are reported in
    ``problems`` at their location and kept as they are.
    """
    if isinstance(value, dict):
        return {
            _json_key(k): to_json_data(v, [*path, _json_key(k)], problems)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [to_json_data(v, [*path, i], problems) for i, v in enumerate(value)]
    if value is not None and not isinstance(value, str | int | float | bool):
        problems.append(
            (
                join_location("", path),
                f"a {type(value).__name__} is not JSON data "
                "(use a string, number, boolean, null, list or mapping)",
            )
        )
    return value
