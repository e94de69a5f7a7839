"""The user documentation is checked against the code it describes.

- every property of ``schemas/flow.schema.json`` (top level, ``trigger``, a step, ``retry``)
  is a row of the field table of its section in ``docs/flow-reference.md``, and every row
  of those tables is a property (the convention: a field table's header starts with
  ``| field |`` and each row's first cell is the field name in backticks; extension fields
  are the row ``x-...``);
- every setting of :class:`hub.settings.Settings` is a row of the settings table of
  ``docs/quickstart.md``, with its ``HUB_`` variable and its default, and no row names a
  setting that does not exist;
- every relative link, and every repository path written in backticks (a file, or a folder
  ending in ``/``), in ``README.md``, ``CONTRIBUTING.md`` and ``docs/*.md`` exists.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest

from hub.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SCHEMA = json.loads((ROOT / "schemas" / "flow.schema.json").read_text())
DOC_FILES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted(DOCS.glob("*.md"))]

# The section of docs/flow-reference.md that documents each object of the flow schema.
SECTIONS = {
    "top level": ("## Top-level fields", SCHEMA),
    "trigger": ("## The trigger", SCHEMA["properties"]["trigger"]),
    "step": ("## Steps", SCHEMA["$defs"]["step"]),
    "retry": ("### `retry`", SCHEMA["$defs"]["retry"]),
}


def section(text: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of any level."""
    lines = text.splitlines()
    assert heading in lines, f"no heading {heading!r}"
    start = lines.index(heading) + 1
    end = next(
        (i for i in range(start, len(lines)) if lines[i].startswith("#")),
        len(lines),
    )
    return "\n".join(lines[start:end])


def field_rows(text: str) -> list[str]:
    """First cells (without backticks) of the rows of the field tables in ``text``."""
    names: list[str] = []
    in_fields = False
    for line in text.splitlines():
        if not line.startswith("|"):
            in_fields = False
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == "field":
            in_fields = True
            continue
        if in_fields and not set(cells[0]) <= {"-", ":", " "}:
            match = re.fullmatch(r"`([^`]+)`", cells[0])
            assert match, f"a field table row does not start with a `field`: {line}"
            names.append(match.group(1))
    return names


def schema_fields(schema: dict[str, Any]) -> set[str]:
    """The property names of an object schema; ``x-...`` for its extension pattern."""
    names = set(schema.get("properties", {}))
    if "^x-" in schema.get("patternProperties", {}):
        names.add("x-...")
    return names


@pytest.mark.parametrize("name", list(SECTIONS))
def test_every_flow_schema_property_is_in_the_flow_reference(name: str) -> None:
    heading, schema = SECTIONS[name]
    text = (DOCS / "flow-reference.md").read_text()
    documented = field_rows(section(text, heading))
    expected = schema_fields(schema)
    assert expected, f"the schema of {name} has no properties: the test reads the wrong place"
    missing = expected - set(documented)
    assert not missing, f"docs/flow-reference.md, {heading}: no row for {sorted(missing)}"
    unknown = set(documented) - expected
    assert not unknown, f"docs/flow-reference.md, {heading}: not in the schema: {sorted(unknown)}"
    assert len(documented) == len(set(documented)), f"{heading}: a field is listed twice"


def test_field_rows_reads_only_field_tables() -> None:
    text = (
        "| field | type |\n| --- | --- |\n| `a` | x |\n| `b` | y |\n\n"
        "| type | config |\n| --- | --- |\n| `webhook` | z |\n"
    )
    assert field_rows(text) == ["a", "b"]


def settings_rows() -> dict[str, str]:
    """``HUB_*`` variable -> its row, from the settings table of the quickstart."""
    text = (DOCS / "quickstart.md").read_text()
    rows = {}
    for line in text.splitlines():
        match = re.match(r"\| `(HUB_[A-Z_]+)` \|", line)
        if match:
            assert match.group(1) not in rows, f"{match.group(1)} has two rows"
            rows[match.group(1)] = line
    return rows


def default_text(value: Any) -> str | None:
    """How a default is written in the settings table (None: free text, not checked)."""
    if isinstance(value, bool) or value is None or value in ("", ()):
        return None
    if isinstance(value, float):
        return f"`{value:g}`"
    if isinstance(value, int | str | Path):
        return f"`{value}`"
    return None


def test_every_setting_is_in_the_quickstart_with_its_variable_and_default() -> None:
    rows = settings_rows()
    fields = dataclasses.fields(Settings)
    for field in fields:
        var = f"HUB_{field.name.upper()}"
        assert var in rows, f"docs/quickstart.md: the settings table has no row for {var}"
        default = default_text(field.default)
        if default is not None:
            cells = [c.strip() for c in rows[var].strip("|").split("|")]
            assert cells[1] == default, (
                f"docs/quickstart.md: {var} shows the default {cells[1]}, the code has {default}"
            )
    stale = set(rows) - {f"HUB_{f.name.upper()}" for f in fields}
    assert not stale, f"docs/quickstart.md documents settings that do not exist: {sorted(stale)}"


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
CODE_PATH = re.compile(
    r"`((?:hub|docs|schemas|examples|tests|bench|plugins|ui|scripts)/[A-Za-z0-9_./-]*"
    r"(?:\.(?:md|ya?ml|json|py|toml)|/))`"
)
"""A backticked file path (by its extension) or folder path (ending in ``/``)."""


def broken_references(path: Path) -> list[str]:
    """Relative links and backticked repository paths in ``path`` that name no file."""
    text = path.read_text()
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL (http:, mailto:) or an anchor in the same page
        file_part = target.split("#", 1)[0]
        if not (path.parent / file_part).exists():
            broken.append(f"link {target}")
    for repo_path in CODE_PATH.findall(text):
        if not (ROOT / repo_path).exists():
            broken.append(f"path `{repo_path}`")
    return broken


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_and_paths_in_the_docs_point_at_existing_files(path: Path) -> None:
    broken = broken_references(path)
    assert not broken, f"{path.relative_to(ROOT)}: {broken}"


def test_broken_references_finds_a_missing_file(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    (tmp_path / "there.md").write_text("x")
    page.write_text(
        "[ok](there.md) [anchor](#x) [web](https://example.com/a.md) [bad](gone.md#part)\n"
        "`docs/no-such-page.md` `hub/runtime.py` `hub/engine/` `hub/no_such_package/`\n"
    )
    assert broken_references(page) == [
        "link gone.md#part",
        "path `docs/no-such-page.md`",
        "path `hub/no_such_package/`",
    ]
