"""Flow files and registries in a test: read, validate, and the registry of some plugins.

:func:`check_flow_file` validates a flow file against the built-in plugins plus the plugins
under test and raises :class:`FlowError` (every issue with its location) when it is invalid;
:func:`read_flow_file` reads one into the document that ``Hub.save_flow`` takes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hub.connectors import Registry
from hub.expressions import Expressions
from hub.flows import Flow, FlowError, load_flow, parse_document
from hub.plugins import build_registry, make_plugin_manager
from hub.settings import Settings

__all__ = ["FlowError", "check_flow_file", "read_flow_file", "registry_of"]


def registry_of(*plugins: Any) -> Registry:
    """A registry built from the given plugin modules (or objects) only, no built-in."""
    settings = Settings(load_plugins=())
    return build_registry(make_plugin_manager(settings, plugins, entry_points=False))


def read_flow_file(path: str | Path) -> dict[str, Any]:
    """The flow document in a YAML or JSON file (syntax only; :class:`FlowError` if broken)."""
    return parse_document(Path(path).read_text(), str(path))


def check_flow_file(path: str | Path, *plugins: Any) -> Flow:
    """Validate a flow file against the built-in plugins plus ``plugins``.

    Connections are not checked (a test has none stored); everything else is: the schema,
    the graph, expressions, actions and literal inputs. Returns the loaded flow; raises
    :class:`FlowError` listing every issue.
    """
    registry = build_registry(make_plugin_manager(Settings(), plugins, entry_points=False))
    return load_flow(read_flow_file(path), expressions=Expressions(), registry=registry)
