"""What the web UI's home and connectors pages read: what needs attention in a workspace,
the queue and its workers (queue mode), and the installed plugins with their versions.

The database part is a few grouped, indexed queries (:mod:`hub.db.overview`). The queue
part reads Redis: each queue's jobs (``ZCARD``, and those due now) and its workers' presence
sets, which every ``hub worker`` refreshes about once a second while it runs
(:func:`hub.engine.executors.arq.worker.WakingWorker.count_workers`); a worker not seen for
``PRESENCE_TTL`` seconds is gone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import importlib.metadata
import time
from typing import Any

import yaml

from hub.connectors import Action, Registry, Trigger
from hub.db import health
from hub.db import overview as overview_store
from hub.db.models import now_us
from hub.plugin_kit.docs import action_policies
from hub.plugin_kit.schema_reader import SchemaReader
from hub.plugins import DEFAULT_PLUGINS, plugin_name
from hub.schemas import schema_errors
from hub.services.base import HubParts
from hub.services.errors import NotFound
from hub.services.system import REDIS_TIMEOUT
from hub.services.workspace import WorkspaceHub

DAY_US = 86_400 * 1_000_000
RECENT_US = DAY_US  # "failed lately": the last 24 hours
WINDOW_US = 7 * DAY_US  # "fail most": the last 7 days
BUILT_IN = "built in"
REFERENCE_DEPTH = 6  # nested fields shown down to a.b.c.d.e.f.g


async def attention(ws: WorkspaceHub, *, now: int | None = None) -> dict[str, Any]:
    """The workspace's failed runs of the last 24 hours, its running runs, and its five
    flows with most failures in the last 7 days (with their failure rate), from the
    database in one read; ``now`` (epoch microseconds) and the windows' starts are in the
    answer (``since_recent``, ``since_window``)."""
    at = now_us() if now is None else now
    workspace = ws.workspace
    found = await ws.hub.db.read(
        lambda c: overview_store.attention(c, workspace, now=at, recent=RECENT_US, window=WINDOW_US)
    )
    for flow in found["failing_flows"]:
        flow["rate"] = flow["failed"] / flow["runs"] if flow["runs"] else 0.0
    return {**found, "now": at, "since_recent": at - RECENT_US, "since_window": at - WINDOW_US}


@dataclasses.dataclass
class QueueState:
    """One priority queue: its jobs (``due``: ready to run now) and live workers."""

    priority: str
    name: str
    jobs: int
    due: int
    workers: int


@dataclasses.dataclass
class WorkerState:
    """One ``hub worker`` process, as its queues' presence sets show it."""

    host: str
    pid: str
    queues: list[str]
    seen_at: float  # epoch seconds


@dataclasses.dataclass
class QueueOverview:
    """Queue mode at a glance: the queues, the worker processes, the steps the database
    holds ``queued`` and ``waiting`` (the whole hub), or why Redis did not answer."""

    queues: list[QueueState]
    workers: list[WorkerState]
    steps: dict[str, int]
    error: str = ""


def _worker_of(member: str) -> tuple[str, str]:
    """(host, pid) of a presence member (``host/pid/random``; an older worker: its id)."""
    parts = member.rsplit("/", 2)
    if len(parts) == 3:
        return parts[0], parts[1]
    return member, ""


async def _read_queues(hub: HubParts) -> tuple[list[QueueState], list[WorkerState]]:
    from hub.engine.executors.arq.queues import PRIORITIES, queue_for
    from hub.engine.executors.arq.worker import PRESENCE_TTL, presence_key

    now = time.time()
    names = [(p, queue_for(hub.settings, p)) for p in PRIORITIES]
    async with hub.redis.pipeline(transaction=False) as pipe:
        for _, name in names:
            pipe.zcard(name)
            pipe.zcount(name, "-inf", now * 1000)
            pipe.zrangebyscore(presence_key(name), now - PRESENCE_TTL, "+inf", withscores=True)
        replies = await pipe.execute()
    queues: list[QueueState] = []
    processes: dict[tuple[str, str], WorkerState] = {}
    for i, (priority, name) in enumerate(names):
        jobs, due, members = replies[3 * i : 3 * i + 3]
        queues.append(QueueState(priority, name, int(jobs), int(due), len(members)))
        for member, seen in members:
            text = member.decode() if isinstance(member, bytes) else str(member)
            host, pid = _worker_of(text)
            state = processes.setdefault((host, pid), WorkerState(host, pid, [], 0.0))
            state.queues.append(priority)
            state.seen_at = max(state.seen_at, float(seen))
    workers = sorted(processes.values(), key=lambda w: (w.host, w.pid))
    return queues, workers


