"""The engine: runs one step (claim, render, validate, call, store, schedule successors).

Every executor calls :meth:`Engine.execute` with a
:class:`~hub.db.runstate.types.StepJob`. The state transitions themselves are in
:mod:`hub.db.runstate`, one transaction each; this module does the work between them: the
step call (:mod:`hub.engine.step_call`: rendering, validating against schemas, calling the
action with its timeout) within the limits, classifying errors, and redacting secrets
before anything is stored.
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

from hub.cache import Cache
from hub.connectors import Action, ActionError, Registry
from hub.context import StepContext, Suspend
from hub.db import runs as run_store
from hub.db.database import Database
from hub.db.models import now_us
from hub.db.runstate.claims import Claim
from hub.db.runstate.completions import Completion, ItemCompletion, is_batchable_item
from hub.db.runstate.output import output_renderer, write_finishing
from hub.db.runstate.transitions import Transitions
from hub.db.runstate.types import Outcome, RunInfo, RunNotFound, StepJob
from hub.db.trials import TRIAL_VERSION, mark_pinned
from hub.engine.capacity import CapacityMixin
from hub.engine.events import EventBus
from hub.engine.executors.base import Executor, cancel_requested
from hub.engine.limits import Limiter, LocalLimiter, StepGate
from hub.engine.reads import ReadsMixin
from hub.engine.recovery import RecoveryMixin
from hub.engine.runs import RunsMixin
from hub.engine.step_call import StepFailure, call_step, step_logger
from hub.engine.trials import TrialsMixin
from hub.expressions import ExpressionError, Expressions
from hub.expressions.offload import Renders
from hub.flows import Flow, StepSpec
from hub.plugins import call_observers, has_observers
from hub.security.secrets import NO_SECRETS, Redactor, SecretBox
from hub.settings import Settings

log = logging.getLogger("hub.engine")

Listener = Callable[[dict[str, Any]], None]
# A step attempt's statuses after which it goes on (its event has no ``finished_at``)
_GOING_ON = frozenset(("waiting", "retrying"))


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


class Engine(CapacityMixin, ReadsMixin, RunsMixin, TrialsMixin, RecoveryMixin):
    """Executes steps of runs; one per hub process.

    Starting, cancelling and waiting for runs is in :class:`~hub.engine.runs.RunsMixin`, its
    capacity and shedding in :class:`~hub.engine.capacity.CapacityMixin`, its cached reads
    of flows, runs and outputs in :class:`~hub.engine.reads.ReadsMixin`, the sweeper, leases
    and hand-back in :class:`~hub.engine.recovery.RecoveryMixin`, trial runs (a draft's
    flow, pins, stopping after a step) in :class:`~hub.engine.trials.TrialsMixin`.
    """

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
        # Renders on this loop: inline while cheap, else in a thread (hub.expressions.offload)
        self.renders = Renders(settings.render_inline_seconds, settings.render_threads)
        self.pm = pm
        self.executor = executor
        self.cache = cache
        self.http = http
        self.secrets = secrets
        self.boot_id = uuid.uuid4().hex
        self._init_capacity(settings.worker_concurrency)
        self.transitions = Transitions(self.boot_id, settings.lease_seconds, self.room)
        self._eager_tasks: set[asyncio.Task[None]] = set()
        self.gate = StepGate(
            limiter or LocalLimiter(), settings.default_step_timeout + settings.lease_seconds
        )
        self._init_reads()
        self._init_trials()
        # row id -> (claimed at, job, the task running it): for heartbeats, hand-back, cancel
        self._running: dict[int, tuple[float, StepJob, asyncio.Task[Any] | None]] = {}
        self._waiters: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}
        self.listeners: list[Listener] = []  # this process's events (metrics, counters)
        self.watchers: list[Listener] = []  # every process's events (live views)
        # In queue mode, events go to the other processes too (set by the hub: runtime.py)
        self.events: EventBus | None = None
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

    # -- executing one step -----------------------------------------------------------------

    async def execute(self, job: StepJob) -> None:
        """Claim and run one step job; a job whose claim fails does nothing."""
        owner, lease = self.boot_id, self.settings.lease_seconds
        row = await self.db.write(Claim(job.run_id, job.key, job.attempt, owner, lease))
        if row is None:
            return
        await self._execute_claimed(job, row)

    async def _execute_claimed(self, job: StepJob, row: dict[str, Any]) -> None:
        run = await self._run_info(job.run_id)
        flow = await self.flow_of(run)
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
            first_look = not is_item and not is_handler and claimed.attempt == 1
            if run.flow_version == TRIAL_VERSION and not is_item and not is_handler:
                pins = (await self.trial_of(run.id)).pins
                if spec.id in pins:
                    return await self._pinned(run, flow, claimed, pins[spec.id])
            context = await self._context(run, flow, spec, claimed)
            render = self.renders.render
            if spec.when is not None and first_look and not await render(spec.when, context):
                return await self._complete(run, flow, claimed, "skipped", None, None)
            if spec.for_each is not None and not is_item and not is_handler:
                return await self._expand(run, claimed, await render(spec.for_each, context))
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
                renders=self.renders,
            )
            return await self._complete(
                run, flow, claimed, "done", redactor.data(ctx.input), redactor.data(output), ctx
            )
        except Suspend as suspend:
            rendered = None if ctx is None else ctx.input
            return await self._suspend(run, claimed, suspend, redactor.data(rendered), ctx)
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
            return await self._fail(run, flow, claimed, failure, redactor, rendered, ctx)

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
        done = (key, output) if status == "done" else None
        renderer = output_renderer(run, flow, done, self.renders.inline_seconds)
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
            # batched with others where it can be; the run's output rendered off the loop
            outcome = await write_finishing(self.db, completion, renderer, self.renders)
        except BaseException:
            self.transitions.promised -= completion.promised  # no outcome will start them
            raise
        if not outcome.lost:
            self._outputs[(run.id, key)] = output
            try:
                await self._step_event(ctx, run, claimed, status, input=input, output=output)
            except BaseException:  # cancelled (its run was): the outcome will not be run
                self.transitions.promised -= outcome.promised
                outcome.promised = 0
                raise
        return outcome

    async def _pinned(self, run: RunInfo, flow: Flow, claimed: _Claimed, output: Any) -> Outcome:
        """A trial's pinned step: not called; done with the pinned output, marked pinned."""
        await self.db.write(lambda c: mark_pinned(c, claimed.row_id, self.boot_id), lane=run.id)
        return await self._complete(run, flow, claimed, "done", None, output)

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
            flow = await self.flow_of(run)
            return await self._complete(run, flow, claimed, "done", None, [])
        outcome = await self.db.write(
            lambda c: self.transitions.expand(
                c, run, claimed.row_id, spec.id, claimed.attempt, items, spec.concurrency
            ),
            lane=run.id,
        )
        if not outcome.lost:
            await self._step_event(None, run, claimed, "waiting")
        return outcome

    async def _suspend(
        self,
        run: RunInfo,
        claimed: _Claimed,
        suspend: Suspend,
        input: Any,
        ctx: StepContext | None,
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
            await self._step_event(ctx, run, claimed, "waiting", input=input)
        return outcome

    async def _fail(
        self,
        run: RunInfo,
        flow: Flow,
        claimed: _Claimed,
        failure: StepFailure,
        redactor: Redactor,
        rendered: Any,
        ctx: StepContext | None,
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
        renderer = output_renderer(run, flow, None, self.renders.inline_seconds)
        key = claimed.job.key
        outcome = await write_finishing(
            self.db,
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
            renderer,
            self.renders,
            lane=run.id,
        )
        if not outcome.lost:
            status = "retrying" if delay is not None else "failed"
            await self._step_event(
                ctx, run, claimed, status, input=redactor.data(rendered), error=error
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
            event = {"type": "run", "run_id": finished["id"], "at": now_us(), **finished}
            trial = await self._is_trial(finished["id"])
            if trial:
                event["trial"] = True
            self._emit(event)
            for future in self._waiters.get(finished["id"], []):
                if not future.done():
                    future.set_result(finished)
            if self._observe_runs and not trial:  # a trial's outcome is no production one
                await call_observers(
                    self.pm, "hub_run_finished", self.settings.observer_timeout, run=finished
                )

    async def _is_trial(self, run_id: str) -> bool:
        """Whether a run is a trial run (from its facts: cached where its steps ran)."""
        try:
            return (await self._run_info(run_id)).flow_version == TRIAL_VERSION
        except RunNotFound:  # deleted since: it finished; nobody counts it any more
            return False

    async def _step_event(
        self,
        ctx: StepContext | None,
        run: RunInfo,
        claimed: _Claimed,
        status: str,
        *,
        input: Any = None,
        output: Any = None,
        error: Any = None,
    ) -> None:
        bus = self.events
        if self.listeners or self.watchers or (bus is not None and bus.wants(run.id)):
            event = self._attempt_event(run, claimed, status, input, output, error)
            if run.flow_version == TRIAL_VERSION:
                event["trial"] = True
            self._emit(event)
        if self._observe_steps and ctx is not None:
            result = {"status": status, "output": output, "error": error}
            await call_observers(
                self.pm, "hub_after_step", self.settings.observer_timeout, ctx=ctx, result=result
            )

    @staticmethod
    def _attempt_event(
        run: RunInfo, claimed: _Claimed, status: str, input: Any, output: Any, error: Any
    ) -> dict[str, Any]:
        """A step event: the attempt that changed, as a watcher shows it (the input and
        output it is given are those stored, redacted; times in epoch microseconds, as
        this process saw them: an attempt that will go on, waiting or retrying, has no
        ``finished_at``).

        Built for every step of every run while any listener exists (the metrics' always
        does), so it is one dict literal and one clock read: no copies, no updates."""
        now = now_us()
        seconds = time.monotonic() - claimed.started  # since this process claimed it
        return {
            "type": "step",
            "run_id": run.id,
            "key": claimed.job.key,
            "step_id": claimed.step_id,
            "item_index": claimed.item_index,
            "attempt": claimed.attempt,
            "status": status,
            "error": error,
            "input": input,
            "output": output,
            "started_at": now - int(seconds * 1_000_000),
            "finished_at": None if status in _GOING_ON else now,
            "seconds": seconds,
        }

    def emit(self, event: dict[str, Any]) -> None:
        """Tell this process's listeners (metrics) and watchers (CLI progress, live views)
        about an event, and in queue mode the other processes' watchers
        (:mod:`hub.engine.events`)."""
        self._emit(event)

    def receive(self, event: dict[str, Any]) -> None:
        """Tell this process's watchers about another process's event (its listeners
        count only this process's work; the event is not published again)."""
        self._notify(self.watchers, event)

    def _emit(self, event: dict[str, Any]) -> None:
        if self.listeners:
            self._notify(self.listeners, event)
        if self.watchers:  # usually none: nobody follows a run live
            self._notify(self.watchers, event)
        if self.events is not None:
            self.events.publish(event)

    @staticmethod
    def _notify(listeners: list[Listener], event: dict[str, Any]) -> None:
        for listener in list(listeners):
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
        flow = await self.flow_of(run)
        return str(flow.document.get("priority") or "default")


def _index_of(key: str) -> int | None:
    if key.endswith("]") and "[" in key:
        return int(key[key.rindex("[") + 1 : -1])
    return None
