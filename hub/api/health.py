"""Health endpoints: ``/healthz`` (the process answers), ``/readyz`` (the database and Redis)."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Controller, get

from hub.api.errors import ApiError
from hub.runtime import Hub

REDIS_TIMEOUT = 2.0  # seconds: a Redis that does not answer in time is not ready


class HealthController(Controller):
    """Liveness and readiness, public."""

    path = "/"
    tags = ["health"]

    @get("/healthz", name="healthz", operation_id="healthz", exclude_from_auth=True)
    async def healthz(self) -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @get("/readyz", name="readyz", operation_id="readyz", exclude_from_auth=True)
    async def readyz(self, hub: Hub) -> dict[str, Any]:
        """The database answers, and Redis too when one is configured (queue mode)."""
        try:
            await hub.check_database()
        except Exception as exc:
            raise ApiError(503, "not_ready", f"database unavailable: {type(exc).__name__}") from exc
        if hub.redis is None:
            return {"status": "ok", "database": "ok"}
        try:
            async with asyncio.timeout(REDIS_TIMEOUT):
                await hub.redis.ping()
        except Exception as exc:
            raise ApiError(503, "not_ready", f"redis unavailable: {type(exc).__name__}") from exc
        return {"status": "ok", "database": "ok", "redis": "ok"}
