"""Webhook triggers: ``/hooks/{workspace}/{flow}`` starts a run of the flow's published version.

In the order a request meets them (docs/webhooks.md tells the same for users):

1. The flow: its published version and compiled document come from the engine's caches (no
   database read per request); a flow that is unknown, disabled (seen within
   :data:`ENABLED_TTL` seconds) or not triggered by a webhook-kind trigger answers 404.
2. The method (405) and the body cap (413, streamed: an oversized body is never held whole).
3. The signature, over the raw body (:mod:`hub.triggers.signatures`, or the trigger plugin's own
   ``verify``): refused with 401 before anything is parsed or stored.
4. The body: JSON is decoded with msgspec and refused when nested deeper than
   :data:`MAX_DEPTH` (422), with a key longer than :data:`MAX_KEY_CHARS` (422) or an
   object of more than :data:`MAX_KEYS` keys (413). Other bodies stay text.
5. ``Idempotency-Key`` and replay markers (:mod:`hub.db.webhook_keys`), inserted in the run's
   own transaction: the same key and body answer the first run (200,
   ``Idempotent-Replayed: true``), another body 409; a replayed signature 401.
6. The answer: 202 with the run id, or with ``response: {mode: sync}`` the flow's output
   (200) when the run ends within the timeout, else 202.

Trigger data is data: it is never rendered as a template.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import inspect
import logging
import time
import weakref
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from cachetools import LRUCache
from litestar import Request, Response, route
from sqlalchemy.exc import IntegrityError

from hub.api.errors import ApiError, error_responses
from hub.api.metrics import Metrics, metrics_of
from hub.connectors import WebhookRequest
from hub.db import store, webhook_keys
from hub.db.models import now_us
from hub.engine import RunNotFound, new_run_id
from hub.flows import Flow, FlowError, parse_duration
from hub.runtime import Hub
from hub.security.secrets import Redactor, secret_values
from hub.triggers.runner import emit_event
from hub.triggers.signatures import SignatureError, SignatureSpec, Verified, secrets_of, verify

log = logging.getLogger("hub.webhooks")

SKIP_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
MAX_DEPTH = 64
MAX_KEY_CHARS = 1024
MAX_KEYS = 10_000
ENABLED_TTL = 2.0
SECRET_TTL = 2.0  # a changed signing secret takes effect within this many seconds
DEFAULT_SYNC_TIMEOUT = 10.0
MAX_SYNC_TIMEOUT = 60.0
PRUNE_EVERY = 60.0
JSON = "application/json"


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a webhook flow's version asks of a request, parsed once per version."""

    version: int
    methods: tuple[str, ...]
    cap: int
    signature: SignatureSpec | None
    verifier: Callable[..., Any] | None
    handler: Callable[..., Any] | None
    connection: str | None
    sync: bool
    timeout: float
    tolerance: float
    config: dict[str, Any]


class _State:
    """Per-hub state of the webhook route: parsed plans and when keys were last pruned."""

    def __init__(self, hub: Hub) -> None:
        self.metrics: Metrics = metrics_of(hub)
        self.plans: LRUCache[tuple[str, str, int], Plan | None] = LRUCache(maxsize=1_000)
        self.pruned: dict[tuple[str, str], float] = {}
        # Decrypted connection values for signatures, kept briefly in this process only (never
        # in the shared cache): reading and decrypting them costs more than the HMAC itself.
        self.secrets: LRUCache[tuple[str, str], tuple[float, dict[str, Any]]] = LRUCache(256)
        self.tasks: set[asyncio.Task[Any]] = set()


_STATES: weakref.WeakKeyDictionary[Hub, _State] = weakref.WeakKeyDictionary()


def _state(hub: Hub) -> _State:
    found = _STATES.get(hub)
    if found is None:
        found = _STATES[hub] = _State(hub)
    return found


def _too_large(cap: int) -> ApiError:
    error = ApiError(413, "payload_too_large", f"the body is over the limit of {cap} bytes")
    # Close the connection after the answer: on a kept-alive connection the server would
    # go on reading (and discarding) the rest of the oversized body.
    error.headers = {"connection": "close"}
    return error


async def read_capped(request: Request[Any, Any, Any], cap: int, length: str | None) -> bytes:
    """The request body, refused with 413 once it passes ``cap`` bytes."""
    if length is not None and length.isdigit() and int(length) > cap:
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


