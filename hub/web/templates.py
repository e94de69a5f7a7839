"""The web UI's Jinja2 environment: where templates are found, and the filters pages use.

Templates are looked up, first match wins, in ``HUB_TEMPLATES_DIR`` (a deployment's
overrides), then each plugin's ``templates/`` folder (the folder beside the plugin's module,
or beside its package's ``__init__.py``), then the hub's own ``ui/templates/``: so a
deployment overrides any page, and a plugin ships pages of its own (as datasette does).
Autoescaping is on for every template; nothing a user typed is ever marked safe.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from hub import __version__
from hub.schemas import shipped_path

UI_ROOT = shipped_path("ui")
DEFAULT_TEMPLATES = UI_ROOT / "templates"
STATIC_ROOT = UI_ROOT / "static"
FOLD_CHARS = 2_000  # a value longer than this as JSON starts folded on a page


def plugin_template_dirs(plugins: list[Any]) -> list[Path]:
    """The ``templates/`` folders of the given plugin modules (those that have one)."""
    found: list[Path] = []
    for plugin in plugins:
        module_file = getattr(plugin, "__file__", None)
        if not module_file:
            continue
        folder = Path(module_file).resolve().parent / "templates"
        if folder.is_dir() and folder != DEFAULT_TEMPLATES.resolve() and folder not in found:
            found.append(folder)
    return found


def template_dirs(templates_dir: str, plugins: list[Any]) -> list[Path]:
    """Where templates are looked up, first match wins."""
    dirs = [Path(templates_dir)] if templates_dir else []
    return [*dirs, *plugin_template_dirs(plugins), DEFAULT_TEMPLATES]


def when(value: int | None) -> Markup:
    """A ``<time>`` element for epoch microseconds: UTC in the HTML, the browser's time
    zone once ``hub.js`` has run (the ``datetime`` attribute carries the instant)."""
    if value is None:
        return Markup("<span class='muted'>—</span>")
    moment = dt.datetime.fromtimestamp(value / 1e6, tz=dt.UTC)
    iso = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    text = moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    return Markup('<time datetime="{}">{}</time>').format(iso, text)


def duration(seconds: float | None) -> str:
    """A duration as people read it: ``850 ms``, ``12.4 s``, ``3 min 5 s``, ``2 h 4 min``."""
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


def micros_between(start: int | None, end: int | None) -> float | None:
    """Seconds between two epoch-microsecond times (None when either is missing)."""
    if start is None or end is None:
        return None
    return (end - start) / 1e6


def pretty_json(value: Any) -> str:
    """A value as indented JSON (escaped by autoescaping where it is shown)."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def is_large(value: Any) -> bool:
    """Whether a value is long enough to start folded (``<details>`` closed)."""
    return len(json.dumps(value, default=str)) > FOLD_CHARS


def environment(templates_dir: str, plugins: list[Any]) -> jinja2.Environment:
    """The UI's environment: the loader chain, autoescape, and the UI's filters."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(p) for p in template_dirs(templates_dir, plugins)]),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=bool(templates_dir),
    )
    env.filters.update(when=when, duration=duration, pretty_json=pretty_json, is_large=is_large)
    env.globals.update(hub_version=__version__, micros_between=micros_between)
    return env
