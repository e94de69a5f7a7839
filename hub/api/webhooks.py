"""Webhook triggers: ``/hooks/{workspace}/{flow}`` starts a run of the flow's published version.

The body is read as a stream and refused with 413 as soon as it passes the cap (the flow's
``trigger.config.max_body_bytes`` or ``HUB_WEBHOOK_MAX_BODY_BYTES``): an oversized body is
never held in memory whole. Trigger data is data: it is never rendered as a template.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, route

from hub.api.errors import ApiError
from hub.db import store
from hub.engine import RunNotFound
from hub.runtime import Hub

SKIP_HEADERS = {"authorization", "cookie", "proxy-authorization"}


def _too_large(cap: int) -> ApiError:
    error = ApiError(413, "payload_too_large", f"the body is over the limit of {cap} bytes")
    # Close the connection after the answer: on a kept-alive connection the server would
    # go on reading (and discarding) the rest of the oversized body.
    error.headers = {"connection": "close"}
    return error


async def read_capped(request: Request[Any, Any, Any], cap: int) -> bytes:
    """The request body, refused with 413 once it passes ``cap`` bytes."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > cap:
        raise _too_large(cap)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise _too_large(cap)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_body(raw: bytes, content_type: str) -> Any:
    """JSON bodies become data; form and other bodies stay text."""
    if not raw:
        return None
    if "json" in content_type:
        try:
            return msgspec.json.decode(raw)
        except msgspec.DecodeError as exc:
            raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from exc
    try:
        return raw.decode()
    except UnicodeDecodeError as exc:
        raise ApiError(415, "unsupported_media_type", "the body is not UTF-8 text") from exc


@route(
    "/hooks/{workspace:str}/{flow_id:str}",
    http_method=["GET", "POST", "PUT", "PATCH", "DELETE"],
    name="webhook",
    operation_id="webhook",
    exclude_from_auth=True,
    status_code=202,
    request_max_body_size=None,
    tags=["webhooks"],
)
async def webhook(
    request: Request[Any, Any, Any], hub: Hub, workspace: str, flow_id: str
) -> Response[Any]:
    """Start a run of the flow from an HTTP request; answers 202 with the run id."""
    found = await hub.db.read(lambda c: store.published_document(c, workspace, flow_id))
    trigger = (found[1].get("trigger") or {}) if found else {}
    if found is None or trigger.get("type") != "webhook":
        raise ApiError(404, "not_found", f"no webhook flow {flow_id!r} in workspace {workspace!r}")
    config = trigger.get("config") or {}
    methods = config.get("methods") or ["POST"]
    if request.method not in methods:
        error = ApiError(405, "method_not_allowed", f"this webhook accepts {', '.join(methods)}")
        error.headers = {"allow": ", ".join(methods)}  # a 405 must say what is allowed
        raise error
    cap = min(
        int(config.get("max_body_bytes") or hub.settings.webhook_max_body_bytes),
        hub.settings.webhook_max_body_bytes,
    )
    raw = await read_capped(request, cap)
    data = {
        "method": request.method,
        "path": request.url.path,
        "headers": {k: v for k, v in request.headers.items() if k.lower() not in SKIP_HEADERS},
        "query": dict(request.query_params),
        "body": parse_body(raw, request.headers.get("content-type", "")),
    }
    try:
        run_id = await hub.engine.start_run(
            workspace, flow_id, data, version=found[0], trigger_type="webhook"
        )
    except RunNotFound as exc:
        raise ApiError(404, "not_found", str(exc)) from exc
    return Response({"run_id": run_id, "status": "running"}, status_code=202)
