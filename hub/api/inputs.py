"""Text the API refuses wherever it arrives: the NUL character (U+0000).

PostgreSQL stores no NUL in text: a path segment, a query parameter or a body field holding
one reached a query as a parameter and failed there (a 500 on PostgreSQL, while SQLite
accepted it). No name, id, filter or message of the hub needs it, so
:class:`NulCharacterMiddleware` answers 400 ``bad_request`` in the error shape, naming the
place, before authentication and before any handler:

- the path (``%00`` in a segment), for every route, the webhook route included;
- the query string (``%00`` or a raw NUL), naming the parameter;
- a JSON body that a route decodes (the same routes :mod:`hub.api.bodies` scans: the webhook
  route reads its own stream, and keeps NUL in its trigger data, a JSON column), when it
  holds the escape ``\\u0000`` outside an escaped backslash.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from litestar import Request
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from hub.api.bodies import has_body, route_reads_body
from hub.api.errors import ApiError
from hub.flows.bounds import line_column

# ``\u0000`` preceded by an even number of backslashes (``\\u0000`` is the text, not NUL).
JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def refused(location: str) -> ApiError:
    """The 400 answer for a NUL character at ``location``."""
    message = "holds a NUL character (U+0000), which the hub does not store"
    return ApiError(
        400,
        "bad_request",
        f"{location} {message}",
        [{"location": location, "message": message}],
    )


def query_location(query: bytes) -> str | None:
    """The query parameter holding a NUL (its name, shortened), or None."""
    if b"%00" not in query and b"\x00" not in query:
        return None
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            shown = name.replace("\x00", "\\0")[:40]
            return f"the query parameter {shown!r}"
    return "the query string"


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return b"json" in value.lower()
    return True  # Litestar decodes a body without a content type as JSON


class NulCharacterMiddleware(ASGIMiddleware):
    """Refuse a NUL character in the path, the query string or a decoded JSON body (400)."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        """Check the path and query at once, the body when the route decodes it."""
        if "\x00" in scope["path"]:
            raise refused("the path")
        where = query_location(scope.get("query_string") or b"")
        if where is not None:
            raise refused(where)
        if route_reads_body(scope) and has_body(scope) and _is_json(scope):
            request: Request[Any, Any, Any] = Request(scope, receive)
            data = await request.body()  # Litestar keeps it for the handler
            found = JSON_NUL.search(data) if b"\\u0000" in data else None
            if found is not None:
                raise refused(f"the JSON body (at {line_column(data, found.end() - 6)})")
        await next_app(scope, receive, send)
