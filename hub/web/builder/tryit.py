"""The builder's try-it: the trigger's sample data, one step tested on it, pinned outputs,
and trial runs of the draft.

- ``GET/POST {build}/try/sample``: the trigger's sample (pasted JSON, read with the hub's
  bounded JSON reader: at most ``HUB_MAX_DOCUMENT_BYTES``, ``_DEPTH`` and ``_NODES``), or
  ``POST {build}/try/sample/run`` to take a recent run's trigger data.
- ``GET {build}/steps/{id}/try``: the step panel's try-it slot; ``POST .../test`` calls the
  step's action once (:func:`hub.services.actions.try_step`, no run) with its input rendered
  against the sample and the other steps' known outputs (pinned first, then the newest
  run's); ``POST .../pin`` and ``.../unpin`` pin an output shown (tested, or of a run).
- ``POST {build}/try/run``: a trial run of the draft (:meth:`WorkspaceHub.start_trial`)
  with the sample and the pins, whole or ``stop_after`` a step; ``GET {build}/try/runs/{id}``
  shows it, fetched again every second while it is not final.

Every change to the draft's try-it data answers with the builder's refreshed regions
(:func:`hub.web.builder.state.refreshed`): a pin or a sample changes the draft's revision,
which the toolbar carries for the next edit.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Annotated, Any

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.response import Template

from hub.api.deps import EDITOR
from hub.api.flows import FlowPath
from hub.api.runs import FINAL, RunPath
from hub.flows import FlowError
from hub.flows.bounds import DocumentLimits, too_large
from hub.flows.checks import TextError, read_json
from hub.services.actions import StepTestOutcome, try_step
from hub.services.drafts import Draft
from hub.services.errors import Invalid, NotFound, ServiceError
from hub.services.workspace import WorkspaceHub
from hub.web.builder.state import (
    BUILD_PATH,
    BuilderState,
    StepPath,
    StepQuery,
    refreshed,
    state_for,
    state_of,
    step_ids,
    step_of,
)
from hub.web.form_checks import form_text
from hub.web.pages import FORM, WorkspacePage, page

SAMPLE = "builder/_try_sample.html"
STEP = "builder/_try_step.html"
RUN = "builder/_try_run.html"
PIN = "builder/_try_pin.html"
#: The panel's name in ``?panel=``, and its template.
PANEL = "try"
PANEL_TEMPLATE = "builder/_panel_try.html"
#: How many of the flow's recent runs the sample section offers.
RECENT_RUNS = 10
#: How many recent runs the known outputs of the steps are read from (newest first).
OUTPUT_RUNS = 5
#: How much of a run's trigger data the list shows.
PREVIEW_CHARS = 120
#: How often a trial run's fragment is fetched again while it is not final.
POLL = "every 1s"


@dataclasses.dataclass
class Known:
    """A step's output known to the builder: ``source`` is ``pinned`` (the draft's pin) or
    ``run`` (the newest run that has it: ``run_id``)."""

    output: Any
    source: str
    run_id: str | None = None


def read_sample(text: str, limits: DocumentLimits, name: str = "sample") -> Any:
    """The JSON ``text`` posted as the field ``name`` (the trigger's sample, or an output
    to pin), within the document bounds; :class:`Invalid` naming the line and column or the
    bound passed (empty: None)."""
    size = len(text.encode())
    over = too_large(size, limits)
    if over is not None:
        message = (
            f"the {name} is {size} bytes, over the limit of {limits.max_bytes} "
            "(HUB_MAX_DOCUMENT_BYTES)"
        )
        raise Invalid(message, [{"location": name, "message": message}])
    if not text.strip():
        return None
    try:
        return read_json(text, limits)
    except TextError as exc:
        message = f"{exc.location}: {exc.message}" if exc.location else exc.message
        raise Invalid(
            f"the {name} is not valid JSON: {message}",
            [{"location": exc.location or name, "message": exc.message}],
        ) from None


def posted_json_text(
    ws: WorkspaceHub, data: Mapping[str, Any], key: str
) -> tuple[str, DocumentLimits]:
    """The form's JSON text ``key`` and the hub's document bounds to read it with
    (:func:`read_sample`). The text is cut only well past the byte bound, so that a text
    too long is refused for its size, never read cut."""
    limits = DocumentLimits.from_settings(ws.hub.settings)
    return form_text(data, key, limits.max_bytes * 4 + 1), limits


def preview(value: Any) -> str:
    """A one-line preview of a value (its JSON, cut to :data:`PREVIEW_CHARS`)."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


