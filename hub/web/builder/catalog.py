"""The builder's catalog: add a step from every installed connector's actions.

``?panel=catalog`` (optionally ``&after=<step>`` or ``&branch=<step>``, and ``&q=`` to
search) lists the registry's actions grouped by connector, each with its title,
description and whether it needs a connection; the search filters on the server
(``GET {build}/catalog`` answers the results alone, for htmx as the person types; without
JavaScript the search form reloads the page). Choosing an action posts to
``POST {build}/steps``, which adds the step as one edit (one undo entry):

- no ``after``/``branch``: appended at the end (its implicit needs: the previous step);
- ``after=X``: inserted right after ``X`` in the chain: the new step needs ``X``, and the
  steps that needed ``X`` (explicitly, or implicitly as the next step) need the new step;
- ``branch=X``: a parallel branch from ``X``: the new step says ``needs: [X]``, nothing else
  changes.

Implicit needs (an absent ``needs`` is the previous non-handler step in the list) are
resolved by :class:`hub.flows.validate.FlowChecker` itself, before and after the insertion:
every step whose meaning would change gets an explicit ``needs`` saying what it meant.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Mapping
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import Redirect, Template

from hub.api.deps import EDITOR, hub_of
from hub.api.flows import FlowPath
from hub.connectors import Action, Registry
from hub.expressions import Expressions
from hub.flows.validate import ON_ERROR_KEYWORDS
from hub.services.errors import Invalid
from hub.services.workspace import WorkspaceHub
from hub.web.builder.state import (
    BUILD_PATH,
    BuilderState,
    StepQuery,
    pointer,
    posted_revision,
    state_for,
    step_ids,
    step_index,
)
from hub.web.builder.wiring import resolved_checker
from hub.web.form_checks import form_text
from hub.web.forms import resolve
from hub.web.navigation import is_htmx
from hub.web.pages import FORM, WorkspacePage, page

SearchQuery = Annotated[str, QueryParameter(max_length=200)]
#: The panel's name in ``?panel=``.
PANEL = "catalog"
PANEL_TEMPLATE = "builder/_panel_catalog.html"
_NOT_ID = re.compile(r"[^A-Za-z0-9_]")


@dataclasses.dataclass(frozen=True)
class CatalogAction:
    """One action as the catalog lists it."""

    full_name: str
    title: str
    description: str
    needs_connection: bool

    @property
    def summary(self) -> str:
        """The description's first sentence (the catalog stays scannable; the search reads
        the whole description, and the action's reference page shows it)."""
        first = re.split(r"(?<=[.!?])\s", self.description.strip(), maxsplit=1)[0]
        return first if len(first) <= 200 else first[:199].rstrip() + "…"


@dataclasses.dataclass(frozen=True)
class CatalogGroup:
    """A connector and the actions of it that the search keeps."""

    name: str
    title: str
    icon: str
    description: str
    actions: tuple[CatalogAction, ...]

    @property
    def initial(self) -> str:
        """The letter the catalog draws as the connector's badge."""
        return (self.title or self.name)[:1].upper()


def _icon_name(icon: str) -> str:
    """A connector's icon when it is a short name (``slack``), else "" (an icon may be SVG
    markup: the catalog never draws a plugin's markup)."""
    return icon if re.fullmatch(r"[a-z0-9-]{1,40}", icon or "") else ""


def _matches(words: list[str], *texts: str) -> bool:
    haystack = " ".join(texts).lower()
    return all(word in haystack for word in words)


def catalog_groups(registry: Registry, query: str = "") -> list[CatalogGroup]:
    """Every installed connector's actions (plugins' included), grouped by connector in the
    order of their titles, keeping the actions every word of ``query`` appears in (its
    full name, title, description or connector's title; case does not matter)."""
    words = query.lower().split()
    groups = []
    for connector in registry.connectors.values():
        title = connector.title or connector.name.capitalize()
        kept = []
        for act in connector.actions:
            described = act.describe()
            entry = CatalogAction(
                full_name=f"{connector.name}.{act.name}",
                title=str(described["title"]),
                description=act.description,
                needs_connection=act.needs_connection,
            )
            if _matches(words, entry.full_name, entry.title, entry.description, title):
                kept.append(entry)
        if kept:
            groups.append(
                CatalogGroup(
                    name=connector.name,
                    title=title,
                    icon=_icon_name(connector.icon),
                    description=connector.description,
                    actions=tuple(kept),
                )
            )
    return sorted(groups, key=lambda g: (g.title.lower(), g.name))


