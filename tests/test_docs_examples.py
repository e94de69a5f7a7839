"""The Python examples in docs/ run: every ```python block of docs/**/*.md is a test of its own.

A block runs in a fresh namespace after the page's earlier runnable blocks (so a page can import
once at the top and build on it, as a reader does). A block that cannot run on its own, because
it shows a piece of something larger, is marked with the HTML comment ``<!-- fragment -->`` on
the line just above its fence: it is only parsed. Keep fragments few (CONTRIBUTING.md).
A block indented under a list item is dedented first.
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
FRAGMENT = "<!-- fragment -->"


@dataclass(frozen=True)
class Example:
    """One ```python block: where it is, its code, and whether it is a fragment."""

    page: Path
    line: int
    code: str
    fragment: bool

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(DOCS)}:{self.line}"


def examples_of(page: Path) -> list[Example]:
    """The ```python blocks of one page, in order."""
    lines = page.read_text().split("\n")
    found: list[Example] = []
    index = 0
    while index < len(lines):
        if lines[index].strip() == "```python":
            end = index + 1
            while lines[end].strip() != "```":
                end += 1
            code = textwrap.dedent("\n".join(lines[index + 1 : end]))
            fragment = index > 0 and lines[index - 1].strip() == FRAGMENT
            found.append(Example(page, index + 1, code + "\n", fragment))
            index = end
        index += 1
    return found


PAGES = sorted(DOCS.glob("**/*.md"))
EXAMPLES = [example for page in PAGES for example in examples_of(page)]


def test_examples_are_found() -> None:
    assert len(EXAMPLES) > 15
    fragments = [example.id for example in EXAMPLES if example.fragment]
    assert len(fragments) <= len(EXAMPLES) // 5, f"too many fragments: {fragments}"


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda example: example.id)
def test_docs_example_runs(example: Example) -> None:
    ast.parse(example.code, example.id)
    if example.fragment:
        return
    namespace: dict[str, object] = {"__name__": f"docs_example_{example.line}"}
    for earlier in examples_of(example.page):
        if earlier.line >= example.line:
            break
        if not earlier.fragment:
            exec(compile(earlier.code, earlier.id, "exec"), namespace)
    exec(compile(example.code, example.id, "exec"), namespace)
