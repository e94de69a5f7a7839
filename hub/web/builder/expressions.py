"""The builder's expressions: what a field may read, completion, preview with lint, and the
data tree of a step.

- ``GET {build}/scope?step=X&field=input``: the scope of a field as a JSON tree (the names
  an expression may read, their fields, types, descriptions and values) and the filters;
- ``POST {build}/complete`` (``step``, ``field`` or ``pointer``, ``text``, ``pos``; form or
  JSON): the completion of the text before ``pos``: ``{from, options}``;
- ``POST {build}/preview`` (``step``, ``pointer``/``field``, ``text``): the value the text
  renders to against the sample trigger data and the upstream steps' outputs (the draft's
  pins, else the latest run's outputs, else examples made from the output schemas), or the
  error a save would report (the same messages as ``hub flows validate``), with
  diagnostics for the editor: ``{value, text, error, source, diagnostics}``;
- ``GET {build}/steps/{step_id}/data``: the step panel's data tree (a fragment).

The scopes of a draft (:class:`hub.web.builder.scope.DraftScopes`) are built once per
draft revision and kept a little while (:data:`SCOPE_TTL`: the latest run may change), so
that completion answers within milliseconds on large flows. A preview only renders with the
hub's sandboxed expressions and their budget: it never calls a connector or the network.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import weakref
from collections.abc import Mapping
from typing import Annotated, Any, Final

from cachetools import TTLCache
from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import Template

from hub.api.deps import EDITOR
from hub.api.flows import FlowPath
from hub.expressions import ExpressionError
from hub.services.drafts import Draft
from hub.services.errors import Invalid
from hub.services.workspace import WorkspaceHub
from hub.web.builder.scope import (
    MISSING,
    DraftScopes,
    Place,
    Scope,
    completions,
    expression_path,
)
from hub.web.builder.state import BUILD_PATH, StepPath, build_href, step_index
from hub.web.pages import WorkspacePage, page

__all__ = ["ExpressionPages", "field_of", "scopes_of"]

NameQuery = Annotated[str, QueryParameter(max_length=100)]
#: Seconds a draft revision's scopes are kept (the latest run's outputs may change).
SCOPE_TTL: Final = 30.0
MAX_TEXT: Final = 100_000  # characters of a field's text
MAX_SHOWN: Final = 4_000  # characters of a preview's value shown
MAX_TREE_DEPTH: Final = 8
MAX_TREE_NODES: Final = 3_000
FIELDS: Final = ("input", "when", "for_each")
_LINE = re.compile(r"\(line (\d+)\)")
_STEP_POINTER = re.compile(r"^/steps/\d+(/|$)")

_CACHES: weakref.WeakKeyDictionary[Any, TTLCache[tuple[Any, ...], DraftScopes]]
_CACHES = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def _cache_of(hub: object) -> TTLCache[tuple[Any, ...], DraftScopes]:
    """The scopes cache of one hub (a hub made and dropped, as tests do, takes its cache
    with it)."""
    with _CACHES_LOCK:
        cache = _CACHES.get(hub)
        if cache is None:
            cache = _CACHES[hub] = TTLCache(maxsize=64, ttl=SCOPE_TTL)
        return cache


async def last_run(ws: WorkspaceHub, flow_id: str) -> tuple[dict[str, Any], Any]:
    """The latest run's step outputs (of the steps that finished: done or skipped, the
    latest attempt; a for_each step's whole list) and its trigger data (MISSING: no run)."""
    rows = await ws.runs_page(flow_id=flow_id, limit=1)
    if not rows:
        return {}, MISSING
    record = await ws.get_run(rows[0]["id"])
    outputs: dict[str, Any] = {}
    attempts: dict[str, int] = {}
    for row in record.get("steps") or ():
        key = row.get("key")
        if key != row.get("step_id") or row.get("status") not in ("done", "skipped"):
            continue
        if row.get("attempt", 0) >= attempts.get(key, -1):
            attempts[key] = row.get("attempt", 0)
            outputs[key] = row.get("output")
    return outputs, record.get("trigger", MISSING)


async def scopes_of(ws: WorkspaceHub, draft: Draft) -> DraftScopes:
    """The scopes of the caller's draft at its revision (built once, kept a little while;
    a pin or a sample does not change the revision: they are compared)."""
    key = (ws.workspace, draft.flow_id, ws.user_id, draft.revision, draft.base_version)
    hub = ws.hub
    cache = _cache_of(hub)
    found = cache.get(key)
    if found is not None and found.made_of == (draft.document, draft.pins, draft.sample):
        return found
    outputs, trigger = await last_run(ws, draft.flow_id)
    sample = draft.sample if draft.sample is not None else MISSING
    scopes = await asyncio.to_thread(
        DraftScopes,
        draft.document,
        hub.expressions,
        hub.registry,
        sample=sample,
        pins=draft.pins,
        last_outputs=outputs,
        last_trigger=trigger,
    )
    scopes.made_of = (draft.document, draft.pins, draft.sample)
    cache[key] = scopes
    return scopes


