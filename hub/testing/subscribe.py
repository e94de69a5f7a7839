"""Helpers to test subscribe triggers with a real child process.

Chiefly the kill-between-receive-and-record test.

A subscribe trigger must acknowledge a broker message only after ``await emit(event)``
returns (the run is recorded). The test that proves it runs a hub in a child process,
holds one message between receive and record, SIGKILLs the process there, restarts it and
checks that the message is recorded exactly once and nothing else is delivered twice.

:class:`HubProcess` writes the child script into the test's ``tmp_path`` and runs it; the
child wraps every subscribe trigger of the plugin module so that it notes ``received X``
before emit and ``recorded X`` after emit returns (X is the JSON of the event's
``body_field``), and holds forever an event whose X contains the ``hold`` word. The
fixture ``hub_process`` of the pytest plugin builds them (:func:`hub_processes` outside a
fixture): a test calls ``hub_process(module="hub_x.plugin", connector="x", body_field="body",
flow=..., connection=...)``, then ``start(hold="slow")``, ``wait_for(...)``, ``kill()`` and
``runs(plugin)``.

The servers' helpers the plugins' conftests use with it (:func:`require_service`,
:func:`free_port`, ...) are in :mod:`hub.testing.servers`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hub.testing.hubs import Hub, Settings, wait_until

__all__ = ["CHILD_SCRIPT", "HubProcess", "hub_processes"]


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
from hub.testing import Hub, Settings, running_triggers
import {module} as real

DATA, FLOW, CONNECTION, NOTES = sys.argv[1:5]
HOLD = os.environ.get("HOLD_WORD", "")


def note(line):
    with open(NOTES, "a") as f:
        f.write(line + "\\n")


def wrap(subscribe):
    async def wrapped(ctx, config, emit):
        async def noted_emit(event, **options):
            tag = json.dumps(event["{body_field}"], sort_keys=True)
            note("received " + tag)
            if HOLD and HOLD in tag:
                await asyncio.sleep(3600)
            run_id = await emit(event, **options)
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
    async with running_triggers(hub, reconcile_interval=0.2) as runner:
        await runner


asyncio.run(main())
'''
"""The child hub's script; ``{module}``, ``{connector}`` and ``{body_field}`` are filled in."""


class HubProcess:
    """A hub running a flow's trigger in a child process, and the notes it writes.

    ``module`` is the plugin module to import in the child (``"hub_amqp.plugin"``),
    ``connector`` the connector name its connection ``broker`` is saved under, ``body_field``
    the event field noted (and matched against the hold word), ``flow`` the flow document
    (published once) and ``connection`` the connection values. Files go in ``tmp_path``.
    """

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


@contextlib.contextmanager
def hub_processes(tmp_path: Path) -> Iterator[Callable[..., HubProcess]]:
    """Yield a factory of :class:`HubProcess` (keyword arguments after ``tmp_path``).

    Every child still running when the block ends is killed.
    """
    made: list[HubProcess] = []

    def make(**kwargs: Any) -> HubProcess:
        process = HubProcess(tmp_path, **kwargs)
        made.append(process)
        return process

    try:
        yield make
    finally:
        for process in made:
            if process.proc is not None and process.proc.poll() is None:
                process.kill()
