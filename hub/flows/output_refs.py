"""The output-schema check of a flow: a read ``steps.X.output.<path>`` names what X's action
declares in its output schema.

The walking is :mod:`hub.flows.output_schema`'s; this module turns what it answers into the
message a person reads (:meth:`hub.flows.validate.FlowChecker.check_output_refs` places it
on the field holding the expression).
"""

from __future__ import annotations

from typing import Any

from hub.expressions import Compiled
from hub.expressions.templates import StepPath
from hub.flows import output_schema
from hub.flows.checks import suggest
from hub.flows.locations import join_location

MAX_NAMED_FIELDS = 20  # a message lists at most this many of the fields that exist


def reads_path(wanted: StepPath, compiled: Compiled) -> bool:
    """True when ``compiled`` reads ``steps.X.<path>`` exactly (``wanted`` is (X, path))."""
    return compiled.step_paths is not None and wanted in compiled.step_paths


def not_output(step_id: str, key: str | int) -> str:
    """Why ``steps.<step_id>.<key>`` reads nothing: at run time ``steps.X`` holds only
    ``output`` (:meth:`hub.engine.engine.Engine._context`)."""
    read = join_location(f"steps.{step_id}", [key])
    hint = suggest(key, ["output"]) if isinstance(key, str) else ""
    return f"{read}: steps.{step_id} holds only its output: read steps.{step_id}.output{hint}"


def undeclared_read(
    step_id: str,
    action_name: str,
    schema: Any,
    path: tuple[str | int, ...],
    *,
    for_each: bool = False,
) -> str | None:
    """Why ``steps.<step_id>.output`` followed by ``path`` reads nothing that ``schema`` (the
    output schema of ``action_name``) declares, or None when it may be there.

    The message starts with the read up to the key at fault: ``steps.fetch.output.bdy:
    'fetch' (http.request) declares no output field 'bdy'; did you mean 'body'? (fields:
    body, headers, status)``. The output of a ``for_each`` step is the list of its items'
    outputs: its first key is an index.
    """
    who = f"'{step_id}' ({action_name})"
    start = 0
    if for_each:
        if path and not isinstance(path[0], int):
            read = join_location(f"steps.{step_id}.output", path[:1])
            return (
                f"{read}: {who} runs for_each: its output is the list of its items' outputs; "
                f"read one by index (steps.{step_id}.output[0]) or loop over them"
            )
        start = 1
    where: output_schema.Node | output_schema.Found = output_schema.node(schema)
    for position in range(start, len(path)):
        answer = output_schema.child(where, path[position])
        if isinstance(answer, output_schema.Found):
            where = answer
            continue
        if not isinstance(answer, output_schema.Undeclared):
            return None  # open: anything may be there
        read = join_location(f"steps.{step_id}.output", path[: position + 1])
        return f"{read}: {undeclared_message(who, path[start:position], answer)}"
    return None


def undeclared_message(
    who: str, parent: tuple[str | int, ...], answer: output_schema.Undeclared
) -> str:
    """What ``who`` declares instead of ``answer.key`` under ``output`` + ``parent``."""
    place = join_location("output", parent)
    key = answer.key
    kinds = " or ".join(answer.kinds)
    if isinstance(key, str) and answer.kinds and "object" not in answer.kinds:
        return f"{who} declares {place} as {kinds}: it has no field '{key}'"
    if isinstance(key, int):
        if answer.kinds and "array" not in answer.kinds:
            message = f"{who} declares {place} as {kinds}, not a list: it has no item [{key}]"
        else:
            message = f"{who} declares no item [{key}] in {place}"
    elif parent:
        message = f"{who} declares no field '{key}' in {place}{suggest(key, answer.names)}"
    else:
        message = f"{who} declares no output field '{key}'{suggest(key, answer.names)}"
    names = list(answer.names)
    if len(names) > MAX_NAMED_FIELDS:
        names = [*names[:MAX_NAMED_FIELDS], "..."]
    listed = f"fields: {', '.join(names)}" if names else "it declares no fields there"
    return f"{message} ({listed})"
