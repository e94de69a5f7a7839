"""A real hub in a test: start one, talk to its HTTP app, run a flow, wait for something.

:func:`wait_for_runs` waits for the runs a trigger starts. :class:`Hub` (the hub a test
drives: ``save_flow``, ``start_run``, ``wait_for_run``, ``get_run``, ``list_runs``,
``set_connection``, ...) and :class:`Settings` are re-exported here so that a plugin's tests
import them from :mod:`hub.testing` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx

from hub.runtime import Hub
from hub.settings import Settings

__all__ = [
    "LOOPBACK_HOSTS",
    "Hub",
    "Settings",
    "http_client",
    "run_flow",
    "started_hub",
    "wait_for_runs",
    "wait_until",
]

LOOPBACK_HOSTS: tuple[str, ...] = ("127.0.0.1", "::1", "localhost")
"""What ``hub_settings`` lets through the SSRF guard: tests talk only to loopback."""


@contextlib.asynccontextmanager
async def started_hub(settings: Settings, plugins: list[Any] | None = None) -> AsyncIterator[Hub]:
    """A started hub on ``settings``, stopped on exit (what ``hub_app`` yields).

    ``plugins`` None loads every installed plugin (entry points, as selected by the
    settings); a list loads the built-ins and those plugins only.
    """
    if plugins is None:
        instance = Hub(settings)
    else:
        instance = Hub(settings, plugins=plugins, entry_points=False)
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop(grace=1.0)


@contextlib.asynccontextmanager
async def http_client(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client over ASGI to the hub's Litestar app (no socket, no server).

    The app neither starts nor stops ``hub``, and ASGI lifespan events are not sent: the
    routes answer as they would in ``hub serve``. What ``hub_client`` yields.
    """
    from hub.app import create_app  # the API is loaded only by tests that use it

    app = create_app(hub, manage_hub=False)
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
        yield client


async def run_flow(
    hub: Hub, document: dict[str, Any], input: Any = None, *, timeout: float = 30.0
) -> dict[str, Any]:
    """Save and publish ``document`` in ``hub``, run it, and return the finished run record.

    The record holds ``status``, ``output``, ``error`` and ``steps`` (every step attempt).
    ``timeout`` is a deadline, not an expected duration: generous, so that a loaded machine
    (CI beside other work) does not fail a run that takes a fraction of a second idle.
    """
    saved = await hub.save_flow(document, publish=True, author="hub.testing")
    run_id = await hub.start_run(saved.flow_id, input)
    await hub.wait_for_run(run_id, timeout)
    return await hub.get_run(run_id)


async def wait_for_runs(
    hub: Hub, flow_id: str, count: int, *, timeout: float = 30.0
) -> list[dict[str, Any]]:
    """Wait until the flow ``flow_id`` has at least ``count`` runs; return its runs.

    For a trigger's test: the runs its events started, as ``hub.list_runs`` gives them.
    Fails (AssertionError) after ``timeout`` seconds.
    """

    async def enough() -> list[dict[str, Any]] | None:
        runs = await hub.list_runs(flow_id=flow_id)
        return runs if len(runs) >= count else None

    return list(await wait_until(enough, timeout))


async def wait_until(
    check: Callable[[], Awaitable[Any]], timeout: float = 30.0, every: float = 0.05
) -> Any:
    """Await ``check()`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {check}")
        await asyncio.sleep(every)
