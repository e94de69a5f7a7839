"""The step call: render the input, validate it, call the action within its timeout, and
validate the output, written once for every place that runs an action.

The engine (:mod:`hub.engine.engine`), the step-test service (:mod:`hub.services.actions`)
and :func:`hub.testing.run_action` call :func:`call_step`; each builds the action's
:class:`~hub.context.StepContext` itself (with :func:`step_logger` for its log) and decides
what an action's own exception means. Failures of the call's checks raise
:class:`StepFailure` with a ``kind``: ``expression`` (rendering), ``input``, ``timeout`` or
``output``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from hub.connectors import Action
from hub.context import RedactingLogger, StepContext
from hub.expressions import ExpressionError
from hub.expressions.offload import Renders, default_renders
from hub.schemas import schema_errors
from hub.security.secrets import Redactor

step_log = logging.getLogger("hub.step")

#: What the engine wraps around the timed call of an action (limits, cache, observers).
Around = Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]]


class StepFailure(Exception):
    """A step attempt failed; ``retryable`` says whether its retry policy applies.

    ``problems`` lists the schema errors of a failed ``input`` or ``output`` check, and
    ``output`` is the output that failed its check.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        retryable: bool = False,
        retry_after: float | None = None,
        problems: list[str] | None = None,
        output: Any = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable
        self.retry_after = retry_after
        self.problems = problems or []
        self.output = output


def step_logger(
    redactor: Redactor, run_id: str, base: logging.Logger = step_log
) -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The log of an action's context: ``base`` itself, or a redacting adapter of it when
    the step's connection has secrets."""
    if redactor:
        return RedactingLogger(base, redactor.text, {"run_id": run_id})
    return base


async def call_step(
    action: Action,
    ctx: StepContext,
    input: Any,
    *,
    data: Mapping[str, Any] | None = None,
    timeout: float | None,
    where: str = "",
    name: str = "",
    around: Around | None = None,
    renders: Renders | None = None,
) -> Any:
    """Run ``action`` once as a step and return its output.

    ``input`` is a compiled template rendered against ``data`` when ``data`` is given, or
    the input itself; the render goes through ``renders`` (the process's default when
    None): inline while it is cheap, else in a thread, so it never stalls the event loop.
    The rendered input is validated against the action's input schema (errors located
    under ``{where}input``), set on ``ctx.input`` (where a caller finds it after a failure
    too), and the action is called within ``timeout`` seconds (None: no
    limit; the failure names the action ``name``), through ``around`` when given; its
    output is validated likewise (``{where}output``). The action's own exceptions pass
    through unchanged.
    """
    if data is not None:
        try:
            input = await (renders or default_renders()).render(input, data)
        except ExpressionError as exc:
            raise StepFailure(str(exc), kind="expression") from None
    ctx.input = input
    errors = schema_errors(action.input_schema, input, f"{where}input")
    if errors:
        raise StepFailure("; ".join(errors), kind="input", problems=errors)

    async def timed() -> Any:
        try:
            async with asyncio.timeout(timeout):
                return await action.run(ctx, input)
        except TimeoutError:
            if timeout is None:  # the action's own
                raise
            what = f"the action {name}" if name else "the action"
            raise StepFailure(
                f"{what} timed out after {timeout:g}s", kind="timeout", retryable=True
            ) from None

    output = await (timed() if around is None else around(timed))
    errors = schema_errors(action.output_schema, output, f"{where}output")
    if errors:
        raise StepFailure("; ".join(errors), kind="output", problems=errors, output=output)
    return output
