"""Runs through the API: start, list with filters and keyset pagination, detail, cancel,
retry from the failed step, replay, live events, and a step tried without a run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hub.settings import Settings
from tests import kit
from tests.api_kit import Api, flow_document, started_api

RUNS = "/api/w/default/runs"


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async for value in started_api(settings):
        yield value


async def publish(api: Api, document: dict[str, Any]) -> None:
    response = await api.call(
        "POST", "/api/w/default/flows", api.editor, json={"document": document, "publish": True}
    )
    assert response.status_code == 201, response.text


async def start(api: Api, flow_id: str, input: Any = None) -> str:
    response = await api.call("POST", RUNS, api.editor, json={"flow_id": flow_id, "input": input})
    assert response.status_code == 202, response.text
    return str(response.json()["run_id"])


async def finished(api: Api, run_id: str) -> dict[str, Any]:
    await api.hub.wait_for_run(run_id, 10)
    response = await api.call("GET", f"{RUNS}/{run_id}", api.viewer)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def chain(flow_id: str = "chain", succeed_on: int = 2) -> dict[str, Any]:
    """first (echo) -> flaky (fails until attempt ``succeed_on``, no retry) -> last (echo)."""
    return flow_document(
        flow_id,
        steps=[
            {"id": "first", "action": "test.echo", "input": {"n": "{{ trigger.n }}"}},
            {"id": "flaky", "action": "test.flaky", "input": {"succeed_on": succeed_on}},
            {"id": "last", "action": "test.echo", "input": {"after": "{{ steps.flaky.output }}"}},
        ],
    )


async def test_a_run_shows_every_step_attempt_with_timings(api: Api) -> None:
    document = chain()
    document["steps"][1]["retry"] = {"max_attempts": 3, "initial": "10ms", "max": "20ms"}
    await publish(api, document)
    record = await finished(api, await start(api, "chain", {"n": 1}))
    assert record["status"] == "succeeded"
    attempts = [(s["key"], s["attempt"], s["status"]) for s in record["steps"]]
    assert attempts == [
        ("first", 1, "done"),
        ("flaky", 1, "failed"),
        ("flaky", 2, "done"),
        ("last", 1, "done"),
    ]
    failed = record["steps"][1]
    assert failed["error"]["message"] == "flaky failure on attempt 1"
    assert failed["input"] == {"succeed_on": 2}
    assert record["steps"][3]["output"] == {"after": {"attempt": 2}}
    assert all(s["duration_ms"] is not None for s in record["steps"])
    assert record["trigger"] == {"n": 1} and record["duration_ms"] > 0


async def test_starting_an_unpublished_or_unknown_flow(api: Api) -> None:
    await api.call("POST", "/api/w/default/flows", api.editor, json={"document": chain()})
    unpublished = await api.call("POST", RUNS, api.editor, json={"flow_id": "chain"})
    assert unpublished.status_code == 409
    assert unpublished.json()["error"]["code"] == "not_published"
    draft = await api.call("POST", RUNS, api.editor, json={"flow_id": "chain", "version": 1})
    assert draft.status_code == 202
    unknown = await api.call("POST", RUNS, api.editor, json={"flow_id": "nope"})
    assert unknown.status_code == 404


async def test_retry_runs_the_failed_step_again_in_the_same_run(api: Api) -> None:
    await publish(api, chain())
    run_id = await start(api, "chain", {"n": 7})
    failed = await finished(api, run_id)
    assert failed["status"] == "failed" and failed["error"]["step"] == "flaky"
    retried = await api.call("POST", f"{RUNS}/{run_id}/retry", api.editor)
    assert retried.status_code == 200, retried.text
    assert retried.json() == {"run_id": run_id, "status": "running", "retried": ["flaky"]}
    record = await finished(api, run_id)
    assert record["status"] == "succeeded"
    assert record["error"] is None and record["output"] == {"after": {"attempt": 2}}
    assert kit.CALLS["echo:first"] == 1  # a completed step never runs again
    assert kit.CALLS["flaky:flaky"] == 2
    again = await api.call("POST", f"{RUNS}/{run_id}/retry", api.editor)
    assert again.status_code == 409


async def test_retry_gives_failed_and_cancelled_items_of_a_for_each_a_new_attempt(
    api: Api,
) -> None:
    document = flow_document(
        "fan",
        steps=[
            {
                "id": "each",
                "action": "test.flaky",
                "for_each": "{{ trigger.items }}",
                "concurrency": 2,
                "input": {"succeed_on": 2},
            }
        ],
    )
    await publish(api, document)
    run_id = await start(api, "fan", {"items": [1, 2, 3, 4, 5]})
    assert (await finished(api, run_id))["status"] == "failed"
    retried = await api.call("POST", f"{RUNS}/{run_id}/retry", api.editor)
    assert retried.status_code == 200
    record = await finished(api, run_id)
    assert record["status"] == "succeeded", record["error"]
    assert record["output"] == [{"attempt": 2}] * 5
    for i in range(5):  # every item ran at most twice: once failing, once on the retry
        assert kit.CALLS[f"flaky:each[{i}]"] <= 2


async def test_retry_restarts_a_parallel_branch_the_failure_cancelled(api: Api) -> None:
    document = flow_document(
        "branches",
        steps=[
            {"id": "slow", "action": "test.gate", "needs": [], "input": {"name": "g"}},
            {"id": "bad", "action": "test.flaky", "needs": [], "input": {"succeed_on": 2}},
            {"id": "join", "action": "test.echo", "needs": ["slow", "bad"], "input": {}},
        ],
    )
    await publish(api, document)
    run_id = await start(api, "branches")
    assert (await finished(api, run_id))["status"] == "failed"
    retried = await api.call("POST", f"{RUNS}/{run_id}/retry", api.editor)
    assert retried.json()["retried"] == ["bad", "slow"]
    kit.GATES.setdefault("g", asyncio.Event()).set()
    record = await finished(api, run_id)
    assert record["status"] == "succeeded"
    slow = [(s["attempt"], s["status"]) for s in record["steps"] if s["key"] == "slow"]
    assert slow == [(1, "cancelled"), (2, "done")]


async def test_replay_starts_a_new_run_with_the_same_trigger_and_version(api: Api) -> None:
    await publish(api, chain(succeed_on=1))
    run_id = await start(api, "chain", {"n": 3})
    await finished(api, run_id)
    await api.call(
        "PUT", "/api/w/default/flows/chain", api.editor,
        json={"document": chain(succeed_on=1) | {"name": "v2"}, "publish": True},
    )  # fmt: skip
    replayed = await api.call("POST", f"{RUNS}/{run_id}/replay", api.editor)
    assert replayed.status_code == 202
    new_id = replayed.json()["run_id"]
    assert new_id != run_id
    record = await finished(api, new_id)
    assert record["trigger"] == {"n": 3} and record["flow_version"] == 1
    assert record["trigger_type"] == "replay" and record["status"] == "succeeded"


async def test_cancel_stops_a_waiting_run(api: Api) -> None:
    document = flow_document(
        "waits", steps=[{"id": "hold", "action": "test.gate", "input": {"name": "never"}}]
    )
    await publish(api, document)
    run_id = await start(api, "waits")
    await asyncio.sleep(0.05)
    cancelled = await api.call("POST", f"{RUNS}/{run_id}/cancel", api.editor)
    assert cancelled.json() == {"run_id": run_id, "cancelled": True}
    record = await finished(api, run_id)
    assert record["status"] == "cancelled"
    assert record["error"]["message"] == f"cancelled by {api.editor.email}"
    twice = await api.call("POST", f"{RUNS}/{run_id}/cancel", api.editor)
    assert twice.json()["cancelled"] is False


async def test_run_list_filters_and_keyset_pagination(api: Api) -> None:
    await publish(api, chain("ok-flow", succeed_on=1))
    await publish(api, chain("bad-flow", succeed_on=9))
    # Five runs in one transaction share created_at: the id breaks the tie.
    same_time = await api.hub.engine.start_runs("default", "ok-flow", [{"n": i} for i in range(5)])
    bad = await start(api, "bad-flow")
    for run_id in [*same_time, bad]:
        await api.hub.wait_for_run(run_id, 10)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, "flow_id": "ok-flow"}
        if cursor:
            params["cursor"] = cursor
        page = (await api.call("GET", RUNS, api.viewer, params=params)).json()
        seen.extend(r["id"] for r in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(same_time) and len(seen) == 5
    assert seen == sorted(seen, reverse=True)  # newest first (ids are time-ordered)
    failed = await api.call("GET", RUNS, api.viewer, params={"status": "failed"})
    assert [r["id"] for r in failed.json()["items"]] == [bad]
    newest = failed.json()["items"][0]["created_at"]
    later = await api.call("GET", RUNS, api.viewer, params={"since": newest})
    assert [r["id"] for r in later.json()["items"]] == [bad]
    earlier = await api.call("GET", RUNS, api.viewer, params={"until": newest})
    assert bad not in {r["id"] for r in earlier.json()["items"]}
    assert len(earlier.json()["items"]) == 5
    for bad_time in ("-9.3e-246", "1733000000", "2026-02-31T00:00:00Z", "yesterday"):
        refused = await api.call("GET", RUNS, api.viewer, params={"until": bad_time})
        assert refused.status_code == 400, bad_time
        assert "until" in refused.text
    junk = await api.call("GET", RUNS, api.viewer, params={"cursor": "not-a-cursor"})
    assert junk.status_code == 400
    status = await api.call("GET", RUNS, api.viewer, params={"status": "exploded"})
    assert status.status_code == 400


async def test_live_events_stream_step_and_run_status_until_the_run_ends(api: Api) -> None:
    document = flow_document(
        "live",
        steps=[
            {"id": "hold", "action": "test.gate", "input": {"name": "live", "value": 1}},
            {"id": "after", "action": "test.echo", "input": {}},
        ],
    )
    await publish(api, document)
    run_id = await start(api, "live")

    async def open_gate_soon() -> None:
        await asyncio.sleep(0.3)
        kit.GATES.setdefault("live", asyncio.Event()).set()

    opener = asyncio.create_task(open_gate_soon())
    response = await api.call("GET", f"{RUNS}/{run_id}/events", api.viewer)
    await opener
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    text = response.text.replace("\r\n", "\n")
    events = [block for block in text.split("\n\n") if block.strip()]
    kinds = []
    for block in events:
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        kinds.append((fields["event"], fields["data"]))
    assert kinds[0][0] == "step" and '"status":"running"' in kinds[0][1]
    assert kinds[1][0] == "run" and '"status":"running"' in kinds[1][1]
    assert kinds[-1][0] == "run" and '"status":"succeeded"' in kinds[-1][1]
    steps_done = [d for k, d in kinds if k == "step" and '"status":"done"' in d]
    assert len(steps_done) == 2


async def test_events_of_a_missing_run_are_404_before_any_stream(api: Api) -> None:
    response = await api.call("GET", f"{RUNS}/nope/events", api.viewer)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_a_step_test_renders_validates_and_calls_without_a_run(api: Api) -> None:
    body = {
        "action": "test.echo",
        "input": {"greeting": "Hi {{ trigger.name }}", "n": "{{ steps.find.output.count + 1 }}"},
        "trigger": {"name": "Ann"},
        "steps": {"find": {"count": 41}},
    }
    response = await api.call("POST", "/api/w/default/step-tests", api.editor, json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["ok"] is True
    assert result["output"] == {"greeting": "Hi Ann", "n": 42}
    runs = await api.call("GET", RUNS, api.viewer)
    assert runs.json()["items"] == []
    invalid = await api.call(
        "POST", "/api/w/default/step-tests", api.editor,
        json={"action": "test.sleep", "input": {"seconds": "soon"}},
    )  # fmt: skip
    assert invalid.json()["ok"] is False
    assert invalid.json()["error"]["kind"] == "input"
    assert "input.seconds" in invalid.json()["error"]["message"]
    broken = await api.call(
        "POST", "/api/w/default/step-tests", api.editor, json={"action": "test.boom"}
    )
    assert broken.json()["error"] == {"kind": "error", "message": "RuntimeError: kaboom"}
    syntax = await api.call(
        "POST", "/api/w/default/step-tests", api.editor,
        json={"action": "test.echo", "input": {"x": "{{ oops( }}"}},
    )  # fmt: skip
    assert syntax.status_code == 422
    assert syntax.json()["error"]["details"][0]["location"] == "input.x"
