"""Connector, Action and Trigger descriptions, and the registry built from plugins.

A connector plugin returns :class:`Connector` objects from its ``hub_connectors`` hook. Every
schema is JSON Schema (draft 2020-12). An action may be declared as a typed async function
with :func:`action`; its schemas are then derived from msgspec types, and the derived schema is
what the hub uses.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import inspect
import math
import re
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Literal

import msgspec
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

ActionCallable = Callable[[Any, Any], Awaitable[Any]]
# verify(config, secrets, headers, raw_body, now) of a webhook trigger: raise ValueError to refuse
WebhookVerifier = Callable[[dict[str, Any], dict[str, Any], Mapping[str, str], bytes, float], None]
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
ANY_SCHEMA: dict[str, Any] = {}


class RegistrationError(ValueError):
    """A plugin handed over a description the hub refuses; the message names the plugin."""


class ActionError(Exception):
    """An action failed in a way it describes itself.

    ``retryable`` says whether another attempt may succeed (the step's retry policy decides
    whether there is one). ``retry_after`` (seconds) overrides the back-off, as a service's
    ``Retry-After`` header does.
    """

    def __init__(
        self, message: str, *, retryable: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


@dataclasses.dataclass(frozen=True)
class CachePolicy:
    """Results of the action may be cached for ``ttl`` seconds (and served stale a while)."""

    ttl: float
    stale_while_revalidate: float = 0.0


@dataclasses.dataclass(frozen=True)
class RateLimit:
    """At most ``requests`` calls per ``per_seconds``, shared per connection (or action)."""

    requests: int
    per_seconds: float
    scope: Literal["connection", "action"] = "connection"


@dataclasses.dataclass
class Action:
    """One action of a connector.

    ``run(ctx, input)`` is an async callable receiving the action context and the validated
    input. ``retryable_errors`` names exception classes that another attempt may cure.
    """

    name: str
    run: ActionCallable
    title: str = ""
    description: str = ""
    input_schema: dict[str, Any] = dataclasses.field(default_factory=dict)
    output_schema: dict[str, Any] = dataclasses.field(default_factory=dict)
    needs_connection: bool = False
    idempotent: bool = False
    cache: CachePolicy | None = None
    rate_limit: RateLimit | None = None
    timeout: float | None = None
    retryable_errors: tuple[type[BaseException], ...] = ()
    examples: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    options: Mapping[str, Callable[[Any], Awaitable[list[dict[str, Any]]]]] = dataclasses.field(
        default_factory=dict
    )
    input_type: Any = None
    output_type: Any = None

    def describe(self) -> dict[str, Any]:
        """The JSON-friendly description (what the API and the docs show)."""
        return {
            "name": self.name,
            "title": self.title or self.name.replace("_", " ").capitalize(),
            "description": self.description,
            "input_schema": self.input_schema,
            "output_schema": self.output_schema,
            "needs_connection": self.needs_connection,
            "idempotent": self.idempotent,
            "cache": dataclasses.asdict(self.cache) if self.cache else None,
            "rate_limit": dataclasses.asdict(self.rate_limit) if self.rate_limit else None,
            "timeout": self.timeout,
            "options": sorted(self.options),
        }


@dataclasses.dataclass(frozen=True)
class WebhookRequest:
    """One request to a webhook trigger's ``handle_request``, exactly as it arrived."""

    connection: dict[str, Any]
    config: dict[str, Any]
    method: str
    url: str
    headers: Mapping[str, str]
    raw_body: bytes
    now: float


