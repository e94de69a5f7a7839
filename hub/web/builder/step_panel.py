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
:func:`~hub.web.forms.parse_form` with :class:`StepHooks`, the settings by
:func:`read_settings`), and the difference (:func:`~hub.web.builder.state.ops_for_step`)
is one edit of the draft (``ws.edit_draft``: undo and redo cover it, labelled
``edit <step>.input.url`` for one field, else ``edit step <step>``). The answer swaps the
builder's regions and the panel's issue slots out of band (a save that changes nothing: the
slots only), never the field being typed in; adding or removing a row, or choosing another
alternative, draws the panel again (``HX-Retarget: #builder-panel``). Undo and redo (asked
with ``panel=step`` by ``step_panel.js``) bring the panel back out of band.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import quote, unquote

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import PathParameter
from litestar.response import Template

from hub.api.deps import EDITOR, hub_of
from hub.api.flows import FlowPath
from hub.connectors import Action, Connector
from hub.expressions import ExpressionError
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
from hub.web.connections import form_pairs
from hub.web.forms import (
    MISSING,
    FormHooks,
    FormLimits,
    Path,
    Raw,
    Submission,
    apply_op,
    field_id,
    kind_of,
    name_of,
    parse_form,
    plain,
    render_form,
    resolve,
    value_at,
)
from hub.web.forms.render import Field, Form
from hub.web.forms.schema import VALUE, is_secret
from hub.web.pages import WorkspacePage, page, ws_path

FieldPath = Annotated[str, PathParameter(max_length=200)]
TEMPLATE = "builder/_panel_step.html"
SAVED = "builder/_step_saved.html"
#: The marker posted with a field in expression mode (``<field name>.__expr__``).
EXPR = "__expr__"
#: The settings the panel edits, in the order it shows them.
SETTINGS = ("needs", "when", "for_each", "concurrency", "retry", "timeout", "on_error")
ON_ERROR_KEYWORDS = ("fail", "continue")
NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")
INTEGER = re.compile(r"^\s*\+?\d{1,9}\s*$")
REQUIRED = re.compile(r"^'((?:[^'\\]|\\.)*)' is a required property$")
MAX_TEXT = 100_000  # characters of one setting's text


# -- the input form: expressions and dynamic options ----------------------------------------


class StepHooks(FormHooks):
    """The builder's additions to the generated form: every field may be an expression
    (drawn by ``builder/_step_field.html``), and a field the action lists options for is a
    select loaded from the connector (``builder/_step_options.html``)."""

    def __init__(
        self,
        is_template: Any,
        value: Any,
        step_id: str,
        options: Mapping[str, Any] | None = None,
        options_href: str = "",
        root: Any = None,
    ) -> None:
        self.root = root
        self.is_template = is_template
        self.value = value
        self.step_id = step_id
        self.options = options or {}
        self.options_href = options_href

    def field(self, field: Field) -> Field:
        """Wrap the field in the Fixed | Expression switch; mark dynamic options."""
        if field.widget in ("const", "absent", "kv_row"):
            return field
        if field.widget == "choice" and field.children:
            # The chosen alternative has the choice's path: the choice carries the switch.
            field.children[0].extras.pop("template", None)
        value = value_at(self.value, field.path)
        expression = isinstance(value, str) and (self.is_template(value) or _misfit(field, value))
        field.extras.update(
            template="builder/_step_field.html",
            expression=expression,
            # A secret's text is shown only as an expression (never a literal secret).
            expression_text=value
            if isinstance(value, str) and (expression or not field.secret)
            else "",
            pointer=pointer(*field.path),
            step=self.step_id,
        )
        if (
            len(field.path) == 1
            and field.path[0] in self.options
            and field.widget in ("string", "number")
        ):
            field.extras["fixed_template"] = "builder/_step_options.html"
            field.extras["options_href"] = (
                f"{self.options_href}/{quote(str(field.path[0]), safe='')}"
            )
        return field

    def parse(self, schema: dict[str, Any], name: str, form: Mapping[str, list[str]]) -> Any:
        """A field in expression mode is its text, exactly (an empty one: absent). A text
        property left empty is absent too, required or not (so that the server's
        "required" message is shown at a required one); a row of a list or a value of a
        key-value row keeps its empty text."""
        if form.get(f"{name}.{EXPR}"):
            text = (form.get(name) or [""])[-1].replace("\r\n", "\n").replace("\r", "\n")
            return text if text != "" else Raw("")
        if form.get(name) != [""] or self.root is None or not _is_property(name):
            return MISSING
        kind = kind_of(schema, self.root)
        if kind in ("string", "json") and not is_secret(schema):
            return Raw("")
        if kind == "boolean":
            # A box left unticked writes false only where the document had the property.
            path = _path_of(name)
            if path is not None and value_at(self.value, path) is MISSING:
                return Raw("")
        return MISSING