async def queue_overview(hub: HubParts) -> QueueOverview | None:
    """The queues and workers in queue mode (``HUB_REDIS_URL``); None in embedded mode.

    A Redis that does not answer within the readiness timeout gives an overview with
    ``error`` set (the page says so) rather than an error page.
    """
    if hub.redis is None or not hub.settings.redis_url:
        return None
    steps = await hub.db.read(health.metric_counts)
    try:
        async with asyncio.timeout(REDIS_TIMEOUT):
            queues, workers = await _read_queues(hub)
    except Exception as exc:
        return QueueOverview([], [], steps, f"Redis did not answer ({type(exc).__name__})")
    return QueueOverview(queues, workers, steps)


@dataclasses.dataclass(frozen=True)
class PluginInfo:
    """An installed plugin: its name, where it comes from and its version."""

    name: str
    distribution: str  # the distribution that installed it ("" for built-ins and modules)
    version: str  # the distribution's version, or "built in"


def plugin_infos(owners: set[str]) -> dict[str, PluginInfo]:
    """:func:`installed_plugins` of ``owners`` (read once per process: what is installed
    does not change while the hub runs; reading it takes 10-150 ms)."""
    return installed_plugins(frozenset(owners))


@functools.cache
def installed_plugins(owners: frozenset[str]) -> dict[str, PluginInfo]:
    """Each plugin named in ``owners`` (a registry's plugin names) with its distribution and
    version (``importlib.metadata``): built-ins are ``built in``; an entry point of the
    group ``hub`` names the distribution that declares it; a module named by
    ``HUB_PLUGIN_MODULES`` the distribution that installed its top-level package, if any;
    otherwise (a plugin registered in code) neither is known (version ``""``)."""
    built_ins = {plugin_name(m) for m in DEFAULT_PLUGINS}
    points = {ep.name: ep for ep in importlib.metadata.entry_points(group="hub")}
    packages: dict[str, list[str]] | None = None
    found: dict[str, PluginInfo] = {}
    for name in sorted(owners):
        if name in built_ins:
            found[name] = PluginInfo(name, "", BUILT_IN)
            continue
        dist = getattr(points.get(name), "dist", None)
        if dist is not None:
            found[name] = PluginInfo(name, str(dist.name), str(dist.version))
            continue
        if packages is None:
            packages = dict(importlib.metadata.packages_distributions())
        owners_of = packages.get(name.split(".", 1)[0], [])
        if len(owners_of) == 1:
            try:
                version = importlib.metadata.version(owners_of[0])
            except importlib.metadata.PackageNotFoundError:
                version = ""
            found[name] = PluginInfo(name, owners_of[0], version)
        else:
            found[name] = PluginInfo(name, "", "")
    return found


# -- the connectors' reference -------------------------------------------------------------

EXAMPLE_CONNECTION = "my_{connector}"  # the connection name a step example uses
RESERVED_STEP_IDS = ("fail", "continue")  # values of on_error, not step ids


def schema_fields(schema: Any) -> list[dict[str, Any]]:
    """Every field of a schema, nested fields as rows of their own (``a.b``, ``a[].b``),
    through ``$ref``s and the object alternatives of unions (see
    :meth:`hub.plugin_kit.schema_reader.SchemaReader.fields`); types without the markdown
    code marks."""
    rows = SchemaReader(schema).fields(schema, max_depth=REFERENCE_DEPTH, unions=True)
    return [{**row, "type": _type_of(row)} for row in rows]


JSON_TYPES = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"))


def _type_of(row: dict[str, Any]) -> str:
    """A field's type without markdown marks; an enum's as the types of its values
    (``string (enum)``: the values are listed beside it)."""
    if row["enum"]:
        kinds = {next((n for t, n in JSON_TYPES if isinstance(v, t)), "null") for v in row["enum"]}
        return " or ".join(sorted(kinds)) + " (enum)"
    return str(row["type"]).replace("`", "")


def schema_summary(schema: Any) -> str:
    """What a schema without fields accepts, in words ("" when it has fields)."""
    reader = SchemaReader(schema)
    if schema in ({}, True, None):
        return "Any JSON value (no schema)."
    if reader.resolve(schema).get("properties") == {}:
        return "No fields."
    if not reader.fields(schema):
        return f"A value of type {reader.type_name(schema)}."
    return ""


def schema_rules(schema: Any) -> list[str]:
    """What a schema says about its fields together, in words, beside the fields' table:
    alternatives of required fields (``oneOf: [{required: [a]}, {required: [b]}]``)."""
    reader = SchemaReader(schema)
    s = reader.resolve(schema)
    rules: list[str] = []
    for key, how in (("oneOf", "exactly one"), ("anyOf", "at least one")):
        branches = [reader.resolve(b) for b in s.get(key) or []]
        sets = [b.get("required") for b in branches]
        if branches and all(isinstance(r, list) and r for r in sets):
            names = " | ".join(" and ".join(str(n) for n in r) for r in sets if r)
            rules.append(f"Give {how} of: {names}.")
    return rules


def example_value(schema: Any) -> Any:
    """An example value of a schema (its examples, default, else one made from its types)."""
    return SchemaReader(schema).example(schema)


