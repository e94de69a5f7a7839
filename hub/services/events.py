"""Events from outside that start runs: what the webhook route asks of the hub.

The route (:mod:`hub.api.webhooks`) reads the request and writes the answer; this module
knows the flows: a flow's webhook plan (parsed once per published version, with its
``sender`` preset applied: :mod:`hub.triggers.senders`), the check of a request's
signature, its sender's delivery id (:func:`dedup_key`), the start of its run with its dedup
keys (through
:func:`hub.triggers.events.start_event_runs`, the one way an event starts runs), and the
pruning of old keys. A request refused here raises :class:`EventRefused`, whose ``code``
the route maps to an HTTP status.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import time
import weakref
from collections.abc import Callable
from typing import Any

from cachetools import LRUCache

from hub.connectors import WebhookRequest
from hub.db import flows as flow_store
from hub.db import runs as run_store
from hub.db import webhook_keys
from hub.db.models import now_us
from hub.engine import RunNotFound
from hub.expressions import Compiled, ExpressionError
from hub.flows import Flow, FlowError, parse_duration
from hub.security.secrets import Redactor, secret_values
from hub.services import links
from hub.services.base import HubParts
from hub.triggers import senders
from hub.triggers.events import StartedRuns, start_event_runs
from hub.triggers.senders import DedupSpec, MissingKey
from hub.triggers.signatures import SignatureError, SignatureSpec, Verified, secrets_of, verify

log = logging.getLogger("hub.webhooks")

ENABLED_TTL = 2.0
SECRET_TTL = 2.0  # a changed signing secret takes effect within this many seconds
DEFAULT_SYNC_TIMEOUT = 10.0
MAX_SYNC_TIMEOUT = 60.0
PRUNE_EVERY = 60.0
MAX_KEY_LENGTH = webhook_keys.MAX_KEY_LENGTH
# The reasons a plugin verifier's ValueError may give in its ``reason`` (else ``refused``).
PLUGIN_REASONS = frozenset({"missing", "malformed", "mismatch", "expired", "replayed"})


class EventRefused(Exception):
    """The hub refuses an event: ``code`` says why (``not_found``, ``misconfigured``,
    ``unavailable``, ``invalid_signature``, ``missing_dedup_key``, ``idempotency_conflict``,
    ``run_failed``), ``details`` says more (a signature's ``reason``, a run's id)."""

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


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
    dedup: DedupSpec | None = None
    dedup_expression: Compiled | None = None


class _State:
    """Per-hub state: parsed plans, signing secrets, and when keys were last pruned."""

    def __init__(self) -> None:
        self.plans: LRUCache[tuple[str, str, int], Plan | None] = LRUCache(maxsize=1_000)
        self.pruned: dict[tuple[str, str], float] = {}
        # Decrypted connection values for signatures, kept briefly in this process only (never
        # in the shared cache): reading and decrypting them costs more than the HMAC itself.
        self.secrets: LRUCache[tuple[str, str], tuple[float, dict[str, Any]]] = LRUCache(256)
        self.tasks: set[asyncio.Task[Any]] = set()


_STATES: weakref.WeakKeyDictionary[HubParts, _State] = weakref.WeakKeyDictionary()


def _state(hub: HubParts) -> _State:
    found = _STATES.get(hub)
    if found is None:
        found = _STATES[hub] = _State()
    return found


def _duration(value: Any, where: str, default: float) -> float:
    if value is None:
        return default
    try:
        return parse_duration(value, where)
    except FlowError as exc:
        raise ValueError(str(exc)) from exc


def make_plan(hub: HubParts, flow: Flow, version: int) -> Plan | None:
    """The plan of a flow version, or None when its trigger is not a webhook-kind trigger."""
    trigger = hub.registry.triggers.get(flow.trigger.type)
    if trigger is None or trigger.kind != "webhook":
        return None
    config = flow.trigger.config
    default_cap = hub.settings.webhook_max_body_bytes
    signature = None
    if trigger.verify is None and trigger.handle_request is None:
        raw_signature, dedup = senders.resolve(config)
    else:
        # A plugin's trigger: its config is its own (``sender`` or ``dedup`` mean what they
        # say there), and one with handle_request dedups the events it finds itself.
        found = config.get("signature")
        raw_signature, dedup = (found if isinstance(found, dict) else None), None
    if trigger.verify is None and raw_signature is not None:
        signature = SignatureSpec.parse(raw_signature)
    dedup_expression = None
    if dedup is not None and dedup.expression is not None:
        try:
            dedup_expression = hub.engine.expressions.compile(
                dedup.expression, "trigger.config.dedup.expression"
            )
        except ExpressionError as exc:
            raise ValueError(str(exc)) from exc
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
        dedup=dedup,
        dedup_expression=dedup_expression,
    )


def enabled_cache_key(workspace: str, flow_id: str) -> str:
    """The cache key of whether a flow is enabled, as the webhook route reads it (the flows
    service drops it when a flow is enabled or disabled)."""
    return f"webhook-enabled:{workspace}:{flow_id}"


async def _enabled(hub: HubParts, workspace: str, flow_id: str) -> bool:
    async def load() -> bool:
        row = await hub.db.read(lambda c: flow_store.get_flow(c, workspace, flow_id))
        return bool(row and row["enabled"])

    found: bool = await hub.cache.get_or_load(
        enabled_cache_key(workspace, flow_id), load, ttl=ENABLED_TTL
    )
    return found


async def find_plan(hub: HubParts, workspace: str, flow_id: str) -> Plan:
    """The plan of the flow's published version, from the engine's caches (no database read
    per request); ``not_found`` when there is no enabled webhook flow."""
    state = _state(hub)
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
                raise EventRefused("misconfigured", "this webhook is misconfigured") from None
            state.plans[key] = plan
    if plan is None:
        message = f"no webhook flow {flow_id!r} in workspace {workspace!r}"
        raise EventRefused("not_found", message)
    return plan


async def _secret_values(hub: HubParts, workspace: str, name: str) -> dict[str, Any]:
    """A connection's decrypted values, from the short-lived local cache or the database."""
    state = _state(hub)
    now = time.monotonic()
    found = state.secrets.get((workspace, name))
    if found is not None and found[0] > now:
        return found[1]
    try:
        values, _redactor = await hub.engine.connection_values(workspace, name)
    except LookupError:
        log.warning("webhook secret connection %r missing in workspace %r", name, workspace)
        raise EventRefused(
            "unavailable", "the webhook's signing secret is not configured"
        ) from None
    state.secrets[(workspace, name)] = (now + SECRET_TTL, values)
    return values