def parse_body(raw: bytes, content_type: str) -> Any:
    """JSON bodies become data (within the shape limits); form and other bodies stay text."""
    if not raw:
        return None
    if "json" in content_type:
        try:
            value = msgspec.json.decode(raw)
        except msgspec.DecodeError as exc:
            raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from exc
        except RecursionError:
            raise ApiError(
                422, "json_too_deep", f"body: JSON nested deeper than {MAX_DEPTH} levels"
            ) from None
        # Cheap byte counts first: most bodies cannot break any limit.
        if (
            raw.count(b"{") + raw.count(b"[") > MAX_DEPTH
            or len(raw) > MAX_KEY_CHARS
            or raw.count(b":") > MAX_KEYS
        ):
            check_shape(value)
        return value
    try:
        return raw.decode()
    except UnicodeDecodeError as exc:
        raise ApiError(415, "unsupported_media_type", "the body is not UTF-8 text") from exc


def _duration(value: Any, where: str, default: float) -> float:
    if value is None:
        return default
    try:
        return parse_duration(value, where)
    except FlowError as exc:
        raise ValueError(str(exc)) from exc


def make_plan(hub: Hub, flow: Flow, version: int) -> Plan | None:
    """The plan of a flow version, or None when its trigger is not a webhook-kind trigger."""
    trigger = hub.registry.triggers.get(flow.trigger.type)
    if trigger is None or trigger.kind != "webhook":
        return None
    config = flow.trigger.config
    default_cap = hub.settings.webhook_max_body_bytes
    signature = None
    raw_signature = config.get("signature")
    if trigger.verify is None and isinstance(raw_signature, dict):
        signature = SignatureSpec.parse(raw_signature)
    raw_response = config.get("response")
    response: dict[str, Any] = raw_response if isinstance(raw_response, dict) else {}
    timeout = _duration(
        response.get("timeout"), "trigger.config.response.timeout", DEFAULT_SYNC_TIMEOUT
    )
    return Plan(
        version=version,
        methods=tuple(config.get("methods") or ("POST",)),
        cap=min(int(config.get("max_body_bytes") or default_cap), default_cap),
        signature=signature,
        verifier=trigger.verify,
        handler=trigger.handle_request,
        connection=flow.trigger.connection,
        sync=response.get("mode") == "sync",
        timeout=min(timeout, MAX_SYNC_TIMEOUT),
        tolerance=signature.tolerance if signature else 300.0,
        config=dict(config),
    )


async def _enabled(hub: Hub, workspace: str, flow_id: str) -> bool:
    async def load() -> bool:
        row = await hub.db.read(lambda c: store.get_flow(c, workspace, flow_id))
        return bool(row and row["enabled"])

    found: bool = await hub.cache.get_or_load(
        f"webhook-enabled:{workspace}:{flow_id}", load, ttl=ENABLED_TTL
    )
    return found


async def find_plan(hub: Hub, state: _State, workspace: str, flow_id: str) -> Plan:
    """The plan of the flow's published version; 404 when there is no webhook flow."""
    version = await hub.engine.published_version(workspace, flow_id)
    plan = None
    if version is not None and await _enabled(hub, workspace, flow_id):
        key = (workspace, flow_id, version)
        if key in state.plans:
            plan = state.plans[key]
        else:
            try:
                flow = await hub.engine.get_flow(workspace, flow_id, version)
                plan = make_plan(hub, flow, version)
            except RunNotFound:
                plan = None
            except ValueError as exc:
                log.error("webhook flow %s/%s: %s", workspace, flow_id, exc)
                raise ApiError(500, "misconfigured", "this webhook is misconfigured") from None
            state.plans[key] = plan
    if plan is None:
        raise ApiError(404, "not_found", f"no webhook flow {flow_id!r} in workspace {workspace!r}")
    return plan


async def _secret_values(hub: Hub, state: _State, workspace: str, name: str) -> dict[str, Any]:
    """A connection's decrypted values, from the short-lived local cache or the database."""
    now = time.monotonic()
    found = state.secrets.get((workspace, name))
    if found is not None and found[0] > now:
        return found[1]
    try:
        values = await hub.connection_values(name, workspace)
    except LookupError:
        log.warning("webhook secret connection %r missing in workspace %r", name, workspace)
        raise ApiError(
            503, "unavailable", "the webhook's signing secret is not configured"
        ) from None
    state.secrets[(workspace, name)] = (now + SECRET_TTL, values)
    return values


