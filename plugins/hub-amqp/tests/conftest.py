"""Fixtures for the amqp tests: the real RabbitMQ on 127.0.0.1:5672 (guest/guest), a hub.

When CI=true a missing broker fails the tests instead of skipping them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import hub_amqp.plugin as plugin
import pytest

from hub.testing import (
    Hub,
    Settings,
    free_port,
    require_service,
    started_hub,
)

HOST, PORT = "127.0.0.1", 5672
CONNECTION = {"host": HOST, "port": PORT, "username": "guest", "password": "guest", "timeout": 5}


@pytest.fixture
def rabbit() -> dict[str, Any]:
    """The connection values of the local RabbitMQ."""
    require_service(HOST, PORT, "RabbitMQ")
    return dict(CONNECTION)


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    return free_port()


@pytest.fixture
def unique() -> str:
    """A name no other test uses (queues, flows)."""
    return f"hub-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    """A started hub (SQLite in tmp_path, in-process) with only the amqp plugin."""
    async with started_hub(Settings(data_dir=tmp_path, sweep_interval=0.2), [plugin]) as instance:
        yield instance
