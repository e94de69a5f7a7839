"""The builder's trigger panel (``?panel=trigger``): what starts a run.

Everything comes from the registry and the trigger's ``config_schema``, so a trigger a
later plugin adds works with no change here:

- the trigger's type, chosen from every trigger the registry offers (and ``manual``), each
  with its title and description; changing it writes ``trigger: {type}`` (the old config
  and connection go: they belonged to the old type), one edit;
- the trigger's config as a form generated from its schema (:mod:`hub.web.forms`), posted
  as one types (debounced) to ``POST {build}/trigger``: that answer carries out-of-band
  regions only (the canvas, the toolbar, the issues, the fire times and the errors at the
  fields, placed by ``ui/static/builder/trigger.js``), so the field being typed in keeps
  its focus;
- the connection, for a trigger of a connector (``<connector>.<name>``) that has one;
- the server's issues (``trigger.type``, ``trigger.config.*``, ``trigger.connection``) at
  their fields;
- **schedule**: cron presets, a time zone select, the next fire times computed here from
  the draft (an unreadable cron: its error at the field);
- **webhook** (any trigger of kind webhook): the URL it will have, with a copy button.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import re
import zoneinfo
from collections.abc import Mapping
from typing import Any

from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.response import Redirect

from hub.api.deps import EDITOR
from hub.api.flows import FlowPath
from hub.connectors import Registry, Trigger
from hub.services import links
from hub.services.errors import Invalid
from hub.services.flows import schedule_ticks
from hub.services.workspace import WorkspaceHub
from hub.web.builder.state import (
    BUILD_PATH,
    BuilderState,
    patch_at,
    pointer,
    posted_revision,
    refreshed,
    state_for,
)
from hub.web.connections import form_pairs, limits_of
from hub.web.flows import FIRE_TIMES
from hub.web.forms import (
    MISSING,
    Field,
    Form,
    FormHooks,
    Option,
    Path,
    apply_op,
    parse_form,
    render_form,
)
from hub.web.navigation import is_htmx
from hub.web.pages import WorkspacePage

PANEL = "trigger"
PANEL_TEMPLATE = "builder/_panel_trigger.html"
LIVE_TEMPLATE = "builder/_trigger_live.html"
MANUAL = "manual"
SCHEDULE = "schedule"
#: The cron helper's presets: (cron expression, what it means).
PRESETS: tuple[tuple[str, str], ...] = (
    ("*/5 * * * *", "Every 5 minutes"),
    ("0 * * * *", "Hourly"),
    ("0 9 * * *", "Daily at 09:00"),
    ("0 9 * * 1-5", "Weekdays at 09:00"),
    ("0 9 * * 1", "Weekly, Monday at 09:00"),
)
#: The form's own fields (never part of the trigger's config).
OWN_FIELDS = frozenset({"_part", "connection", "preset", "revision"})
_SEGMENT = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]")


@dataclasses.dataclass(frozen=True)
class TriggerType:
    """A trigger the registry offers, as the panel lists it."""

    key: str
    title: str
    description: str
    kind: str

    @property
    def connector(self) -> str:
        """The connector a plugin's trigger belongs to (``slack`` of ``slack.events``)."""
        return self.key.split(".", 1)[0] if "." in self.key else ""


def trigger_types(registry: Registry) -> list[TriggerType]:
    """Every trigger type: the core ones (``manual`` always) first, then the plugins' by
    name."""
    found = {
        key: TriggerType(key, str(t.describe()["title"]), t.description, t.kind)
        for key, t in registry.triggers.items()
    }
    found.setdefault(
        MANUAL,
        TriggerType(MANUAL, "Manual", "Runs only when started by hand or by the API.", MANUAL),
    )
    core = [t for t in found.values() if not t.connector]
    core.sort(key=lambda t: (t.key != MANUAL, t.key))
    return core + sorted((t for t in found.values() if t.connector), key=lambda t: t.key)


def trigger_of(document: Mapping[str, Any]) -> dict[str, Any]:
    """The document's trigger as written ({} when there is none or it is not a mapping)."""
    raw = document.get("trigger")
    return dict(raw) if isinstance(raw, dict) else {}


def type_of(trigger: Mapping[str, Any]) -> str:
    """The trigger's type (``manual`` when absent)."""
    kind = trigger.get("type")
    return kind if isinstance(kind, str) and kind else MANUAL


def config_schema(kind: Trigger | None) -> dict[str, Any] | None:
    """The trigger's config schema when it has fields to fill in, else None."""
    if kind is None or not isinstance(kind.config_schema, dict) or not kind.config_schema:
        return None
    return kind.config_schema


