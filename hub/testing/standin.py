"""A local stand-in for an HTTP JSON API, to test a connector without the real service.

Subclass :class:`StandIn`, answer in :meth:`StandIn.answer`, and serve it with
:func:`hub.testing.serve_asgi`::

    class AcmeStandIn(StandIn):
        def answer(self, request: StandInRequest) -> tuple[int, Any]:
            if request.headers.get("authorization") != "Bearer k":
                return 401, {"error": "unauthorized"}
            return 200, {"items": []}

    with serve_asgi(AcmeStandIn()) as url: ...

The stand-in records every request (``requests``, a :class:`StandInRequest` each), so that a test
can assert what the connector sent, and :meth:`StandIn.force` queues canned answers (a 429,
a 5xx ...) for the next requests.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any
from urllib.parse import parse_qsl

__all__ = ["StandIn", "StandInRequest"]


@dataclasses.dataclass
class StandInRequest:
    """One request a stand-in received (header names in lower case)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    raw_path: str = ""

    @property
    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    @property
    def form(self) -> dict[str, str]:
        """The body parsed as a form."""
        return dict(parse_qsl(self.body.decode()))


class StandIn:
    """An ASGI app that records each request and answers it with :meth:`answer` as JSON.

    ``content_type`` is the content type of every answer. An answer's body is JSON-encoded,
    unless it is bytes (sent as they are).
    """

    content_type = "application/json; charset=utf-8"

    def __init__(self) -> None:
        self.requests: list[StandInRequest] = []
        self.forced: list[tuple[int, dict[str, str], Any]] = []
        self.reset()

    def reset(self) -> None:
        """Forget the requests and the canned answers (a subclass resets its data too)."""
        self.requests.clear()
        self.forced.clear()

    def force(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        """Answer the next request with this status, body and headers."""
        self.forced.append((status, headers or {}, body))

    def answer(self, request: StandInRequest) -> tuple[int, Any]:
        """``(status, body)`` of the answer to ``request``: the API the subclass stands in for."""
        raise NotImplementedError

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """The ASGI entry point: read the request, record it, send the answer."""
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        request = StandInRequest(
            method=scope["method"],
            path=scope["path"],
            query=dict(parse_qsl(scope["query_string"].decode())),
            headers={k.decode().lower(): v.decode() for k, v in scope["headers"]},
            body=b"".join(chunks),
            raw_path=(scope.get("raw_path") or b"").decode(),
        )
        self.requests.append(request)
        headers: dict[str, str] = {}
        if self.forced:
            status, headers, payload = self.forced.pop(0)
        else:
            status, payload = self.answer(request)
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        head = [(b"content-type", self.content_type.encode())]
        head += [(k.encode(), v.encode()) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": head})
        await send({"type": "http.response.body", "body": raw})
