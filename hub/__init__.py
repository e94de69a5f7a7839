"""The integration hub: connectors as plugins, flows as documents, durable runs.

The public plugin API is what this module exports; plugins import nothing else from the hub
(except :mod:`hub.testing` in their tests).
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
from hub.context import StepContext
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
]
