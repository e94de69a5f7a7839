"""The distribution ships every package of ``hub/``.

``[tool.setuptools] packages`` in pyproject.toml lists them by hand (``hub.schemas`` and
``hub.ui`` come from other folders). An editable install finds a package missing from the
list anyway, so only a built wheel would lack it: this test fails first.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def listed_packages() -> set[str]:
    """The packages pyproject.toml's ``[tool.setuptools]`` names."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(config["tool"]["setuptools"]["packages"])


def packages_on_disk() -> set[str]:
    """Every folder under hub/ with an ``__init__.py`` (the plugin template is data)."""
    return {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "hub").rglob("__init__.py")
        if "plugin_template" not in init.parts
    }


def test_every_package_of_hub_is_listed_in_pyproject() -> None:
    missing = packages_on_disk() - listed_packages()
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"


def test_every_listed_package_exists() -> None:
    mapped = {"hub.schemas", "hub.ui"}  # [tool.setuptools.package-dir] maps them elsewhere
    stale = listed_packages() - packages_on_disk() - mapped
    assert not stale, f"pyproject.toml lists packages that are gone: {sorted(stale)}"