async def check_signature(
    hub: Hub, state: _State, plan: Plan, workspace: str, headers: dict[str, str], raw: bytes
) -> Verified | None:
    """Verify the request (401 if refused); None when the flow asks for no signature."""
    if plan.signature is None and plan.verifier is None:
        return None
    name = plan.signature.secret_ref if plan.signature else plan.connection
    values = await _secret_values(hub, state, workspace, name) if name else {}
    now = time.time()
    if plan.signature is None:
        assert plan.verifier is not None
        try:
            result = plan.verifier(dict(plan.config), values, headers, raw, now)
            if inspect.isawaitable(result):
                await result
        except ValueError as exc:
            message = Redactor(secret_values(values)).text(str(exc))  # a plugin may quote it
            raise ApiError(401, "invalid_signature", message, {"reason": "refused"}) from None
        return Verified()
    secrets = secrets_of(values)
    if not secrets:
        log.warning("webhook secret connection %r has no secret", name)
        raise ApiError(503, "unavailable", "the webhook's signing secret is not configured")
    try:
        return verify(plan.signature, secrets, headers, raw, now)
    except SignatureError as exc:
        raise ApiError(401, "invalid_signature", str(exc), {"reason": exc.reason}) from None


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
    if not (0 < len(key) <= webhook_keys.MAX_KEY_LENGTH) or not key.isascii():
        raise ApiError(
            400,
            "invalid_idempotency_key",
            f"Idempotency-Key: 1 to {webhook_keys.MAX_KEY_LENGTH} ASCII characters",
        )
    return key


async def _answer(hub: Hub, plan: Plan, run_id: str, replayed: bool) -> tuple[Response[Any], str]:
    headers = {"idempotent-replayed": "true"} if replayed else {}
    if plan.sync:
        try:
            record = await hub.engine.wait_for_run(run_id, plan.timeout)
        except TimeoutError:
            pending = {"run_id": run_id, "status": "running"}
            return Response(pending, status_code=202, headers=headers), "timed_out"
        if record["status"] != "succeeded":
            raise ApiError(
                502,
                "run_failed",
                f"the run {record['status']}",
                {"run_id": run_id, "status": record["status"]},
            )
        headers["x-run-id"] = run_id
        outcome = "replayed" if replayed else "answered"
        output = msgspec.json.encode(record["output"])  # an output of None is ``null``
        return Response(output, status_code=200, headers=headers, media_type=JSON), outcome
    if replayed:
        found = await hub.db.read(lambda c: store.run_record(c, run_id))
        body = {"run_id": run_id, "status": found["status"] if found else "unknown"}
        return Response(body, status_code=200, headers=headers), "replayed"
    return Response({"run_id": run_id, "status": "running"}, status_code=202), "accepted"


def _schedule_prune(hub: Hub, state: _State, workspace: str, flow_id: str, plan: Plan) -> None:
    """Delete this flow's expired keys and markers, at most once a minute per process."""
    now = time.monotonic()
    if now - state.pruned.get((workspace, flow_id), 0.0) < PRUNE_EVERY:
        return
    state.pruned[(workspace, flow_id)] = now
    replay_before = int(time.time() - plan.tolerance - 5)
    keys_before = now_us() - int(webhook_keys.IDEMPOTENCY_RETENTION * 1_000_000)

    async def prune() -> None:
        try:
            await hub.db.write(
                lambda c: webhook_keys.prune(c, workspace, flow_id, replay_before, keys_before)
            )
        except Exception:
            log.exception("pruning webhook keys of %s/%s failed", workspace, flow_id)

    task = asyncio.get_running_loop().create_task(prune())
    state.tasks.add(task)
    task.add_done_callback(state.tasks.discard)


