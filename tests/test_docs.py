"""The documentation is checked against the code."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from hub import hookspecs

DOCS = Path(__file__).resolve().parent.parent / "docs"


def hook_names() -> set[str]:
    return {name for name in dir(hookspecs) if name.startswith("hub_")}


def test_every_hook_is_documented_with_its_exact_signature() -> None:
    text = (DOCS / "hooks.md").read_text()
    for name in hook_names():
        assert f"## {name}\n" in text, f"docs/hooks.md has no section for {name}"
        fn = getattr(hookspecs, name)
        signature = f"def {name}{inspect.signature(fn)}".replace("'", "")
        assert signature in text, f"docs/hooks.md shows another signature for {name}: {signature}"


def test_no_documented_hook_is_missing_from_hookspecs() -> None:
    text = (DOCS / "hooks.md").read_text()
    documented = set(re.findall(r"^## (hub_\w+)$", text, flags=re.M))
    assert documented == hook_names()


def test_every_hook_has_a_docstring_saying_whether_async_is_allowed() -> None:
    for name in hook_names():
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert "async" in doc.lower() or "synchronous" in doc.lower(), name
