"""The engine's cached reads: compiled flows, published versions, runs' facts, steps'
outputs and connections' values (part of the engine).

Split from :mod:`hub.engine.engine` along its concern; :class:`ReadsMixin` is only meant to
be mixed into :class:`hub.engine.Engine`, whose state it uses.
"""

from __future__ import annotations

import asyncio
from typing import Any

from cachetools import LRUCache

from hub.cache import Cache
from hub.connectors import Registry
from hub.db import connections as connection_store
from hub.db import flows as flow_store
from hub.db.database import Database
from hub.db.runstate.rows import load_outputs, run_infos
from hub.db.runstate.types import RunInfo, RunNotFound
from hub.expressions import Expressions
from hub.flows import Flow, load_flow
from hub.security.secrets import Redactor, SecretBox, secret_fields, secret_values

PUBLISHED_TTL = 300.0


class ReadsMixin:
    """Reads of what steps need, cached in this process (versions are immutable)."""

    db: Database
    cache: Cache
    registry: Registry
    expressions: Expressions
    secrets: SecretBox

    def _init_reads(self) -> None:
        self._runs: LRUCache[str, RunInfo] = LRUCache(maxsize=10_000)
        # Runs' facts asked for in this turn of the event loop, read together (_run_info).
        self._run_reads: dict[str, asyncio.Future[RunInfo | None]] = {}
        self._reads: set[asyncio.Task[None]] = set()
        self._outputs: LRUCache[tuple[str, str], Any] = LRUCache(maxsize=50_000)
        self._flows: LRUCache[tuple[str, str, int], Flow] = LRUCache(maxsize=1_000)

    async def get_flow(self, workspace_id: str, flow_id: str, version: int) -> Flow:
        """The compiled flow of one version (versions are immutable: cached freely)."""
        key = (workspace_id, flow_id, version)
        flow = self._flows.get(key)
        if flow is None:
            document = await self.db.read(
                lambda c: flow_store.version_document(c, workspace_id, flow_id, version)
            )
            if document is None:
                raise RunNotFound(f"flow {flow_id!r} has no version {version}")
            flow = load_flow(document, expressions=self.expressions, registry=self.registry)
            self._flows[key] = flow
        return flow

    async def published_version(self, workspace_id: str, flow_id: str) -> int | None:
        """The published version of a flow, through the layered cache.

        Publishing writes the new version through and announces it, so every process's
        next run uses it at once (not when a TTL runs out).
        """
        version: int | None = await self.cache.get_or_load(
            f"published:{workspace_id}:{flow_id}",
            lambda: self.db.read(lambda c: flow_store.published_version(c, workspace_id, flow_id)),
            ttl=PUBLISHED_TTL,
        )
        return version

    async def published_changed(self, workspace_id: str, flow_id: str, version: int) -> None:
        """Write a newly published version through the cache and announce it."""
        await self.cache.changed(f"published:{workspace_id}:{flow_id}", version, PUBLISHED_TTL)

    async def connection_values(
        self, workspace_id: str, name: str
    ) -> tuple[dict[str, Any], Redactor]:
        """A stored connection's settings and decrypted secrets, and a redactor for them."""
        row = await self.db.read(lambda c: connection_store.get_connection(c, workspace_id, name))
        if row is None:
            raise LookupError(f"no connection named {name!r}")
        secrets = self.secrets.decrypt(row["secrets"]) if row["secrets"] else {}
        connector = self.registry.connectors.get(row["connector"])
        schema = connector.connection_schema if connector else None
        marked = {k: v for k, v in row["settings"].items() if k in secret_fields(schema)}
        values = {**row["settings"], **secrets}
        return values, Redactor(secret_values(secrets) | secret_values(marked))

    async def _outputs_of(self, run_id: str, refs: set[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        missing = []
        for ref in refs:
            key = (run_id, ref)
            if key in self._outputs:
                found[ref] = {"output": self._outputs[key]}
            else:
                missing.append(ref)
        if missing:
            loaded = await self.db.read(lambda c: load_outputs(c, run_id, missing))
            for ref, output in loaded.items():
                self._outputs[(run_id, ref)] = output
                found[ref] = {"output": output}
        return found

    async def _run_info(self, run_id: str) -> RunInfo:
        """A run's facts: cached; the runs not cached asked for in one turn of the event
        loop are read in one query (a burst of new runs reaching a worker would otherwise
        be a read each, waiting in turn for the pool's connections)."""
        info = self._runs.get(run_id)
        if info is not None:
            return info
        future = self._run_reads.get(run_id)
        if future is None:
            loop = asyncio.get_running_loop()
            future = self._run_reads[run_id] = loop.create_future()
            if len(self._run_reads) == 1:  # the first of this turn: read them all next turn
                loop.call_soon(self._read_runs)
        found = await asyncio.shield(future)  # a waiter cancelled leaves the others theirs
        if found is None:
            raise RunNotFound(f"no run {run_id!r}")
        return found

    def _read_runs(self) -> None:
        wanted, self._run_reads = self._run_reads, {}
        task = asyncio.get_running_loop().create_task(self._read_run_batch(wanted))
        self._reads.add(task)
        task.add_done_callback(self._reads.discard)

    async def _read_run_batch(self, wanted: dict[str, asyncio.Future[RunInfo | None]]) -> None:
        try:
            found = await self.db.read(lambda c: run_infos(c, wanted))
        except BaseException as exc:
            for future in wanted.values():
                if future.done():
                    continue
                if isinstance(exc, Exception):
                    future.set_exception(exc)
                    future.exception()  # marked read: a cancelled waiter leaves it unread
                else:
                    future.cancel()
            if not isinstance(exc, Exception):
                raise
            return  # the waiters have the error
        for run_id, future in wanted.items():
            info = found.get(run_id)
            if info is not None:
                self._runs[run_id] = info
            if not future.done():
                future.set_result(info)