async def recent_runs(ws: WorkspaceHub, flow_id: str, limit: int) -> list[dict[str, Any]]:
    """The flow's newest runs, production and trial, with their trigger data."""
    return await ws.runs_page(flow_id=flow_id, trial=None, limit=limit, with_data=True)


def own_attempts(steps: list[dict[str, Any]], *, done: bool = False) -> dict[str, dict[str, Any]]:
    """Each step's last attempt on its own key (not an item of its ``for_each``), by step
    id, in the order the steps first ran; ``done``: its last attempt that is done."""
    latest: dict[str, dict[str, Any]] = {}
    for attempt in sorted(steps, key=lambda s: s["attempt"]):
        if attempt["key"] == attempt["step_id"] and (not done or attempt["status"] == "done"):
            latest[attempt["step_id"]] = attempt
    return latest


async def run_outputs(ws: WorkspaceHub, flow_id: str) -> dict[str, Known]:
    """The newest output of each step over the flow's :data:`OUTPUT_RUNS` newest runs
    (production and trial): a step's own key, its last attempt that is done."""
    rows = await ws.runs_page(flow_id=flow_id, trial=None, limit=OUTPUT_RUNS, with_data=False)
    known: dict[str, Known] = {}
    for row in rows:
        record = await ws.get_run(row["id"])
        for step_id, attempt in own_attempts(record["steps"], done=True).items():
            known.setdefault(step_id, Known(attempt["output"], "run", row["id"]))
    return known


async def known_outputs(ws: WorkspaceHub, state: BuilderState) -> dict[str, Known]:
    """Every step's known output: the draft's pins first, then the newest runs'."""
    known = await run_outputs(ws, state.flow_id)
    for step_id, output in state.draft.pins.items():
        known[step_id] = Known(output, "pinned")
    return known


def step_or_404(state: BuilderState, step_id: str) -> dict[str, Any]:
    """The draft's step ``step_id`` (:class:`NotFound` when it has none)."""
    step = step_of(state.document, step_id)
    if step is None:
        raise NotFound(f"the draft has no step {step_id!r}")
    return step


async def sample_context(ws: WorkspaceHub, state: BuilderState, **extra: Any) -> dict[str, Any]:
    """What the sample section shows: the sample, the flow's recent runs."""
    runs = await recent_runs(ws, state.flow_id, RECENT_RUNS)
    sample = state.draft.sample
    context: dict[str, Any] = {
        "sample_text": extra.pop("sample_text", None),
        "sample_error": "",
        "recent": [{**r, "preview": preview(r["trigger"])} for r in runs],
    }
    if context["sample_text"] is None:
        context["sample_text"] = "" if sample is None else json.dumps(sample, indent=2)
    context.update(extra)
    return context


async def trial_context(ws: WorkspaceHub, state: BuilderState, run_id: str) -> dict[str, Any]:
    """What a trial run's fragment shows: the run, its steps' outputs, what it pinned."""
    trial = await ws.get_trial(run_id)
    if trial["flow_id"] != state.flow_id:
        raise NotFound(f"no trial run {run_id!r} of this flow")
    record = await ws.get_run(run_id)
    latest = own_attempts(record.pop("steps"))
    final = record["status"] in FINAL
    return {
        "trial_run": record,
        "trial_steps": list(latest.values()),
        "trial_pins": trial["pins"] or {},
        "stop_after": trial["stop_after"],
        "trial_live": not final,
        "poll": POLL,
    }


async def latest_trial(ws: WorkspaceHub, state: BuilderState) -> str | None:
    """The id of the flow's newest trial run, or None."""
    rows = await ws.runs_page(flow_id=state.flow_id, trial=True, limit=1, with_data=False)
    return str(rows[0]["id"]) if rows else None