def _path_of(name: str) -> Path | None:
    """The JSON path of a field name made of object properties only (None when it goes
    through a list's row or a key-value row, whose numbers are the form's own)."""
    parts = name.split(".")[1:]
    if any(p.isdigit() or p.startswith("__") for p in parts):
        return None
    return tuple(unquote(p) for p in parts)


def _misfit(field: Field, text: str) -> bool:
    """Whether a (static) string cannot be shown by the field's fixed control (a number
    field holding letters, an enum holding none of its options): it is shown as an
    expression, so that its text is kept as it is rather than lost."""
    if field.widget in ("number", "boolean", "object", "array", "checkboxes"):
        return True
    if field.widget == "enum":
        return not any(option.selected for option in field.options)
    return False


def _is_property(name: str) -> bool:
    """Whether a field name is an object's property (not a list's row, not the value of a
    key-value row)."""
    last = name.rsplit(".", 1)[-1]
    return not last.isdigit() and f".{VALUE}." not in name


def template_check(request: Request[Any, Any, Any]) -> Any:
    """Whether a string holds a template, by the hub's expressions (one that does not
    compile is a template too: it is shown as typed, with its error)."""
    expressions = hub_of(request).expressions

    def is_template(text: str) -> bool:
        if "{{" not in text and "{%" not in text:
            return False
        try:
            return not expressions.compile(text, "").is_static
        except ExpressionError:
            return True

    return is_template


def limits_of(ws: WorkspaceHub) -> FormLimits:
    """The form bounds of the hub's settings."""
    return FormLimits.of(ws.hub.settings)


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


def value_paths(value: Any, limit: int = 10_000) -> set[Path]:
    """Every path inside a value (a secret field at one of them says its value is stored:
    left empty, it keeps it; "Remove the stored value" takes it out)."""
    found: set[Path] = set()
    todo: list[tuple[Path, Any]] = [((), value)]
    while todo and len(found) < limit:
        path, item = todo.pop()
        if item is MISSING:
            continue
        found.add(path)
        if isinstance(item, dict):
            todo.extend(((*path, str(k)), v) for k, v in item.items())
        elif isinstance(item, list):
            todo.extend(((*path, i), v) for i, v in enumerate(item))
    return found


def setting_text(value: Any) -> str:
    """A setting's value as text: strings as they are, numbers and booleans as JSON."""
    if value is MISSING or value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def handlers_of(document: Mapping[str, Any]) -> set[str]:
    """The ids of the steps that another step's ``on_error`` names (the error handlers)."""
    ids = set(step_ids(document))
    found = set()
    for step in document.get("steps") or []:
        if isinstance(step, dict):
            target = step.get("on_error")
            if isinstance(target, str) and target in ids and target != step.get("id"):
                found.add(target)
    return found


def needs_choices(
    document: Mapping[str, Any], step: Mapping[str, Any]
) -> list[tuple[str, str, bool]]:
    """The steps this one may need (the others, error handlers left out), plus any name its
    ``needs`` holds that is not one of them (kept until unticked)."""
    step_id = step.get("id")
    handlers = handlers_of(document)
    current: list[Any] = step["needs"] if isinstance(step.get("needs"), list) else []
    out = []
    for other in document.get("steps") or []:
        if not isinstance(other, dict) or not isinstance(other.get("id"), str):
            continue
        other_id = other["id"]
        if other_id == step_id or other_id in handlers:
            continue
        name = other.get("name") if isinstance(other.get("name"), str) else ""
        label = f"{name} ({other_id})" if name else other_id
        out.append((other_id, label, other_id in current))
    known = {choice[0] for choice in out}
    for name in current:
        if isinstance(name, str) and name not in known:
            out.append((name, f"{name} (not a step this one can wait for)", True))
    return out


