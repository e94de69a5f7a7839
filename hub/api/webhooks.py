"""Webhook triggers: ``/hooks/{workspace}/{flow}`` starts a run of the flow's published version.

In the order a request meets them (docs/webhooks.md tells the same for users):

1. The flow: its published version and compiled document come from the engine's caches (no
   database read per request); a flow that is unknown, disabled (seen within
   :data:`hub.services.events.ENABLED_TTL` seconds) or not triggered by a webhook-kind
   trigger answers 404.
2. The method (405) and the body cap (413, streamed: an oversized body is never held whole).
3. The signature, over the raw body (:mod:`hub.triggers.signatures`, or the trigger plugin's
   own ``verify``): refused with 401 before anything is parsed or stored.
4. The body: JSON is decoded with msgspec and refused when nested deeper than
   :data:`MAX_DEPTH` (422), with a key longer than :data:`MAX_KEY_CHARS` (422) or an
   object of more than :data:`MAX_KEYS` keys (413). Form bodies (urlencoded, multipart)
   become objects (:mod:`hub.api.webhook_forms`). Other bodies stay text.
5. The sender's delivery id (``trigger.config.dedup`` or its ``sender`` preset; 400
   ``missing_dedup_key`` without it), ``Idempotency-Key`` and replay markers
   (:mod:`hub.db.webhook_keys`), inserted in the run's own transaction: a delivery id seen
   before, or the same key and body, answer the first run (200, ``Idempotent-Replayed:
   true``), the same key with another body 409; a replayed signature 401.
6. The answer: 202 with the run id, or with ``response: {mode: sync}`` the flow's output
   (200) when the run ends within the timeout, else 202.

The flows' side of each step (plans, signatures, starting the run with its keys) is in
:mod:`hub.services.events`; this module reads the request and writes the answer.

Trigger data is data: it is never rendered as a template.
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from litestar import Request, Response, route
from litestar.params import FromPath

from hub.api import webhook_forms
from hub.api.errors import CODES, ApiError, error_body, error_responses
from hub.api.metrics import metrics_of
from hub.flows.bounds import json_too_deep, line_column
from hub.runtime import Hub
from hub.services import events
from hub.services.events import EventRefused, Plan

log = logging.getLogger("hub.webhooks")

SKIP_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
MAX_DEPTH = 64
MAX_KEY_CHARS = 1024
MAX_KEYS = 10_000
JSON = "application/json"
CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")
# The HTTP status of each reason the services refuse an event for.
REFUSED_STATUS = {
    "not_found": 404,
    "misconfigured": 500,
    "unavailable": 503,
    "invalid_signature": 401,
    "missing_dedup_key": 400,
    "idempotency_conflict": 409,
    "run_failed": 502,
}


def _refused(exc: EventRefused) -> ApiError:
    return ApiError(REFUSED_STATUS[exc.code], exc.code, exc.message, exc.details)


def _too_large(cap: int) -> ApiError:
    error = ApiError(413, "payload_too_large", f"the body is over the limit of {cap} bytes")
    # Close the connection after the answer: on a kept-alive connection the server would
    # go on reading (and discarding) the rest of the oversized body.
    error.headers = {"connection": "close"}
    return error


async def read_capped(request: Request[Any, Any, Any], cap: int, length: str | None) -> bytes:
    """The request body, refused with 413 once it passes ``cap`` bytes."""
    # ASCII digits only, length-bounded (``str.isdigit`` takes ``'²'``, which ``int`` refuses);
    # a Content-Length the server let through that is not a number is left to the stream.
    if length is not None and CONTENT_LENGTH.fullmatch(length) and int(length) > cap:
        raise _too_large(cap)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise _too_large(cap)
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _place(path: tuple[Any, ...]) -> str:
    shown = "".join(f"[{p}]" if isinstance(p, int) else f".{p[:40]}" for p in path[:12])
    return "body" + shown + ("..." if len(path) > 12 else "")


def check_shape(value: Any) -> None:
    """Refuse decoded JSON nested too deep, with too long keys or too many keys.

    Iterative (an explicit stack), so a deep document cannot exhaust Python's stack.
    """
    if not isinstance(value, dict | list):
        return
    stack: list[tuple[Any, int, tuple[Any, ...]]] = [(value, 1, ())]
    while stack:
        node, depth, path = stack.pop()
        if depth > MAX_DEPTH:
            raise ApiError(
                422, "json_too_deep", f"{_place(path)}: JSON nested deeper than {MAX_DEPTH} levels"
            )
        if isinstance(node, dict):
            if len(node) > MAX_KEYS:
                raise ApiError(
                    413, "json_too_many_keys", f"{_place(path)}: more than {MAX_KEYS} keys"
                )
            for key, item in node.items():
                if len(key) > MAX_KEY_CHARS:
                    raise ApiError(
                        422,
                        "json_key_too_long",
                        f"{_place(path)}: a key of {len(key)} characters (at most {MAX_KEY_CHARS})",
                    )
                if isinstance(item, dict | list):
                    stack.append((item, depth + 1, (*path, key)))
        else:
            for index, item in enumerate(node):
                if isinstance(item, dict | list):
                    stack.append((item, depth + 1, (*path, index)))


def decode_json(raw: bytes) -> Any:
    """A JSON body as data, within the shape limits (400, 413 or 422 otherwise).

    The depth is scanned on the bytes before msgspec decodes them, as the API's bodies are
    (:func:`hub.flows.bounds.json_too_deep`, the same scan).
    """
    deep_at = json_too_deep(raw, MAX_DEPTH)
    if deep_at is not None:
        where = line_column(raw, deep_at)
        raise ApiError(
            422, "json_too_deep", f"body: JSON nested deeper than {MAX_DEPTH} levels, at {where}"
        )
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from exc
    except RecursionError:
        raise ApiError(
            422, "json_too_deep", f"body: JSON nested deeper than {MAX_DEPTH} levels"
        ) from None
    if _may_break_shape(raw):
        check_shape(value)
    return value


def _may_break_shape(raw: bytes) -> bool:
    """Cheap byte counts: most bodies cannot break any shape limit, and need no walk."""
    return (
        raw.count(b"{") + raw.count(b"[") > MAX_DEPTH
        or len(raw) > MAX_KEY_CHARS
        or raw.count(b":") > MAX_KEYS
    )


def parse_body(raw: bytes, content_type: str) -> Any:
    """JSON and form bodies become data (within the shape limits); other bodies stay text."""
    if not raw:
        return None
    if "json" in content_type:
        return decode_json(raw)
    if "form" in content_type:
        media = content_type.partition(";")[0].strip().lower()
        if media == webhook_forms.URLENCODED:
            return webhook_forms.parse_urlencoded(raw, decode_json)
        if media == webhook_forms.MULTIPART:
            return webhook_forms.parse_multipart(raw, content_type, decode_json)
    try:
        return raw.decode()
    except UnicodeDecodeError as exc:
        raise ApiError(415, "unsupported_media_type", "the body is not UTF-8 text") from exc


def plugin_error(status: int, body: Any) -> dict[str, Any]:
    """A plugin trigger's refusal in the hub's one error shape.

    A body already in the shape is kept (the Slack trigger answers so); ``{"error": "text"}``
    (what the HubSpot trigger answers) keeps its text as the message; anything else gets a
    generic message. A 401 of such a plugin is an ``invalid_signature`` of reason
    ``refused``, as a plugin ``verify`` refusal is.
    """
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and set(error) == {"code", "message", "details"}:
        return {"error": error}
    message = error if isinstance(error, str) else "the trigger refused the request"
    if status == 401:
        return error_body("invalid_signature", message, {"reason": "refused"})
    return error_body(CODES.get(status, "refused"), message)


def _headers(scope: Any) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        key = name.decode("latin-1")
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


def _idempotency_key(headers: dict[str, str]) -> str | None:
    key = headers.get("idempotency-key")
    if key is None:
        return None
    if not (0 < len(key) <= events.MAX_KEY_LENGTH) or not key.isascii():
        raise ApiError(
            400,
            "invalid_idempotency_key",
            f"Idempotency-Key: 1 to {events.MAX_KEY_LENGTH} ASCII characters",
        )
    return key


async def _answer(hub: Hub, plan: Plan, run_id: str, replayed: bool) -> tuple[Response[Any], str]:
    headers = {"idempotent-replayed": "true"} if replayed else {}
    if plan.sync:
        try:
            record = await events.finished_run(hub, run_id, plan.timeout)
        except TimeoutError:
            pending = {"run_id": run_id, "status": "running"}
            return Response(pending, status_code=202, headers=headers), "timed_out"
        headers["x-run-id"] = run_id
        outcome = "replayed" if replayed else "answered"
        output = msgspec.json.encode(record["output"])  # an output of None is ``null``
        return Response(output, status_code=200, headers=headers, media_type=JSON), outcome
    if replayed:
        body = {"run_id": run_id, "status": await events.run_status(hub, run_id)}
        return Response(body, status_code=200, headers=headers), "replayed"
    return Response({"run_id": run_id, "status": "running"}, status_code=202), "accepted"


async def _plugin_answer(
    hub: Hub, answer: dict[str, Any], runs: list[tuple[str, bool]]
) -> tuple[Response[Any], str]:
    """A plugin trigger's answer: a refusal in the hub's error shape (counted by its code and
    reason), else its body, or the run it started (or the first run of a repeated event)."""
    status = int(answer.get("status") or 200)
    body = answer.get("body")
    if status >= 400:
        shaped = plugin_error(status, body)
        error = shaped["error"]
        reason = error["details"].get("reason") if isinstance(error["details"], dict) else None
        outcome = f"{error['code']}:{reason}" if reason else str(error["code"])
        return Response(shaped, status_code=status), outcome
    if not runs:
        return Response(body, status_code=status), "answered"
    run_ids = [run_id for run_id, _replayed in runs]
    headers = {"x-run-ids": ",".join(run_ids)}
    replayed = all(again for _run_id, again in runs)
    if replayed:
        headers["idempotent-replayed"] = "true"
    if body is None:
        state = await events.run_status(hub, run_ids[0]) if replayed else "running"
        body = {"run_id": run_ids[0], "status": state}
        if len(run_ids) > 1:
            body["run_ids"] = run_ids
    return Response(body, status_code=status, headers=headers), (
        "replayed" if replayed else "accepted"
    )


async def receive(
    hub: Hub, request: Request[Any, Any, Any], workspace: str, flow_id: str
) -> tuple[Response[Any], str]:
    """Handle one webhook request; return the response and its outcome (for metrics)."""
    plan = await events.find_plan(hub, workspace, flow_id)
    scope = request.scope
    method = scope["method"]
    if method not in plan.methods:
        allowed = ", ".join(plan.methods)
        error = ApiError(405, "method_not_allowed", f"this webhook accepts {allowed}")
        error.headers = {"allow": allowed}  # a 405 must say what is allowed
        raise error
    headers = _headers(scope)
    raw = await read_capped(request, plan.cap, headers.get("content-length"))
    if plan.handler is not None:
        # The plugin parses the body itself: JSON past the shape limits never reaches it.
        if "json" in headers.get("content-type", "") and _may_break_shape(raw):
            decode_json(raw)
        answer, runs = await events.handle_request(
            hub,
            plan,
            workspace,
            flow_id,
            method=method,
            url=str(request.url),
            headers=headers,
            raw=raw,
        )
        return await _plugin_answer(hub, answer, runs)
    verified = await events.check_signature(hub, plan, workspace, headers, raw)
    idempotency_key = _idempotency_key(headers)
    query = scope.get("query_string") or b""
    data = {
        "method": method,
        "path": scope["path"],
        "headers": {k: v for k, v in headers.items() if k not in SKIP_HEADERS},
        "query": dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True)) if query else {},
        "body": parse_body(raw, headers.get("content-type", "")),
    }
    dedup_key = None if plan.dedup is None else await events.dedup_key(hub, plan, headers, data)
    replay_key = verified.replay_key if verified is not None else None
    body_hash = ""
    if idempotency_key is not None or replay_key or dedup_key:
        body_hash = hashlib.sha256(raw).hexdigest()
    run_id, replayed = await events.start_webhook_run(
        hub,
        workspace,
        flow_id,
        plan,
        data,
        idempotency_key=idempotency_key,
        replay_key=replay_key,
        body_hash=body_hash,
        dedup_key=dedup_key,
    )
    return await _answer(hub, plan, run_id, replayed)


def _outcome(exc: ApiError) -> str:
    reason = exc.details.get("reason") if isinstance(exc.details, dict) else None
    return f"{exc.code}:{reason}" if reason else exc.code


@route(
    "/hooks/{workspace:str}/{flow_id:str}",
    http_method=["GET", "POST", "PUT", "PATCH", "DELETE"],
    name="webhook",
    operation_id="webhook",
    exclude_from_auth=True,
    status_code=202,
    request_max_body_size=None,
    tags=["webhooks"],
    responses=error_responses(400, 401, 404, 405, 409, 413, 415, 422, 502, 503),
)
async def webhook(
    request: Request[Any, Any, Any], workspace: FromPath[str], flow_id: FromPath[str]
) -> Response[Any]:
    """Start a run of the flow from an HTTP request (see the module docstring for the rules).

    202 ``{run_id, status}``; 200 with the first run on an ``Idempotency-Key`` replay, or
    with the flow's output in sync mode.
    """
    hub: Hub = request.app.state.hub
    metrics = metrics_of(hub)
    try:
        try:
            response, outcome = await receive(hub, request, workspace, flow_id)
        except EventRefused as refused:
            raise _refused(refused) from None
    except ApiError as exc:
        metrics.webhook(_outcome(exc))
        raise
    metrics.webhook(outcome)
    return response
