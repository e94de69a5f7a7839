"""Values in and out: JSON from the flow to typed bind parameters, database values to JSON.

Out (rows the actions and the trigger return):

- ``datetime``, ``date``, ``time``: ISO 8601 strings (with the offset when the database
  gives one);
- ``Decimal``: a string, so no digit is lost (``"12.50"``; use ``| float`` in a flow when a
  number is wanted);
- ``bytes``: base64 (standard alphabet, padded);
- ``UUID``: its string; ``timedelta``: seconds as a number; sets: sorted lists.

In (values given to insert, upsert, update, delete and the trigger cursor): a string given
for a date/time column is parsed as ISO 8601, a string for a binary column is decoded from
base64, a number for a decimal column becomes a ``Decimal``, and a mapping or list given for a
column that is neither JSON nor an array is stored as JSON text. Everything is bound as a
parameter.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
import json
import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from hub import ActionError


def to_json(value: Any) -> Any:
    """A database value as JSON-compatible data (see the module docstring)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted(to_json(v) for v in value)
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return str(value)


def row_to_json(row: sa.Row[Any]) -> dict[str, Any]:
    """A result row as a mapping of column name to JSON value."""
    return {str(k): to_json(v) for k, v in row._mapping.items()}


def _python_type(column: sa.Column[Any]) -> type | None:
    try:
        return column.type.python_type
    except NotImplementedError:
        return None


def coerce(column: sa.Column[Any], value: Any, where: str) -> Any:
    """A JSON value converted for ``column``'s type; errors name ``where``."""
    if value is None:
        return None
    if isinstance(column.type, sa.JSON):
        return value
    kind = _python_type(column)
    try:
        if isinstance(value, str):
            if kind is dt.datetime:
                return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            if kind is dt.date:
                return dt.date.fromisoformat(value)
            if kind is dt.time:
                return dt.time.fromisoformat(value)
            if kind is bytes:
                return base64.b64decode(value, validate=True)
            if kind is decimal.Decimal:
                return decimal.Decimal(value)
            if kind is uuid.UUID and getattr(column.type, "as_uuid", False):
                return uuid.UUID(value)
        elif isinstance(value, float | int) and not isinstance(value, bool):
            if kind is decimal.Decimal:
                return decimal.Decimal(str(value))
        elif isinstance(value, Mapping | list) and kind not in (list, dict):
            return json.dumps(value, ensure_ascii=False)  # e.g. a JSON document in a TEXT column
    except (ValueError, binascii.Error, decimal.InvalidOperation) as exc:
        type_name = kind.__name__ if kind else str(column.type)
        raise ActionError(f"{where}: {value!r} is not a valid {type_name}: {exc}") from None
    return value
