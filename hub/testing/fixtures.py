"""The fixtures of the pytest plugin ``hub.testing`` (loaded in every pytest session).

- ``hub_plugins``: the plugins a test hub loads (override it in a plugin's ``conftest.py``);
- ``hub_settings``: settings on a fresh data folder, loopback allowed through the SSRF guard;
- ``hub_app``: a started :class:`~hub.testing.Hub` (SQLite, in-process executor);
- ``hub_db``: that hub's database;
- ``hub_client``: an :class:`httpx.AsyncClient` over ASGI to the hub's HTTP app;
- ``hub_process``: builds :class:`~hub.testing.HubProcess` objects (a hub in a child
  process, for the kill-between-receive-and-record test of a subscribe trigger).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from hub.testing.hubs import LOOPBACK_HOSTS, Hub, Settings, http_client, started_hub
from hub.testing.subscribe import HubProcess, hub_processes

if TYPE_CHECKING:
    import httpx

    from hub.db.database import Database

try:  # pytest-asyncio marks async fixtures whatever its mode; without it, plain fixtures
    from pytest_asyncio import fixture as _async_fixture
except ImportError:  # pragma: no cover - the hub's test extra installs pytest-asyncio
    _async_fixture = pytest.fixture  # type: ignore[assignment]

__all__ = ["hub_app", "hub_client", "hub_db", "hub_plugins", "hub_process", "hub_settings"]


@pytest.fixture
def hub_plugins() -> list[Any] | None:
    """The plugins of ``hub_app``: None (the default) loads every installed plugin.

    Override it in a plugin's ``conftest.py`` to test that plugin alone::

        @pytest.fixture
        def hub_plugins():
            return [my_package.plugin]

    The built-in plugins (``data``, ``flow``, ``http``, the core triggers) always load.
    """
    return None


@pytest.fixture
def hub_settings(tmp_path: Path) -> Settings:
    """Settings on a fresh data folder; loopback hosts pass the SSRF guard."""
    return Settings(data_dir=tmp_path, sweep_interval=0.2, allow_hosts=LOOPBACK_HOSTS)


@_async_fixture
async def hub_app(hub_settings: Settings, hub_plugins: list[Any] | None) -> AsyncIterator[Hub]:
    """A started hub (SQLite, in-process executor) with ``hub_plugins`` loaded."""
    async with started_hub(hub_settings, hub_plugins) as instance:
        yield instance


@pytest.fixture
def hub_db(hub_app: Hub) -> Database:
    """The database of ``hub_app`` (run storage functions with ``await hub_db.read(fn)``)."""
    return hub_app.db


@_async_fixture
async def hub_client(hub_app: Hub) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client over ASGI to the Litestar app of ``hub_app`` (no socket, no server)."""
    async with http_client(hub_app) as client:
        yield client


@pytest.fixture
def hub_process(tmp_path: Path) -> Iterator[Callable[..., HubProcess]]:
    """Build :class:`~hub.testing.HubProcess` objects in ``tmp_path``; kill leftovers at the end.

    ``hub_process(module=..., connector=..., body_field=..., flow=..., connection=...)``:
    see :mod:`hub.testing.subscribe`.
    """
    with hub_processes(tmp_path) as make:
        yield make