def fire_times(
    config: Mapping[str, Any], count: int = FIRE_TIMES, now: dt.datetime | None = None
) -> tuple[list[dt.datetime], str]:
    """The next ``count`` ticks of a schedule's config (what the scheduler would fire), or
    why they cannot be computed. No cron yet: nothing, and nothing to say."""
    cron = config.get("cron")
    if not isinstance(cron, str) or not cron.strip():
        return [], ""
    try:
        return schedule_ticks(dict(config), count, now), ""
    except Invalid as exc:
        return [], exc.message


@functools.cache
def time_zones() -> tuple[str, ...]:
    """The IANA time zone names this system knows, sorted."""
    return tuple(sorted(zoneinfo.available_timezones()))


class TriggerFormHooks(FormHooks):
    """A schedule's ``timezone`` is a select of the known time zones."""

    def __init__(self, zones: bool) -> None:
        self.zones = zones

    def field(self, field: Field) -> Field:
        if self.zones and field.path == ("timezone",) and field.widget == "string":
            current = field.text
            names = list(time_zones())
            if current and current not in names:
                names.insert(0, current)
            field.widget = "enum"
            field.options = [Option(value=z, label=z, selected=z == current) for z in names]
            field.description = field.description or (
                "The time zone the cron expression is read in (none: UTC)."
            )
        return field


def location_path(rest: str) -> Path:
    """A location inside the config (``signature.secret_ref``, ``methods[0]``) as the form's
    path."""
    if not rest:
        return ()
    return tuple(
        int(m.group(2)) if m.group(2) is not None else m.group(1)
        for m in _SEGMENT.finditer("." + rest)
    )


def config_errors(state: BuilderState) -> dict[Path, list[str]]:
    """The server's issues of ``trigger.config`` by the form's path."""
    out: dict[Path, list[str]] = {}
    for rest, messages in state.field_errors(None, "trigger.config").items():
        out.setdefault(location_path(rest), []).extend(messages)
    return out


def live_errors(form: Form | None) -> list[tuple[str, str, list[str]]]:
    """Each field's errors as ``(control id, error id, messages)`` (what trigger.js places
    under the fields after an out-of-band answer)."""
    if form is None:
        return []
    return [(f.id, f.error_id, list(f.errors)) for f in form.index.values() if f.errors]


async def trigger_context(
    request: Request[Any, Any, Any],
    ws: WorkspaceHub,
    state: BuilderState,
    *,
    value: Any = MISSING,
    errors: Mapping[Path, list[str]] | None = None,
) -> dict[str, Any]:
    """What the trigger panel draws (``value``: a config to show instead of the draft's,
    such as a form with a row added; ``errors``: errors of reading the form, beside the
    server's issues)."""
    registry = ws.hub.registry
    trigger = trigger_of(state.document)
    current = type_of(trigger)
    kind = registry.triggers.get(current)
    types = trigger_types(registry)
    known = any(t.key == current for t in types)
    raw_config = trigger.get("config")
    config: dict[str, Any] = raw_config if isinstance(raw_config, dict) else {}
    schema = config_schema(kind)
    all_errors = config_errors(state)
    for path, messages in (errors or {}).items():
        all_errors.setdefault(tuple(path), []).extend(messages)
    form = None
    if schema is not None:
        form = render_form(
            schema,
            value if value is not MISSING else (config if "config" in trigger else MISSING),
            action=state.href_to("/trigger"),
            errors=all_errors,
            limits=limits_of(ws),
            hooks=TriggerFormHooks(zones=current == SCHEDULE),
        )
    connector = current.split(".", 1)[0] if "." in current else ""
    connections: list[str] | None = None
    found = registry.connectors.get(connector) if connector else None
    if found is not None and (found.connection_schema is not None or found.oauth2):
        connections = [
            str(row["name"])
            for row in await ws.list_connections()
            if row.get("connector") == connector
        ]
    times: list[dt.datetime] = []
    schedule_error = ""
    if current == SCHEDULE:
        times, schedule_error = fire_times(config)
    webhook = ""
    if kind is not None and kind.kind == "webhook":
        webhook = links.webhook_url(
            ws.hub.settings, ws.workspace, state.flow_id, str(request.base_url)
        )
    type_errors = [
        *state.field_errors(None, "trigger.type").get("", []),
        *[i.message for i in state.issues if i.step is None and i.location == "trigger"],
    ]
    return {
        "trigger_types": types,
        "trigger_type": current,
        "trigger_known": known,
        "trigger_kind": kind,
        "trigger_form": form,
        "trigger_connector": connector,
        "trigger_connections": connections,
        "trigger_connection": trigger.get("connection") or "",
        "connection_errors": state.field_errors(None, "trigger.connection").get("", []),
        "type_errors": type_errors,
        "fire_times": times,
        "schedule_error": schedule_error,
        "presets": PRESETS,
        "webhook_url": webhook,
        "live_errors": live_errors(form),
    }


