"""The sandboxed Jinja2 expressions of flows.

- :mod:`hub.expressions.templates`: compiling a document's values once
  (:class:`Expressions`) and rendering them per step (:class:`Compiled`);
- :mod:`hub.expressions.sandbox`: the bounded sandbox they run in (:class:`Limits`, the
  render budget). See ``docs/expressions.md``.
"""

from hub.expressions.sandbox import Limits
from hub.expressions.templates import Compiled, ExpressionError, Expressions

__all__ = ["Compiled", "ExpressionError", "Expressions", "Limits"]