async def try_panel(ws: WorkspaceHub, state: BuilderState) -> tuple[str, dict[str, Any]]:
    """The ``?panel=try`` side panel: the sample, the pins, the form of a trial run and the
    newest trial run."""
    context = await sample_context(ws, state)
    context["stop_choices"] = [s for s in step_ids(state.document) if s]
    run_id = await latest_trial(ws, state)
    if run_id is not None:
        context.update(await trial_context(ws, state, run_id))
    return PANEL_TEMPLATE, context


class TryPages(WorkspacePage):
    """The builder's try-it (editors): the sample, step tests, pins and trial runs."""

    path = BUILD_PATH

    @get("/try/sample", name="web_builder_try_sample", opt=EDITOR)
    async def sample(
        self, request: Request[Any, Any, Any], ws: NamedDependency[WorkspaceHub], flow_id: FlowPath
    ) -> Template:
        """The trigger's sample section (a fragment)."""
        state = await state_of(ws, flow_id)
        return await page(request, SAMPLE, state=state, **await sample_context(ws, state))

    @post("/try/sample", name="web_builder_try_sample_set", opt=EDITOR, status_code=200)
    async def set_sample(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        flow_id: FlowPath,
        data: Annotated[dict[str, Any], FORM],
    ) -> Template:
        """Keep the pasted JSON as the trigger's sample (empty: no sample); bad JSON, or
        JSON past the bounds, comes back in the form with the reason (422)."""
        text, limits = posted_json_text(ws, data, "sample")
        try:
            value = read_sample(text, limits)
        except Invalid as exc:
            state = await state_of(ws, flow_id)
            context = await sample_context(
                ws, state, sample_text=text[: limits.max_bytes], sample_error=exc.message
            )
            return await page(request, SAMPLE, state=state, status_code=422, **context)
        draft = await ws.set_sample(flow_id, value)
        state = await state_for(ws, draft)
        context = await sample_context(ws, state, sample_notice="The sample is kept.")
        return await refreshed(request, state, panel=SAMPLE, **context)

    @post("/try/sample/run", name="web_builder_try_sample_run", opt=EDITOR, status_code=200)
    async def sample_from_run(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        flow_id: FlowPath,
        data: Annotated[dict[str, Any], FORM],
    ) -> Template:
        """Take a run's trigger data (``run``: one of the flow's runs) as the sample."""
        run_id = form_text(data, "run", 100)
        record = await ws.get_run(run_id, with_steps=False)
        if record["flow_id"] != flow_id:
            raise NotFound(f"no run {run_id!r} of flow {flow_id!r}")
        draft = await ws.set_sample(flow_id, record["trigger"])
        state = await state_for(ws, draft)
        notice = f"The sample is the trigger data of run {run_id}."
        context = await sample_context(ws, state, sample_notice=notice)
        return await refreshed(request, state, panel=SAMPLE, **context)

    @get("/steps/{step_id:str}/try", name="web_builder_step_try", opt=EDITOR)
    async def step_slot(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        flow_id: FlowPath,
        step_id: StepPath,
    ) -> Template:
        """The step panel's try-it slot: its known output and the buttons."""
        state = await state_of(ws, flow_id, selected=step_id)
        step_or_404(state, step_id)
        known = (await known_outputs(ws, state)).get(step_id)
        return await page(request, STEP, state=state, step_id=step_id, known=known)

    @post("/steps/{step_id:str}/test", name="web_builder_step_test", opt=EDITOR, status_code=200)
    async def test_step(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        flow_id: FlowPath,
        step_id: StepPath,
    ) -> Template:
        """Call the step's action once, its input rendered against the sample and the other
        steps' known outputs; show the output or the error (secrets redacted)."""
        state = await state_of(ws, flow_id, selected=step_id)
        step = step_or_404(state, step_id)
        known = await known_outputs(ws, state)
        outputs = {key: value.output for key, value in known.items() if key != step_id}
        action = str(step.get("action") or "")
        connection = step.get("connection")
        outcome: StepTestOutcome | None = None
        refusal = ""
        try:
            outcome = await try_step(
                ws,
                action,
                step.get("input", {}),
                connection=connection if isinstance(connection, str) else None,
                trigger=state.draft.sample,
                steps=outputs,
            )
        except ServiceError as exc:
            refusal = exc.message
        else:
            await ws.audit("step.test", action, {"ok": outcome.ok, "flow_id": flow_id})
        used = sorted(key for key in outputs if key in step_ids(state.document))
        return await page(
            request,
            STEP,
            state=state,
            step_id=step_id,
            known=known.get(step_id),
            outcome=outcome,
            refusal=refusal,
            used={key: known[key] for key in used},
            status_code=422 if refusal else 200,
        )

    @post("/steps/{step_id:str}/pin", name="web_builder_step_pin", opt=EDITOR, status_code=200)
    async def pin(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        flow_id: FlowPath,
        step_id: StepPath,
        data: Annotated[dict[str, Any], FORM],
    ) -> Template:
        """Pin ``output`` (JSON text: an output the page shows) as the step's: trial runs
        use it instead of calling the step."""
        output = read_sample(*posted_json_text(ws, data, "output"), "output")
        state = await state_of(ws, flow_id)
        step_or_404(state, step_id)
        draft = await ws.pin_output(flow_id, step_id, output)
        return await self._pin_answer(request, ws, draft, step_id, output, "Pinned.")

    @post("/steps/{step_id:str}/unpin", name="web_builder_step_unpin", opt=EDITOR, status_code=200)
    async def unpin(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        flow_id: FlowPath,
        step_id: StepPath,
        data: Annotated[dict[str, Any], FORM],
    ) -> Template:
        """Remove the step's pin: trial runs call it again."""
        try:
            output = read_sample(*posted_json_text(ws, data, "output"), "output")
        except Invalid:
            output = None  # the control then offers to pin nothing: harmless
        draft = await ws.unpin_output(flow_id, step_id)
        return await self._pin_answer(request, ws, draft, step_id, output, "Unpinned.")

    async def _pin_answer(
        self,
        request: Request[Any, Any, Any],
        ws: WorkspaceHub,
        draft: Draft,
        step_id: str,
        output: Any,
        notice: str,
    ) -> Template:
        """The pin control again (pinned or not) and the builder's refreshed regions."""
        state = await state_for(ws, draft)
        return await refreshed(
            request,
            state,
            panel=PIN,
            notice=notice,
            pin_step=step_id,
            pin_output=output,
        )

    @post("/try/run", name="web_builder_try_run", opt=EDITOR, status_code=200)
    async def start_run(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        flow_id: FlowPath,
        data: Annotated[dict[str, Any], FORM],
    ) -> Template:
        """Start a trial run of the draft with the sample and the pins (``stop_after``: a
        step to stop after; empty: the whole flow), and show it."""
        state = await state_of(ws, flow_id)
        stop_after = form_text(data, "stop_after", 100) or None
        refusal = ""
        issues: list[str] = []
        try:
            run_id = await ws.start_trial(
                state.document,
                trigger=state.draft.sample,
                pins=state.draft.pins or None,
                stop_after=stop_after,
            )
        except FlowError as exc:
            refusal = "fix the draft's issues first: a test run runs what a save would accept."
            issues = [f"{i.location}: {i.message}" if i.location else i.message for i in exc.issues]
        except ServiceError as exc:
            refusal = exc.message
            details = exc.details if isinstance(exc.details, list) else []
            issues = [f"{i.get('location')}: {i.get('message')}" for i in details]
        if refusal:
            return await page(
                request, RUN, state=state, refusal=refusal, issues=issues, status_code=422
            )
        return await page(request, RUN, state=state, **await trial_context(ws, state, run_id))

    @get("/try/runs/{run_id:str}", name="web_builder_try_run_show", opt=EDITOR)
    async def show_run(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        flow_id: FlowPath,
        run_id: RunPath,
        step: StepQuery = "",
    ) -> Template:
        """A trial run of the flow: its steps, their outputs (pinnable once it is final)."""
        state = await state_of(ws, flow_id, selected=step or None)
        return await page(request, RUN, state=state, **await trial_context(ws, state, run_id))
