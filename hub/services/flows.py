"""Flows and their versions, as a workspace's caller sees and changes them.

Saving validates the document against the installed actions and the workspace's
connections (an invalid one raises :class:`hub.flows.FlowError`, every issue with its
location); every save that makes a version, every publish, every enable or disable and
every delete is written to the audit log in the transaction of the change.

Deleting a flow deletes what is its own with it, in one transaction: its versions, its
runs and their steps, its triggers' state, its webhooks' stored keys and the API tokens
limited to it (:func:`hub.db.flows.delete_flow`); it is refused (:class:`Conflict`,
``runs_active``) while any of its runs has not finished.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import weakref
import zoneinfo
from typing import Any

import anyio

from hub.db import audit
from hub.db import connections as connection_store
from hub.db import flows as flow_store
from hub.db.flows import DeletedFlow, FlowBusy, SavedVersion
from hub.db.models import now_us
from hub.flows import Flow, load_flow
from hub.flows.document import diff_documents, unified_text_diff
from hub.services.base import WorkspaceScope
from hub.services.errors import Conflict, Invalid, NotFound
from hub.services.events import enabled_cache_key
from hub.triggers.schedule import next_tick

#: How far back the flows list counts runs (7 days, in microseconds).
STATS_WINDOW_US = 7 * 24 * 3600 * 1_000_000

# Flow documents parsed or validated at once in worker threads, per event loop: each holds
# the GIL while it works, and the event loop's turn comes round less often the more of them
# there are.
DOCUMENT_THREADS = 2
_LIMITERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = (
    weakref.WeakKeyDictionary()
)


def document_limiter() -> anyio.CapacityLimiter:
    """The running loop's limiter of worker threads for parsing and validating documents."""
    loop = asyncio.get_running_loop()
    limiter = _LIMITERS.get(loop)
    if limiter is None:
        limiter = _LIMITERS[loop] = anyio.CapacityLimiter(DOCUMENT_THREADS)
    return limiter


def check_base_version(
    conn: Any, workspace: str, flow_id: str, base_version: int, document: dict[str, Any]
) -> None:
    """Refuse a save that started from ``base_version`` when the flow's latest version is
    another one: :class:`Conflict` (code ``version_conflict``) whose details hold the
    versions, what the newer versions changed since the base (``changes``) and the unified
    diff from the latest saved document to the one refused (``diff``)."""
    flow = flow_store.get_flow(conn, workspace, flow_id)
    latest = flow["latest_version"] if flow is not None else 0
    if latest == base_version:
        return
    latest_doc = flow_store.version_document(conn, workspace, flow_id, latest) if latest else {}
    base_doc = (
        flow_store.version_document(conn, workspace, flow_id, base_version)
        if 0 < base_version < latest
        else {}
    )
    raise Conflict(
        f"flow {flow_id!r} was saved as version {latest} since version {base_version}, "
        f"which this edit started from: nothing was saved (bring the changes into the edit "
        f"and save it on version {latest})",
        {
            "base_version": base_version,
            "latest_version": latest,
            "changes": diff_documents(base_doc or {}, latest_doc or {}),
            "diff": unified_text_diff(
                latest_doc or {}, document, f"{flow_id}@v{latest}", f"{flow_id} (yours)"
            ),
        },
        code="version_conflict",
    )


def published_cache_key(workspace: str, flow_id: str) -> str:
    """The layered cache's key of a flow's published version, as
    :meth:`hub.engine.Engine.published_version` reads it."""
    return f"published:{workspace}:{flow_id}"


def schedule_ticks(
    config: dict[str, Any], count: int = 5, now: dt.datetime | None = None
) -> list[dt.datetime]:
    """The next ``count`` ticks after ``now`` of a schedule trigger's ``config`` (its
    ``cron`` in its ``timezone``), as the scheduler fires them. :class:`Invalid` for a cron
    expression or time zone the scheduler cannot read."""
    ticks: list[dt.datetime] = []
    moment = now or dt.datetime.now(dt.UTC)
    try:
        for _ in range(count):
            moment = next_tick(str(config["cron"]), str(config.get("timezone", "UTC")), moment)
            ticks.append(moment)
    except (KeyError, ValueError, zoneinfo.ZoneInfoNotFoundError) as exc:
        raise Invalid(f"the schedule cannot be read: {exc}") from None
    return ticks