async def receive(
    hub: Hub, state: _State, request: Request[Any, Any, Any], workspace: str, flow_id: str
) -> tuple[Response[Any], str]:
    """Handle one webhook request; return the response and its outcome (for metrics)."""
    plan = await find_plan(hub, state, workspace, flow_id)
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
        return await _handled(hub, state, plan, request, workspace, flow_id, headers, raw)
    verified = await check_signature(hub, state, plan, workspace, headers, raw)
    idempotency_key = _idempotency_key(headers)
    query = scope.get("query_string") or b""
    data = {
        "method": method,
        "path": scope["path"],
        "headers": {k: v for k, v in headers.items() if k not in SKIP_HEADERS},
        "query": dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True)) if query else {},
        "body": parse_body(raw, headers.get("content-type", "")),
    }
    entries: list[tuple[str, str]] = []
    body_hash = ""
    if idempotency_key is not None or (verified and verified.replay_key):
        body_hash = hashlib.sha256(raw).hexdigest()
    idem = webhook_keys.IDEMPOTENCY_PREFIX + idempotency_key if idempotency_key else None
    if idem is not None:
        entries.append((idem, body_hash))
    marker = None
    if verified is not None and verified.replay_key:
        marker = webhook_keys.REPLAY_PREFIX + verified.replay_key
        entries.append((marker, body_hash))
    if not entries:
        run_id = await _start(hub, workspace, flow_id, plan, data, None)
        return await _answer(hub, plan, run_id, replayed=False)
    keys = [key for key, _hash in entries]
    _schedule_prune(hub, state, workspace, flow_id, plan)
    found = await hub.db.read(lambda c: webhook_keys.find(c, workspace, flow_id, keys))
    if not found:
        try:
            run_id = await _start(hub, workspace, flow_id, plan, data, entries)
        except IntegrityError:
            # A concurrent request with the same key (or signature) committed first.
            found = await hub.db.read(lambda c: webhook_keys.find(c, workspace, flow_id, keys))
            if not found:
                raise
        else:
            return await _answer(hub, plan, run_id, replayed=False)
    if idem is not None and idem in found:
        row = found[idem]
        if row.request_hash != body_hash:
            raise ApiError(
                409,
                "idempotency_conflict",
                "this Idempotency-Key was already used with another body",
                {"run_id": row.run_id},
            )
        return await _answer(hub, plan, row.run_id, replayed=True)
    raise ApiError(
        401,
        "invalid_signature",
        "this signature was already used (a replay)",
        {"reason": "replayed"},
    )


async def _handled(
    hub: Hub,
    state: _State,
    plan: Plan,
    request: Request[Any, Any, Any],
    workspace: str,
    flow_id: str,
    headers: dict[str, str],
    raw: bytes,
) -> tuple[Response[Any], str]:
    """A trigger that answers the service itself: its answer, and one run per event."""
    assert plan.handler is not None
    connection = (
        await _secret_values(hub, state, workspace, plan.connection) if plan.connection else {}
    )
    answer = plan.handler(
        WebhookRequest(
            connection=connection,
            config=plan.config,
            method=request.scope["method"],
            url=str(request.url),
            headers=headers,
            raw_body=raw,
            now=time.time(),
        )
    )
    events = answer.get("events") or []
    run_ids = [
        await emit_event(
            hub,
            workspace,
            flow_id,
            plan.version,
            "webhook",
            event,
            str(event["idempotency_key"])
            if isinstance(event, dict) and event.get("idempotency_key")
            else None,
        )
        for event in events
    ]
    status = int(answer.get("status") or 200)
    outcome = "accepted" if run_ids else ("refused" if status >= 400 else "answered")
    response_headers = {"x-run-ids": ",".join(run_ids)} if run_ids else None
    return Response(answer.get("body"), status_code=status, headers=response_headers), outcome


async def _start(
    hub: Hub,
    workspace: str,
    flow_id: str,
    plan: Plan,
    data: dict[str, Any],
    entries: list[tuple[str, str]] | None,
) -> str:
    also = None
    run_id = new_run_id()
    if entries:

        def also(conn: Any) -> None:  # the keys are written with the run, or not at all
            webhook_keys.record(conn, workspace, flow_id, entries, run_id)

    try:
        ids = await hub.engine.start_runs(
            workspace,
            flow_id,
            [data],
            version=plan.version,
            trigger_type="webhook",
            also=also,
            run_ids=[run_id],
        )
    except RunNotFound as exc:
        raise ApiError(404, "not_found", str(exc)) from exc
    return ids[0]


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
async def webhook(request: Request[Any, Any, Any], workspace: str, flow_id: str) -> Response[Any]:
    """Start a run of the flow from an HTTP request (see the module docstring for the rules).

    202 ``{run_id, status}``; 200 with the first run on an ``Idempotency-Key`` replay, or
    with the flow's output in sync mode.
    """
    hub: Hub = request.app.state.hub
    state = _state(hub)
    try:
        response, outcome = await receive(hub, state, request, workspace, flow_id)
    except ApiError as exc:
        state.metrics.webhook(_outcome(exc))
        raise
    state.metrics.webhook(outcome)
    return response
