"""The flow document: its model, reading with locations, validation and the step graph.

- :mod:`hub.flows.model`: the types the engine runs (:class:`Flow`, :class:`StepSpec`, ...)
  and :class:`FlowError`;
- :mod:`hub.flows.document`: reading YAML or JSON (errors with a line and column),
  :func:`load_flow`, and the diff between two versions;
- :mod:`hub.flows.validate`: :class:`~hub.flows.validate.FlowChecker`, every check of a
  document against the registry;
- :mod:`hub.flows.checks`: the checks that know only the flow schema.

Import from this package: it re-exports what the rest of the hub uses.
"""

from hub.flows.document import diff_documents, load_flow, load_flow_text, parse_document
from hub.flows.model import Flow, FlowError, FlowIssue, RetryPolicy, StepSpec, parse_duration

__all__ = [
    "Flow",
    "FlowError",
    "FlowIssue",
    "RetryPolicy",
    "StepSpec",
    "diff_documents",
    "load_flow",
    "load_flow_text",
    "parse_document",
    "parse_duration",
]