# -- the new step and where it goes ----------------------------------------------------------


def new_step_id(document: Mapping[str, Any], action: str) -> str:
    """A step id no step of ``document`` has, derived from the action (``http.request`` ->
    ``http_request``, then ``http_request_2``...)."""
    base = _NOT_ID.sub("_", action) or "step"
    if base[0].isdigit():
        base = "_" + base
    taken = set(step_ids(document)) | ON_ERROR_KEYWORDS
    candidate, number = base, 2
    while candidate in taken:
        candidate, number = f"{base}_{number}", number + 1
    return candidate


def default_input(act: Action) -> dict[str, Any]:
    """The defaults of the action's required input fields that have one (else ``{}``)."""
    schema = act.input_schema if isinstance(act.input_schema, dict) else {}
    root = resolve(schema, schema)
    properties = root.get("properties")
    required = root.get("required")
    if not isinstance(properties, dict) or not isinstance(required, list):
        return {}
    out: dict[str, Any] = {}
    for key in required:
        prop = properties.get(key)
        if isinstance(prop, dict):
            prop = resolve(prop, schema)
            if "default" in prop:
                out[key] = copy.deepcopy(prop["default"])
    return out


def new_step(document: Mapping[str, Any], action: str, act: Action) -> dict[str, Any]:
    """The step that uses ``action``: a unique id, the action's title as its name, and the
    required fields' defaults as its input."""
    title = str(act.describe()["title"])
    return {
        "id": new_step_id(document, action),
        "name": title,
        "action": action,
        "input": default_input(act),
    }


def resolved_needs(
    document: Mapping[str, Any], expressions: Expressions
) -> tuple[dict[str, tuple[str, ...]], set[str]]:
    """Each step's needs as the validator resolves them (explicit, ``[]``, or absent: the
    previous non-handler step), and the ids of the error handlers."""
    checker = resolved_checker(document, expressions)
    return dict(checker.needs), set(checker.handles)


def add_step_ops(
    document: Mapping[str, Any],
    step: Mapping[str, Any],
    expressions: Expressions,
    *,
    after: str | None = None,
    branch: str | None = None,
) -> list[dict[str, Any]]:
    """The JSON Patch that adds ``step`` to ``document``: at the end, right after ``after``
    in its chain, or as a branch from ``branch`` (see the module's docstring). Steps whose
    resolved needs would change only because the list changed get an explicit ``needs``.
    ValueError when ``after``/``branch`` names no step."""
    step = dict(step)
    new_id = str(step["id"])
    steps = document.get("steps")
    if not isinstance(steps, list):
        if after or branch:
            raise ValueError("the flow has no steps to add after")
        return [{"op": "add", "path": "/steps", "value": [step]}]
    before, handlers = resolved_needs(document, expressions)
    anchor = after or branch
    if anchor is not None and step_index(document, anchor) is None:
        raise ValueError(f"no step {anchor!r} in the draft")
    desired: dict[str, tuple[str, ...]] = dict(before)
    if after is not None:
        position = int(step_index(document, after) or 0) + 1
        desired = {
            sid: tuple(new_id if need == after else need for need in needs)
            for sid, needs in before.items()
        }
        desired[new_id] = (after,)
    else:
        position = len(steps)
        if branch is not None:
            step["needs"] = [branch]
    trial = {**document, "steps": [*steps[:position], step, *steps[position:]]}
    after_insert, _ = resolved_needs(trial, expressions)
    if new_id in desired and after_insert.get(new_id) != desired[new_id]:
        step["needs"] = list(desired[new_id])
    ops: list[dict[str, Any]] = [{"op": "add", "path": pointer("steps", position), "value": step}]
    for index, data in enumerate(trial["steps"]):
        if index == position or not isinstance(data, dict):
            continue
        sid = data.get("id")
        if not isinstance(sid, str) or sid not in desired or sid in handlers:
            continue
        raw = data.get("needs")
        if isinstance(raw, list):
            if after is not None and after in raw:
                rewired = [new_id if need == after else need for need in raw]
                ops.append(
                    {"op": "replace", "path": pointer("steps", index, "needs"), "value": rewired}
                )
            continue
        if after_insert.get(sid) != desired[sid]:
            ops.append(
                {"op": "add", "path": pointer("steps", index, "needs"), "value": list(desired[sid])}
            )
    return ops


