"""Table and column names: validated, then checked against the reflected table.

A table name must look like an identifier (``^[A-Za-z_][A-Za-z0-9_$]*$``, at most 128
characters, optionally prefixed by a schema name of the same form: ``sales.orders``) and the
table must exist; a column must be one of the reflected table's columns. Statements are then
built with SQLAlchemy Core from the reflected :class:`~sqlalchemy.Table`, so identifiers are
quoted by the dialect and every value is a bound parameter.

Reflections are cached per engine for a short while; an unknown table or column triggers one
fresh reflection before it is refused, so a column added a moment ago is found.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import cachetools
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from hub import ActionError

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,127}$")
REFLECTION_TTL = 60.0

_cache: cachetools.TTLCache[tuple[str, str | None, str], sa.Table] = cachetools.TTLCache(
    maxsize=512, ttl=REFLECTION_TTL
)
_lock = threading.Lock()


def split_name(name: Any, where: str = "table") -> tuple[str | None, str]:
    """``(schema, table)`` from ``table`` or ``schema.table``; refuse anything else."""
    if not isinstance(name, str) or not name:
        raise ActionError(f"{where}: give a table name")
    parts = name.split(".")
    if len(parts) > 2 or not all(IDENTIFIER.match(p) for p in parts):
        raise ActionError(
            f"{where}: {name[:140]!r} is not a valid table name (letters, digits, _ and $, "
            "starting with a letter or _; optionally schema.table)"
        )
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


def _reflect(conn: sa.Connection, schema: str | None, name: str) -> sa.Table | None:
    inspector = sa.inspect(conn)
    if not inspector.has_table(name, schema=schema):
        return None
    try:
        return sa.Table(name, sa.MetaData(), schema=schema, autoload_with=conn)
    except sa_exc.NoSuchTableError:
        return None


def table(
    conn: sa.Connection, name: Any, columns: Iterable[str] = (), where: str = "table"
) -> sa.Table:
    """The reflected table ``name``, refusing unknown tables and unknown ``columns``."""
    schema, bare = split_name(name, where)
    wanted = list(columns)
    key = (str(conn.engine.url), schema, bare)
    with _lock:
        found = _cache.get(key)
    if found is None or any(c not in found.c for c in wanted):
        found = _reflect(conn, schema, bare)
        if found is None:
            raise ActionError(f"{where}: no table named {name!r} in this database")
        with _lock:
            _cache[key] = found
    return found


def column(tbl: sa.Table, name: Any, where: str) -> sa.Column[Any]:
    """The column ``name`` of a reflected table, or a clear refusal naming ``where``."""
    if not isinstance(name, str) or name not in tbl.c:
        known = ", ".join(c.name for c in tbl.columns)
        raise ActionError(
            f"{where}: table {tbl.name!r} has no column {str(name)[:140]!r} (columns: {known})"
        )
    return tbl.c[name]


def check_columns(tbl: sa.Table, names: Iterable[Any], where: str) -> None:
    """Refuse any name that is not a column of ``tbl``."""
    for name in names:
        column(tbl, name, f"{where}.{name}" if isinstance(name, str) else where)


def table_for(
    conn: sa.Connection, name: Any, mappings: Iterable[Mapping[str, Any]], where: str = "table"
) -> sa.Table:
    """The table, reflected again once if any key of ``mappings`` is not yet a known column."""
    names: set[str] = set()
    for mapping in mappings:
        names.update(str(k) for k in mapping)
    return table(conn, name, sorted(names), where)


def forget_reflections() -> None:
    """Drop every cached reflection (tests that change a table's shape use it)."""
    with _lock:
        _cache.clear()
