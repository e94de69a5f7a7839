"""``hub new-plugin``: a plugin distribution rendered from the template shipped with the hub.

The template lives in ``hub/plugin_template/`` (shipped as package data). Every file in it is
a Jinja2 template (``.jinja`` suffix, removed on output); ``__package__`` and ``__name__`` in
file and folder names become the package name (``hub_NAME``) and the plugin name.
"""

from __future__ import annotations

import importlib.resources
import keyword
import re
from collections.abc import Iterator
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import jinja2

from hub import __version__
from hub.plugin_kit.errors import PluginKitError

PLUGIN_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
MAX_NAME_LENGTH = 40
BUILTIN_CONNECTORS = frozenset({"core", "data", "flow", "http"})
TEMPLATE_SUFFIX = ".jinja"


def check_plugin_name(name: str) -> str:
    """Return ``name`` if it can name a plugin, else raise :class:`PluginKitError`.

    A plugin name is a lowercase Python identifier (``^[a-z][a-z0-9_]*$``), not a keyword, at
    most 40 characters, and not the name of a built-in connector (``core``, ``data``,
    ``flow``, ``http``): it becomes the connector name, the entry point name and part of the
    package name ``hub_NAME``.
    """
    if not PLUGIN_NAME_RE.match(name):
        hint = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_")
        suggestion = f" (for example {hint!r})" if hint and PLUGIN_NAME_RE.match(hint) else ""
        raise PluginKitError(
            f"invalid plugin name {name!r}: use a lowercase identifier, a letter then letters, "
            f"digits or underscores{suggestion}"
        )
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        raise PluginKitError(f"invalid plugin name {name!r}: it is a Python keyword")
    if len(name) > MAX_NAME_LENGTH:
        raise PluginKitError(
            f"invalid plugin name {name!r}: at most {MAX_NAME_LENGTH} characters, not {len(name)}"
        )
    if name in BUILTIN_CONNECTORS:
        raise PluginKitError(
            f"invalid plugin name {name!r}: a built-in connector already has it "
            f"({', '.join(sorted(BUILTIN_CONNECTORS))} are taken)"
        )
    return name


def template_root() -> Traversable:
    """The plugin template shipped with the hub."""
    return importlib.resources.files("hub").joinpath("plugin_template")


def _template_files(folder: Traversable, prefix: str = "") -> Iterator[tuple[str, Traversable]]:
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name == "__pycache__" or entry.name.startswith("."):
            continue
        relative = f"{prefix}{entry.name}"
        if entry.is_dir():
            yield from _template_files(entry, relative + "/")
        elif entry.name.endswith(TEMPLATE_SUFFIX):
            yield relative, entry


def template_context(name: str, description: str = "") -> dict[str, Any]:
    """The values the template is rendered with."""
    title = name.replace("_", " ").title()
    return {
        "name": name,
        "package": f"hub_{name}",
        "distribution": f"hub-{name.replace('_', '-')}",
        "title": title,
        "description": description or f"connect flows to {title}",
        "hub_version": __version__,
    }


def new_plugin(
    name: str, parent: str | Path = ".", *, force: bool = False, description: str = ""
) -> tuple[Path, list[Path]]:
    """Generate the plugin ``hub-NAME`` in the folder ``parent``; return it and its files.

    Refuses an invalid name, and a target folder that exists unless ``force`` (then the
    template's files are written over; other files in the folder are left alone).
    """
    check_plugin_name(name)
    if any(ch in description for ch in '"\\\n'):
        raise PluginKitError("the description must be one line without quotes or backslashes")
    context = template_context(name, description)
    target = Path(parent) / context["distribution"]
    if target.exists() and not target.is_dir():
        raise PluginKitError(f"{target} exists and is not a folder")
    if target.exists() and not force:
        raise PluginKitError(
            f"{target} already exists: choose another --dir, or pass --force to write the "
            "template's files over it"
        )
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
    )
    written: list[Path] = []
    for relative, entry in _template_files(template_root()):
        out_name = (
            relative.removesuffix(TEMPLATE_SUFFIX)
            .replace("__package__", context["package"])
            .replace("__name__", name)
        )
        path = target / out_name
        try:
            text = env.from_string(entry.read_text(encoding="utf-8")).render(context)
        except jinja2.TemplateError as exc:  # a broken template is a defect of the hub
            raise PluginKitError(f"template {relative}: {exc}") from exc
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return target, written
