"""The sandboxed Jinja2 expressions of flows.

- :mod:`hub.expressions.templates`: compiling a document's values once
  (:class:`Expressions`) and rendering them per step (:class:`Compiled`);
- :mod:`hub.expressions.sandbox`: the bounded sandbox they run in;
- :mod:`hub.expressions.budget`: one render's bounds (:class:`Limits`) and its budget of
  work, bytes built and time, charged by every operation;
- :mod:`hub.expressions.filters`: the filters, guarded and metered;
  :mod:`hub.expressions.textops`: linear versions of super-linear text filters.

See ``docs/expressions.md``.
"""

from hub.expressions.sandbox import Limits
from hub.expressions.templates import Compiled, ExpressionError, Expressions

__all__ = ["Compiled", "ExpressionError", "Expressions", "Limits"]