@dataclasses.dataclass
class Trigger:
    """A trigger: ``manual``, ``webhook``, ``schedule``, ``poll`` or ``subscribe``.

    ``config_schema`` validates the ``trigger.config`` of a flow that uses it. Poll triggers
    give ``poll(ctx, config, cursor) -> (events, new_cursor)``; subscribe triggers give
    ``subscribe(ctx, config, emit)``, a long-lived coroutine.

    A webhook-kind trigger may give ``verify(config, secrets, headers, raw_body, now)``: the
    hub calls it on every request to ``/hooks/{workspace}/{flow}`` of a flow using the
    trigger, before anything is stored, with the flow's trigger config, the decrypted values
    of the trigger's connection (``trigger.connection``; ``{}`` without one), the headers
    (lower-case names), the body exactly as received and the time (epoch seconds). It
    raises ``ValueError`` with a message to refuse the request (401, no run); its return
    value is ignored.

    A webhook-kind trigger that must answer the service itself (a URL handshake, batches of
    events) gives ``handle_request(request)`` instead: ``request`` is a
    :class:`WebhookRequest`, and it returns ``{"status": int, "body": Any, "events": [...]}``.
    The hub answers with ``status`` and ``body`` and starts one run per event; an event's
    ``idempotency_key`` (the service's event id) makes a redelivery return its run.
    """

    name: str
    kind: Literal["manual", "webhook", "schedule", "poll", "subscribe"]
    title: str = ""
    description: str = ""
    config_schema: dict[str, Any] = dataclasses.field(default_factory=dict)
    output_schema: dict[str, Any] = dataclasses.field(default_factory=dict)
    poll: Callable[..., Awaitable[Any]] | None = None
    subscribe: Callable[..., Awaitable[Any]] | None = None
    interval: float = 60.0
    verify: WebhookVerifier | None = None
    handle_request: Callable[[WebhookRequest], dict[str, Any]] | None = None
    # check_config(config) -> [(field, message)]: what a JSON Schema cannot say (a cron
    # expression, a time zone name); run at validation, after the config schema passed.
    check_config: Callable[[dict[str, Any]], list[tuple[str, str]]] | None = None

    def describe(self) -> dict[str, Any]:
        """The JSON-friendly description."""
        return {
            "name": self.name,
            "kind": self.kind,
            "title": self.title or self.name.capitalize(),
            "description": self.description,
            "config_schema": self.config_schema,
            "output_schema": self.output_schema,
        }


@dataclasses.dataclass
class Connector:
    """A connector: its connection schema (secrets marked), actions and triggers."""

    name: str
    title: str = ""
    version: str = "0"
    icon: str = ""
    description: str = ""
    connection_schema: dict[str, Any] | None = None
    actions: list[Action] = dataclasses.field(default_factory=list)
    triggers: list[Trigger] = dataclasses.field(default_factory=list)
    # ``test_connection(connection, http=None)``: raise ActionError when the service refuses.
    # Accept ``http`` to receive the hub's shared client (behind the SSRF guard).
    test_connection: Callable[..., Awaitable[Any]] | None = None
    oauth2: dict[str, Any] | None = None
    notes: str = ""

    def describe(self) -> dict[str, Any]:
        """The JSON-friendly description (schemas/connector.schema.json)."""
        return {
            "name": self.name,
            "title": self.title or self.name.capitalize(),
            "version": self.version,
            "icon": self.icon,
            "description": self.description,
            "connection_schema": self.connection_schema,
            "oauth2": self.oauth2,
            "notes": self.notes,
            "actions": [a.describe() for a in self.actions],
            "triggers": [t.describe() for t in self.triggers],
        }


def schema_of(type_: Any) -> dict[str, Any]:
    """The JSON Schema of a msgspec-compatible type, with ``$defs`` inlined at the top."""
    return msgspec.json.schema(type_)


def action(
    name: str | None = None,
    *,
    title: str = "",
    needs_connection: bool = False,
    idempotent: bool = False,
    cache: CachePolicy | None = None,
    rate_limit: RateLimit | None = None,
    timeout: float | None = None,
    retryable_errors: tuple[type[BaseException], ...] = (),
    examples: list[dict[str, Any]] | None = None,
) -> Callable[[Callable[..., Awaitable[Any]]], Action]:
    """Declare an action from a typed async function ``async def f(ctx, input: In) -> Out``.

    The input and output schemas are derived from the annotations (msgspec Structs, dicts,
    lists, scalars). The input is converted to the annotated type before the call, and the
    returned value is converted back to JSON-compatible data.
    """

    def decorate(fn: Callable[..., Awaitable[Any]]) -> Action:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"action {fn.__qualname__} must be an async function")
        hints = typing.get_type_hints(fn)
        params = list(inspect.signature(fn).parameters)
        if len(params) != 2:
            raise TypeError(f"action {fn.__qualname__} must take (ctx, input)")
        in_type = hints.get(params[1], Any)
        out_type = hints.get("return", Any)

        async def run(ctx: Any, data: Any) -> Any:
            value = data if in_type is Any else msgspec.convert(data, in_type)
            result = await fn(ctx, value)
            return msgspec.to_builtins(result)

        return Action(
            name=name or fn.__name__,
            run=run,
            title=title,
            description=inspect.getdoc(fn) or "",
            input_schema=ANY_SCHEMA if in_type is Any else schema_of(in_type),
            output_schema=ANY_SCHEMA if out_type is Any else schema_of(out_type),
            needs_connection=needs_connection,
            idempotent=idempotent,
            cache=cache,
            rate_limit=rate_limit,
            timeout=timeout,
            retryable_errors=retryable_errors,
            examples=examples or [],
            input_type=in_type,
            output_type=out_type,
        )

    return decorate


