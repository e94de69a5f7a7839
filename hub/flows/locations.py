"""The location of a place in a flow document, as its errors name it (``steps[1].retry.max``).

Its own module because both the document's bounds (:mod:`hub.flows.bounds`) and the
validation helpers (:mod:`hub.flows.checks`, which import the bounds) write locations.
"""

from __future__ import annotations

from collections.abc import Iterable


def join_location(base: str, path: Iterable[str | int], *, key_chars: int | None = None) -> str:
    """Append a JSON path to a location: ``steps[1]`` + ``["retry", "max"]`` -> ``...retry.max``.

    Integers become ``[i]``; identifier keys become ``.key``; any other key is quoted
    (``['X-Trace']``), as the expression errors of :mod:`hub.expressions` write it, cut to
    its first ``key_chars`` characters when given (a hostile document's key may be huge).
    """
    location = base
    for part in path:
        if isinstance(part, int):
            location += f"[{part}]"
        elif part.isidentifier():
            location += f".{part}" if location else part
        else:
            location += f"[{part[:key_chars]!r}]"
    return location
