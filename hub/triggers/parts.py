"""The parts of a hub that triggers use, as a protocol: :class:`hub.runtime.Hub` provides
them, and the triggers (below the composition root) never import it."""

from __future__ import annotations

from typing import Protocol

import httpx

from hub.cache import Cache
from hub.connectors import Registry
from hub.db.database import Database
from hub.engine import Engine
from hub.settings import Settings


class TriggerParts(Protocol):
    """What schedules, polls and subscriptions need of a hub."""

    settings: Settings
    registry: Registry
    db: Database
    cache: Cache
    http: httpx.AsyncClient
    engine: Engine
    workspace: str
