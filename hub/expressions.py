"""The sandboxed Jinja2 expressions of flows.

SKELETON: the public names below are the contract; the implementation is to be written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any


class ExpressionError(ValueError):
    """An expression could not be compiled or rendered; ``location`` names the field."""

    def __init__(self, location: str, message: str) -> None:
        self.location = location
        self.message = message
        super().__init__(f"{location}: {message}" if location else message)


@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds of the sandbox (defaults match hub.settings)."""

    max_output: int = 1_000_000
    max_loop_iterations: int = 100_000
    max_range: int = 100_000
    max_repeat: int = 1_000_000
    max_nesting: int = 64


class Compiled:
    """A value (scalar, string, list, dict, nested) with its template strings compiled."""

    step_refs: frozenset[str] | None
    is_static: bool
    location: str

    def render(self, context: Mapping[str, Any]) -> Any:
        """Render against ``context``; raise ExpressionError naming the location."""
        raise NotImplementedError


class Expressions:
    """The hub's sandboxed environment (with plugin filters and globals)."""

    def __init__(
        self,
        limits: Limits | None = None,
        filters: Mapping[str, Callable[..., Any]] | None = None,
        globals: Mapping[str, Any] | None = None,
    ) -> None:
        raise NotImplementedError

    def compile(self, value: Any, location: str) -> Compiled:
        """Compile every template string inside ``value``."""
        raise NotImplementedError
