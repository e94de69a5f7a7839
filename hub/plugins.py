"""The plugin manager: built-ins, entry points in the group ``hub``, settings-named modules.

Each hub instance owns its own :class:`pluggy.PluginManager` (no module-global manager), so
tests can register and unregister plugins freely.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.metadata
import inspect
import logging
from collections.abc import Iterable
from typing import Any

import pluggy

from hub import hookspecs
from hub.connectors import RegistrationError, Registry
from hub.settings import Settings

log = logging.getLogger("hub.plugins")

DEFAULT_PLUGINS: tuple[str, ...] = (
    "hub.builtin.data",
    "hub.builtin.flow",
    "hub.builtin.http",
    "hub.builtin.triggers",
)


def plugin_name(module_name: str) -> str:
    """The short name a built-in plugin is selected by (``hub.builtin.http`` -> ``http``)."""
    return module_name.rsplit(".", 1)[-1] if module_name.startswith("hub.builtin.") else module_name


def _selected(name: str, settings: Settings) -> bool:
    if name in settings.disable_plugins:
        return False
    return settings.load_plugins is None or name in settings.load_plugins


def make_plugin_manager(
    settings: Settings, extra: Iterable[Any] = (), *, entry_points: bool = True
) -> pluggy.PluginManager:
    """Build a plugin manager with the built-ins, entry points, configured modules and extra.

    ``HUB_LOAD_PLUGINS`` (if set) lists the plugins to load, ``HUB_DISABLE_PLUGINS`` the ones
    to skip; built-ins are named by their short name (``http``), entry points by their name.
    Unknown hook names in a plugin fail loudly.
    """
    pm = pluggy.PluginManager("hub")
    pm.add_hookspecs(hookspecs)
    for module_name in DEFAULT_PLUGINS:
        name = plugin_name(module_name)
        if _selected(name, settings):
            pm.register(importlib.import_module(module_name), name=name)
    if entry_points:
        for ep in importlib.metadata.entry_points(group="hub"):
            if not _selected(ep.name, settings) or pm.get_plugin(ep.name) is not None:
                continue
            try:
                pm.register(ep.load(), name=ep.name)
            except Exception as exc:
                raise RegistrationError(
                    f"plugin {ep.name!r} ({ep.value}) failed to load: {exc}"
                ) from exc
    for module_name in settings.plugin_modules:
        if not _selected(module_name, settings):
            continue
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise RegistrationError(
                f"HUB_PLUGIN_MODULES: module {module_name!r} cannot be imported: {exc}"
            ) from exc
        pm.register(module, name=module_name)
    for plugin in extra:
        pm.register(plugin, name=getattr(plugin, "__name__", None))
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        name = pm.get_name(exc.plugin) or repr(exc.plugin)
        raise RegistrationError(f"plugin {name!r}: {exc}") from exc
    return pm


def build_registry(pm: pluggy.PluginManager) -> Registry:
    """Call each plugin's ``hub_connectors`` on its own and validate what it returns."""
    registry = Registry()
    for impl in pm.hook.hub_connectors.get_hookimpls():  # registration order
        name = pm.get_name(impl.plugin) or repr(impl.plugin)
        try:
            connectors: Any = impl.function()
        except Exception as exc:
            raise RegistrationError(f"plugin {name!r}: hub_connectors raised {exc!r}") from exc
        registry.add(name, connectors)
    return registry


def collect_mapping(pm: pluggy.PluginManager, hook_name: str) -> dict[str, Any]:
    """Merge the dicts returned by a hook such as ``hub_template_filters``."""
    merged: dict[str, Any] = {}
    hook = getattr(pm.hook, hook_name)
    for impl in hook.get_hookimpls():  # registration order: later plugins override
        value = impl.function()
        if value is None:
            continue
        if not isinstance(value, dict):
            name = pm.get_name(impl.plugin)
            raise RegistrationError(f"plugin {name!r}: {hook_name} must return a dict")
        merged.update(value)
    return merged


async def call_observers(
    pm: pluggy.PluginManager, hook_name: str, timeout: float, **kwargs: Any
) -> None:
    """Call every implementation of an observer hook, awaiting async ones, each on its own.

    A raising or slow implementation is logged and skipped; the others still run.
    """
    hook = getattr(pm.hook, hook_name)
    for impl in hook.get_hookimpls():
        name = pm.get_name(impl.plugin)
        try:
            args = {arg: kwargs[arg] for arg in impl.argnames}
            result = impl.function(**args)
            if inspect.isawaitable(result):
                await asyncio.wait_for(result, timeout)
        except TimeoutError:
            log.warning("hook %s of plugin %r timed out after %ss", hook_name, name, timeout)
        except Exception:
            log.exception("hook %s of plugin %r failed", hook_name, name)


def has_observers(pm: pluggy.PluginManager, hook_name: str) -> bool:
    """True when some plugin implements the hook (lets the hot path skip empty hooks)."""
    return bool(getattr(pm.hook, hook_name).get_hookimpls())