def example_problems(schema: Any, where: str) -> list[str]:
    """What the schema refuses in its made-up example (a pattern, a format or a rule the
    example maker does not follow): the values a person must replace."""
    return schema_errors(schema, example_value(schema), where)


def trigger_problems(trigger: Trigger) -> list[str]:
    """What the trigger refuses in its made-up config: its schema, then its own check (a
    cron expression, a time zone)."""
    problems = example_problems(trigger.config_schema, "config")
    config = example_value(trigger.config_schema)
    if not problems and trigger.check_config is not None and isinstance(config, dict):
        try:
            problems = [f"config.{f}: {m}" for f, m in trigger.check_config(config)]
        except Exception as exc:  # a plugin's check: say it, do not fail the page
            problems = [f"config: {type(exc).__name__}"]
    return problems


def step_example(full_name: str, act: Action, input: Any = None) -> str:
    """A flow step using the action, as YAML: ``- id: ...`` with its ``action``, a
    connection when the action needs one, and ``input`` (the example input given, else one
    made from the input schema)."""
    connector = full_name.split(".", 1)[0]
    ident = f"{act.name}_step" if act.name in RESERVED_STEP_IDS else act.name
    step: dict[str, Any] = {"id": ident, "action": full_name}
    if act.needs_connection:
        step["connection"] = EXAMPLE_CONNECTION.format(connector=connector)
    value = example_value(act.input_schema) if input is None else input
    if value is not None:
        step["input"] = value
    return yaml.safe_dump([step], sort_keys=False, allow_unicode=True, default_flow_style=False)


def trigger_example(full_name: str, trigger: Trigger, needs_connection: bool) -> str:
    """A flow's ``trigger`` using this trigger, as YAML (config made from its schema)."""
    block: dict[str, Any] = {"type": full_name}
    config = example_value(trigger.config_schema)
    if isinstance(config, dict) and config:
        block["config"] = config
    if needs_connection:
        block["connection"] = EXAMPLE_CONNECTION.format(connector=full_name.split(".", 1)[0])
    return yaml.safe_dump(
        {"trigger": block}, sort_keys=False, allow_unicode=True, default_flow_style=False
    )


def _example(example: dict[str, Any]) -> dict[str, Any]:
    """A declared example as ``{"input": ..., "output": ...}`` (the plugin guide's shape; an
    example without ``input`` is taken as the input itself)."""
    return example if "input" in example else {"input": example}


def action_reference(registry: Registry, connector: str, action: str) -> dict[str, Any]:
    """What an action's reference page shows: its policies, input and output fields, its
    declared examples and a step using it (:class:`NotFound` when not installed)."""
    found = registry.connectors.get(connector)
    act = next((a for a in found.actions if a.name == action), None) if found else None
    if found is None or act is None:
        raise NotFound(f"no action {connector}.{action} is installed")
    full = f"{connector}.{action}"
    declared = [_example(e) for e in act.examples if isinstance(e, dict)]
    valid = [e["input"] for e in declared if not schema_errors(act.input_schema, e["input"], "")]
    return {
        "connector": found,
        "action": act,
        "full_name": full,
        "title": act.title or act.name.replace("_", " ").capitalize(),
        "policies": [p.replace("`", "") for p in action_policies(act)],
        "input_fields": schema_fields(act.input_schema),
        "input_summary": schema_summary(act.input_schema),
        "input_rules": schema_rules(act.input_schema),
        "output_fields": schema_fields(act.output_schema),
        "output_summary": schema_summary(act.output_schema),
        "examples": declared,
        "step_yaml": step_example(full, act, valid[0] if valid else None),
        "step_problems": [] if valid else example_problems(act.input_schema, "input"),
        "generated_input": example_value(act.input_schema),
        "generated_output": example_value(act.output_schema),
    }


def trigger_reference(registry: Registry, connector: str, trigger: str) -> dict[str, Any]:
    """What a trigger's reference page shows: its config and event fields and a flow
    ``trigger`` using it (:class:`NotFound` when not installed)."""
    found = registry.connectors.get(connector)
    trig = next((t for t in found.triggers if t.name == trigger), None) if found else None
    if found is None or trig is None:
        raise NotFound(f"no trigger {trigger!r} of connector {connector!r} is installed")
    full = trig.name if connector == "core" else f"{connector}.{trig.name}"
    polls = trig.kind in ("poll", "subscribe") and found.connection_schema is not None
    return {
        "connector": found,
        "trigger": trig,
        "full_name": full,
        "title": trig.title or trig.name.capitalize(),
        "config_fields": schema_fields(trig.config_schema),
        "config_summary": schema_summary(trig.config_schema) or "",
        "config_rules": schema_rules(trig.config_schema),
        "output_fields": schema_fields(trig.output_schema),
        "output_summary": schema_summary(trig.output_schema),
        "trigger_yaml": trigger_example(full, trig, polls),
        "trigger_problems": trigger_problems(trig),
        "generated_event": example_value(trig.output_schema) if trig.output_schema else None,
    }
