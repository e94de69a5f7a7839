"""How a draft's steps are wired, as the validator resolves it: one place that runs
:class:`~hub.flows.validate.FlowChecker`'s resolution (the steps by id, the error handlers,
each step's needs: explicit, ``[]``, or absent, the previous non-handler step), for the
canvas (:mod:`hub.web.builder.graph`), the expression scopes
(:mod:`hub.web.builder.scope`), the catalog's insertion and the graph commands
(:mod:`hub.web.builder.commands`). A half-written document resolves as far as it can be
read; nothing here raises for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hub.connectors import Registry
from hub.expressions import Expressions
from hub.flows.validate import FlowChecker


def resolved_checker(
    document: Mapping[str, Any], expressions: Expressions, registry: Registry | None = None
) -> FlowChecker:
    """A checker of ``document`` with its steps collected and its handlers and needs
    resolved (``checker.needs``, ``checker.handles``); ``registry`` for a caller that goes
    on to checks that read the actions."""
    checker = FlowChecker(document, expressions, registry, None)
    checker.collect_steps()
    checker.resolve_handlers()
    checker.resolve_needs()
    return checker
