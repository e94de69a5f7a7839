"""The app factory: one Litestar app per hub, with the plugins' routes mounted."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig

from hub import __version__
from hub.api.errors import http_exception_handler, internal_error_handler
from hub.api.health import HealthController
from hub.api.webhooks import webhook
from hub.runtime import Hub


def create_app(hub: Hub, *, manage_hub: bool = True) -> Litestar:
    """Build the app for ``hub``; with ``manage_hub`` the app starts and stops the hub."""
    handlers: list[Any] = [HealthController, webhook]
    for extra in hub.pm.hook.hub_routes():
        handlers.extend(extra or [])

    async def on_startup() -> None:
        if manage_hub:
            await hub.start()
            from hub.scheduler import run_scheduler
            from hub.trigger_runner import TriggerRunner

            hub.add_background(run_scheduler(hub))
            hub.add_background(TriggerRunner(hub).run())

    async def on_shutdown() -> None:
        if manage_hub:
            await hub.stop()

    async def provide_hub() -> Hub:
        return hub

    return Litestar(
        route_handlers=handlers,
        dependencies={"hub": Provide(provide_hub, use_cache=True)},
        exception_handlers={
            HTTPException: http_exception_handler,
            Exception: internal_error_handler,
        },
        on_startup=[on_startup],
        on_shutdown=[on_shutdown],
        openapi_config=OpenAPIConfig(title="Integration hub", version=__version__),
        debug=False,
    )
