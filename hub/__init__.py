"""The integration hub: connectors as plugins, flows as documents, durable runs.

The public plugin API is what this module exports, with :mod:`hub.plugin_kit` (helpers for
connector authors) and, in tests only, :mod:`hub.testing`; plugins import nothing else from the
hub (an import-linter contract in pyproject.toml and tests/test_plugin_imports.py check it).
"""

from hub.connectors import (
    Action,
    ActionError,
    CachePolicy,
    Connector,
    RateLimit,
    Trigger,
    action,
    parse_retry_after,
)
from hub.context import StepContext, to_epoch
from hub.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = [
    "Action",
    "ActionError",
    "CachePolicy",
    "Connector",
    "RateLimit",
    "StepContext",
    "Trigger",
    "__version__",
    "action",
    "hookimpl",
    "parse_retry_after",
    "to_epoch",
]
