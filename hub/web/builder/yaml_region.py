"""What the builder's YAML view draws (``?view=yaml``): the draft's text and, under it, the
state of that text (a YAML error at its line, or the document's validation issues at
theirs), with the diagnostics the code editor marks.

The text is the draft's own (:meth:`~hub.services.drafts.DraftsService.draft_text`: the
YAML brought up to date with the document, comments and key order kept). The places are
found with :func:`hub.web.flow_lines.locate`, as the flow's YAML editor page finds them.
Kept apart from the controller (:mod:`hub.web.builder.yaml_tab`) so that the page
(:mod:`hub.web.builder.page`) and the controller can both use it.
"""

from __future__ import annotations

import re
from typing import Any

from hub.services.errors import Invalid
from hub.services.workspace import WorkspaceHub
from hub.web.builder.state import BuilderState
from hub.web.flow_lines import LINE, locate

#: The status region under the editor (swapped by every post of the text).
STATUS_TEMPLATE = "builder/_yaml_status.html"
_AT_LINE = re.compile(r"\bat line (\d+), column (\d+)")


def error_issues(error: Invalid) -> list[dict[str, str]]:
    """The issues of a refused text (the line of a YAML error, or the place of another
    refusal such as a changed id); the message alone when it names none."""
    details = error.details if isinstance(error.details, list) else []
    issues = [
        {"location": str(item.get("location") or ""), "message": str(item.get("message") or "")}
        for item in details
        if isinstance(item, dict)
    ]
    return issues or [{"location": "", "message": error.message}]


def diagnostic(issue: dict[str, Any], severity: str) -> dict[str, Any] | None:
    """The editor's diagnostic of a located issue (None when it has no line)."""
    if not issue.get("line"):
        return None
    found: dict[str, Any] = {
        "line": issue["line"],
        "message": (f"{issue['location']}: " if issue.get("location") else "") + issue["message"],
        "severity": severity,
    }
    match = LINE.match(str(issue.get("location") or ""))
    if match and match.group(2):
        found["column"] = int(match.group(2))
        found["message"] = issue["message"]
    return found


def context_marks(located: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The other places a YAML error's message names (``... while parsing a flow sequence
    at line 17, column 9``: where the unclosed ``[`` opened), marked with the message too."""
    marks = []
    for issue in located:
        for match in _AT_LINE.finditer(str(issue.get("message") or "")):
            line, column = int(match.group(1)), int(match.group(2))
            if line != issue.get("line"):
                marks.append(
                    {
                        "line": line,
                        "column": column,
                        "message": issue["message"],
                        "severity": "error",
                    }
                )
    return marks


def yaml_status(state: BuilderState, text: str, error: Invalid | None = None) -> dict[str, Any]:
    """The status under the editor: a refused text's error (the draft unchanged), else the
    validation issues of the draft's document, each at its line of ``text``."""
    if error is not None:
        located = locate(text, error_issues(error))
        severity = "error"
    else:
        issues = [{"location": i.location, "message": i.message} for i in state.issues]
        located = locate(text, issues)
        severity = "warning"
    diagnostics = [d for d in (diagnostic(i, severity) for i in located) if d is not None]
    if error is not None:
        diagnostics.extend(context_marks(located))
    return {
        "yaml_error": located if error is not None else [],
        "yaml_issues": [] if error is not None else located,
        "yaml_diagnostics": diagnostics,
        "yaml_revision": state.draft.revision,
    }


async def yaml_context(
    ws: WorkspaceHub,
    state: BuilderState,
    *,
    text: str | None = None,
    error: Invalid | None = None,
) -> dict[str, Any]:
    """What ``builder/_yaml.html`` draws: the text (the draft's, or ``text`` as typed when
    it was refused) and its status."""
    if text is None:
        text = await ws.draft_text(state.flow_id)
    return {"yaml_text": text, **yaml_status(state, text, error)}
