"""Where a flow's issues are in its text: the line of ``steps[1].input.email``.

Validation names places by their path in the document (``steps[1].input.email``,
``trigger.config['X-Key']``) and text errors by ``line L, column C``; the YAML editor shows
each issue at its line, with that line's text. The path is followed through the text's YAML
node graph (JSON text is YAML too): composing keeps every node's position and expands no
alias, and the text had been read within the document bounds before any path issue was
found.
"""

from __future__ import annotations

import ast
import re
from typing import Any

import yaml

LINE = re.compile(r"^line (\d+)(?:, column (\d+))?")
PART = re.compile(
    r"\.?([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")\]"
)
SNIPPET_CHARS = 200

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def path_of(location: str) -> list[str | int] | None:
    """The parts of a location (``steps[1].input`` -> ``["steps", 1, "input"]``); None when
    it is not a path."""
    parts: list[str | int] = []
    at = 0
    while at < len(location):
        match = PART.match(location, at)
        if match is None or match.end() == at:
            return None
        name, index, quoted = match.groups()
        if name is not None:
            parts.append(name)
        elif index is not None:
            parts.append(int(index))
        else:
            try:
                parts.append(str(ast.literal_eval(quoted)))
            except (ValueError, SyntaxError):
                return None
        at = match.end()
    return parts


def _child(node: yaml.Node, part: str | int) -> tuple[yaml.Node, yaml.Node] | None:
    """The (key or item, value) nodes of ``part`` under ``node``."""
    if isinstance(node, yaml.MappingNode) and isinstance(part, str):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and str(key.value) == part:
                return key, value
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        item = node.value[part]
        return item, item
    return None


def line_of_path(root: yaml.Node, parts: list[str | int]) -> int | None:
    """The 1-based line of the deepest node of ``parts`` found under ``root`` (the key's line
    for a mapping's value)."""
    node, line = root, None
    for part in parts:
        found = _child(node, part)
        if found is None:
            break
        key, node = found
        line = key.start_mark.line + 1
    return line


def compose(text: str) -> yaml.Node | None:
    """The node graph of the text, or None when it cannot be read."""
    try:
        return yaml.compose(text, Loader=_LOADER)  # compose builds no object
    except (yaml.YAMLError, RecursionError, ValueError):
        return None


def locate(text: str, issues: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Each issue with its ``line`` (None when unknown) and that line's text (``snippet``),
    in the order of their lines (issues without a line last)."""
    lines = text.splitlines()
    root: yaml.Node | None = None
    composed = False
    located: list[dict[str, Any]] = []
    for issue in issues:
        location = str(issue.get("location") or "")
        line: int | None = None
        match = LINE.match(location)
        if match:
            line = int(match.group(1))
        else:
            parts = path_of(location) if location else None
            if parts:
                if not composed:
                    root, composed = compose(text), True
                if root is not None:
                    line = line_of_path(root, parts)
        snippet = lines[line - 1][:SNIPPET_CHARS] if line and 0 < line <= len(lines) else ""
        located.append({**issue, "line": line, "snippet": snippet})
    return sorted(located, key=lambda i: (i["line"] is None, i["line"] or 0))
