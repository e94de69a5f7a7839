"""The plugins' tests import only the hub's public API, as an outside author's tests would.

import-linter (pyproject.toml) checks the plugins' code; their test folders are not packages it
can import, so this test reads their imports with :mod:`ast` and checks the same rule: from the
hub, a plugin's tests import ``hub``, :mod:`hub.plugin_kit` and :mod:`hub.testing` (with their
submodules), and nothing else.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PUBLIC = ("hub", "hub.plugin_kit", "hub.testing")
"""The modules a plugin's tests may import from the hub (each with its submodules but ``hub``)."""

TEST_FILES = sorted(ROOT.glob("plugins/*/tests/**/*.py"))


def hub_imports(path: Path) -> list[tuple[int, str]]:
    """Every ``hub`` module that ``path`` imports, with its line (relative imports skipped)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
    return [(line, name) for line, name in found if name == "hub" or name.startswith("hub.")]


def is_public(module: str) -> bool:
    """True for ``hub`` itself and for the public packages and their submodules."""
    return module == "hub" or any(
        module == name or module.startswith(name + ".") for name in PUBLIC[1:]
    )


def test_plugin_test_files_are_found() -> None:
    assert len(TEST_FILES) > 9, "the glob over plugins/*/tests found too few files"


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: str(p.relative_to(ROOT / "plugins")))
def test_plugin_tests_import_only_the_public_api(path: Path) -> None:
    private = [f"line {line}: {name}" for line, name in hub_imports(path) if not is_public(name)]
    assert not private, (
        f"{path.relative_to(ROOT)} imports hub internals ({'; '.join(private)}); "
        f"import from {', '.join(PUBLIC)} instead (CONTRIBUTING.md, 'The public plugin API')"
    )


def test_the_rule_catches_a_private_import(tmp_path: Path) -> None:
    sample = tmp_path / "test_sample.py"
    sample.write_text(
        "import hub\nfrom hub import action\nfrom hub.testing import run_action\n"
        "from hub.runtime import Hub\nimport hub.settings\n"
    )
    names = [name for _, name in hub_imports(sample)]
    assert [name for name in names if not is_public(name)] == ["hub.runtime", "hub.settings"]
