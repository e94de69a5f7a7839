"""Health endpoints: ``/healthz`` (the process answers) and ``/readyz`` (the database too)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, get
from sqlalchemy import text

from hub.api.errors import ApiError
from hub.runtime import Hub


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
        """The database answers."""
        try:
            await hub.db.read(lambda c: c.execute(text("SELECT 1")).scalar())
        except Exception as exc:
            raise ApiError(503, "not_ready", f"database unavailable: {type(exc).__name__}") from exc
        return {"status": "ok", "database": "ok"}