async def check_signature(
    hub: HubParts, plan: Plan, workspace: str, headers: dict[str, str], raw: bytes
) -> Verified | None:
    """Verify the request (``invalid_signature`` if refused); None when the flow asks for
    no signature."""
    if plan.signature is None and plan.verifier is None:
        return None
    name = plan.signature.secret_ref if plan.signature else plan.connection
    values = await _secret_values(hub, workspace, name) if name else {}
    now = time.time()
    if plan.signature is None:
        assert plan.verifier is not None
        try:
            result = plan.verifier(dict(plan.config), values, headers, raw, now)
            if inspect.isawaitable(result):
                await result
        except ValueError as exc:
            message = Redactor(secret_values(values)).text(str(exc))  # a plugin may quote it
            # A plugin's error may name its reason as the built-in schemes do (``reason``).
            reason = getattr(exc, "reason", None)
            if reason not in PLUGIN_REASONS:
                reason = "refused"
            raise EventRefused("invalid_signature", message, {"reason": reason}) from None
        return Verified()
    secrets = secrets_of(values)
    if not secrets:
        log.warning("webhook secret connection %r has no secret", name)
        raise EventRefused("unavailable", "the webhook's signing secret is not configured")
    try:
        return verify(plan.signature, secrets, headers, raw, now)
    except SignatureError as exc:
        raise EventRefused("invalid_signature", str(exc), {"reason": exc.reason}) from None


