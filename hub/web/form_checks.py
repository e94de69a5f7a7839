"""Checking a page's form with the API's own request models, so that a form and the API
accept exactly the same values (one truth), and telling people which field is wrong in
their words rather than msgspec's; and reading a time typed in a form or a filter."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec

T = TypeVar("T")
FIELD_OF = re.compile(r"(?:at `\$\.(\w+)|field `(\w+)`)")


def form_text(data: Mapping[str, Any], key: str, limit: int) -> str:
    """A form field as text ("" when absent or not text, such as a file), cut to ``limit``
    characters."""
    value = data.get(key, "")
    return (value if isinstance(value, str) else "")[:limit]


def checked(
    values: Mapping[str, Any], model: type[T], messages: Mapping[str, str]
) -> tuple[T | None, dict[str, str]]:
    """``values`` as an instance of the API model ``model``, or None and the errors by
    field (``messages[field]``, else a general one; msgspec reports the first error only)."""
    try:
        return msgspec.convert(dict(values), model), {}
    except msgspec.ValidationError as exc:
        found = FIELD_OF.search(str(exc))
        field = (found.group(1) or found.group(2)) if found else ""
        return None, {field: messages.get(field, "This value is not valid.")}


def utc_micros(text: str, *, end: bool = False) -> int | None:
    """Epoch microseconds of a time typed in a form or a filter (an ISO date, or a date and
    time such as ``YYYY-MM-DDTHH:MM`` as a ``datetime-local`` input sends it; UTC unless it
    names its offset), or None when ``text`` is empty. A date alone as the ``end`` of a
    range includes that whole day. ValueError when it is not a time (OverflowError when
    the day after is past the calendar's end)."""
    if not text:
        return None
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    if end and len(text) == 10:  # a date: up to the end of that day
        moment += dt.timedelta(days=1)
    return int(moment.timestamp() * 1_000_000)


def utc_text(micros: int, *, seconds: bool = False) -> str:
    """Epoch microseconds as a ``datetime-local`` input holds a time (UTC, no zone):
    ``YYYY-MM-DDTHH:MM`` (``:SS`` too with ``seconds``)."""
    moment = dt.datetime.fromtimestamp(micros / 1_000_000, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S" if seconds else "%Y-%m-%dT%H:%M")
