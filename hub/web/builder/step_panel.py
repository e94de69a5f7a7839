"""The builder's step panel: the selected step's heading, its input as a form generated from
the action's input schema (:mod:`hub.web.forms`), its connection, and its settings (needs,
when, for_each, concurrency, retry, timeout, on_error).

Every field of the input can switch to an expression (the "Expression" switch next to its
label): a field whose value in the document is a template (``{{``/``{%``, by the hub's own
:class:`~hub.expressions.Expressions`) opens as one. An expression field is a textarea with
``class="expression-input"``, ``data-expression-field``, ``data-step`` (the step's id) and
``data-pointer`` (the JSON Pointer of the field inside the step's ``input``; the settings'
expression fields carry ``data-setting`` instead, with ``data-pointer`` empty); its text
reaches the document byte for byte (line breaks as LF).

The form posts the whole step on change (and, debounced, on input: ``step_panel.js``) to
``POST {build}/steps/{step_id}``: the form is read back into the step (the input through
:func:`~hub.web.forms.parse_form` with :class:`~hub.web.builder.step_form.StepHooks`,
the settings by :func:`~hub.web.builder.step_settings.read_settings`), and the difference
(:func:`~hub.web.builder.state.ops_for_step`) is one edit of the draft (``ws.edit_draft``:
undo and redo cover it, labelled ``edit <step>.input.url`` for one field, else
``edit step <step>``). The answer swaps the
builder's regions and the panel's issue slots out of band (a save that changes nothing: the
slots only), never the field being typed in; adding or removing a row, or choosing another
alternative, draws the panel again (``HX-Retarget: #builder-panel``). Undo and redo (asked
with ``panel=step`` by ``step_panel.js``) bring the panel back out of band.

The input form's hooks and what a read-back keeps are in :mod:`hub.web.builder.step_form`,
the settings in :mod:`hub.web.builder.step_settings`; this module draws the panel
(:class:`StepView`), places the issues, reads a posted panel back and holds the routes.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import quote

import jsonpointer
from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import PathParameter
from litestar.response import Template

from hub.api.deps import EDITOR
from hub.api.flows import FlowPath
from hub.connectors import Action, Connector
from hub.flows.locations import join_location
from hub.services import actions
from hub.services.errors import Invalid, NotFound, UpstreamFailed
from hub.services.workspace import WorkspaceHub
from hub.web.builder.state import (
    BUILD_PATH,
    BuilderState,
    StepPath,
    ops_for_step,
    pointer,
    posted_revision,
    refreshed,
    state_for,
    state_of,
    step_ids,
    step_of,
)
from hub.web.builder.step_form import (
    StepHooks,
    input_locations,
    keep_secrets,
    keep_unknown,
    keep_unreadable,
    template_check,
    value_paths,
)
from hub.web.builder.step_settings import (
    SETTINGS,
    needs_choices,
    on_error_choices,
    read_settings,
    setting_text,
)
from hub.web.connections import form_pairs, limits_of
from hub.web.forms import (
    MISSING,
    Path,
    Submission,
    apply_op,
    field_id,
    name_of,
    parse_form,
    plain,
    render_form,
    value_at,
)
from hub.web.forms.render import Form
from hub.web.pages import WorkspacePage, page, ws_path

FieldPath = Annotated[str, PathParameter(max_length=200)]
TEMPLATE = "builder/_panel_step.html"
SAVED = "builder/_step_saved.html"
REQUIRED = re.compile(r"^'((?:[^'\\]|\\.)*)' is a required property$")


# -- what the panel shows -------------------------------------------------------------------


@dataclasses.dataclass
class StepView:
    """The selected step as the panel draws it."""

    step_id: str
    step: dict[str, Any]
    action: Action | None
    connector: Connector | None
    form: Form | None
    issues: dict[str, list[str]]  # by slot: "" (heading), a setting, or an input field's id
    connections: list[str]
    needs_choices: list[tuple[str, str, bool]]  # (id, label, ticked)
    on_error_choices: list[tuple[str, str]]  # (value, label)

    @property
    def action_name(self) -> str:
        action = self.step.get("action")
        return action if isinstance(action, str) else ""

    @property
    def connector_name(self) -> str:
        return self.action_name.split(".", 1)[0] if "." in self.action_name else ""

    @property
    def needs_mode(self) -> str:
        """``default`` (no needs key), ``trigger`` (``needs: []``) or ``steps``."""
        needs = self.step.get("needs")
        if "needs" not in self.step:
            return "default"
        return "trigger" if needs == [] else "steps"

    @property
    def shows_connection(self) -> bool:
        """Whether the step has a connection field."""
        if "connection" in self.step:
            return True
        if self.action is not None and self.action.needs_connection:
            return True
        return self.connector is not None and (
            self.connector.connection_schema is not None or bool(self.connector.oauth2)
        )

    def text_of(self, key: str) -> str:
        """A setting as its text field shows it."""
        return setting_text(self.step.get(key, MISSING))

    def retry_text(self, key: str) -> str:
        """A retry field as its text field shows it."""
        retry = self.step.get("retry")
        return setting_text(retry.get(key, MISSING) if isinstance(retry, dict) else MISSING)


def place_issues(state: BuilderState, step_id: str, form: Form | None) -> dict[str, list[str]]:
    """The step's issues by where the panel shows them: an input field's slot (its id), a
    setting's slot (``needs``, ``retry``...: the name of the setting), else the heading
    (``""``). A missing required property is shown at its field."""
    out: dict[str, list[str]] = {}
    locations = input_locations(form) if form is not None else {}
    for issue in state.issues_for(step_id):
        where = issue.field
        slot = ""
        if form is not None and (where == "input" or where.startswith(("input.", "input["))):
            message = issue.message
            required = REQUIRED.match(message)
            if required:
                missing = join_location(where, [required.group(1)])
                if missing in locations:
                    where, message = missing, "required: fill this in"
            target = where
            while target and target not in locations:
                cut = max(target.rfind("."), target.rfind("["))
                target = target[:cut] if cut > 0 else ""
            if target:
                out.setdefault(form.index[locations[target]].id, []).append(message)
                continue
            out.setdefault("", []).append(f"{issue.field}: {message}")
            continue
        for key in ("name", "connection", *SETTINGS):
            if where == key or where.startswith((key + ".", key + "[")):
                slot = key
                break
        message = issue.message if slot else f"{issue.field}: {issue.message}"
        if slot and where != slot:
            message = f"{where[len(slot) :].lstrip('.')}: {issue.message}"
        out.setdefault(slot, []).append(message)
    return out


async def step_view(
    request: Request[Any, Any, Any],
    ws: WorkspaceHub,
    state: BuilderState,
    step_id: str,
    *,
    value: Any = MISSING,
    focus: Path | None = None,
) -> StepView:
    """The panel's view of the step ``step_id`` (its input drawn from ``value`` when given:
    a submission re-rendered after Add or Remove)."""
    step = step_of(state.document, step_id) or {"id": step_id}
    registry = ws.hub.registry
    name: str = step["action"] if isinstance(step.get("action"), str) else ""
    action = registry.action(name) if name else None
    connector = registry.connectors.get(name.split(".", 1)[0]) if "." in name else None
    form = None
    if action is not None:  # an open schema ({}) is one JSON field
        shown = step.get("input", MISSING) if value is MISSING else value
        hooks = StepHooks(
            template_check(request),
            shown,
            step_id,
            action.options,
            state.href_to(f"/steps/{quote(step_id, safe='')}/options"),
        )
        form = render_form(
            action.input_schema,
            shown,
            limits=limits_of(ws),
            hooks=hooks,
            focus=focus,
            stored=value_paths(shown),
        )
    connections: list[str] = []
    if connector is not None:
        rows = await ws.list_connections()
        connections = sorted(r["name"] for r in rows if r.get("connector") == connector.name)
    return StepView(
        step_id=step_id,
        step=step,
        action=action,
        connector=connector,
        form=form,
        issues=place_issues(state, step_id, form),
        connections=connections,
        needs_choices=needs_choices(state.document, step),
        on_error_choices=on_error_choices(state.document, step),
    )


async def step_panel(
    request: Request[Any, Any, Any], ws: WorkspaceHub, state: BuilderState, step_id: str
) -> tuple[str, dict[str, Any]]:
    """The side panel of the selected step (what :func:`hub.web.builder.panels.panel_for`
    answers for ``?step=``). After undo or redo it is swapped out of band (those buttons
    swap nothing themselves)."""
    view = await step_view(request, ws, state, step_id)
    oob = request.url.path.endswith(("/undo", "/redo"))
    return TEMPLATE, panel_context(ws, view, oob=oob)


def panel_context(ws: WorkspaceHub, view: StepView, *, oob: bool) -> dict[str, Any]:
    """What ``builder/_panel_step.html`` reads: the step's view, whether the panel is
    swapped out of band (``oob``), the addresses its connector and connection links use."""
    return {
        "step_id": view.step_id,
        "sv": view,
        "panel_oob": oob,
        "connectors_base": ws_path(ws.workspace, "/connectors"),
        "connections_base": ws_path(ws.workspace, "/connections"),
    }


# -- reading the form back ------------------------------------------------------------------


def edit_label(step_id: str, ops: list[dict[str, Any]], index: int) -> str:
    """What undo names the edit: ``edit <step>.input.url`` when one field changed, else
    ``edit step <step>``."""
    prefix = pointer("steps", index)
    paths = {str(op.get("path", ""))[len(prefix) :] for op in ops}
    if len(paths) == 1:
        parts = [jsonpointer.unescape(p) for p in next(iter(paths)).split("/")]
        where = ".".join(p for p in parts if p)
        if where:
            return f"edit {step_id}.{where}"[:200]
    return f"edit step {step_id}"[:200]


@dataclasses.dataclass
class Reading:
    """A posted panel read back: the new step, the submission of its input (None without
    a form), and what could not be read by slot."""

    step: dict[str, Any]
    submission: Submission | None
    errors: dict[str, list[str]]
    focus: Path | None = None
    tree: Any = MISSING  # the input as submitted (after Add or Remove), to draw again


def read_panel(
    request: Request[Any, Any, Any],
    ws: WorkspaceHub,
    document: Mapping[str, Any],
    step_id: str,
    pairs: list[tuple[str, str]],
) -> Reading:
    """The step as the posted panel says it should be."""
    old = step_of(document, step_id)
    if old is None:
        raise NotFound(f"no step {step_id!r} in the draft")
    form: dict[str, list[str]] = {}
    for key, item in pairs:
        form.setdefault(key, []).append(item)
    step, errors = read_settings(form, old, document)
    submission = None
    focus: Path | None = None
    tree: Any = MISSING
    name = old.get("action") if isinstance(old.get("action"), str) else ""
    action = ws.hub.registry.action(name) if name else None
    if action is not None and "step.input" in form:
        hooks = StepHooks(
            template_check(request),
            old.get("input", MISSING),
            step_id,
            root=action.input_schema,
        )
        submission = parse_form(action.input_schema, pairs, limits=limits_of(ws), hooks=hooks)
        previous = old.get("input", MISSING)
        if submission.op:
            tree, focus = apply_op(action.input_schema, submission)
            value = plain(tree)
            if submission.op.startswith("remove:") and focus:
                # The last row removed: the list (or entries) is left out, as when empty.
                holder = value_at(value, focus[:-1])
                if value_at(value, focus) in ([], {}) and isinstance(holder, dict):
                    holder.pop(str(focus[-1]), None)
        else:
            value = submission.value
        value = keep_secrets(value, submission.kept, previous)
        value = keep_unreadable(value, submission.errors, previous)
        value = keep_unknown(value, previous, action.input_schema)
        if value is MISSING or (value == {} and previous is MISSING):
            step.pop("input", None)
        else:
            step["input"] = value
        for path, messages in submission.errors.items():
            errors.setdefault(field_id(name_of(path)), []).extend(messages)
    return Reading(step, submission, errors, focus, tree)


# -- the routes -----------------------------------------------------------------------------


class StepPanelPages(WorkspacePage):
    """``{build}/steps/{step_id}``: save the step panel; the options of a field; the
    connections of the step's connector."""

    path = BUILD_PATH

    @post("/steps/{step_id:str}", name="web_builder_step_save", opt=EDITOR, status_code=200)
    async def save(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        flow_id: FlowPath,
        step_id: StepPath,
    ) -> Template:
        """Write the posted panel into the step: one edit (the JSON Patch of the
        difference). The answer swaps the builder's regions and the panel's issue slots
        out of band; Add, Remove or another alternative re-render the panel."""
        pairs = await form_pairs(request)
        # The draft as it is (not validated: the answer validates the document once, after
        # the edit; a 300-step document takes ~30 ms).
        draft = await ws.draft(flow_id)
        reading = read_panel(request, ws, draft.document, step_id, pairs)
        ops = ops_for_step(draft.document, step_id, reading.step)
        revision = posted_revision(dict(pairs))
        restructure = reading.submission is not None and bool(reading.submission.op)
        if ops:
            index = step_ids(draft.document).index(step_id)
            draft = await ws.edit_draft(
                flow_id, ops, label=edit_label(step_id, ops, index), revision=revision
            )
        state = await state_for(ws, draft, selected=step_id)
        if restructure:
            view = await step_view(
                request, ws, state, step_id, value=reading.tree, focus=reading.focus
            )
            answer = await refreshed(
                request, state, panel=TEMPLATE, **panel_context(ws, view, oob=False)
            )
            # The form asked with hx-swap="none": the panel drawn again goes in its place.
            answer.headers.update({"HX-Retarget": "#builder-panel", "HX-Reswap": "innerHTML"})
            return answer
        view = await step_view(request, ws, state, step_id)
        for slot, messages in reading.errors.items():
            view.issues.setdefault(slot, [])[:0] = messages
        if not ops:  # nothing changed: the slots only (the notice of a save stays)
            return await page(request, SAVED, state=state, step_id=step_id, sv=view)
        return await refreshed(request, state, panel=SAVED, step_id=step_id, sv=view)

    @post(
        "/steps/{step_id:str}/options/{field:str}",
        name="web_builder_step_options",
        opt=EDITOR,
        status_code=200,
    )
    async def options(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        flow_id: FlowPath,
        step_id: StepPath,
        field: FieldPath,
    ) -> Template:
        """The options of an input field, listed by the connector with the step's
        connection and input (as the draft has them), as ``<option>`` elements with the
        current value chosen; what went wrong in the field's status."""
        draft = await ws.draft(flow_id)
        step = step_of(draft.document, step_id) or {}
        action = step.get("action") if isinstance(step.get("action"), str) else ""
        raw_input: dict[str, Any] = step["input"] if isinstance(step.get("input"), dict) else {}
        connection = step.get("connection") if isinstance(step.get("connection"), str) else None
        current = raw_input.get(field, "")
        found: list[dict[str, Any]] = []
        problem = ""
        try:
            found = await actions.field_options(ws, str(action), field, raw_input, connection)
        except (Invalid, NotFound, UpstreamFailed) as exc:
            problem = exc.message
        choices = []
        for option in found:
            value = option.get("value")
            label = option.get("label", value)
            choices.append((setting_text(value), str(label)))
        current_text = setting_text(current)
        if current_text and current_text not in {v for v, _ in choices}:
            choices.insert(0, (current_text, f"{current_text} (not listed)"))
        return await page(
            request,
            "builder/_step_options_list.html",
            choices=choices,
            current=current_text,
            problem=problem,
            status_id=f"{request.query_params.get('status', '')}"[:200],
        )

    @get("/steps/{step_id:str}/connections", name="web_builder_step_connections", opt=EDITOR)
    async def connections(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        flow_id: FlowPath,
        step_id: StepPath,
    ) -> Template:
        """The connections of the step's connector, as ``<option>`` elements (the step's
        own chosen): the list again after one was created in another tab."""
        state = await state_of(ws, flow_id, selected=step_id)
        view = await step_view(request, ws, state, step_id)
        return await page(request, "builder/_step_connections.html", sv=view)