def check_schema(schema: Any, where: str) -> None:
    """Raise :class:`RegistrationError` unless ``schema`` is valid draft 2020-12 JSON Schema."""
    if not isinstance(schema, dict | bool):
        raise RegistrationError(f"{where}: a schema must be an object, not {type(schema).__name__}")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        path = "/".join(str(p) for p in exc.path)
        raise RegistrationError(f"{where}: invalid JSON Schema at '{path}': {exc.message}") from exc


class Registry:
    """Every connector, action and trigger the loaded plugins provide, validated."""

    def __init__(self) -> None:
        self.connectors: dict[str, Connector] = {}
        self.actions: dict[str, Action] = {}
        self.triggers: dict[str, Trigger] = {}
        self.owners: dict[str, str] = {}

    def add(self, plugin: str, connectors: Iterable[Any]) -> None:
        """Validate and add the connectors one plugin returned; errors name the plugin."""
        if not isinstance(connectors, list | tuple):
            raise RegistrationError(
                f"plugin {plugin!r}: hub_connectors must return a list, "
                f"not {type(connectors).__name__}"
            )
        for connector in connectors:
            self._add_connector(plugin, connector)

    def _add_connector(self, plugin: str, connector: Any) -> None:
        if not isinstance(connector, Connector):
            raise RegistrationError(
                f"plugin {plugin!r}: hub_connectors returned {type(connector).__name__}, "
                "expected hub.Connector"
            )
        where = f"plugin {plugin!r}, connector {connector.name!r}"
        if not NAME_RE.match(connector.name):
            raise RegistrationError(f"{where}: name must match {NAME_RE.pattern}")
        if connector.name in self.connectors:
            raise RegistrationError(
                f"{where}: connector name already registered by plugin "
                f"{self.owners[connector.name]!r}"
            )
        if connector.connection_schema is not None:
            check_schema(connector.connection_schema, f"{where}: connection_schema")
        seen: set[str] = set()
        for act in connector.actions:
            awhere = f"{where}, action {act.name!r}"
            if not isinstance(act, Action):
                raise RegistrationError(f"{where}: actions must be hub.Action objects")
            if not NAME_RE.match(act.name):
                raise RegistrationError(f"{awhere}: name must match {NAME_RE.pattern}")
            if act.name in seen:
                raise RegistrationError(f"{awhere}: duplicate action name")
            seen.add(act.name)
            if not inspect.iscoroutinefunction(act.run) and not callable(act.run):
                raise RegistrationError(f"{awhere}: run must be an async callable")
            check_schema(act.input_schema, f"{awhere}: input_schema")
            check_schema(act.output_schema, f"{awhere}: output_schema")
            if act.needs_connection and connector.connection_schema is None:
                raise RegistrationError(
                    f"{awhere}: needs a connection but the connector has no connection_schema"
                )
        tseen: set[str] = set()
        for trig in connector.triggers:
            twhere = f"{where}, trigger {trig.name!r}"
            if not NAME_RE.match(trig.name):
                raise RegistrationError(f"{twhere}: name must match {NAME_RE.pattern}")
            if trig.name in tseen:
                raise RegistrationError(f"{twhere}: duplicate trigger name")
            tseen.add(trig.name)
            check_schema(trig.config_schema, f"{twhere}: config_schema")
            if trig.verify is not None and (trig.kind != "webhook" or not callable(trig.verify)):
                raise RegistrationError(f"{twhere}: verify is for webhook triggers, a callable")
        self.connectors[connector.name] = connector
        self.owners[connector.name] = plugin
        for act in connector.actions:
            self.actions[f"{connector.name}.{act.name}"] = act
        for trig in connector.triggers:
            key = trig.name if connector.name == "core" else f"{connector.name}.{trig.name}"
            self.triggers[key] = trig

    def action(self, full_name: str) -> Action | None:
        """The action named ``connector.action``, or None."""
        return self.actions.get(full_name)

    def connector_of(self, full_name: str) -> Connector | None:
        """The connector of an action or trigger full name."""
        return self.connectors.get(full_name.split(".", 1)[0])


async def run_connection_test(connector: Connector, connection: dict[str, Any], http: Any) -> Any:
    """Call a connector's connection test, handing it the hub's guarded HTTP client when the
    test accepts an ``http`` argument."""
    test = connector.test_connection
    if test is None:
        raise ValueError(f"connector {connector.name!r} has no connection test")
    if "http" in inspect.signature(test).parameters:
        return await test(connection, http=http)
    return await test(connection)


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date), or None.

    For actions mapping a service's 429/503 to ``ActionError(retryable=True, retry_after=...)``.
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    now = now or dt.datetime.now(dt.UTC)
    return max(0.0, (when - now).total_seconds())