async def dedup_key(
    hub: HubParts, plan: Plan, headers: dict[str, str], data: dict[str, Any]
) -> str | None:
    """The sender's delivery id of a request, where the flow's ``dedup`` says (None when it
    names none); ``missing_dedup_key`` when the request does not carry it: a request the flow
    would dedup never starts a run without its key."""
    spec = plan.dedup
    if spec is None:
        return None
    try:
        if plan.dedup_expression is None:
            return senders.storable(senders.from_request(spec, headers, data["body"]))
        value = await hub.engine.renders.render(plan.dedup_expression, {"trigger": data})
    except MissingKey as exc:
        raise EventRefused("missing_dedup_key", str(exc), {"dedup": spec.describe()}) from None
    except ExpressionError as exc:
        raise EventRefused(
            "missing_dedup_key",
            f"the dedup expression failed: {exc.message}",
            {"dedup": spec.describe()},
        ) from None
    if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
        raise EventRefused(
            "missing_dedup_key",
            "the dedup expression gave no key (an empty or non-text value)",
            {"dedup": spec.describe()},
        )
    return senders.storable(str(value).strip())


def _schedule_prune(hub: HubParts, workspace: str, flow_id: str, plan: Plan) -> None:
    """Delete this flow's expired keys and markers, at most once a minute per process."""
    state = _state(hub)
    now = time.monotonic()
    if now - state.pruned.get((workspace, flow_id), 0.0) < PRUNE_EVERY:
        return
    state.pruned[(workspace, flow_id)] = now
    replay_before = int(time.time() - plan.tolerance - 5)
    keys_before = now_us() - int(webhook_keys.IDEMPOTENCY_RETENTION * 1_000_000)
    dedup_before = now_us() - int(hub.settings.webhook_dedup_retention_hours * 3600e6)

    async def prune() -> None:
        try:
            await hub.db.write(
                lambda c: webhook_keys.prune(
                    c, workspace, flow_id, replay_before, keys_before, dedup_before
                )
            )
        except Exception:
            log.exception("pruning webhook keys of %s/%s failed", workspace, flow_id)

    task = asyncio.get_running_loop().create_task(prune())
    state.tasks.add(task)
    task.add_done_callback(state.tasks.discard)


async def _start_one(
    hub: HubParts,
    workspace: str,
    flow_id: str,
    plan: Plan,
    event: Any,
    keys: list[tuple[str, str]],
) -> StartedRuns:
    """Start the run of one webhook event of ``plan``'s version with its dedup ``keys``
    (a run already stored under one of them is in ``found`` instead); a flow gone meanwhile
    is refused as ``not_found``."""
    try:
        return await start_event_runs(
            hub.engine,
            workspace,
            flow_id,
            [event],
            version=plan.version,
            trigger_type="webhook",
            keys=keys,
        )
    except RunNotFound as exc:
        raise EventRefused("not_found", str(exc)) from exc


