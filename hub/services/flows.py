"""Flows and their versions, as a workspace's caller sees and changes them.

Saving validates the document against the installed actions and the workspace's
connections (an invalid one raises :class:`hub.flows.FlowError`, every issue with its
location); every save that makes a version, every publish and every enable or disable is
written to the audit log in the transaction of the change.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from typing import Any

import anyio

from hub.db import audit
from hub.db import connections as connection_store
from hub.db import flows as flow_store
from hub.db.flows import SavedVersion
from hub.flows import Flow, load_flow
from hub.services.base import WorkspaceScope
from hub.services.errors import Conflict, NotFound
from hub.services.events import enabled_cache_key

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
    ) -> SavedVersion:
        """Validate and save a new version (if it changed); maybe publish it.

        ``must_exist``: True for an update (:class:`NotFound` if there is no such flow),
        False for a create (:class:`Conflict` if there is). ``author`` is recorded with the
        version (the actor by default).
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
            saved = flow_store.save_version(
                conn,
                ws,
                document,
                source=source,
                author=written_by,
                message=message,
                publish=publish,
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