class FlowsService(WorkspaceScope):
    """Validate, save, publish, enable and read flows."""

    async def validate(self, document: dict[str, Any]) -> Flow:
        """Validate against the installed actions and this workspace's connections (in a
        worker thread)."""
        ws = self.workspace
        names = await self.hub.db.read(lambda c: connection_store.connection_names(c, ws))
        check = functools.partial(
            load_flow,
            document,
            expressions=self.hub.expressions,
            registry=self.hub.registry,
            connections=names,
        )
        # The JSON Schema and the compiling of every template take a while on a large
        # document (seconds within the document bounds): in a worker thread, so that the
        # event loop goes on answering.
        return await anyio.to_thread.run_sync(check, limiter=document_limiter())

    async def list_flows(self) -> list[dict[str, Any]]:
        """Every flow of the workspace, by id."""
        return await self.hub.db.read(lambda c: flow_store.list_flows(c, self.workspace))

    async def search_flows(
        self, q: str | None, enabled: bool | None, after: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """Flows matching the search, by id (see :func:`hub.db.flows.search_flows`)."""
        ws = self.workspace
        return await self.hub.db.read(
            lambda c: flow_store.search_flows(c, ws, q=q, enabled=enabled, after=after, limit=limit)
        )

    async def flows_page(
        self, q: str | None, *, page: int = 1, per_page: int = 50
    ) -> tuple[list[dict[str, Any]], int]:
        """One page (1-based) of the flows matching ``q``, by id, and how many match."""
        ws = self.workspace
        offset = (max(page, 1) - 1) * per_page

        def read(conn: Any) -> tuple[list[dict[str, Any]], int]:
            rows = flow_store.search_flows(conn, ws, q=q, limit=per_page, offset=offset)
            return rows, flow_store.count_flows(conn, ws, q=q)

        return await self.hub.db.read(read)

    async def run_stats(
        self, flow_ids: list[str], window_us: int = STATS_WINDOW_US
    ) -> dict[str, dict[str, Any]]:
        """Each flow's newest run and its runs' counts over the last ``window_us``
        microseconds (7 days), for a page of flows in one query
        (:func:`hub.db.flows.run_stats`)."""
        ws, since = self.workspace, now_us() - window_us
        return await self.hub.db.read(lambda c: flow_store.run_stats(c, ws, flow_ids, since))

    async def run_counts(self, flow_id: str) -> tuple[int, int]:
        """How many runs a flow has, and how many have not finished (what a delete would
        remove, and what refuses it)."""
        ws = self.workspace
        return await self.hub.db.read(lambda c: flow_store.run_counts(c, ws, flow_id))

    async def next_fire_times(self, flow_id: str, count: int = 5) -> list[dt.datetime]:
        """The next ``count`` ticks of the schedule of a flow's published (else latest)
        version, in its time zone; none when its trigger is not a schedule.
        :class:`Invalid` for a cron expression or time zone the scheduler cannot read."""
        trigger = (await self.flow_document(flow_id)).get("trigger") or {}
        if trigger.get("type") != "schedule":
            return []
        return schedule_ticks(trigger.get("config") or {}, count)

    async def delete_flow(self, flow_id: str) -> DeletedFlow:
        """Delete a flow with its versions, runs (and their steps), triggers' state,
        webhooks' keys and the API tokens limited to it, in one transaction; its schedule,
        poll or webhook stops at once in every process.

        :class:`NotFound` for no flow; :class:`Conflict` (``runs_active``, details
        ``{"active": n}``) while any of its runs has not finished: cancel them first.
        """
        self.require("editor")
        ws, actor = self.workspace, self.actor

        def write(conn: Any) -> DeletedFlow | None:
            deleted = flow_store.delete_flow(conn, ws, flow_id)
            if deleted is not None:
                details = {
                    "versions": deleted.versions,
                    "runs": deleted.runs,
                    "steps": deleted.steps,
                    "tokens": deleted.tokens,
                }
                audit.record(conn, ws, actor, "flow.delete", flow_id, details)
            return deleted

        try:
            deleted = await self.hub.db.write(write)
        except FlowBusy as exc:
            raise Conflict(
                f"flow {flow_id!r} has {exc.active} run(s) that have not finished: cancel "
                "them (or wait for them to finish), then delete it",
                {"active": exc.active},
                code="runs_active",
            ) from None
        if deleted is None:
            raise NotFound(f"no flow {flow_id!r}")
        # Every process forgets it at once: webhooks read the enabled state and the
        # published version through the layered cache (the scheduler and the poll and
        # subscribe runner read the published flows from the database).
        await self.hub.cache.invalidate(enabled_cache_key(ws, flow_id))
        await self.hub.cache.invalidate(published_cache_key(ws, flow_id))
        return deleted

    async def get_flow(self, flow_id: str) -> dict[str, Any]:
        """A flow's row, or :class:`NotFound`."""
        flow = await self.hub.db.read(lambda c: flow_store.get_flow(c, self.workspace, flow_id))
        if flow is None:
            raise NotFound(f"no flow {flow_id!r}")
        return flow

    async def flow_document(self, flow_id: str, version: int | None = None) -> dict[str, Any]:
        """The document of a version (the published one, else the latest, by default)."""
        flow = await self.get_flow(flow_id)
        chosen = version or flow["published_version"] or flow["latest_version"]
        return dict((await self.version(flow_id, chosen))["document"])

    async def save_flow(
        self,
        document: dict[str, Any],
        *,
        source: str = "",
        message: str = "",
        publish: bool = False,
        must_exist: bool | None = None,
        author: str | None = None,
        base_version: int | None = None,
        enabled: bool = True,
    ) -> SavedVersion:
        """Validate and save a new version (if it changed); maybe publish it.

        ``must_exist``: True for an update (:class:`NotFound` if there is no such flow),
        False for a create (:class:`Conflict` if there is). ``author`` is recorded with the
        version (the actor by default). ``base_version``: the version the edit started
        from; when another version was saved since, nothing is written and
        :class:`Conflict` (code ``version_conflict``) answers with what changed
        (:func:`check_base_version`), never a silent overwrite. ``enabled``: whether a flow
        this save creates starts with its trigger on (the API's and the CLI's do; the
        builder's starts off: enabling is a step of its own there).
        """
        self.require("editor")
        await self.validate(document)
        flow_id = document["id"]
        ws, actor = self.workspace, self.actor
        written_by = self.actor if author is None else author

        def write(conn: Any) -> SavedVersion:
            exists = flow_store.get_flow(conn, ws, flow_id) is not None
            if must_exist is False and exists:
                raise Conflict(f"a flow {flow_id!r} exists already")
            if must_exist and not exists:
                raise NotFound(f"no flow {flow_id!r}")
            if base_version is not None:
                check_base_version(conn, ws, flow_id, base_version, document)
            saved = flow_store.save_version(
                conn,
                ws,
                document,
                source=source,
                author=written_by,
                message=message,
                publish=publish,
                enabled=enabled,
            )
            if saved.created or saved.published:
                details = {"version": saved.version, "published": saved.published}
                action = "flow.create" if not exists else "flow.save"
                audit.record(conn, ws, actor, action, flow_id, details)
            return saved

        saved = await self.hub.db.write(write)
        if saved.published:
            await self.hub.engine.published_changed(ws, flow_id, saved.version)
        return saved

    async def versions(self, flow_id: str) -> list[dict[str, Any]]:
        """Every version of a flow, newest first (:class:`NotFound` for no flow)."""
        await self.get_flow(flow_id)
        return await self.hub.db.read(
            lambda c: flow_store.list_versions(c, self.workspace, flow_id)
        )

    async def version(self, flow_id: str, version: int) -> dict[str, Any]:
        """One version with its document and source, or :class:`NotFound`."""
        row = await self.hub.db.read(
            lambda c: flow_store.get_version(c, self.workspace, flow_id, version)
        )
        if row is None:
            raise NotFound(f"flow {flow_id!r} has no version {version}")
        return row

    async def publish(
        self, flow_id: str, version: int, action: str = "flow.publish"
    ) -> tuple[int, int | None]:
        """Publish a version (a roll back publishes an older one); return (new, previous)."""
        self.require("editor")
        ws, actor = self.workspace, self.actor

        def write(conn: Any) -> tuple[int, int | None]:
            flow = flow_store.get_flow(conn, ws, flow_id)
            if flow is None:
                raise NotFound(f"no flow {flow_id!r}")
            try:
                flow_store.publish_version(conn, ws, flow_id, version)
            except LookupError as exc:
                raise NotFound(str(exc)) from exc
            previous = flow["published_version"]
            details = {"version": version, "previous": previous}
            audit.record(conn, ws, actor, action, flow_id, details)
            return version, previous

        published = await self.hub.db.write(write)
        await self.hub.engine.published_changed(ws, flow_id, version)
        return published

    async def rollback(self, flow_id: str, version: int | None = None) -> tuple[int, int | None]:
        """Publish an older version (default: the one before the published one); return
        (new, previous). :class:`Conflict` when nothing is published (``not_published``)
        or the version is not older than the published one."""
        flow = await self.get_flow(flow_id)
        current = flow["published_version"]
        if current is None:
            raise Conflict(f"flow {flow_id!r} has no published version", code="not_published")
        target = version or current - 1
        if target >= current or target < 1:
            raise Conflict(f"a roll back publishes a version older than v{current}")
        return await self.publish(flow_id, target, action="flow.rollback")

    async def set_enabled(self, flow_id: str, enabled: bool) -> dict[str, Any]:
        """Turn a flow's triggers on or off; return the flow."""
        self.require("editor")
        ws, actor = self.workspace, self.actor

        def write(conn: Any) -> dict[str, Any] | None:
            if not flow_store.set_flow_enabled(conn, ws, flow_id, enabled):
                return None
            action = "flow.enable" if enabled else "flow.disable"
            audit.record(conn, ws, actor, action, flow_id)
            return flow_store.get_flow(conn, ws, flow_id)

        flow = await self.hub.db.write(write)
        if flow is None:
            raise NotFound(f"no flow {flow_id!r}")
        # Webhooks keep the enabled state in the layered cache for a moment: drop it in
        # every process so that disabling takes effect at once.
        await self.hub.cache.invalidate(enabled_cache_key(ws, flow_id))
        return flow
