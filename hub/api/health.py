"""Health endpoints: ``/healthz`` (the process answers), ``/readyz`` (the database and Redis)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, get
from litestar.di import NamedDependency

from hub.runtime import Hub
from hub.services import system


class HealthController(Controller):
    """Liveness and readiness, public."""

    path = "/"
    tags = ["health"]

    @get("/healthz", name="healthz", operation_id="healthz", exclude_from_auth=True)
    async def healthz(self) -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @get("/readyz", name="readyz", operation_id="readyz", exclude_from_auth=True)
    async def readyz(self, hub: NamedDependency[Hub]) -> dict[str, Any]:
        """The database answers, and Redis too when one is configured (queue mode)."""
        return {"status": "ok", **await system.check_ready(hub)}
