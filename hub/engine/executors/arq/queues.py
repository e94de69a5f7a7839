"""The queues of queue mode: their names, how a job is encoded, how to reach Redis."""

from __future__ import annotations

from typing import Any

import msgspec
from arq.connections import RedisSettings

from hub.settings import Settings

PRIORITIES = ("high", "default", "low")


def queue_for(settings: Settings, priority: str = "default") -> str:
    """The Redis queue name of a priority."""
    return settings.queue_name if priority == "default" else f"{settings.queue_name}:{priority}"


EXPIRES_EXTRA_MS = 86_400_000  # arq's: a job's key outlives its due time by a day


def serialize(value: Any) -> bytes:
    return msgspec.msgpack.encode(value)


def deserialize(data: bytes) -> Any:
    return msgspec.msgpack.decode(data)


def redis_settings(url: str) -> RedisSettings:
    """arq's connection settings from a Redis URL, with short retry for a restarting Redis."""
    settings = RedisSettings.from_dsn(url)
    settings.conn_retries = 60
    settings.conn_retry_delay = 1
    return settings
