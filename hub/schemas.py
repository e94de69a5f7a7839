"""Compiled JSON Schema validators, kept in a process-local LRU (code, not data).

Also finds the JSON Schemas the hub ships (``schemas/``, installed as ``hub/schemas``).
"""

from __future__ import annotations

import functools
import json
import threading
from pathlib import Path
from typing import Any

from cachetools import LRUCache
from jsonschema import Draft202012Validator, FormatChecker

_VALIDATORS: LRUCache[int, tuple[Any, Draft202012Validator]] = LRUCache(maxsize=2048)
_LOCK = threading.Lock()
_FORMATS = FormatChecker()


def validator_for(schema: Any) -> Draft202012Validator:
    """The compiled validator of a schema object (cached by identity; schemas are immutable)."""
    with _LOCK:  # flows are validated in worker threads too (services.flows.validate)
        entry = _VALIDATORS.get(id(schema))
    if entry is not None and entry[0] is schema:
        return entry[1]
    validator = Draft202012Validator(schema, format_checker=_FORMATS)
    with _LOCK:
        _VALIDATORS[id(schema)] = (schema, validator)
    return validator


def location_of(base: str, path: Any) -> str:
    """``base`` followed by a JSON path: ``steps[1].input`` + ``["tags", 0]`` -> ``...tags[0]``."""
    out = base
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def schema_errors(schema: Any, value: Any, location: str) -> list[str]:
    """Every way ``value`` breaks ``schema``, each as ``location.path: message``."""
    if not schema:
        return []
    validator = validator_for(schema)
    errors = sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{location_of(location, e.absolute_path)}: {e.message}" for e in errors]


def shipped_path(folder: str) -> Path:
    """A folder the wheel ships inside the package (``schemas``, ``ui``).

    In a wheel it is ``hub/<folder>/`` (beside this module: the data folder ``hub/schemas/``
    has no ``__init__.py``, so ``import hub.schemas`` still finds this module); in a source
    checkout it is the repository's top-level folder.
    """
    here = Path(__file__).resolve().parent
    inside = here / folder
    return inside if inside.is_dir() else here.parent / folder


def schema_path(name: str) -> Path:
    """The path of a JSON Schema that the hub ships (``flow.schema.json`` ...)."""
    return shipped_path("schemas") / name


@functools.cache
def load_schema(name: str) -> dict[str, Any]:
    """A shipped JSON Schema, parsed once."""
    schema: dict[str, Any] = json.loads(schema_path(name).read_text())
    return schema