async def start_webhook_run(
    hub: HubParts,
    workspace: str,
    flow_id: str,
    plan: Plan,
    data: dict[str, Any],
    *,
    idempotency_key: str | None,
    replay_key: str | None,
    body_hash: str,
    dedup_key: str | None = None,
) -> tuple[str, bool]:
    """Start the run of a webhook request; return its id, and whether it is the run that an
    earlier request with the same sender's delivery id, or the same ``Idempotency-Key`` and
    body, started (then nothing new starts).

    The delivery id, the key and the signature's replay marker are stored with the run, in
    its transaction. A delivery id seen before answers its run whatever the body (a sender's
    retry); the same key with another body is an ``idempotency_conflict``, a signature used
    before an ``invalid_signature`` (reason ``replayed``); a flow gone meanwhile
    ``not_found``.
    """
    idem = webhook_keys.IDEMPOTENCY_PREFIX + idempotency_key if idempotency_key else None
    dedup = webhook_keys.DEDUP_PREFIX + dedup_key if dedup_key else None
    keys: list[tuple[str, str]] = []
    if dedup is not None:
        keys.append((dedup, body_hash))
    if idem is not None:
        keys.append((idem, body_hash))
    if replay_key:
        keys.append((webhook_keys.REPLAY_PREFIX + replay_key, body_hash))
    if keys:
        _schedule_prune(hub, workspace, flow_id, plan)
    started = await _start_one(hub, workspace, flow_id, plan, data, keys)
    if started.run_ids:
        return started.run_ids[0], False
    if dedup is not None and dedup in started.found:
        return started.found[dedup].run_id, True
    if idem is not None and idem in started.found:
        row = started.found[idem]
        if row.request_hash != body_hash:
            raise EventRefused(
                "idempotency_conflict",
                "this Idempotency-Key was already used with another body",
                {"run_id": row.run_id},
            )
        return row.run_id, True
    raise EventRefused(
        "invalid_signature", "this signature was already used (a replay)", {"reason": "replayed"}
    )


async def _start_plugin_event(
    hub: HubParts, workspace: str, flow_id: str, plan: Plan, event: Any
) -> tuple[str, bool]:
    """Start the run of one event a plugin's ``handle_request`` found; its
    ``idempotency_key`` is its dedup key, stored with the run (a repeat answers that run)."""
    key = event.get("idempotency_key") if isinstance(event, dict) else None
    keys = [(webhook_keys.EVENT_PREFIX + senders.storable(str(key)), "")] if key else []
    started = await _start_one(hub, workspace, flow_id, plan, event, keys)
    if started.run_ids:
        return started.run_ids[0], False
    return next(iter(started.found.values())).run_id, True


async def handle_request(
    hub: HubParts,
    plan: Plan,
    workspace: str,
    flow_id: str,
    *,
    method: str,
    url: str,
    headers: dict[str, str],
    raw: bytes,
) -> tuple[dict[str, Any], list[tuple[str, bool]]]:
    """A trigger that answers the service itself: its answer, and for each event it found
    the id of its run and whether that run existed already (a repeated event)."""
    assert plan.handler is not None
    connection = await _secret_values(hub, workspace, plan.connection) if plan.connection else {}
    answer: dict[str, Any] = plan.handler(
        WebhookRequest(
            connection=connection,
            config=plan.config,
            method=method,
            # The URL the service called (and may have signed): on HUB_PUBLIC_URL when set.
            url=links.as_public(hub.settings, url),
            headers=headers,
            raw_body=raw,
            now=time.time(),
        )
    )
    events = (answer.get("events") or []) if int(answer.get("status") or 200) < 400 else []
    runs = [await _start_plugin_event(hub, workspace, flow_id, plan, e) for e in events]
    return answer, runs


async def finished_run(hub: HubParts, run_id: str, timeout: float) -> dict[str, Any]:
    """The record of a run once it has succeeded (a sync webhook's answer); raises
    TimeoutError while it still runs after ``timeout`` seconds, ``run_failed`` when it
    failed or was cancelled."""
    record = await hub.engine.wait_for_run(run_id, timeout)
    if record["status"] != "succeeded":
        raise EventRefused(
            "run_failed",
            f"the run {record['status']}",
            {"run_id": run_id, "status": record["status"]},
        )
    return record


async def run_status(hub: HubParts, run_id: str) -> str:
    """A run's status now (``unknown`` when there is no such run)."""
    found = await hub.db.read(lambda c: run_store.run_record(c, run_id))
    return str(found["status"]) if found else "unknown"