def field_of(pointer: str, setting: str = "") -> str:
    """Which expression field a pointer is in: ``input`` (a pointer inside the step's
    input, or ``/steps/N/input/...``), ``when``, ``for_each``, or ``output`` (the flow's)."""
    if setting:
        return setting if setting in (*FIELDS, "output") else "input"
    rest = _STEP_POINTER.sub("/", pointer) if pointer.startswith("/steps/") else pointer
    if pointer.startswith("/output"):
        return "output"
    head = rest.lstrip("/").split("/", 1)[0]
    if pointer.startswith("/steps/") and head in FIELDS:
        return head
    return "input"


def _text(data: Mapping[str, Any], key: str, limit: int = MAX_TEXT) -> str:
    value = data.get(key, "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    return (value if isinstance(value, str) else "")[:limit]


async def _read(request: Request[Any, Any, Any]) -> Mapping[str, Any]:
    """The posted fields: a JSON object, or a form."""
    if request.content_type[0] == "application/json":
        data = await request.json()
        if not isinstance(data, dict):
            raise Invalid("the body must be a JSON object")
        return data
    form = await request.form()
    return {key: form.get(key) for key in form}


def _scope_for(scopes: DraftScopes, step: str, field: str) -> Scope:
    if field == "output" or not step:
        return scopes.scope(None, "output")
    if step not in scopes.steps:
        raise Invalid(f"no step {step!r} in the draft", [{"location": "step", "message": ""}])
    return scopes.scope(step, field)


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, indent=2, default=str)
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "…"


def _places(scope: Scope, scopes: DraftScopes) -> list[tuple[str, tuple[str | int, ...], Place]]:
    """The data tree's top: the trigger, each readable step's output, item and index."""
    top: list[tuple[str, tuple[str | int, ...], Place]] = [
        ("trigger", ("trigger",), scope.roots["trigger"])
    ]
    for step_id in scope.readable:
        place = scopes.output_place(step_id)
        if place is not None:
            top.append((f"steps.{step_id}.output", ("steps", step_id, "output"), place))
    for name in ("item", "index"):
        if name in scope.roots:
            top.append((name, (name,), scope.roots[name]))
    return top


class _Budget:
    def __init__(self, nodes: int) -> None:
        self.nodes = nodes


def tree_node(
    name: str, path: tuple[str | int, ...], place: Place, depth: int, budget: _Budget
) -> dict[str, Any]:
    """A place as a node of the data tree: its name, expression, type, description, where
    its value comes from, its value (a leaf) and its children (bounded)."""
    budget.nodes -= 1
    node: dict[str, Any] = {
        "name": name,
        "expression": expression_path(path),
        "insert": "{{ " + expression_path(path) + " }}",
        "kind": place.kind,
        "type": place.type,
        "info": place.info,
        "source": place.source,
    }
    children: list[dict[str, Any]] = []
    if depth < MAX_TREE_DEPTH:
        for key, child in place.children(values=True):
            if budget.nodes <= 0:
                break
            label = f"[{key}]" if isinstance(key, int) else key
            children.append(tree_node(label, (*path, key), child, depth + 1, budget))
    node["children"] = children
    if not children and place.value is not MISSING and not isinstance(place.value, (dict, list)):
        node["value"] = json.dumps(place.value, default=str)[:200]
    elif not children and isinstance(place.value, (dict, list)):
        node["value"] = "{}" if isinstance(place.value, dict) else "[]"
    return node


def data_tree(scopes: DraftScopes, scope: Scope) -> list[dict[str, Any]]:
    """The data tree of a scope: the trigger, the readable steps' outputs, item, index."""
    budget = _Budget(MAX_TREE_NODES)
    return [tree_node(name, path, place, 0, budget) for name, path, place in _places(scope, scopes)]


def _diagnostic_at(text: str, ref: str, message: str) -> dict[str, Any]:
    match = re.search(rf"\bsteps\s*\.\s*{re.escape(ref)}\b[\w.\[\]'\"]*", text)
    if match is None:
        return {"line": 1, "message": message, "severity": "error"}
    return {"from": match.start(), "to": match.end(), "message": message, "severity": "error"}


