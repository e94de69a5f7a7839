"""Fixtures for the mqtt tests: the real Mosquitto at 127.0.0.1:1883, a private mosquitto
with a password file on a free port, and a hub.

When CI=true a missing broker fails the tests instead of skipping them.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import hub_mqtt.plugin as plugin
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

HOST, PORT = "127.0.0.1", 1883
CONNECTION = {"host": HOST, "port": PORT, "timeout": 5}


@pytest.fixture
def mosquitto() -> dict[str, Any]:
    """The connection values of the local Mosquitto (anonymous access)."""
    require_service(HOST, PORT, "Mosquitto")
    return dict(CONNECTION)


def _binary(name: str) -> str:
    found = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if Path(p).exists()), None
    )
    if found is None:
        service_missing(f"{name} is not installed")
    return found


@pytest.fixture
def auth_broker() -> Any:
    """A private mosquitto requiring user 'alice' / password 's3cret-Pw' (its connection).

    Its files live in a folder of their own that other users may read: mosquitto started as
    root drops to the ``mosquitto`` user before it reads the password file.
    """
    mosquitto_bin, passwd_bin = _binary("mosquitto"), _binary("mosquitto_passwd")
    folder = Path(tempfile.mkdtemp(prefix="hub-mqtt-test-"))
    folder.chmod(0o755)
    passwords = folder / "passwords"
    subprocess.run([passwd_bin, "-c", "-b", str(passwords), "alice", "s3cret-Pw"], check=True)
    passwords.chmod(0o644)
    port = free_port()
    conf = folder / "mosquitto.conf"
    conf.write_text(
        f"listener {port} {HOST}\nallow_anonymous false\npassword_file {passwords}\n"
        "persistence false\n"
    )
    proc = subprocess.Popen(
        [mosquitto_bin, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while not reachable(HOST, port):
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail("the private mosquitto did not start")
            time.sleep(0.05)
        yield {"host": HOST, "port": port, "username": "alice", "password": "s3cret-Pw"}
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    return free_port()


@pytest.fixture
def unique() -> str:
    """A name no other test uses (topics, client ids)."""
    return f"hub-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    """A started hub (SQLite in tmp_path, in-process) with only the mqtt plugin."""
    async with started_hub(Settings(data_dir=tmp_path, sweep_interval=0.2), [plugin]) as instance:
        yield instance