async def trigger_panel(
    request: Request[Any, Any, Any], ws: WorkspaceHub, state: BuilderState
) -> tuple[str, dict[str, Any]]:
    """The trigger panel (``?panel=trigger``)."""
    return PANEL_TEMPLATE, await trigger_context(request, ws, state)


def trigger_ops(document: Mapping[str, Any], new: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The edit that makes the document's trigger ``new``."""
    if not isinstance(document.get("trigger"), dict):
        return [{"op": "add", "path": pointer("trigger"), "value": dict(new)}]
    return patch_at(pointer("trigger"), document["trigger"], dict(new))


class TriggerPanelPages(WorkspacePage):
    """``POST {build}/trigger``: the trigger's type, config and connection."""

    path = BUILD_PATH

    @post("/trigger", name="web_builder_trigger", opt=EDITOR, status_code=200)
    async def trigger(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        flow_id: FlowPath,
    ) -> Response[Any]:
        """``_part=type`` with ``type``: change the trigger's type (its config starts
        empty). Otherwise the config form (and ``connection``): written as one edit, the
        answer out of band only (``preset``, a cron preset, and ``_form_op``, a row added
        or removed, answer the whole panel instead)."""
        pairs = await form_pairs(request)
        fields = dict(pairs)
        draft = await ws.draft(flow_id)
        trigger = trigger_of(draft.document)
        registry = ws.hub.registry
        if fields.get("_part") == "type":
            wanted = fields.get("type", "")[:200]
            if wanted == type_of(trigger) and "type" in trigger:
                state = await state_for(ws, draft)
            else:
                draft = await ws.edit_draft(
                    flow_id,
                    trigger_ops(draft.document, {"type": wanted}),
                    label=f"trigger: {wanted}",
                    revision=posted_revision(fields),
                )
                state = await state_for(ws, draft)
            return await self._answer(request, ws, state, whole=True)
        kind = registry.triggers.get(type_of(trigger))
        schema = config_schema(kind)
        new: dict[str, Any] = dict(trigger) if trigger else {"type": MANUAL}
        read_errors: dict[Path, list[str]] = {}
        if schema is not None:
            own = [(k, v) for k, v in pairs if k not in OWN_FIELDS]
            submission = parse_form(schema, own, limits=limits_of(ws))
            if submission.op:
                tree, _ = apply_op(schema, submission)
                state = await state_for(ws, draft)
                return await self._answer(request, ws, state, whole=True, value=tree)
            read_errors = submission.errors
            value = submission.value if isinstance(submission.value, dict) else {}
            preset = fields.get("preset", "")
            if type_of(trigger) == SCHEDULE and preset in dict(PRESETS):
                value["cron"] = preset
            if value or "config" in trigger:
                new["config"] = value
        if "connection" in fields:
            chosen = fields["connection"][:200]
            if chosen:
                new["connection"] = chosen
            else:
                new.pop("connection", None)
        ops = [] if read_errors else trigger_ops(draft.document, new)
        if ops:
            draft = await ws.edit_draft(
                flow_id, ops, label="trigger settings", revision=posted_revision(fields)
            )
        state = await state_for(ws, draft)
        whole = bool(fields.get("preset"))
        return await self._answer(request, ws, state, whole=whole, errors=read_errors)

    async def _answer(
        self,
        request: Request[Any, Any, Any],
        ws: WorkspaceHub,
        state: BuilderState,
        *,
        whole: bool,
        value: Any = MISSING,
        errors: Mapping[Path, list[str]] | None = None,
    ) -> Response[Any]:
        """The whole panel (``whole``), else its live regions out of band; without htmx,
        back to the panel."""
        if not is_htmx(request):
            return Redirect(state.href + "?panel=trigger", status_code=303)
        context = await trigger_context(request, ws, state, value=value, errors=errors)
        answer = await refreshed(
            request, state, panel=PANEL_TEMPLATE if whole else LIVE_TEMPLATE, **context
        )
        if whole:
            answer.headers["HX-Retarget"] = "#builder-panel"
            answer.headers["HX-Reswap"] = "innerHTML"
        return answer