# -- the panel -------------------------------------------------------------------------------


def catalog_context(
    registry: Registry, state: BuilderState, *, query: str, after: str, branch: str
) -> dict[str, Any]:
    """What ``builder/_panel_catalog.html`` draws: the groups the search keeps, the search,
    and where a chosen action goes."""
    ids = step_ids(state.document)
    after = after if after in ids else ""
    branch = "" if after or branch not in ids else branch
    groups = catalog_groups(registry, query)
    return {
        "catalog_groups": groups,
        "catalog_count": sum(len(g.actions) for g in groups),
        "catalog_total": len(registry.actions),
        "catalog_query": query,
        "catalog_after": after,
        "catalog_branch": branch,
    }


async def catalog_panel(
    request: Request[Any, Any, Any], state: BuilderState
) -> tuple[str, dict[str, Any]]:
    """The catalog panel (``?panel=catalog``) with the request's ``q``, ``after``, ``branch``."""
    params = request.query_params
    context = catalog_context(
        hub_of(request).registry,
        state,
        query=str(params.get("q", ""))[:200],
        after=str(params.get("after", ""))[:100],
        branch=str(params.get("branch", ""))[:100],
    )
    return PANEL_TEMPLATE, context


class CatalogPages(WorkspacePage):
    """``{build}/catalog`` (the search's results) and ``POST {build}/steps`` (add a step)."""

    path = BUILD_PATH

    @get("/catalog", name="web_builder_catalog", opt=EDITOR)
    async def results(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        flow_id: FlowPath,
        q: SearchQuery = "",
        after: StepQuery = "",
        branch: StepQuery = "",
    ) -> Template:
        """The catalog's results for the search ``q`` (what htmx swaps as one types; the
        draft is read, not validated: the results show no issue)."""
        state = BuilderState(ws.workspace, await ws.draft(flow_id), [])
        context = catalog_context(ws.hub.registry, state, query=q, after=after, branch=branch)
        return await page(request, "builder/_catalog_results.html", state=state, **context)

    @post("/steps", name="web_builder_add_step", opt=EDITOR, status_code=200)
    async def add_step(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        flow_id: FlowPath,
        data: Annotated[dict[str, Any], FORM],
    ) -> Response[Any]:
        """Add a step using ``action``: at the end, ``after`` a step, or as a ``branch``
        from one; one edit (``add <id> (<action>)``), then the new step is selected."""
        from hub.web.builder.panels import refreshed_with_panel  # (panels imports this module)

        action = form_text(data, "action", 201)
        act = ws.hub.registry.action(action)
        if act is None:
            raise Invalid(
                f"no action {action!r} is installed",
                [{"location": "action", "message": "choose an action of the catalog"}],
            )
        after = form_text(data, "after", 100) or None
        branch = None if after else form_text(data, "branch", 100) or None
        draft = await ws.draft(flow_id)
        step = new_step(draft.document, action, act)
        try:
            ops = add_step_ops(draft.document, step, ws.hub.expressions, after=after, branch=branch)
        except ValueError as exc:
            raise Invalid(str(exc), [{"location": "after", "message": str(exc)}]) from None
        draft = await ws.edit_draft(
            flow_id, ops, label=f"add {step['id']} ({action})", revision=posted_revision(data)
        )
        state = await state_for(ws, draft, selected=step["id"])
        target = state.href + f"?step={step['id']}"
        if not is_htmx(request):
            return Redirect(target, status_code=303)
        answer = await refreshed_with_panel(request, ws, state)
        answer.headers["HX-Push-Url"] = target
        return answer
