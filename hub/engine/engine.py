"""The engine: runs one step (claim, render, validate, call, store, schedule successors).

Every executor calls :meth:`Engine.execute` with a
:class:`~hub.engine.executors.base.StepJob`. The state transitions themselves are in
:mod:`hub.db.runstate.transitions`, one transaction each; this module does the work between
them: rendering expressions, validating against schemas, calling the
action with its timeout, classifying errors, and redacting secrets before anything is stored.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import logging
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import msgspec
import pluggy
from cachetools import LRUCache
from sqlalchemy import Connection

from hub.cache import Cache
from hub.connectors import Action, ActionError, Registry
from hub.context import StepContext, Suspend
from hub.db import connections as connection_store
from hub.db import flows as flow_store
from hub.db import runs as run_store
from hub.db.database import Database
from hub.db.runstate.claims import Claim
from hub.db.runstate.completions import Completion, ItemCompletion, is_batchable_item
from hub.db.runstate.output import output_renderer
from hub.db.runstate.transitions import (
    Outcome,
    RunInfo,
    Transitions,
    create_runs,
    load_outputs,
    now_us,
    run_infos,
)
from hub.engine.executors.base import Executor, StepJob, cancel_requested
from hub.engine.limits import Limiter, LocalLimiter, StepGate
from hub.engine.recovery import RecoveryMixin
from hub.engine.step_call import StepFailure, call_step, step_logger
from hub.expressions import ExpressionError, Expressions
from hub.flows import Flow, StepSpec, load_flow
from hub.plugins import call_observers, has_observers
from hub.security.secrets import NO_SECRETS, Redactor, SecretBox, secret_fields, secret_values
from hub.settings import Settings

log = logging.getLogger("hub.engine")

Listener = Callable[[dict[str, Any]], None]
PUBLISHED_TTL = 300.0


class RunNotFound(LookupError):
    """No run (or flow) with that id in this workspace."""


def new_run_id() -> str:
    """A time-ordered run id: 12 hex digits of epoch milliseconds, then 20 random ones."""
    return f"{time.time_ns() // 1_000_000:012x}{uuid.uuid4().hex[:20]}"


class _Claimed:
    """A claimed step attempt and what is known about it."""

    __slots__ = ("attempt", "item_index", "job", "row_id", "spec", "started", "state", "step_id")

    def __init__(self, job: StepJob, row: dict[str, Any], spec: StepSpec) -> None:
        self.job = job
        self.row_id: int = row["id"]
        self.step_id: str = row["step_id"]
        self.item_index: int | None = row["item_index"]
        self.state: dict[str, Any] = dict(row["state"] or {})
        self.attempt = job.attempt
        self.spec = spec
        self.started = time.monotonic()


class Engine(RecoveryMixin):
    """Executes steps of runs; one per hub process."""

    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        registry: Registry,
        expressions: Expressions,
        pm: pluggy.PluginManager,
        executor: Executor,
        cache: Cache,
        http: httpx.AsyncClient,
        secrets: SecretBox,
        limiter: Limiter | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.registry = registry
        self.expressions = expressions
        self.pm = pm
        self.executor = executor
        self.cache = cache
        self.http = http
        self.secrets = secrets
        self.boot_id = uuid.uuid4().hex
        # How many steps this process runs at once (``hub worker --concurrency`` sets it).
        self.capacity: int = settings.worker_concurrency
        # While shedding work (see shed): how many steps to keep running, until when.
        self._keep: tuple[int, float] | None = None
        # Set, once asked for (want_idle), when the last step running here ends.
        self._idle = asyncio.Event()
        self._idle_wanted = False
        self.transitions = Transitions(self.boot_id, settings.lease_seconds, self.room)
        self._eager_tasks: set[asyncio.Task[None]] = set()
        self.gate = StepGate(
            limiter or LocalLimiter(), settings.default_step_timeout + settings.lease_seconds
        )
        self._runs: LRUCache[str, RunInfo] = LRUCache(maxsize=10_000)
        # Runs' facts asked for in this turn of the event loop, read together (_run_info).
        self._run_reads: dict[str, asyncio.Future[RunInfo | None]] = {}
        self._reads: set[asyncio.Task[None]] = set()
        self._outputs: LRUCache[tuple[str, str], Any] = LRUCache(maxsize=50_000)
        self._flows: LRUCache[tuple[str, str, int], Flow] = LRUCache(maxsize=1_000)
        # row id -> (claimed at, job, the task running it): for heartbeats, hand-back, cancel
        self._running: dict[int, tuple[float, StepJob, asyncio.Task[Any] | None]] = {}
        self._waiters: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}
        self.listeners: list[Listener] = []
        self._observe_steps = False
        self._observe_runs = False

    async def start(self) -> None:
        """Start executing jobs."""
        self._observe_steps = has_observers(self.pm, "hub_before_step") or has_observers(
            self.pm, "hub_after_step"
        )
        self._observe_runs = has_observers(self.pm, "hub_run_finished")
        await self.executor.start(self.execute)

    # -- flows and runs ---------------------------------------------------------------------

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

    async def start_run(
        self,
        workspace_id: str,
        flow_id: str,
        trigger: Any = None,
        *,
        version: int | None = None,
        trigger_type: str = "manual",
        parent: tuple[str, str, int] | None = None,
    ) -> str:
        """Create a run of ``flow_id`` (its published version unless ``version``); return its id.

        The run row and its root steps are inserted in one transaction; the root steps are
        submitted after it commits. ``parent`` is (run id, step key, depth) for a child run.
        """
        ids = await self.start_runs(
            workspace_id,
            flow_id,
            [trigger],
            version=version,
            trigger_type=trigger_type,
            parent=parent,
        )
        return ids[0]

    async def start_runs(
        self,
        workspace_id: str,
        flow_id: str,
        triggers: list[Any],
        *,
        version: int | None = None,
        trigger_type: str = "manual",
        parent: tuple[str, str, int] | None = None,
        also: Callable[[Connection], Any] | None = None,
        run_ids: list[str] | None = None,
    ) -> list[str]:
        """Create one run per trigger value in ONE transaction, with ``also(conn)`` in it too.

        Poll triggers use ``also`` to store their new cursor with the runs it produced, so an
        event is never lost nor started twice.
        """
        if version is None:
            version = await self.published_version(workspace_id, flow_id)
            if version is None:
                raise RunNotFound(f"flow {flow_id!r} has no published version")
        flow = await self.get_flow(workspace_id, flow_id, version)
        now = now_us()
        rows = [
            {
                "id": run_ids[i] if run_ids else new_run_id(),
                "workspace_id": workspace_id,
                "flow_id": flow_id,
                "flow_version": version,
                "status": "running",
                "trigger_type": trigger_type,
                "trigger": trigger,
                "parent_run_id": parent[0] if parent else None,
                "parent_step_key": parent[1] if parent else None,
                "depth": parent[2] if parent else 0,
                "created_at": now,
                "started_at": now,
            }
            for i, trigger in enumerate(triggers)
        ]

        def write(conn: Connection) -> Outcome:
            outcome = create_runs(conn, rows, flow)
            if also is not None:
                also(conn)
            return outcome

        outcome = await self.db.write(write)
        for row in rows:
            self._runs[row["id"]] = RunInfo(
                id=row["id"],
                workspace_id=workspace_id,
                flow_id=flow_id,
                flow_version=version,
                trigger=row["trigger"],
                depth=row["depth"],
                parent_run_id=row["parent_run_id"],
                parent_step_key=row["parent_step_key"],
                created_at=now,
            )
            self._emit(
                {"type": "run", "run_id": row["id"], "status": "running", "flow_id": flow_id}
            )
        await self._after(outcome)
        return [row["id"] for row in rows]

    async def published_version(self, workspace_id: str, flow_id: str) -> int | None:
        """The published version of a flow, through the layered cache.

        Publishing writes the new version through and announces it, so every process's
        next run uses it at once (not when a TTL runs out).
        """
        return await self.cache.get_or_load(
            f"published:{workspace_id}:{flow_id}",
            lambda: self.db.read(lambda c: flow_store.published_version(c, workspace_id, flow_id)),
            ttl=PUBLISHED_TTL,
        )

    async def published_changed(self, workspace_id: str, flow_id: str, version: int) -> None:
        """Write a newly published version through the cache and announce it."""
        await self.cache.changed(f"published:{workspace_id}:{flow_id}", version, PUBLISHED_TTL)

    async def cancel_run(self, run_id: str, reason: str = "cancelled") -> bool:
        """Cancel a run: queued and waiting steps never start, running ones are interrupted."""
        outcome = await self.db.write(
            lambda c: self.transitions.cancel_run(c, run_id, reason), lane=run_id
        )
        for finished in outcome.finished:
            self.interrupt_run(finished["id"])
        await self._after(outcome)
        return bool(outcome.finished)

    async def wait_for_run(self, run_id: str, timeout: float | None = None) -> dict[str, Any]:
        """Wait until a run has a final status; return its record."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(run_id, []).append(future)
        try:
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                record = await self.db.read(lambda c: run_store.run_record(c, run_id))
                if record is None:
                    raise RunNotFound(f"no run {run_id!r}")
                if record["status"] in ("succeeded", "failed", "cancelled"):
                    return record
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"run {run_id} still {record['status']} after {timeout}s")
                # Runs finished by another process are seen by polling.
                wait = 1.0 if remaining is None else min(1.0, remaining)
                try:
                    await asyncio.wait_for(asyncio.shield(future), wait)
                except TimeoutError:
                    continue
        finally:
            waiters = self._waiters.get(run_id, [])
            if future in waiters:
                waiters.remove(future)
            if not waiters:
                self._waiters.pop(run_id, None)

    # -- executing one step -----------------------------------------------------------------

    async def execute(self, job: StepJob) -> None:
        """Claim and run one step job; a job whose claim fails does nothing."""
        owner, lease = self.boot_id, self.settings.lease_seconds
        row = await self.db.write(Claim(job.run_id, job.key, job.attempt, owner, lease))
        if row is None:
            return
        await self._execute_claimed(job, row)

    def room(self) -> int:
        """How many more steps this process can run now (negative when it runs more): its
        capacity less the jobs of its executor running here and the steps it runs without
        a job (eager successors and items), and the slots promised to steps a transaction
        has claimed here beyond the ones it completed, until their tasks start. Counted by
        tasks, so a slot is taken from the moment a job starts (before its claim) until its
        task ends, whatever happens. While the process sheds work (:meth:`shed`), its
        capacity is what it keeps."""
        capacity = self.capacity
        if self._keep is not None:
            if time.monotonic() < self._keep[1]:
                capacity = min(capacity, self._keep[0])
            else:
                self._keep = None
        return capacity - len(self._eager_tasks) - self.executor.load() - self.transitions.promised

    def _eager_task_done(self, task: asyncio.Task[None]) -> None:
        self._eager_tasks.discard(task)
        self.step_ended()

    def want_idle(self) -> asyncio.Event:
        """An event set when the last step running here ends (a worker then asks others
        for work): until then, every step's end counts what still runs."""
        self._idle.clear()
        self._idle_wanted = True
        return self._idle

    def step_ended(self) -> None:
        """A step running here has ended: when it was the last one and someone waits for
        that (:meth:`want_idle`), say so (otherwise nothing: this is every step's path)."""
        if self._idle_wanted and self.room() >= self.capacity:
            self._idle_wanted = False
            self._idle.set()

    def shed(self, share: float, window: float) -> int:
        """Hand ``share`` of the steps running here to other workers (an idle worker asked
        for work): for ``window`` seconds this process runs at most the rest, so that the
        successors of the steps that end meanwhile, beyond that, go through the queue,
        where the idle worker takes them, instead of running here; and its polls take
        nothing. Returns how many steps it sheds (none when it runs fewer than two, or
        sheds already).

        A run's successors run where its step ran (claimed in the completion's statement,
        without a job): a worker that joined, or finished its share early, found nothing
        to do while another ran the chains it had started; at the end of a load of equal
        runs, one of two workers ran the last fifth alone.
        """
        running = self.capacity - self.room()  # (room() forgets a shedding that is over)
        count = int(running * share)
        if self._keep is not None or count < 1:
            return 0
        self._keep = (running - count, time.monotonic() + window)
        log.debug("shedding %d of %d running steps for %.2fs", count, running, window)
        return count

    async def _execute_claimed(self, job: StepJob, row: dict[str, Any]) -> None:
        run = await self._run_info(job.run_id)
        flow = await self.get_flow(run.workspace_id, run.flow_id, run.flow_version)
        claimed = _Claimed(job, row, flow.steps[row["step_id"]])
        self._running[claimed.row_id] = (claimed.started, job, asyncio.current_task())
        try:
            outcome = await self._run_claimed(run, flow, claimed)
        finally:
            self._running.pop(claimed.row_id, None)
        await self._after(outcome)

    async def _run_claimed(self, run: RunInfo, flow: Flow, claimed: _Claimed) -> Outcome:
        spec = claimed.spec
        is_item = claimed.item_index is not None
        is_handler = ":" in claimed.job.key
        redactor = NO_SECRETS
        ctx: StepContext | None = None
        try:
            context = await self._context(run, flow, spec, claimed)
            first_look = not is_item and not is_handler and claimed.attempt == 1
            if spec.when is not None and first_look and not spec.when.render(context):
                return await self._complete(run, flow, claimed, "skipped", None, None)
            if spec.for_each is not None and not is_item and not is_handler:
                return await self._expand(run, claimed, spec.for_each.render(context))
            action = self._action(spec)
            connection, redactor = await self._connection(run, spec)
            ctx = self._make_ctx(run, claimed, connection, redactor)
            output = await call_step(
                action,
                ctx,
                spec.input,
                data=context,
                timeout=spec.timeout or action.timeout or self.settings.default_step_timeout,
                where=f"steps.{spec.id}.",
                name=spec.action,
                around=functools.partial(self._limited, run, flow, claimed, action, ctx),
            )
            return await self._complete(
                run, flow, claimed, "done", redactor.data(ctx.input), redactor.data(output), ctx
            )
        except Suspend as suspend:
            rendered = None if ctx is None else ctx.input
            return await self._suspend(run, claimed, suspend, redactor.data(rendered))
        except asyncio.CancelledError:
            if cancel_requested():
                # Interrupted by cancel_run (the row is already cancelled) or by shutdown:
                # the step stays running until its lease expires or it is handed back.
                raise
            # A cancellation nobody asked for (Python 3.11's timeout leak, see
            # cancel_requested): not the step's doing, so not a failed attempt, and not a
            # step left running until its lease expires: it goes back to the queue now.
            log.warning("step %s of run %s: a stray cancellation; queued again", spec.id, run.id)
            found = await self.db.write(
                lambda c: run_store.hand_back(c, [claimed.row_id], self.boot_id, now_us())
            )
            return Outcome(jobs=[StepJob(*entry) for entry in found])
        except Exception as exc:
            failure = self._classify(exc, spec, redactor)
            rendered = None if ctx is None else ctx.input
            return await self._fail(run, flow, claimed, failure, redactor, rendered)

    async def _limited(
        self,
        run: RunInfo,
        flow: Flow,
        claimed: _Claimed,
        action: Action,
        ctx: StepContext,
        call: Callable[[], Awaitable[Any]],
    ) -> Any:
        """The action's call within its rate limits and concurrency caps, through the data
        cache when its policy allows caching, after the ``hub_before_step`` observers."""
        spec = claimed.spec
        wait, held = await self.gate.enter(
            workspace_id=run.workspace_id,
            flow_id=run.flow_id,
            flow_limit=flow.document.get("concurrency"),
            action_name=spec.action,
            rate=action.rate_limit,
            connection=spec.connection,
            connection_limit=(ctx.connection or {}).get("max_concurrency"),
        )
        if wait > 0:  # a limit says later: wait without using up an attempt
            raise Suspend(time.time() + wait, claimed.state)
        try:
            policy = action.cache
            if policy is None:
                return await self._observed(ctx, call)
            digest = hashlib.sha256(
                msgspec.json.encode([spec.action, spec.connection, ctx.input], order="sorted")
            ).hexdigest()
            return await self.cache.get_or_load(
                f"action:{ctx.workspace_id}:{digest}",
                lambda: self._observed(ctx, call),
                policy.ttl,
                policy.stale_while_revalidate,
            )
        finally:
            await self.gate.leave(held)

    async def _observed(self, ctx: StepContext, call: Callable[[], Awaitable[Any]]) -> Any:
        if self._observe_steps:
            await call_observers(
                self.pm, "hub_before_step", self.settings.observer_timeout, ctx=ctx
            )
        return await call()

    def _classify(self, exc: Exception, spec: StepSpec, redactor: Redactor) -> StepFailure:
        if isinstance(exc, StepFailure):
            return exc
        if isinstance(exc, ExpressionError):
            return StepFailure(str(exc), kind="expression")
        if isinstance(exc, ActionError):
            return StepFailure(
                str(exc), kind="action", retryable=exc.retryable, retry_after=exc.retry_after
            )
        action = self.registry.action(spec.action)
        declared = action.retryable_errors if action else ()
        if isinstance(exc, (ConnectionError, httpx.TransportError, TimeoutError, *declared)):
            return StepFailure(f"{type(exc).__name__}: {exc}", kind="connection", retryable=True)
        if log.isEnabledFor(logging.DEBUG):  # redacted: the message may quote a secret
            trace = "".join(traceback.format_exception(exc))
            log.debug("action %s raised:\n%s", spec.action, redactor.text(trace))
        return StepFailure(f"{type(exc).__name__}: {exc}", kind="error")

    def _action(self, spec: StepSpec) -> Action:
        action = self.registry.action(spec.action)
        if action is None:
            raise StepFailure(
                f"unknown action {spec.action!r} (is its plugin installed?)", kind="input"
            )
        return action

    async def _connection(
        self, run: RunInfo, spec: StepSpec
    ) -> tuple[dict[str, Any] | None, Redactor]:
        if not spec.connection:
            return None, NO_SECRETS
        try:
            return await self.connection_values(run.workspace_id, spec.connection)
        except LookupError as exc:
            raise StepFailure(str(exc), kind="input") from exc

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

    def _make_ctx(
        self, run: RunInfo, claimed: _Claimed, connection: dict[str, Any] | None, redactor: Redactor
    ) -> StepContext:
        return StepContext(
            run_id=run.id,
            flow_id=run.flow_id,
            workspace_id=run.workspace_id,
            step_key=claimed.job.key,
            step_id=claimed.step_id,
            attempt=claimed.attempt,
            connection=connection,
            http=self.http,
            cache=self.cache,
            log=step_logger(redactor, run.id),
            state=claimed.state,
            settings=self.settings,
            services=self,
            depth=run.depth,
        )

    async def _context(
        self, run: RunInfo, flow: Flow, spec: StepSpec, claimed: _Claimed
    ) -> dict[str, Any]:
        refs: set[str] = set()
        for compiled in (spec.input, spec.when, spec.for_each):
            if compiled is None:
                continue
            if compiled.step_refs is None:
                refs |= set(flow.ancestors.get(spec.id, ()))
            else:
                refs |= compiled.step_refs
        context: dict[str, Any] = {
            "trigger": run.trigger,
            "steps": await self._outputs_of(run.id, refs),
            "run": {"id": run.id, "flow_id": run.flow_id, "flow_version": run.flow_version},
        }
        state = claimed.state
        if "item" in state:
            context["item"] = state["item"]
            context["index"] = claimed.item_index
        if "error" in state:
            context["error"] = state["error"]
            if "item" in state:
                context["index"] = _index_of(state.get("handles", ""))
        return context

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
        loop are read in one query (a burst of new runs reaching a worker was a read
        each, waiting in turn for the pool's connections: a fifth of a second for 150)."""
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

    # -- recording the result ---------------------------------------------------------------

    async def _complete(
        self,
        run: RunInfo,
        flow: Flow,
        claimed: _Claimed,
        status: str,
        input: Any,
        output: Any,
        ctx: StepContext | None = None,
    ) -> Outcome:
        key = claimed.job.key
        renderer = output_renderer(run, flow, (key, output) if status == "done" else None)
        kind = ItemCompletion if is_batchable_item(flow, key) else Completion
        completion = kind(
            self.transitions,
            flow,
            run,
            claimed.row_id,
            key,
            claimed.attempt,
            status,
            input,
            output,
            renderer,
        )
        try:
            outcome = await self.db.write(completion)  # batched with others where it can be
        except BaseException:
            self.transitions.promised -= completion.promised  # no outcome will start them
            raise
        if not outcome.lost:
            self._outputs[(run.id, key)] = output
            try:
                await self._step_event(
                    ctx, run, key, claimed.attempt, status, claimed.started, output=output
                )
            except BaseException:  # cancelled (its run was): the outcome will not be run
                self.transitions.promised -= outcome.promised
                outcome.promised = 0
                raise
        return outcome

    async def _expand(self, run: RunInfo, claimed: _Claimed, items: Any) -> Outcome:
        spec = claimed.spec
        if not isinstance(items, list):
            raise StepFailure(
                f"steps.{spec.id}.for_each: must give a list, not {type(items).__name__}",
                kind="expression",
            )
        if len(items) > self.settings.max_for_each_items:
            raise StepFailure(
                f"steps.{spec.id}.for_each: {len(items)} items is over the limit of "
                f"{self.settings.max_for_each_items}",
                kind="expression",
            )
        if not items:
            flow = await self.get_flow(run.workspace_id, run.flow_id, run.flow_version)
            return await self._complete(run, flow, claimed, "done", None, [])
        outcome = await self.db.write(
            lambda c: self.transitions.expand(
                c, run, claimed.row_id, spec.id, claimed.attempt, items, spec.concurrency
            ),
            lane=run.id,
        )
        if not outcome.lost:
            await self._step_event(
                None, run, claimed.job.key, claimed.attempt, "waiting", claimed.started
            )
        return outcome

    async def _suspend(
        self, run: RunInfo, claimed: _Claimed, suspend: Suspend, input: Any
    ) -> Outcome:
        until = None if suspend.until is None else int(suspend.until * 1_000_000)
        if until is not None and until <= now_us():
            until = now_us()
        child = getattr(suspend, "child_run", None)
        outcome = await self.db.write(
            lambda c: self.transitions.suspend(
                c, run, claimed.row_id, claimed.attempt, until, suspend.state, input, child
            ),
            lane=run.id,
        )
        if not outcome.lost:
            await self._step_event(
                None, run, claimed.job.key, claimed.attempt, "waiting", claimed.started
            )
        return outcome

    async def _fail(
        self,
        run: RunInfo,
        flow: Flow,
        claimed: _Claimed,
        failure: StepFailure,
        redactor: Redactor,
        rendered: Any,
    ) -> Outcome:
        spec = claimed.spec
        if failure.retry_after:
            # The service said when to come back: every step of that connection waits.
            action = self.registry.action(spec.action)
            scope = action.rate_limit.scope if action and action.rate_limit else "connection"
            key = self.gate.rate_key(run.workspace_id, spec.action, spec.connection, scope)
            await self.gate.limiter.block(key, failure.retry_after)
        message = redactor.text(str(failure))
        error = {"message": message, "kind": failure.kind, "attempt": claimed.attempt}
        delay = None
        if failure.retryable and claimed.attempt < spec.retry.max_attempts:
            delay = spec.retry.delay(claimed.attempt)
            if failure.retry_after is not None:
                delay = max(delay, min(failure.retry_after, spec.retry.max * 10))
        renderer = output_renderer(run, flow)
        key = claimed.job.key
        outcome = await self.db.write(
            lambda c: self.transitions.fail(
                c,
                flow,
                run,
                claimed.row_id,
                key,
                claimed.attempt,
                error,
                redactor.data(rendered),
                delay,
                renderer,
            ),
            lane=run.id,
        )
        if not outcome.lost:
            status = "retrying" if delay is not None else "failed"
            await self._step_event(
                None, run, key, claimed.attempt, status, claimed.started, error=error
            )
        return outcome

    async def _after(self, outcome: Outcome) -> None:
        """After a transition committed: run eager steps, submit jobs, announce finished runs."""
        for job, row in outcome.eager:
            task = asyncio.get_running_loop().create_task(self._execute_claimed(job, row))
            self._eager_tasks.add(task)
            task.add_done_callback(self._eager_task_done)
        self.transitions.promised -= outcome.promised  # their tasks hold the slots now
        if outcome.jobs:
            await self.executor.submit(await self._prioritised(outcome.jobs))
        if outcome.withdraw:
            await self.executor.withdraw(await self._prioritised(outcome.withdraw))
        for finished in outcome.finished:
            if finished["status"] != "succeeded":
                self.interrupt_run(finished["id"])  # siblings still running here stop now
            self._emit({"type": "run", "run_id": finished["id"], **finished})
            for future in self._waiters.get(finished["id"], []):
                if not future.done():
                    future.set_result(finished)
            if self._observe_runs:
                await call_observers(
                    self.pm, "hub_run_finished", self.settings.observer_timeout, run=finished
                )

    async def _step_event(
        self,
        ctx: StepContext | None,
        run: RunInfo,
        key: str,
        attempt: int,
        status: str,
        started: float,
        *,
        output: Any = None,
        error: Any = None,
    ) -> None:
        if self.listeners:
            self._emit(
                {
                    "type": "step",
                    "run_id": run.id,
                    "key": key,
                    "attempt": attempt,
                    "status": status,
                    "error": error,
                    "seconds": time.monotonic() - started,  # since this process claimed it
                }
            )
        if self._observe_steps and ctx is not None:
            result = {"status": status, "output": output, "error": error}
            await call_observers(
                self.pm, "hub_after_step", self.settings.observer_timeout, ctx=ctx, result=result
            )

    def emit(self, event: dict[str, Any]) -> None:
        """Tell this process's listeners (CLI progress, live status, metrics) about an event."""
        self._emit(event)

    def _emit(self, event: dict[str, Any]) -> None:
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed")

    async def _prioritised(self, jobs: list[StepJob]) -> list[StepJob]:
        """The jobs, each with the priority (the queue) of its run's flow when it matters."""
        if self.executor.in_process:
            return jobs
        return [dataclasses.replace(j, priority=await self._priority(j.run_id)) for j in jobs]

    async def _priority(self, run_id: str) -> str:
        run = await self._run_info(run_id)
        flow = await self.get_flow(run.workspace_id, run.flow_id, run.flow_version)
        return str(flow.document.get("priority") or "default")

    # -- child runs (the action context's start_flow) -----------------------------------------

    async def start_child_run(self, ctx: StepContext, flow_id: str, input: Any, wait: bool) -> Any:
        """Start (or find again) the child run of a step; see StepContext.start_flow."""
        child = await self.db.read(lambda c: run_store.child_run(c, ctx.run_id, ctx.step_key))
        if child is None:
            if ctx.depth + 1 > self.settings.max_subflow_depth:
                raise ActionError(
                    f"sub-flow depth limit reached ({self.settings.max_subflow_depth}): "
                    f"{flow_id!r} not started"
                )
            try:
                run_id = await self.start_run(
                    ctx.workspace_id,
                    flow_id,
                    input,
                    trigger_type="flow",
                    parent=(ctx.run_id, ctx.step_key, ctx.depth + 1),
                )
            except RunNotFound as exc:
                raise ActionError(str(exc)) from exc
            child = {"id": run_id, "status": "running", "output": None, "error": None}
        if not wait:
            return {"run_id": child["id"]}
        if child["status"] == "succeeded":
            return child["output"]
        if child["status"] in ("failed", "cancelled"):
            message = (child["error"] or {}).get("message", child["status"])
            raise ActionError(
                f"sub-flow {flow_id!r} (run {child['id']}) {child['status']}: {message}"
            )
        suspend = Suspend(None, ctx.state)
        suspend.child_run = child["id"]  # type: ignore[attr-defined]
        raise suspend


def _index_of(key: str) -> int | None:
    if key.endswith("]") and "[" in key:
        return int(key[key.rindex("[") + 1 : -1])
    return None