async def preview(scopes: DraftScopes, scope: Scope, text: str) -> dict[str, Any]:
    """The preview of ``text`` in ``scope``: ``value`` (and ``text``, how it reads), or the
    ``error`` a save would report (parse error, a step not upstream, an undeclared output
    field) or that rendering met, with ``diagnostics`` for the editor and ``source``
    (where the values read come from: pins, last run, sample, schema example)."""
    location = "output" if scope.step is None else f"steps.{scope.step}.{scope.field}"
    answer: dict[str, Any] = {"value": None, "text": "", "error": None, "source": ""}
    try:
        compiled = scopes.expressions.compile(text, location)
    except ExpressionError as exc:
        line = _LINE.search(exc.message)
        answer["error"] = exc.message
        answer["diagnostics"] = [
            {"line": int(line.group(1)) if line else 1, "message": exc.message}
        ]
        return answer
    problems = scopes.problems(scope, compiled)
    if problems:
        answer["error"] = problems[0][1]
        answer["diagnostics"] = [_diagnostic_at(text, ref, m) for ref, m in problems]
        return answer
    answer["source"] = ", ".join(scopes.sources(scope, compiled, text))
    if compiled.is_static:
        answer.update(value=text, text=text, diagnostics=[])
        return answer
    context = scopes.context(scope)
    try:
        value = await asyncio.to_thread(compiled.render, context)
    except ExpressionError as exc:
        answer["error"] = exc.message
        answer["diagnostics"] = [{"line": 1, "message": exc.message, "severity": "warning"}]
        return answer
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        value = str(value)
    answer.update(value=value, text=_shown(value), diagnostics=[])
    return answer


class ExpressionPages(WorkspacePage):
    """The builder's expression services: scope, completion, preview, data tree."""

    path = BUILD_PATH

    @get("/scope", name="web_builder_scope", opt=EDITOR)
    async def scope(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        flow_id: FlowPath,
        step: NameQuery = "",
        field: NameQuery = "input",
    ) -> dict[str, Any]:
        """What the field ``field`` of ``step`` (none: the flow's output) may read."""
        scopes = await scopes_of(ws, await ws.draft(flow_id))
        scope = _scope_for(scopes, step, field if field in (*FIELDS, "output") else "input")
        budget = _Budget(MAX_TREE_NODES)
        return {
            "step": scope.step,
            "field": scope.field,
            "roots": [
                tree_node(name, (name,), place, 0, budget) for name, place in scope.roots.items()
            ],
            "filters": [{"name": n, "doc": d} for n, d in scope.filters.items()],
        }

    @post("/complete", name="web_builder_complete", opt=EDITOR, status_code=200)
    async def complete(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        flow_id: FlowPath,
    ) -> dict[str, Any]:
        """The completions at ``pos`` in ``text`` (the field ``pointer``/``setting`` of
        ``step``): ``{from, options: [{label, type, detail, info}]}``."""
        data = await _read(request)
        text = _text(data, "text")
        pos_text = _text(data, "pos", 12)
        pos = int(pos_text) if pos_text.isdigit() else len(text)
        field = field_of(_text(data, "pointer", 2000), _text(data, "setting", 40))
        scopes = await scopes_of(ws, await ws.draft(flow_id))
        scope = _scope_for(scopes, _text(data, "step", 100), field)
        start, options = completions(scope, text[: min(pos, len(text))])
        return {"from": start, "options": [o.as_json() for o in options]}

    @post("/preview", name="web_builder_preview", opt=EDITOR, status_code=200)
    async def preview(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        flow_id: FlowPath,
    ) -> dict[str, Any]:
        """What ``text`` (the field ``pointer``/``setting`` of ``step``) renders to, or
        why it cannot be saved (see :func:`preview`)."""
        data = await _read(request)
        field = field_of(_text(data, "pointer", 2000), _text(data, "setting", 40))
        scopes = await scopes_of(ws, await ws.draft(flow_id))
        scope = _scope_for(scopes, _text(data, "step", 100), field)
        return await preview(scopes, scope, _text(data, "text"))

    @get("/steps/{step_id:str}/data", name="web_builder_step_data", opt=EDITOR)
    async def step_data(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        flow_id: FlowPath,
        step_id: StepPath,
    ) -> Template:
        """The data tree of a step (a fragment for the step panel): what its input may
        read, with the values the preview uses."""
        draft = await ws.draft(flow_id)
        scopes = await scopes_of(ws, draft)
        known = step_index(draft.document, step_id) is not None and step_id in scopes.steps
        tree = data_tree(scopes, scopes.scope(step_id, "input")) if known else []
        return await page(
            request,
            "builder/_data_tree.html",
            step_id=step_id,
            known=known,
            tree=tree,
            build_href=build_href(ws.workspace, flow_id),
        )
