"""The builder's graph commands, as pure functions: a flow document in, a JSON Patch out.

Delete, duplicate, rename, connect and disconnect (``needs``), set or remove an error
handler (``on_error``), move a step up or down. Each answers the operations of one edit (so
one undo entry) or raises :class:`CommandError` with a message for the person.

The meaning of ``needs`` is the validator's (:class:`hub.flows.validate.FlowChecker`):
explicit, ``[]``, or absent (the previous step that is not an error handler). A command
that changes which step is "previous" for a step whose needs are implicit writes that
step's needs explicitly, so that nothing else changes meaning (:func:`_pin`); moving a step
is the exception the person chooses (:func:`move_step` with ``keep=False``).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Iterable, Mapping
from typing import Any

import jsonpatch
from jinja2 import Environment
from jinja2.exceptions import TemplateSyntaxError

from hub.expressions import Expressions
from hub.flows import checks as flowcheck
from hub.flows.validate import ON_ERROR_KEYWORDS, STEP_ID_RE
from hub.web.builder.state import pointer, step_index
from hub.web.builder.wiring import resolved_checker

Ops = list[dict[str, Any]]
#: The fields of a step that hold expressions (``steps.X`` reads), as the validator reads.
EXPRESSION_FIELDS = ("input", "when", "for_each")


class CommandError(ValueError):
    """A command that cannot be applied; the message says why, for the person."""


@dataclasses.dataclass(frozen=True)
class Wiring:
    """The resolved ``needs`` of each step (by id, as the validator resolves them) and the
    error handlers (each with the steps whose ``on_error`` names it)."""

    needs: dict[str, tuple[str, ...]]
    handles: dict[str, list[str]]

    def is_handler(self, step_id: str) -> bool:
        """True for a step named by another's ``on_error``."""
        return step_id in self.handles


@functools.cache
def _expressions() -> Expressions:
    # The checker's needs and handlers do not read expressions; it wants an environment.
    return Expressions()


@functools.cache
def _lexer_env() -> Environment:
    # Default delimiters, as the hub's sandbox: used to find the code inside templates.
    return Environment(keep_trailing_newline=True)


def wiring(document: Mapping[str, Any]) -> Wiring:
    """The document's resolved needs and handlers (a half-written document: what can be
    read of it)."""
    checker = resolved_checker(document, _expressions())
    return Wiring(dict(checker.needs), {k: list(v) for k, v in checker.handles.items()})


def _steps(document: Mapping[str, Any]) -> list[Any]:
    steps = document.get("steps")
    return steps if isinstance(steps, list) else []


def _index(document: Mapping[str, Any], step_id: str) -> int:
    index = step_index(document, step_id)
    if index is None or not isinstance(_steps(document)[index], dict):
        raise CommandError(f"no step '{step_id}' in this flow")
    return index


