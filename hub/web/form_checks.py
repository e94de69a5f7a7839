"""Checking a page's form with the API's own request models, so that a form and the API
accept exactly the same values (one truth), and telling people which field is wrong in
their words rather than msgspec's."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec

T = TypeVar("T")
FIELD_OF = re.compile(r"(?:at `\$\.(\w+)|field `(\w+)`)")


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
