"""Runs: start, list (filters, keyset pagination), detail, cancel, retry, replay, live events."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, JSONBody, PathParameter, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from hub.api.deps import EDITOR, SECURITY, WORKSPACE_DEPENDENCIES, workspace_guard
from hub.api.errors import ApiError, error_responses
from hub.api.models import (
    RunCancelled,
    RunDetail,
    RunPage,
    RunRetried,
    RunStart,
    RunStarted,
    RunSummary,
    StepAttempt,
    ms_between,
    ts,
)
from hub.services.workspace import WorkspaceHub

RunStatus = Literal["queued", "running", "waiting", "succeeded", "failed", "cancelled"]
RunPath = Annotated[str, PathParameter(max_length=64)]
FINAL = ("succeeded", "failed", "cancelled")


def encode_cursor(created_at: int, run_id: str) -> str:
    """An opaque cursor for the run after which the next page starts."""
    return base64.urlsafe_b64encode(f"{created_at}:{run_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """The (created_at, id) inside a cursor; 400 for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, _, run_id = raw.partition(":")
        value = int(created)
        if not run_id or not 0 <= value < 2**62:
            raise ValueError(cursor)
        return value, run_id
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise ApiError(
            400, "bad_request", "the cursor is not one this API gave", [{"key": "cursor"}]
        ) from exc


# An ISO 8601 date, or date and time (naive means UTC): what a run list's ``since`` and
# ``until`` take. A pattern, not a datetime parameter: that would also take a number as a
# Unix time (``until=-9e-246``), which the API's schema does not describe.
ISO_TIME = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?)?$"


def to_us(name: str, value: str | None) -> int | None:
    """A query parameter's ISO 8601 date and time in epoch microseconds (400 if it is not
    one, such as a 31st of February)."""
    if value is None:
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise ApiError(
            400, "bad_request", f"{name}: not an ISO 8601 date and time", [{"key": name}]
        ) from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1_000_000)


def run_summary(row: dict[str, Any]) -> RunSummary:
    """A run row in a list."""
    return RunSummary(
        id=row["id"],
        flow_id=row["flow_id"],
        flow_version=row["flow_version"],
        status=row["status"],
        trigger_type=row["trigger_type"],
        parent_run_id=row["parent_run_id"],
        created_at=ts(row["created_at"]),  # type: ignore[arg-type]
        started_at=ts(row["started_at"]),
        finished_at=ts(row["finished_at"]),
        duration_ms=ms_between(row["started_at"], row["finished_at"]),
        error=row["error"],
        trial=bool(row.get("trial")),
    )


def step_attempt(row: dict[str, Any], pinned: frozenset[str] = frozenset()) -> StepAttempt:
    """A step row as the API shows it (stored redacted); ``pinned``: a trial's pinned step
    ids (the engine pins a step's own key only, never an item or a handler's key)."""
    return StepAttempt(
        key=row["key"],
        step_id=row["step_id"],
        item_index=row["item_index"],
        attempt=row["attempt"],
        status=row["status"],
        input=row["input"],
        output=row["output"],
        error=row["error"],
        due_at=ts(row["due_at"]),
        created_at=ts(row["created_at"]),  # type: ignore[arg-type]
        started_at=ts(row["started_at"]),
        finished_at=ts(row["finished_at"]),
        duration_ms=ms_between(row["started_at"], row["finished_at"]),
        pinned=row["key"] in pinned,
    )


def run_detail(record: dict[str, Any], pinned: frozenset[str] = frozenset()) -> RunDetail:
    """A run record with its steps (``pinned``: a trial's pinned step ids)."""
    return RunDetail(
        id=record["id"],
        flow_id=record["flow_id"],
        flow_version=record["flow_version"],
        status=record["status"],
        trigger_type=record["trigger_type"],
        trigger=record["trigger"],
        output=record["output"],
        error=record["error"],
        parent_run_id=record["parent_run_id"],
        parent_step_key=record["parent_step_key"],
        depth=record["depth"],
        created_at=ts(record["created_at"]),  # type: ignore[arg-type]
        started_at=ts(record["started_at"]),
        finished_at=ts(record["finished_at"]),
        duration_ms=ms_between(record["started_at"], record["finished_at"]),
        steps=[step_attempt(s, pinned) for s in record.get("steps", [])],
        trial=bool(record.get("trial")),
    )


async def run_events(
    ws: NamedDependency[WorkspaceHub], run_id: str, max_seconds: float
) -> AsyncIterator[ServerSentEventMessage]:
    """Events of a run: ``step`` for each attempt's new status, ``run`` for the run's.

    The run is read once, then the pushed events of the engines (this process's, and in
    queue mode the workers' through Redis) are applied to it: see
    :func:`hub.services.live.follow_run`. Ends when the run is final (or after
    ``max_seconds``, with an ``end`` event: reconnect to go on).
    """
    seen: dict[tuple[str, int], str] = {}
    last_status = None
    serial = 0
    async for changes in ws.follow_run(run_id, max_seconds=max_seconds):
        for change in changes:
            data = change.data
            if change.kind == "step":
                ident = (data["key"], data["attempt"])
                if seen.get(ident) == data["status"]:
                    continue
                seen[ident] = data["status"]
                body = msgspec.json.encode(step_attempt(data)).decode()
            else:
                if data["status"] == last_status:
                    continue
                last_status = data["status"]
                body = msgspec.json.encode(run_summary(data)).decode()
            serial += 1
            yield ServerSentEventMessage(data=body, event=change.kind, id=str(serial))
    if last_status not in FINAL:
        yield ServerSentEventMessage(data='{"reason": "time limit"}', event="end")


