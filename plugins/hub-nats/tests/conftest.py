"""Fixtures for the nats tests: the real NATS server (JetStream on) at 127.0.0.1:4222, a
private nats-server with password auth on a free port, and a hub.

When CI=true a missing server fails the tests instead of skipping them.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import hub_nats.plugin as plugin
import pytest

from hub.testing import (
    Hub,
    Settings,
    free_port,
    reachable,
    require_service,
    service_missing,
    started_hub,
)

HOST, PORT = "127.0.0.1", 4222
CONNECTION = {"servers": f"nats://{HOST}:{PORT}", "timeout": 5}


@pytest.fixture
def nats_conn() -> dict[str, Any]:
    """The connection values of the local NATS server."""
    require_service(HOST, PORT, "NATS")
    return dict(CONNECTION)


@pytest.fixture
def auth_server(tmp_path: Path) -> Any:
    """A private nats-server requiring user 'alice' / password 's3cret-Pw' (its connection)."""
    binary = shutil.which("nats-server")
    if binary is None:
        service_missing("nats-server is not installed")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "-a", HOST, "-p", str(port), "--user", "alice", "--pass", "s3cret-Pw"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not reachable(HOST, port):
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail("the private nats-server did not start")
            time.sleep(0.05)
        yield {"servers": f"nats://{HOST}:{port}", "user": "alice", "password": "s3cret-Pw"}
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    return free_port()


@pytest.fixture
def unique() -> str:
    """A name no other test uses (subjects, streams)."""
    return f"hubtest{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    """A started hub (SQLite in tmp_path, in-process) with only the nats plugin."""
    async with started_hub(Settings(data_dir=tmp_path, sweep_interval=0.2), [plugin]) as instance:
        yield instance
