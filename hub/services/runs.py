"""Runs of a workspace's flows: start, read, wait, cancel, retry, replay, watch.

A manual start by a person or a token (API, CLI) is written to the audit log in the run's
own transaction (the engine runs the audit insert with the run's rows). A start by the hub
itself (:data:`~hub.services.base.SYSTEM`) is recorded by its run alone, like a schedule's
or a webhook's: the audit insert made 10,000 in-process starts 21% slower. Cancels,
retries and replays are audited after the engine has acted. :meth:`RunsService.watch`
lets a face follow the engine's run and step events, and :meth:`RunsService.follow_run` a
run's changes as they happen (:mod:`hub.services.live`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from hub.db import audit
from hub.db import flows as flow_store
from hub.db import runs as run_store
from hub.engine import RunNotFound, new_run_id
from hub.engine.run_ops import RunStateError, replay_run, retry_run
from hub.services.base import SYSTEM, WorkspaceScope
from hub.services.errors import Conflict, NotFound
from hub.services.live import Change, follow_run

SCAN_LIMIT = 5_000  # runs a text search reads at most before it says where it stopped
SCAN_CHUNK = 500

RunListener = Callable[[dict[str, Any]], None]


@dataclasses.dataclass
class RunScan:
    """A text search's page: the runs found, and where the scan stopped when it read its
    bound before the page was full (``stopped_at``: the (created_at, id) of the last run
    read, to go on from; ``scanned``: how many runs it read)."""

    rows: list[dict[str, Any]]
    scanned: int
    stopped_at: tuple[int, str] | None


class RunsService(WorkspaceScope):
    """Start, read and act on runs."""

    async def start_run(
        self,
        flow_id: str,
        input: Any = None,
        version: int | None = None,
        *,
        trigger_type: str = "manual",
    ) -> str:
        """Start a run (the published version unless ``version``); return its id.

        :class:`NotFound` for no flow or version; :class:`Conflict` (``not_published``)
        when no version is given and none is published.
        """
        self.require("editor")
        ws, actor = self.workspace, self.actor
        run_id = new_run_id()
        try:
            await self.hub.engine.start_runs(
                ws,
                flow_id,
                [input],
                version=version,
                trigger_type=trigger_type,
                run_ids=[run_id],
                also=None
                if actor == SYSTEM
                else lambda c: audit.record(
                    c, ws, actor, "run.start", run_id, {"flow_id": flow_id}
                ),
            )
        except RunNotFound as exc:
            # Told apart only on this rare path, so that a start reads nothing more.
            flow = await self.hub.db.read(lambda c: flow_store.get_flow(c, ws, flow_id))
            if flow is None:
                raise NotFound(f"no flow {flow_id!r}") from exc
            if version is None and flow["published_version"] is None:
                raise Conflict(
                    f"flow {flow_id!r} has no published version", code="not_published"
                ) from exc
            raise NotFound(str(exc)) from exc
        return run_id

    async def runs_page(self, **filters: Any) -> list[dict[str, Any]]:
        """Runs matching the filters, newest first: ``flow_id``, ``status``, ``since``,
        ``until``, ``cursor``, ``limit`` (see :func:`hub.db.runs.runs_page`)."""
        return await self.hub.db.read(lambda c: run_store.runs_page(c, self.workspace, **filters))

    async def scan_runs(
        self, text: str, *, limit: int, scan_limit: int | None = None, **filters: Any
    ) -> RunScan:
        """Runs (newest first, the filters of :meth:`runs_page`) whose trigger data contains
        ``text`` (case-insensitively, in its JSON), reading at most ``scan_limit`` runs
        (:data:`SCAN_LIMIT` by default): up to ``limit`` + 1 found (one more says there is
        a next page)."""
        scan_limit = scan_limit or SCAN_LIMIT
        needle = text.casefold()
        found: list[dict[str, Any]] = []
        scanned = 0
        cursor = filters.pop("cursor", None)
        while scanned < scan_limit and len(found) <= limit:
            chunk = min(SCAN_CHUNK, scan_limit - scanned)
            rows = await self.runs_page(cursor=cursor, limit=chunk, **filters)
            for row in rows:
                scanned += 1
                cursor = (row["created_at"], row["id"])
                trigger = json.dumps(row["trigger"], ensure_ascii=False, default=str)
                if needle in trigger.casefold():
                    found.append(row)
                    if len(found) > limit:
                        return RunScan(found, scanned, None)
            if len(rows) < chunk:
                return RunScan(found, scanned, None)
        return RunScan(found, scanned, cursor if len(found) <= limit else None)

    def follow_run(self, run_id: str, *, max_seconds: float = 600.0) -> AsyncIterator[list[Change]]:
        """A run's changes as they happen (see :func:`hub.services.live.follow_run`): the
        whole run first, then what the pushed events change; ends when the run is final."""
        return follow_run(self, run_id, max_seconds=max_seconds)

    async def get_run(self, run_id: str, *, with_steps: bool = True) -> dict[str, Any]:
        """A run record (with its step attempts), or :class:`NotFound`."""
        ws = self.workspace
        record = await self.hub.db.read(lambda c: run_store.run_record(c, run_id, ws))
        if record is None:
            raise NotFound(f"no run {run_id!r}")
        if with_steps:
            record["steps"] = await self.hub.db.read(lambda c: run_store.run_steps(c, run_id))
        return record

    async def child_runs(self, run_id: str) -> list[dict[str, Any]]:
        """The runs a run's steps started (``id``, ``parent_step_key``, ``status``); the
        run is the caller's to have checked (:meth:`get_run`)."""
        return await self.hub.db.read(lambda c: run_store.child_runs(c, run_id))

    async def wait_for_run(self, run_id: str, timeout: float | None = None) -> dict[str, Any]:
        """Wait for a run's final status and return its record (``TimeoutError`` after
        ``timeout`` seconds).

        The workspace is checked on the record the wait returns, so that waiting reads
        nothing more than the engine does.
        """
        try:
            record = await self.hub.engine.wait_for_run(run_id, timeout)
        except RunNotFound as exc:
            raise NotFound(str(exc)) from exc
        if record["workspace_id"] != self.workspace:
            raise NotFound(f"no run {run_id!r}")
        return record

    async def cancel_run(self, run_id: str) -> bool:
        """Cancel a run and its child runs; False when it had already finished."""
        self.require("editor")
        await self.get_run(run_id, with_steps=False)
        cancelled = await self.hub.engine.cancel_run(run_id, f"cancelled by {self.actor}")
        if cancelled:
            await self.audit("run.cancel", run_id)
        return cancelled

    async def retry_run(self, run_id: str) -> list[str]:
        """Retry a failed run from its failed step(s); return the retried step keys."""
        self.require("editor")
        try:
            keys = await retry_run(self.hub.engine, self.workspace, run_id)
        except RunNotFound as exc:
            raise NotFound(str(exc)) from exc
        except RunStateError as exc:
            raise Conflict(str(exc)) from exc
        await self.audit("run.retry", run_id, {"steps": keys})
        return keys

    async def replay_run(self, run_id: str) -> str:
        """A new run with the same trigger data and flow version; return its id."""
        self.require("editor")
        try:
            new_id = await replay_run(self.hub.engine, self.workspace, run_id)
        except RunNotFound as exc:
            raise NotFound(str(exc)) from exc
        await self.audit("run.replay", run_id, {"run_id": new_id})
        return new_id

    @contextlib.contextmanager
    def watch(self, listener: RunListener, run_id: str | None = None) -> Iterator[None]:
        """Call ``listener`` with the engine's events while the block runs: those of
        ``run_id``, or every run's when None.

        An event is a dict: ``{"type": "run", "run_id", "status", ...}`` or ``{"type":
        "step", "run_id", "key", "step_id", "item_index", "attempt", "status", "error",
        "input", "output", "started_at", "finished_at", ...}``. In queue mode, with a
        ``run_id``, the events of the other processes arrive too, through Redis
        (:mod:`hub.engine.events`): an event lost there (or dropped by a publisher that
        found nobody watching a moment before) is not seen, so a face that must see every
        change also reads the run now and then (:func:`hub.services.live.follow_run` does).
        """
        if run_id is None:
            chosen = listener
        else:

            def chosen(event: dict[str, Any]) -> None:
                if event.get("run_id") == run_id:
                    listener(event)

        listeners = self.hub.engine.watchers
        listeners.append(chosen)
        bus = self.hub.engine.events if run_id is not None else None
        if bus is not None:
            bus.watch(run_id)  # type: ignore[arg-type]
        try:
            yield
        finally:
            if chosen in listeners:
                listeners.remove(chosen)
            if bus is not None:
                bus.unwatch(run_id)  # type: ignore[arg-type]