class RunsController(Controller):
    """Runs of a workspace's flows."""

    path = "/api/w/{workspace:str}/runs"
    tags = ["runs"]
    security = SECURITY
    guards = [workspace_guard]
    dependencies = WORKSPACE_DEPENDENCIES

    @get("/", name="runs_list", operation_id="runs_list", responses=error_responses(400, 401, 404))
    async def list_runs(
        self,
        ws: NamedDependency[WorkspaceHub],
        flow_id: Annotated[str | None, QueryParameter(max_length=100)] = None,
        status: FromQuery[RunStatus | None] = None,
        since: Annotated[str | None, QueryParameter(pattern=ISO_TIME, max_length=40)] = None,
        until: Annotated[str | None, QueryParameter(pattern=ISO_TIME, max_length=40)] = None,
        cursor: Annotated[str | None, QueryParameter(max_length=200)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        trial: Annotated[bool, QueryParameter()] = False,
    ) -> RunPage:
        """Runs newest first; filter by flow, status and creation time (``since`` <= t <
        ``until``); pass ``next_cursor`` back as ``cursor`` for the next page. Trial runs
        (the flow builder's tests) are listed only with ``trial=true`` (and then only
        they)."""
        rows = await ws.runs_page(
            flow_id=flow_id,
            status=status,
            since=to_us("since", since),
            until=to_us("until", until),
            cursor=decode_cursor(cursor) if cursor else None,
            limit=limit + 1,
            trial=trial,
        )
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None
        return RunPage(items=[run_summary(r) for r in rows], next_cursor=next_cursor)

    @post(
        "/",
        name="runs_start",
        operation_id="runs_start",
        opt=EDITOR,
        status_code=202,
        responses=error_responses(400, 401, 403, 404, 409),
    )
    async def start_run(
        self, ws: NamedDependency[WorkspaceHub], data: JSONBody[RunStart]
    ) -> RunStarted:
        """Start a manual run of a flow with ``input`` as its trigger data."""
        run_id = await ws.start_run(data.flow_id, data.input, data.version)
        return RunStarted(run_id=run_id, status="running")

    @get(
        "/{run_id:str}",
        name="runs_get",
        operation_id="runs_get",
        responses=error_responses(400, 401, 404),
    )
    async def get_run(self, ws: NamedDependency[WorkspaceHub], run_id: RunPath) -> RunDetail:
        """A run with every step attempt: inputs, outputs, errors, timings (secrets redacted);
        a trial run's pinned steps say ``pinned``."""
        record = await ws.get_run(run_id)
        pins = (await ws.get_trial(run_id))["pins"] if record.get("trial") else {}
        return run_detail(record, frozenset(pins))

    @post(
        "/{run_id:str}/cancel",
        name="runs_cancel",
        operation_id="runs_cancel",
        opt=EDITOR,
        status_code=200,
        responses=error_responses(400, 401, 403, 404),
    )
    async def cancel(self, ws: NamedDependency[WorkspaceHub], run_id: RunPath) -> RunCancelled:
        """Cancel a run and its child runs (``cancelled`` is false if it had finished)."""
        return RunCancelled(run_id=run_id, cancelled=await ws.cancel_run(run_id))

    @post(
        "/{run_id:str}/retry",
        name="runs_retry",
        operation_id="runs_retry",
        opt=EDITOR,
        status_code=200,
        responses=error_responses(400, 401, 403, 404, 409),
    )
    async def retry(self, ws: NamedDependency[WorkspaceHub], run_id: RunPath) -> RunRetried:
        """Retry a failed run from its failed step: a new attempt in the same run."""
        keys = await ws.retry_run(run_id)
        return RunRetried(run_id=run_id, status="running", retried=keys)

    @post(
        "/{run_id:str}/replay",
        name="runs_replay",
        operation_id="runs_replay",
        opt=EDITOR,
        status_code=202,
        responses=error_responses(400, 401, 403, 404),
    )
    async def replay(self, ws: NamedDependency[WorkspaceHub], run_id: RunPath) -> RunStarted:
        """A new run of the same flow version with the same trigger data."""
        new_id = await ws.replay_run(run_id)
        return RunStarted(run_id=new_id, status="running")

    @get(
        "/{run_id:str}/events",
        name="runs_events",
        operation_id="runs_events",
        media_type="text/event-stream",
        responses=error_responses(400, 401, 404),
    )
    async def events(
        self,
        ws: NamedDependency[WorkspaceHub],
        run_id: RunPath,
        max_seconds: Annotated[float, QueryParameter(gt=0, le=3600)] = 600.0,
    ) -> ServerSentEvent:
        """Live status as server-sent events (``step``, ``run``; ends when the run does)."""
        await ws.get_run(run_id, with_steps=False)  # 404 before the stream starts
        return ServerSentEvent(run_events(ws, run_id, max_seconds))
