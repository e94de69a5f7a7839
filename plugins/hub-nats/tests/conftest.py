"""Fixtures for the nats tests: the real NATS server (JetStream on) at 127.0.0.1:4222, a
private nats-server with password auth on a free port, and a hub.

When CI=true a missing server fails the tests instead of skipping them.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import hub_nats.plugin as plugin
import pytest

from hub.runtime import Hub
from hub.settings import Settings

HOST, PORT = "127.0.0.1", 4222
CONNECTION = {"servers": f"nats://{HOST}:{PORT}", "timeout": 5}


def reachable(host: str, port: int) -> bool:
    """True when something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require(host: str, port: int, what: str) -> None:
    """Skip (or fail, when CI=true) unless the service listens."""
    if reachable(host, port):
        return
    message = f"{what} is not reachable at {host}:{port}"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true: a missing service is a failure)")
    pytest.skip(message)


def free_port() -> int:
    """A loopback port nothing listens on (bound then released)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def nats_conn() -> dict[str, Any]:
    """The connection values of the local NATS server."""
    require(HOST, PORT, "NATS")
    return dict(CONNECTION)


@pytest.fixture
def auth_server(tmp_path: Path) -> Any:
    """A private nats-server requiring user 'alice' / password 's3cret-Pw' (its connection)."""
    binary = shutil.which("nats-server")
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("nats-server is not installed (CI=true: a missing service is a failure)")
        pytest.skip("nats-server is not installed")
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
def waiter() -> Any:
    """:func:`wait_until`, for tests (conftest modules cannot be imported by name here)."""
    return wait_until


@pytest.fixture
def unique() -> str:
    """A name no other test uses (subjects, streams)."""
    return f"hubtest{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    """A started hub (SQLite in tmp_path, in-process) with only the nats plugin."""
    instance = Hub(
        Settings(data_dir=tmp_path, sweep_interval=0.2), plugins=[plugin], entry_points=False
    )
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop(grace=1.0)


async def wait_until(check: Any, timeout: float = 10.0, every: float = 0.05) -> Any:
    """Await ``check()`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {check}")
        await asyncio.sleep(every)


# -- a hub in a child process, for the kill tests ------------------------------------------

CHILD_SCRIPT = '''\
"""A hub process for the crash tests: runs one flow's subscribe trigger until killed.

argv: DATA_DIR FLOW_JSON CONNECTION_JSON NOTES_PATH. The trigger is wrapped (test only) so
that it notes "received X" before emit and "recorded X" after emit returns; an event whose
body contains HOLD_WORD is held before emit forever (the message stays unacknowledged).
"""

import asyncio
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path

from hub import hookimpl
from hub.runtime import Hub
from hub.settings import Settings
from hub.trigger_runner import TriggerRunner
import {module} as real

DATA, FLOW, CONNECTION, NOTES = sys.argv[1:5]
HOLD = os.environ.get("HOLD_WORD", "")


def note(line):
    with open(NOTES, "a") as f:
        f.write(line + "\\n")


def wrap(subscribe):
    async def wrapped(ctx, config, emit):
        async def noted_emit(event, dedup_key=None):
            tag = json.dumps(event["{body_field}"], sort_keys=True)
            note("received " + tag)
            if HOLD and HOLD in tag:
                await asyncio.sleep(3600)
            run_id = await emit(event, dedup_key=dedup_key)
            note("recorded " + tag)
            return run_id

        return await subscribe(ctx, config, noted_emit)

    return wrapped


@hookimpl
def hub_connectors():
    return [
        dataclasses.replace(
            c, triggers=[dataclasses.replace(t, subscribe=wrap(t.subscribe)) for t in c.triggers]
        )
        for c in real.hub_connectors()
    ]


class Noter(logging.Handler):
    def emit(self, record):
        note("log " + record.getMessage())


async def main():
    logging.getLogger("hub.trigger").addHandler(Noter())
    logging.getLogger("hub.trigger").setLevel(logging.INFO)
    logging.getLogger("hub.triggers").addHandler(Noter())
    hub = Hub(Settings(data_dir=Path(DATA), sweep_interval=0.2), plugins=[sys.modules[__name__]],
              entry_points=False)
    await hub.start()
    await hub.set_connection("broker", "{connector}", json.loads(CONNECTION))
    document = json.loads(FLOW)
    if not any(f["id"] == document["id"] for f in await hub.list_flows()):
        await hub.save_flow(document, publish=True)
    note("started " + str(os.getpid()))
    await TriggerRunner(hub, reconcile_interval=0.2).run()


asyncio.run(main())
'''


class HubProcess:
    """A hub running a flow's trigger in a child process, and the notes it writes."""

    def __init__(
        self,
        tmp_path: Path,
        module: str,
        connector: str,
        body_field: str,
        flow: dict[str, Any],
        connection: dict[str, Any],
    ) -> None:
        self.script = tmp_path / "hub_child.py"
        self.script.write_text(
            CHILD_SCRIPT.replace("{module}", module)
            .replace("{connector}", connector)
            .replace("{body_field}", body_field)
        )
        self.data = tmp_path / "data"
        self.data.mkdir(exist_ok=True)
        self.notes = tmp_path / "notes.txt"
        self.notes.touch()
        self.flow = flow
        self.connection = connection
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr = tmp_path / "child.stderr"

    def start(self, hold: str = "") -> int:
        """Start a hub process; return the note index from which its lines start."""
        mark = len(self.lines())
        env = {**os.environ, "HOLD_WORD": hold}
        env.pop("HUB_DATA_DIR", None)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(self.script),
                str(self.data),
                json.dumps(self.flow),
                json.dumps(self.connection),
                str(self.notes),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.stderr.open("ab"),
        )
        return mark

    def lines(self) -> list[str]:
        """Every note so far."""
        return self.notes.read_text().splitlines()

    async def wait_for(self, text: str, since: int = 0, timeout: float = 20.0) -> None:
        """Wait until a note containing ``text`` appears at or after index ``since``."""

        async def seen() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"the hub process exited ({self.proc.returncode}):\n"
                    + self.stderr.read_text()[-3000:]
                )
            return any(text in line for line in self.lines()[since:])

        try:
            await wait_until(seen, timeout)
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}; waiting for {text!r}; notes: {self.lines()}; stderr: "
                + self.stderr.read_text()[-3000:]
            ) from None

    def kill(self) -> None:
        """SIGKILL the child: no clean-up of any kind runs."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    async def runs(self, plugin_module: Any) -> list[dict[str, Any]]:
        """The runs recorded for the flow, read from the child's database."""
        reader = Hub(Settings(data_dir=self.data), plugins=[plugin_module], entry_points=False)
        await reader.start(migrate=False, execute=False)
        try:
            return await reader.list_runs(flow_id=self.flow["id"])
        finally:
            await reader.stop(grace=0.1)


@pytest.fixture
def hub_process(tmp_path: Path) -> Any:
    """Build :class:`HubProcess` objects; kill any still running at the end of the test."""
    made: list[HubProcess] = []

    def make(**kwargs: Any) -> HubProcess:
        process = HubProcess(tmp_path, **kwargs)
        made.append(process)
        return process

    yield make
    for process in made:
        if process.proc is not None and process.proc.poll() is None:
            process.kill()
