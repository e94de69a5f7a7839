"""Request bodies: their JSON nesting depth is checked before anything decodes them.

:class:`BodyDepthMiddleware` runs for every HTTP route after authentication and before the
route's handler, so before Litestar decodes the body into the handler's arguments: it reads
the body (within the app's ``request_max_body_size``, ``HUB_MAX_REQUEST_BYTES``; Litestar
keeps it for the handler) and scans its bracket depth outside strings
(:class:`hub.flows.bounds.JsonDepthScan`, linear, yielding to the event loop between
chunks). A body nested deeper than ``HUB_MAX_JSON_DEPTH`` is answered 400 ``json_too_deep``
in the error shape, naming the limit and the line and column: msgspec, ``json`` and the
code that recurses over decoded values never see it.

Skipped: bodiless requests, HTML forms, routes that never read the body (no ``data`` and no
``request`` parameter), and routes that read their own stream (``request_max_body_size=None``:
the webhook route, which decodes within its own cap and refuses nesting deeper than 64).
"""

from __future__ import annotations

from typing import Any

import anyio
from litestar import Request
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from hub.api.errors import ApiError
from hub.flows.bounds import JsonDepthScan, chunks, line_column

FORM_TYPES = (b"multipart/form-data", b"application/x-www-form-urlencoded")


def too_deep(data: bytes, offset: int, limit: int, what: str = "the JSON body") -> ApiError:
    """The 400 answer for ``data`` nested deeper than ``limit`` at byte ``offset``."""
    where = line_column(data, offset)
    message = f"{what} is nested deeper than {limit} levels (HUB_MAX_JSON_DEPTH)"
    return ApiError(
        400, "json_too_deep", f"{message}, at {where}", [{"location": where, "message": message}]
    )


async def depth_offset(data: bytes, limit: int) -> int | None:
    """Where JSON ``data`` first nests deeper than ``limit`` (a byte offset), or ``None``.

    Counting the opening brackets settles most bodies at once; a longer scan lets the event
    loop run between its chunks (about 10 ms of work each).
    """
    if data.count(b"[") + data.count(b"{") <= limit:
        return None
    scan = JsonDepthScan(limit)
    for index, piece in enumerate(chunks(data)):
        if index:
            await anyio.sleep(0)
        found = scan.feed(piece)
        if found is not None:
            return found
    return None


def has_body(scope: Scope) -> bool:
    """True unless the headers say there is no body or that it is an HTML form."""
    length: bytes | None = None
    chunked = False
    for name, value in scope["headers"]:
        if name == b"content-length":
            length = value.strip()
        elif name == b"transfer-encoding":
            chunked = True
        elif name == b"content-type" and value.lower().startswith(FORM_TYPES):
            return False
    return chunked or (length is not None and length != b"0")


# A handler's parameters that give it the body: ``data`` (Litestar decodes it) or the
# request itself (it may read the body; a plugin's route calling ``request.json()``).
BODY_READERS = frozenset({"data", "request"})


def route_reads_body(scope: Scope) -> bool:
    """True when the route decodes the body, unless it reads its own stream with its own
    cap (``request_max_body_size=None``: the webhook route). Worked out once per handler
    and kept in its ``opt`` (handlers have slots: no attribute or weak reference)."""
    handler: Any = scope.get("route_handler")
    if handler is None:
        return False
    reads: bool | None = handler.opt.get(READS_BODY_OPT)
    if reads is None:
        reads = bool(BODY_READERS.intersection(handler.parsed_fn_signature.parameters))
        # A handler whose body is never read has nothing to protect.
        reads = reads and handler.resolve_request_max_body_size() is not None
        handler.opt[READS_BODY_OPT] = reads
    return reads


READS_BODY_OPT = "hub_reads_body"
"""The key of a route handler's ``opt`` that keeps :func:`route_reads_body`'s answer."""


class BodyDepthMiddleware(ASGIMiddleware):
    """Refuse a JSON request body nested deeper than ``max_depth`` before it is decoded."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, max_depth: int) -> None:
        self.max_depth = max_depth

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        """Read and scan the body (Litestar keeps it for the handler), then go on."""
        if route_reads_body(scope) and has_body(scope):
            request: Request[Any, Any, Any] = Request(scope, receive)
            data = await request.body()
            offset = await depth_offset(data, self.max_depth)
            if offset is not None:
                raise too_deep(data, offset, self.max_depth)
        await next_app(scope, receive, send)
