"""The flow document: parse, validate (with locations), and the step graph.

:func:`parse_document` reads YAML or JSON text (errors give a line and column);
:func:`load_flow` validates a document, collecting every issue before it raises one
:class:`FlowError`, and builds the :class:`Flow` the engine runs; :func:`diff_documents`
describes what changed between two versions. The document's format is
``schemas/flow.schema.json``, explained field by field in ``docs/flow-reference.md``.

This module is the one to import: it re-exports the types of :mod:`hub.flows.model`
(:class:`Flow`, :class:`FlowError`, ...), while the checks themselves live in
:mod:`hub.flows.validate` and :mod:`hub.flows.checks`.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hub.expressions import Expressions
from hub.flows import bounds
from hub.flows import checks as flowcheck
from hub.flows.bounds import DocumentLimits
from hub.flows.model import (
    DURATION_HELP,
    Flow,
    FlowError,
    FlowIssue,
    RetryPolicy,
    StepSpec,
    TriggerSpec,
    parse_duration,
)
from hub.flows.validate import ACTION_RE, ON_ERROR_KEYWORDS, STEP_ID_RE, FlowChecker
from hub.flows.yaml_text import dump_yaml

if TYPE_CHECKING:
    from hub.connectors import Registry

__all__ = [
    "ACTION_RE",
    "DURATION_HELP",
    "ON_ERROR_KEYWORDS",
    "STEP_ID_RE",
    "DocumentLimits",
    "Flow",
    "FlowError",
    "FlowIssue",
    "RetryPolicy",
    "StepSpec",
    "TriggerSpec",
    "diff_documents",
    "load_flow",
    "load_flow_text",
    "parse_document",
    "parse_duration",
]


# --- Reading the text --------------------------------------------------------------------


def _kind(value: Any) -> str:
    names = {list: "a list", str: "a string", bool: "a boolean", int: "a number"}
    return names.get(type(value), "a number" if isinstance(value, float) else "a scalar")


def parse_document(
    text: str, source: str = "", limits: DocumentLimits | None = None
) -> dict[str, Any]:
    """Read a flow document from YAML or JSON text, within ``limits``.

    Text starting with ``{`` is read as JSON (exact JSON errors); anything else as YAML with
    the safe loader. Malformed text, a key given twice, an empty document or a top level
    that is not a mapping raise :class:`FlowError` located as ``line L, column C``
    (1-based). Scalar keys become strings as JSON would write them (``200:`` -> ``"200"``).

    ``limits`` (default: :class:`DocumentLimits`' defaults, which are the settings'
    defaults) bound the text's bytes, and, before the data is built, its nesting depth, its
    node count with YAML aliases expanded, and the number of alias uses: a document past a
    bound is a :class:`FlowError` naming the place and the limit. This checks only the
    syntax and the bounds; :func:`load_flow` validates the content.
    """
    limits = limits or DocumentLimits()
    text = text.removeprefix("\ufeff")
    oversized = bounds.too_large(len(text.encode()), limits)
    if oversized is not None:
        raise FlowError([FlowIssue(oversized.location, oversized.message)], source)
    try:
        data = (
            flowcheck.read_json(text, limits)
            if text.lstrip().startswith("{")
            else flowcheck.read_yaml(text, limits)
        )
    except flowcheck.TextError as exc:
        raise FlowError([FlowIssue(exc.location, exc.message)], source) from exc
    if data is None:
        message = "the document is empty: a flow is a mapping with id, trigger and steps"
        raise FlowError([FlowIssue("line 1, column 1", message)], source)
    if not isinstance(data, dict):
        line, column = flowcheck.first_content_position(text)
        message = f"a flow document must be a mapping (id, trigger, steps), not {_kind(data)}"
        raise FlowError([FlowIssue(f"line {line}, column {column}", message)], source)
    problems: list[flowcheck.Problem] = []
    document: dict[str, Any] = flowcheck.to_json_data(data, [], problems)
    if problems:
        raise FlowError([FlowIssue(loc, msg) for loc, msg in problems], source)
    return document


def load_flow(
    document: Mapping[str, Any],
    *,
    expressions: Expressions,
    registry: Registry | None = None,
    connections: Mapping[str, str] | None = None,
    source: str = "",
) -> Flow:
    """Validate a flow document and build its :class:`Flow`.

    Every check runs and every issue is collected before one :class:`FlowError` is raised:
    the JSON Schema, duplicate step ids, ``needs`` (unknown steps, cycles), ``on_error``
    handlers, expressions (syntax, and reading only ancestor steps), and, when ``registry``
    is given, actions, the trigger type and config, required connections, and literal input
    against each action's input schema. ``connections`` maps the stored connection names to
    their connector; when given, a step's ``connection`` must be one of the action's
    connector. ``source`` (a file name) prefixes the error's text.
    """
    if not isinstance(document, Mapping):
        message = f"a flow document must be a mapping (id, trigger, steps), not {_kind(document)}"
        raise FlowError([FlowIssue("", message)], source)
    return FlowChecker(document, expressions, registry, connections).run(source)


def load_flow_text(text: str, source: str = "", **kwargs: Any) -> Flow:
    """Parse YAML or JSON text and load it: ``load_flow(parse_document(text), ...)``."""
    return load_flow(parse_document(text, source), source=source, **kwargs)


# --- Comparing versions ------------------------------------------------------------------


def _short(value: Any, limit: int = 60) -> str:
    return flowcheck.shorten(json.dumps(value, default=str, ensure_ascii=False), limit)


def _trigger_of(document: Mapping[str, Any]) -> tuple[Any, Any]:
    raw = document.get("trigger")
    if not isinstance(raw, dict):
        return "manual", {}
    return raw.get("type", "manual"), raw.get("config") or {}


def _steps_of(document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    raw = document.get("steps")
    steps: dict[str, dict[str, Any]] = {}
    for index, step in enumerate(raw if isinstance(raw, list) else []):
        if isinstance(step, dict):
            key = step.get("id")
            steps.setdefault(key if isinstance(key, str) else f"steps[{index}]", step)
    return steps


def diff_documents(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Human-readable lines saying what changed from ``old`` to ``new`` (``[]``: nothing).

    Steps are matched by id: ``step added: notify (slack.post_message)``, ``step removed:
    x``, ``step changed: create (input, retry)``, ``steps reordered: ...``; also the id,
    name, description, trigger (type or config), output and extension fields.
    """
    lines: list[str] = []
    for field in ("id", "name", "description"):
        if old.get(field) != new.get(field):
            lines.append(f"{field} changed: {_short(old.get(field))} -> {_short(new.get(field))}")
    (old_type, old_config), (new_type, new_config) = _trigger_of(old), _trigger_of(new)
    if old_type != new_type:
        lines.append(f"trigger changed: {old_type} -> {new_type}")
    elif old_config != new_config:
        changed = sorted(
            str(k)
            for k in set(old_config) | set(new_config)
            if not isinstance(old_config, dict)
            or not isinstance(new_config, dict)
            or old_config.get(k) != new_config.get(k)
        )
        lines.append(f"trigger config changed ({old_type}): {', '.join(changed)}")
    old_steps, new_steps = _steps_of(old), _steps_of(new)
    for step_id, step in old_steps.items():
        if step_id not in new_steps:
            lines.append(f"step removed: {step_id} ({step.get('action', '?')})")
    for step_id, step in new_steps.items():
        before = old_steps.get(step_id)
        if before is None:
            lines.append(f"step added: {step_id} ({step.get('action', '?')})")
        elif before != step:
            fields = sorted(k for k in set(before) | set(step) if before.get(k) != step.get(k))
            lines.append(f"step changed: {step_id} ({', '.join(fields)})")
    kept_old = [s for s in old_steps if s in new_steps]
    kept_new = [s for s in new_steps if s in old_steps]
    if kept_old != kept_new:
        lines.append(f"steps reordered: {', '.join(kept_new)}")
    if old.get("output") != new.get("output"):
        if "output" not in old:
            lines.append("output added")
        elif "output" not in new:
            lines.append("output removed")
        else:
            lines.append("output changed")
    known = {"id", "name", "description", "trigger", "steps", "output"}
    for key in sorted((set(old) | set(new)) - known):
        if old.get(key) != new.get(key):
            lines.append(f"{key} changed")
    return lines


def unified_text_diff(
    old: Mapping[str, Any], new: Mapping[str, Any], fromfile: str, tofile: str
) -> str:
    """The unified diff of two documents written as YAML (what a version conflict and the
    versions' comparison show)."""
    return "".join(
        difflib.unified_diff(
            dump_yaml(dict(old)).splitlines(keepends=True),
            dump_yaml(dict(new)).splitlines(keepends=True),
            fromfile=fromfile,
            tofile=tofile,
        )
    )