def _by_id(document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The steps with an id, by id (the first of duplicates, as the validator)."""
    out: dict[str, dict[str, Any]] = {}
    for step in _steps(document):
        if isinstance(step, dict) and isinstance(step.get("id"), str):
            out.setdefault(step["id"], step)
    return out


def handler_choices(document: Mapping[str, Any], step_id: str) -> list[str]:
    """The steps that may become the error handler of ``step_id`` (in document order):
    not itself, without a handler of their own, and needed explicitly by no step."""
    by_id = _by_id(document)
    needed = {
        name
        for step in by_id.values()
        if isinstance(step.get("needs"), list)
        for name in step["needs"]
        if isinstance(name, str)
    }
    choices = []
    for other, step in by_id.items():
        target = step.get("on_error", "fail")
        own = isinstance(target, str) and target not in ON_ERROR_KEYWORDS
        if other != step_id and STEP_ID_RE.match(other) and not own and other not in needed:
            choices.append(other)
    return choices


def patch_between(before: Mapping[str, Any], after: Mapping[str, Any]) -> Ops:
    """The JSON Patch from ``before`` to ``after`` (checked: when the computed patch does
    not give ``after`` exactly, the changed top-level fields are replaced whole)."""
    ops: Ops = [dict(op) for op in jsonpatch.make_patch(dict(before), dict(after)).patch]
    try:
        if jsonpatch.apply_patch(copy.deepcopy(dict(before)), ops) == after:
            return ops
    except jsonpatch.JsonPatchException:
        pass
    fallback: Ops = []
    for key in before:
        if key not in after:
            fallback.append({"op": "remove", "path": pointer(key)})
    for key, value in after.items():
        if key not in before:
            fallback.append({"op": "add", "path": pointer(key), "value": value})
        elif before[key] != value:
            fallback.append({"op": "replace", "path": pointer(key), "value": value})
    return fallback


def _pin(document: dict[str, Any], desired: Mapping[str, tuple[str, ...]]) -> None:
    """Write explicit ``needs`` (in place) on the steps with implicit needs whose resolved
    needs are no longer ``desired`` (error handlers take no needs: left alone)."""
    now = wiring(document)
    for step_id, step in _by_id(document).items():
        if "needs" in step or step_id not in desired or now.is_handler(step_id):
            continue
        if now.needs.get(step_id, ()) != desired[step_id]:
            step["needs"] = list(desired[step_id])


def _substitute(needs: Iterable[str], gone: str, instead: Iterable[str]) -> tuple[str, ...]:
    """``needs`` with ``gone`` replaced by ``instead`` (in its place, no duplicates)."""
    out: list[str] = []
    for name in needs:
        for new in instead if name == gone else (name,):
            if new not in out and new != gone:
                out.append(new)
    return tuple(out)


# Delete ------------------------------------------------------------------------------


def delete_step(document: Mapping[str, Any], step_id: str) -> Ops:
    """Remove ``step_id``. The steps that needed it need its own needs instead (explicit
    lists rewritten, implicit ones pinned where the previous step changes meaning);
    ``on_error`` naming it reverts to ``fail`` (the key is removed); expressions reading
    ``steps.<it>`` stay (the validator then shows them)."""
    index = _index(document, step_id)
    before = wiring(document)
    own = before.needs.get(step_id, ())
    after = copy.deepcopy(dict(document))
    del after["steps"][index]
    desired = {
        s: _substitute(needs, step_id, own)
        for s, needs in before.needs.items()
        if s != step_id and not before.is_handler(s)
    }
    for step in _steps(after):
        if not isinstance(step, dict):
            continue
        if step.get("on_error") == step_id:
            del step["on_error"]
        raw = step.get("needs")
        if isinstance(raw, list) and step_id in raw:
            step["needs"] = list(_substitute(raw, step_id, own))
    _pin(after, desired)
    return patch_between(document, after)


# Duplicate ---------------------------------------------------------------------------


def copy_id(document: Mapping[str, Any], step_id: str) -> str:
    """A new unique id for a copy of ``step_id``: ``x_copy``, ``x_copy_2``..."""
    taken = {s.get("id") for s in _steps(document) if isinstance(s, dict)}
    candidate = f"{step_id}_copy"
    n = 2
    while candidate in taken:
        candidate = f"{step_id}_copy_{n}"
        n += 1
    return candidate


def duplicate_step(document: Mapping[str, Any], step_id: str) -> tuple[Ops, str]:
    """A copy of ``step_id`` with a new id, right after it, on a branch of its own (the
    same needs as the original, written explicitly); returns the ops and the copy's id."""
    index = _index(document, step_id)
    before = wiring(document)
    new_id = copy_id(document, step_id)
    after = copy.deepcopy(dict(document))
    original = after["steps"][index]
    twin = copy.deepcopy(original)
    twin["id"] = new_id
    if isinstance(twin.get("name"), str) and twin["name"]:
        twin["name"] = f"{twin['name']} (copy)"
    if before.is_handler(step_id):
        twin.pop("needs", None)
    else:
        twin["needs"] = list(before.needs.get(step_id, ()))
    after["steps"].insert(index + 1, twin)
    desired = {s: n for s, n in before.needs.items() if not before.is_handler(s)}
    _pin(after, desired)
    return patch_between(document, after), new_id


# Rename ------------------------------------------------------------------------------


def check_new_id(document: Mapping[str, Any], old: str, new: str) -> None:
    """Raise :class:`CommandError` when ``new`` cannot be the id of ``old``."""
    if not STEP_ID_RE.match(new):
        raise CommandError(
            "an id is letters, digits and _, not starting with a digit (like fetch_user)"
        )
    if new in ON_ERROR_KEYWORDS:
        raise CommandError(f"'{new}' is an on_error keyword: choose another id")
    if new != old and any(isinstance(s, dict) and s.get("id") == new for s in _steps(document)):
        raise CommandError(f"there is already a step '{new}'")


def _string_literal(raw: str) -> str | None:
    """The value of a simple quoted Jinja string token (no escapes), else None."""
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"" and "\\" not in raw:
        return raw[1:-1]
    return None


def rename_in_template(source: str, old: str, new: str) -> str:
    """``source`` with its code's reads of ``steps.<old>`` / ``steps['old']`` /
    ``steps["old"]`` naming ``new`` instead. Only code is touched (inside ``{{ }}`` and
    ``{% %}``: never text, comments or raw blocks), only the global ``steps`` (not
    ``x.steps``), only the exact id (``steps.old_x`` stays). A template the lexer refuses
    is returned as it is (the validator shows its error)."""
    if "{{" not in source and "{%" not in source:
        return source
    try:
        tokens = list(_lexer_env().lexer.tokeniter(source, None))
    except TemplateSyntaxError:
        return source
    # Where each token starts in the source (the lexer may drop whitespace before {%- and
    # normalize newlines, so each token's value is looked up from the previous one's end).
    starts: list[int] = []
    at = 0
    for _line, _kind, value in tokens:
        found = source.find(value, at)
        if found < 0 and "\n" in value:
            value = value.replace("\n", "\r\n")
            found = source.find(value, at)
        if found < 0:
            return source
        starts.append(found)
        at = found + len(value)
    code = [(i, kind, value) for i, (_l, kind, value) in enumerate(tokens) if kind != "whitespace"]
    edits: list[tuple[int, int, str]] = []
    for n, (_i, kind, value) in enumerate(code):
        if kind != "name" or value != "steps" or n + 2 >= len(code):
            continue
        if n > 0 and code[n - 1][1] == "operator" and code[n - 1][2] == ".":
            continue  # x.steps: an attribute, not the steps of the run
        op, target = code[n + 1], code[n + 2]
        if op[2] == "." and target[1] == "name" and target[2] == old:
            edits.append((starts[target[0]], len(target[2]), new))
        elif (
            op[2] == "["
            and target[1] == "string"
            and _string_literal(target[2]) == old
            and n + 3 < len(code)
            and code[n + 3][2] == "]"
        ):
            quote = target[2][0]
            edits.append((starts[target[0]], len(target[2]), f"{quote}{new}{quote}"))
    for start, length, text in reversed(edits):
        source = source[:start] + text + source[start + length :]
    return source


def rename_in_value(value: Any, old: str, new: str) -> Any:
    """A copy of ``value`` (any nesting of lists and dicts) with its template strings'
    reads of ``steps.<old>`` renamed (:func:`rename_in_template`)."""
    if isinstance(value, str):
        return rename_in_template(value, old, new)
    if isinstance(value, list):
        return [rename_in_value(v, old, new) for v in value]
    if isinstance(value, dict):
        return {k: rename_in_value(v, old, new) for k, v in value.items()}
    return value


def rename_step(document: Mapping[str, Any], old: str, new: str) -> Ops:
    """Give step ``old`` the id ``new``, updating every reference: other steps' ``needs``
    and ``on_error``, and the expressions (input, when, for_each, the flow's output) that
    read ``steps.<old>``."""
    index = _index(document, old)
    new = new.strip()
    check_new_id(document, old, new)
    if new == old:
        return []
    after = copy.deepcopy(dict(document))
    after["steps"][index]["id"] = new
    for step in _steps(after):
        if not isinstance(step, dict):
            continue
        raw = step.get("needs")
        if isinstance(raw, list):
            step["needs"] = [new if name == old else name for name in raw]
        if step.get("on_error") == old:
            step["on_error"] = new
        for field in EXPRESSION_FIELDS:
            if field in step:
                step[field] = rename_in_value(step[field], old, new)
    if "output" in after:
        after["output"] = rename_in_value(after["output"], old, new)
    return patch_between(document, after)


# Connect / disconnect ----------------------------------------------------------------


def _set_needs(document: Mapping[str, Any], step_id: str, needs: Iterable[str]) -> Ops:
    index = _index(document, step_id)
    step = dict(_steps(document)[index])
    step["needs"] = list(needs)
    after = copy.deepcopy(dict(document))
    after["steps"][index] = step
    return patch_between(document, after)


def connect(document: Mapping[str, Any], source: str, target: str) -> Ops:
    """Make ``target`` need ``source`` (its needs written explicitly); refused when it
    would make a cycle (the validator's message), for an error handler on either side, or
    when it already does."""
    _index(document, source)
    _index(document, target)
    now = wiring(document)
    if source == target:
        raise CommandError("a step cannot need itself")
    if now.is_handler(target):
        raise CommandError(
            f"'{target}' is an error handler: it runs when the step it handles fails, "
            "so it takes no needs"
        )
    if now.is_handler(source):
        raise CommandError(
            f"'{source}' is an error handler: it runs only when the step it handles fails, "
            "so no step can need it"
        )
    current = now.needs.get(target, ())
    if source in current:
        raise CommandError(f"'{target}' already needs '{source}'")
    needs = dict(now.needs)
    needs[target] = (*current, source)
    order = {s: i for i, s in enumerate(needs)}
    cycles = flowcheck.find_cycles(needs, order)
    if cycles:
        loop = cycles[0]
        raise CommandError(f"needs form a cycle: {' -> '.join([*loop, loop[0]])}")
    return _set_needs(document, target, needs[target])


def disconnect(document: Mapping[str, Any], source: str, target: str) -> Ops:
    """Make ``target`` no longer need ``source`` (its remaining needs written explicitly:
    ``[]`` when none, so it starts from the trigger)."""
    _index(document, target)
    current = wiring(document).needs.get(target, ())
    if source not in current:
        raise CommandError(f"'{target}' does not need '{source}'")
    return _set_needs(document, target, [n for n in current if n != source])


# Error handlers ----------------------------------------------------------------------


def set_handler(document: Mapping[str, Any], step_id: str, handler: str) -> Ops:
    """Make ``handler`` the error handler of ``step_id`` (``on_error: handler``). Refused
    when the validator would refuse it: a step handling itself, a handler with its own
    handler, or a handler that other steps need explicitly. Steps that implicitly followed
    the handler keep their meaning (a handler is never "previous")."""
    index = _index(document, step_id)
    _index(document, handler)
    before = wiring(document)
    if handler == step_id:
        raise CommandError("a step cannot be its own error handler")
    if before.is_handler(step_id):
        raise CommandError(
            f"'{step_id}' is an error handler: its own on_error may be fail or continue, "
            "not another handler"
        )
    by_id = _by_id(document)
    handler_target = by_id[handler].get("on_error", "fail")
    if isinstance(handler_target, str) and handler_target not in ON_ERROR_KEYWORDS:
        raise CommandError(
            f"'{handler}' has an error handler of its own ({handler_target}): handlers do not chain"
        )
    explicit = [
        s
        for s, step in by_id.items()
        if isinstance(step.get("needs"), list) and handler in step["needs"] and s != handler
    ]
    if explicit:
        names = ", ".join(f"'{s}'" for s in explicit)
        raise CommandError(
            f"{names} need{'s' if len(explicit) == 1 else ''} '{handler}': an error handler "
            "runs only when the step it handles fails; disconnect it first"
        )
    own = before.needs.get(handler, ())
    desired = {
        s: _substitute(needs, handler, own)
        for s, needs in before.needs.items()
        if s != handler and not before.is_handler(s)
    }
    after = copy.deepcopy(dict(document))
    after["steps"][index]["on_error"] = handler
    after["steps"][step_index(after, handler) or 0].pop("needs", None)
    _pin(after, desired)
    return patch_between(document, after)


def remove_handler(document: Mapping[str, Any], step_id: str) -> Ops:
    """Take away the error handler of ``step_id`` (its ``on_error`` reverts to ``fail``);
    a step that stops being a handler keeps the others' needs as they were."""
    index = _index(document, step_id)
    target = _steps(document)[index].get("on_error")
    if not isinstance(target, str) or target in ON_ERROR_KEYWORDS:
        raise CommandError(f"'{step_id}' has no error handler")
    before = wiring(document)
    desired = {s: n for s, n in before.needs.items() if not before.is_handler(s)}
    after = copy.deepcopy(dict(document))
    del after["steps"][index]["on_error"]
    _pin(after, desired)
    return patch_between(document, after)


# Move --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class NeedsChange:
    """A step whose resolved needs a move changes: ``before`` -> ``after``."""

    step: str
    before: tuple[str, ...]
    after: tuple[str, ...]

    def describe(self) -> str:
        """The change in words (``'notify' will need 'fetch' instead of 'format'``)."""

        def names(ids: tuple[str, ...]) -> str:
            return " and ".join(f"'{s}'" for s in ids) if ids else "nothing (the trigger)"

        if not self.before:
            return f"'{self.step}' will need {names(self.after)}"
        if not self.after:
            return (
                f"'{self.step}' will start from the trigger instead of needing {names(self.before)}"
            )
        return f"'{self.step}' will need {names(self.after)} instead of {names(self.before)}"


def _moved(document: Mapping[str, Any], step_id: str, offset: int) -> tuple[dict[str, Any], int]:
    index = _index(document, step_id)
    other = index + offset
    if offset not in (-1, 1) or not 0 <= other < len(_steps(document)):
        where = "first" if offset < 0 else "last"
        raise CommandError(f"'{step_id}' is already the {where} step")
    after = copy.deepcopy(dict(document))
    steps = after["steps"]
    steps[index], steps[other] = steps[other], steps[index]
    return after, other


def move_changes(document: Mapping[str, Any], step_id: str, offset: int) -> list[NeedsChange]:
    """What moving ``step_id`` by ``offset`` (-1 up, +1 down) changes in the resolved
    needs (steps with implicit needs get another previous step), in document order."""
    after, _ = _moved(document, step_id, offset)
    before_needs = wiring(document).needs
    after_needs = wiring(after).needs
    return [
        NeedsChange(s, before_needs.get(s, ()), needs)
        for s, needs in after_needs.items()
        if before_needs.get(s, ()) != needs
    ]


def move_step(document: Mapping[str, Any], step_id: str, offset: int, *, keep: bool) -> Ops:
    """Move ``step_id`` one place up (-1) or down (+1). ``keep``: write explicit needs
    where the move would change a step's resolved needs, so that nothing changes
    meaning."""
    after, _ = _moved(document, step_id, offset)
    if keep:
        before = wiring(document)
        _pin(after, {s: n for s, n in before.needs.items() if not before.is_handler(s)})
    return patch_between(document, after)