def on_error_choices(document: Mapping[str, Any], step: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What ``on_error`` may be: fail (the default: no key), continue, or a step that can
    handle the error (another step that is not itself handling with a handler)."""
    step_id = step.get("id")
    current = step.get("on_error")
    out = [("", "Fail the run (default)")]
    if current == "fail":
        out.append(("fail", "Fail the run (written out)"))
    out.append(("continue", "Continue: the step's output is its error"))
    for other in document.get("steps") or []:
        if not isinstance(other, dict) or not isinstance(other.get("id"), str):
            continue
        if other["id"] == step_id:
            continue
        own = other.get("on_error")
        if isinstance(own, str) and own not in ON_ERROR_KEYWORDS:
            continue  # a step that hands its own errors to a handler cannot be one
        name = other.get("name") if isinstance(other.get("name"), str) else ""
        label = f"Run {name} ({other['id']})" if name else f"Run {other['id']}"
        out.append((other["id"], label))
    if isinstance(current, str) and current not in {value for value, _ in out}:
        out.append((current, f"{current} (not a step of this flow)"))
    return out


def input_locations(form: Form) -> dict[str, Path]:
    """Each field's location as the server's issues write it (``input.headers['X-A']``)."""
    return {join_location("input", list(path)): path for path in form.index}


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
    path = request.url.path
    return TEMPLATE, {
        "step_id": step_id,
        "sv": view,
        "panel_oob": path.endswith(("/undo", "/redo")),
        "connectors_base": ws_path(ws.workspace, "/connectors"),
        "connections_base": ws_path(ws.workspace, "/connections"),
    }


# -- reading the form back ------------------------------------------------------------------


def _last(form: Mapping[str, list[str]], key: str) -> str | None:
    values = form.get(key)
    return values[-1][:MAX_TEXT] if values else None


def duration_value(text: str) -> Any:
    """A duration as typed: a number of seconds when it is one, else the text itself."""
    if NUMBER.match(text):
        number = float(text)
        return int(number) if INTEGER.match(text) else number
    return text


def read_settings(
    form: Mapping[str, list[str]], old: Mapping[str, Any], document: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The step with the panel's heading and settings fields read back (a field not in the
    form leaves its key alone; an empty one removes it), and what could not be read, by
    setting."""
    step = copy.deepcopy(dict(old))
    errors: dict[str, list[str]] = {}

    def put(key: str, value: Any) -> None:
        if value is MISSING:
            step.pop(key, None)
        else:
            step[key] = value

    name = _last(form, "step.name")
    if name is not None:
        put("name", name if name != "" else MISSING)
    connection = _last(form, "step.connection")
    if connection is not None:
        put("connection", connection if connection != "" else MISSING)
    mode = _last(form, "step.needs_mode")
    if mode is not None:
        if mode == "default":
            put("needs", MISSING)
        elif mode == "trigger":
            put("needs", [])
        else:
            ticked = [n for n in dict.fromkeys(form.get("step.needs") or []) if n]
            before: list[Any] = old["needs"] if isinstance(old.get("needs"), list) else []
            kept = [n for n in before if n in ticked]
            order = step_ids(document)
            added = sorted(
                (n for n in ticked if n not in kept),
                key=lambda n: order.index(n) if n in order else len(order),
            )
            put("needs", kept + added)
    when = _last(form, "step.when")
    if when is not None:
        text = when.replace("\r\n", "\n")
        put("when", MISSING if text == "" else {"true": True, "false": False}.get(text, text))
    for_each = _last(form, "step.for_each")
    if for_each is not None:
        text = for_each.replace("\r\n", "\n")
        value: Any = text if text != "" else MISSING
        if text.lstrip().startswith("["):
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
            if isinstance(parsed, list):
                value = parsed
        put("for_each", value)
    concurrency = _last(form, "step.concurrency")
    if concurrency is not None:
        if concurrency.strip() == "":
            put("concurrency", MISSING)
        elif INTEGER.match(concurrency):
            put("concurrency", int(concurrency))
        else:
            errors.setdefault("concurrency", []).append(
                f"{concurrency[:40]!r} is not a whole number (like 4)"
            )
    if _last(form, "step.retry") is not None:
        retry = dict(old["retry"]) if isinstance(old.get("retry"), dict) else {}
        attempts = _last(form, "step.retry.max_attempts") or ""
        if attempts.strip() == "":
            retry.pop("max_attempts", None)
        elif INTEGER.match(attempts):
            retry["max_attempts"] = int(attempts)
        else:
            errors.setdefault("retry", []).append(
                f"max attempts: {attempts[:40]!r} is not a whole number (like 3)"
            )
        backoff = _last(form, "step.retry.backoff") or ""
        if backoff:
            retry["backoff"] = backoff
        else:
            retry.pop("backoff", None)
        for key in ("initial", "max"):
            text = _last(form, f"step.retry.{key}") or ""
            if text == "":
                retry.pop(key, None)
            else:
                retry[key] = duration_value(text)
        put("retry", retry if retry else MISSING)
    timeout = _last(form, "step.timeout")
    if timeout is not None:
        put("timeout", MISSING if timeout == "" else duration_value(timeout))
    on_error = _last(form, "step.on_error")
    if on_error is not None:
        put("on_error", on_error if on_error else MISSING)
    return step, errors


def keep_secrets(value: Any, kept: set[Path], old: Any) -> Any:
    """Put back the secrets left empty (a secret field is never filled in: empty keeps the
    document's value)."""
    for path in sorted(kept, key=len):
        previous = value_at(old, path)
        if previous is MISSING:
            continue
        if not path:
            return copy.deepcopy(previous)
        parent = value_at(value, path[:-1])
        if isinstance(parent, dict) and isinstance(path[-1], str):
            parent[path[-1]] = copy.deepcopy(previous)
    return value


def keep_unreadable(value: Any, errors: Mapping[Path, list[str]], old: Any) -> Any:
    """Keep the document's value where the submitted text could not be read (a number
    field holding letters): the field shows the error, the document keeps what it had."""
    for path in errors:
        previous = value_at(old, path)
        if previous is MISSING or not path:
            continue
        parent = value_at(value, path[:-1])
        if isinstance(parent, dict) and isinstance(path[-1], str):
            parent[path[-1]] = copy.deepcopy(previous)
    return value


def keep_unknown(value: Any, old: Any, schema: Any) -> Any:
    """Keep the input's top-level keys the form does not show (not in the schema's
    properties): the form must not drop what it cannot draw."""
    if not isinstance(value, dict) or not isinstance(old, dict):
        return value
    resolved = resolve(schema, schema)
    if isinstance(resolved.get("additionalProperties"), dict):
        return value
    known = set(resolved.get("properties") or {})
    if not known:
        return value
    for key, item in old.items():
        if key not in known and key not in value:
            value[key] = copy.deepcopy(item)
    return value


def edit_label(step_id: str, ops: list[dict[str, Any]], index: int) -> str:
    """What undo names the edit: ``edit <step>.input.url`` when one field changed, else
    ``edit step <step>``."""
    prefix = pointer("steps", index)
    paths = {str(op.get("path", ""))[len(prefix) :] for op in ops}
    if len(paths) == 1:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in next(iter(paths)).split("/")]
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
        state = await state_of(ws, flow_id, selected=step_id)
        reading = read_panel(request, ws, state.document, step_id, pairs)
        ops = ops_for_step(state.document, step_id, reading.step)
        revision = posted_revision(dict(pairs))
        restructure = reading.submission is not None and bool(reading.submission.op)
        if ops:
            index = step_ids(state.document).index(step_id)
            draft = await ws.edit_draft(
                flow_id, ops, label=edit_label(step_id, ops, index), revision=revision
            )
            state = await state_for(ws, draft, selected=step_id)
        if restructure:
            view = await step_view(
                request, ws, state, step_id, value=reading.tree, focus=reading.focus
            )
            answer = await refreshed(
                request,
                state,
                panel=TEMPLATE,
                step_id=step_id,
                sv=view,
                panel_oob=False,
                connectors_base=ws_path(ws.workspace, "/connectors"),
                connections_base=ws_path(ws.workspace, "/connections"),
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
