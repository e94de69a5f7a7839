"""The run protocol on the embedded default (SQLite, in-process executor)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import select

from hub.db.models import steps
from hub.runtime import Hub
from hub.settings import Settings
from tests import kit
from tests.conftest import run_flow, started


@pytest.fixture(params=["sqlite", "postgres", "queue"])
def backend(request: pytest.FixtureRequest) -> str:
    """The engine suite runs on each shape."""
    return str(request.param)


def flow(*steps: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": extra.pop("id", "f"), "steps": list(steps), **extra}


def by_key(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The latest attempt of each step key."""
    latest: dict[str, dict[str, Any]] = {}
    for step in run["steps"]:
        if step["key"] not in latest or step["attempt"] > latest[step["key"]]["attempt"]:
            latest[step["key"]] = step
    return latest


async def test_chain_runs_in_document_order_and_passes_outputs(hub: Hub) -> None:
    run = await run_flow(
        hub,
        flow(
            {"id": "a", "action": "data.set", "input": {"value": "{{ trigger.n + 1 }}"}},
            {"id": "b", "action": "data.set", "input": {"value": "{{ steps.a.output * 10 }}"}},
            {"id": "c", "action": "data.set", "input": {"value": ["{{ steps.b.output }}", "x"]}},
        ),
        {"n": 1},
    )
    assert run["status"] == "succeeded"
    assert run["output"] == [20, "x"]
    steps = by_key(run)
    assert [s["key"] for s in run["steps"]] == ["a", "b", "c"]
    assert steps["a"]["finished_at"] <= steps["b"]["started_at"]


async def test_native_types_and_text_that_looks_like_a_number_stays_text(hub: Hub) -> None:
    run = await run_flow(
        hub,
        flow(
            {
                "id": "a",
                "action": "data.set",
                "input": {
                    "value": {
                        "phone": "{{ trigger.phone }}",
                        "n": "{{ trigger.n }}",
                        "t": "n={{ trigger.n }}",
                    }
                },
            }
        ),
        {"phone": "+15551234", "n": 7},
    )
    assert run["output"] == {"phone": "+15551234", "n": 7, "t": "n=7"}


async def test_independent_branches_run_concurrently(hub: Hub) -> None:
    document = flow(
        {"id": "left", "action": "test.sleep", "needs": [], "input": {"seconds": 0.4, "value": 1}},
        {"id": "right", "action": "test.sleep", "needs": [], "input": {"seconds": 0.4, "value": 2}},
        {
            "id": "join",
            "action": "data.set",
            "needs": ["left", "right"],
            "input": {"value": "{{ steps.left.output + steps.right.output }}"},
        },
    )
    run = await run_flow(hub, document)
    assert run["output"] == 3
    assert kit.IN_FLIGHT["max"] == 2  # both branches were in their action at the same time


async def test_when_false_skips_without_cascading(hub: Hub) -> None:
    run = await run_flow(
        hub,
        flow(
            {"id": "a", "action": "data.set", "when": "{{ trigger.go }}", "input": {"value": 1}},
            {"id": "b", "action": "data.set", "input": {"value": "{{ steps.a.output is none }}"}},
        ),
        {"go": False},
    )
    steps = by_key(run)
    assert steps["a"]["status"] == "skipped"
    assert steps["a"]["output"] is None
    assert run["output"] is True


async def test_for_each_keeps_item_order_and_caps_concurrency(hub: Hub) -> None:
    run = await run_flow(
        hub,
        flow(
            {
                "id": "each",
                "action": "test.sleep",
                "for_each": "{{ trigger.items }}",
                "concurrency": 3,
                "input": {"seconds": "{{ 0.05 * (10 - item) }}", "value": "{{ item * index }}"},
            }
        ),
        {"items": list(range(10))},
    )
    assert run["status"] == "succeeded"
    assert run["output"] == [i * i for i in range(10)]
    assert kit.IN_FLIGHT["max"] == 3
    assert {s["key"] for s in run["steps"]} >= {f"each[{i}]" for i in range(10)}


async def test_for_each_over_empty_list_outputs_empty_list(hub: Hub) -> None:
    run = await run_flow(
        hub,
        flow({"id": "each", "action": "data.set", "for_each": "{{ [] }}", "input": {"value": 1}}),
    )
    assert run["status"] == "succeeded"
    assert run["output"] == []


async def test_for_each_item_failure_with_continue_gives_null_for_that_item(hub: Hub) -> None:
    run = await run_flow(
        hub,
        flow(
            {
                "id": "each",
                "action": "flow.fail",
                "for_each": "{{ [1, 2] }}",
                "on_error": "continue",
                "input": {"message": "no {{ item }}"},
            },
            {"id": "after", "action": "data.set", "input": {"value": "{{ steps.each.output }}"}},
        ),
    )
    assert run["status"] == "succeeded"
    assert run["output"] == [None, None]
    errors = [s["error"]["message"] for s in run["steps"] if s["status"] == "done" and s["error"]]
    assert sorted(errors) == ["no 1", "no 2"]


async def test_retry_per_item_then_success(hub: Hub) -> None:
    run = await run_flow(
        hub,
        flow(
            {
                "id": "each",
                "action": "test.flaky",
                "for_each": "{{ [1, 2] }}",
                "retry": {"max_attempts": 3, "initial": "10ms", "max": "20ms"},
                "input": {"succeed_on": 3},
            }
        ),
    )
    assert run["status"] == "succeeded"
    assert run["output"] == [{"attempt": 3}, {"attempt": 3}]
    assert kit.CALLS["flaky:each[0]"] == 3
    assert kit.CALLS["flaky:each[1]"] == 3


async def test_raising_action_is_retried_by_policy_then_recorded_as_failed(hub: Hub) -> None:
    run = await run_flow(
        hub,
        flow(
            {
                "id": "f",
                "action": "test.flaky",
                "retry": {"max_attempts": 3, "backoff": "constant", "initial": "20ms"},
                "input": {},
            }
        ),
    )
    assert run["status"] == "failed"
    attempts = [s for s in run["steps"] if s["key"] == "f"]
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert all(a["status"] == "failed" for a in attempts)
    assert "attempt 3" in run["error"]["message"]
    assert run["error"]["step"] == "f"


async def test_non_retryable_error_is_not_retried(hub: Hub) -> None:
    run = await run_flow(
        hub,
        flow({"id": "b", "action": "test.boom", "retry": {"max_attempts": 5, "initial": "10ms"}}),
    )
    assert run["status"] == "failed"
    assert kit.CALLS["boom:b"] == 1
    assert "RuntimeError: kaboom" in run["error"]["message"]


async def test_hung_action_is_stopped_by_its_timeout(hub: Hub) -> None:
    started = time.perf_counter()
    run = await run_flow(
        hub,
        flow({"id": "hang", "action": "test.sleep", "timeout": "200ms", "input": {"seconds": 30}}),
    )
    assert run["status"] == "failed"
    assert "timed out after 0.2s" in run["error"]["message"]
    assert time.perf_counter() - started < 5


async def test_output_that_breaks_its_schema_fails_the_step(hub: Hub) -> None:
    run = await run_flow(hub, flow({"id": "bad", "action": "test.bad_output"}))
    assert run["status"] == "failed"
    assert (
        "steps.bad.output.count: 'not a number' is not of type 'integer'" in run["error"]["message"]
    )


async def test_rendered_input_that_breaks_the_schema_fails_without_calling(hub: Hub) -> None:
    run = await run_flow(
        hub,
        flow({"id": "s", "action": "test.sleep", "input": {"seconds": "{{ trigger.x }}"}}),
        {"x": "soon"},
    )
    assert run["status"] == "failed"
    assert "steps.s.input.seconds" in run["error"]["message"]
    assert kit.IN_FLIGHT["max"] == 0


async def test_on_error_continue_counts_the_step_as_done_with_null(hub: Hub) -> None:
    run = await run_flow(
        hub,
        flow(
            {"id": "x", "action": "test.boom", "on_error": "continue"},
            {"id": "y", "action": "data.set", "input": {"value": "{{ steps.x.output }}"}},
        ),
    )
    assert run["status"] == "succeeded"
    assert run["output"] is None
    assert by_key(run)["x"]["status"] == "done"


async def test_handler_step_runs_with_the_error_and_the_flow_goes_on(hub: Hub) -> None:
    run = await run_flow(
        hub,
        flow(
            {"id": "x", "action": "test.boom", "on_error": "fix"},
            {"id": "fix", "action": "data.set", "input": {"value": "fixed: {{ error.message }}"}},
            {"id": "y", "action": "data.set", "input": {"value": "after {{ steps.x.output }}"}},
        ),
    )
    assert run["status"] == "succeeded", run["error"]
    steps = by_key(run)
    assert steps["fix:x"]["output"] == "fixed: RuntimeError: kaboom"
    assert run["output"] == "after None"
    assert "fix" not in steps  # a handler never runs in the normal order


async def test_failed_run_cancels_the_other_branch(hub: Hub) -> None:
    run = await run_flow(
        hub,
        flow(
            {"id": "slow", "action": "test.gate", "needs": [], "input": {"name": "never"}},
            {"id": "bad", "action": "test.boom", "needs": []},
        ),
    )
    assert run["status"] == "failed"
    assert by_key(run)["slow"]["status"] == "cancelled"


async def test_cancel_run_stops_waiting_and_running_steps(hub: Hub) -> None:
    await hub.save_flow(
        flow(
            {"id": "wait", "action": "flow.delay", "needs": [], "input": {"seconds": 3600}},
            {"id": "busy", "action": "test.gate", "needs": [], "input": {"name": "g"}},
        ),
        publish=True,
    )
    run_id = await hub.start_run("f")
    for _ in range(100):
        if kit.CALLS["gate:g"]:
            break
        await asyncio.sleep(0.01)
    assert await hub.cancel_run(run_id) is True
    run = await hub.get_run(run_id)
    assert run["status"] == "cancelled"
    assert {s["key"]: s["status"] for s in run["steps"]} == {
        "wait": "cancelled",
        "busy": "cancelled",
    }
    await asyncio.sleep(0.05)
    assert hub.engine.running_count == 0
    assert await hub.cancel_run(run_id) is False


async def test_delay_is_durable_and_survives_a_restart(settings: Settings) -> None:
    async with started(settings) as first:
        await first.save_flow(
            flow(
                {"id": "wait", "action": "flow.delay", "input": {"seconds": 3}},
                {
                    "id": "after",
                    "action": "data.set",
                    "input": {"value": "{{ steps.wait.output.waited_until }}"},
                },
            ),
            publish=True,
        )
        run_id = await first.start_run("f")
        deadline = time.monotonic() + 30
        while (await first.get_run(run_id))["steps"][0]["status"] != "waiting":
            assert time.monotonic() < deadline, "the delay step never started waiting"
            await asyncio.sleep(0.02)

    async with started(settings) as second:
        record = await second.wait_for_run(run_id, timeout=60)
        assert record["status"] == "succeeded"
        run = await second.get_run(run_id)
        wait = by_key(run)["wait"]
        assert (wait["finished_at"] - run["created_at"]) / 1e6 >= 3
        assert run["output"].startswith("20")


async def test_sub_flow_output_is_used_by_the_caller(hub: Hub) -> None:
    await hub.save_flow(
        flow(
            {"id": "double", "action": "data.set", "input": {"value": "{{ trigger.n * 2 }}"}},
            id="child",
        ),
        publish=True,
    )
    run = await run_flow(
        hub,
        flow(
            {
                "id": "call",
                "action": "flow.call",
                "input": {"flow": "child", "input": {"n": "{{ trigger.n }}"}},
            },
            {"id": "use", "action": "data.set", "input": {"value": "{{ steps.call.output + 1 }}"}},
        ),
        {"n": 20},
    )
    assert run["status"] == "succeeded"
    assert run["output"] == 41
    children = await hub.list_runs(flow_id="child")
    assert children[0]["parent_run_id"] == run["id"]


async def test_sub_flow_depth_is_bounded(settings: Settings) -> None:
    async with started(settings.replace(max_subflow_depth=3)) as hub:
        run = await run_flow(
            hub,
            flow({"id": "again", "action": "flow.call", "input": {"flow": "f", "input": None}}),
            timeout=30,
        )
        assert run["status"] == "failed"
        assert "depth" in run["error"]["message"]


async def test_failing_sub_flow_fails_the_calling_step(hub: Hub) -> None:
    await hub.save_flow(
        flow({"id": "x", "action": "flow.fail", "input": {"message": "inner"}}, id="child"),
        publish=True,
    )
    run = await run_flow(
        hub, flow({"id": "call", "action": "flow.call", "input": {"flow": "child"}})
    )
    assert run["status"] == "failed"
    assert "inner" in run["error"]["message"]


async def test_run_is_pinned_to_the_version_it_started_with(hub: Hub) -> None:
    v1 = flow(
        {"id": "gate", "action": "test.gate", "input": {"name": "pin"}},
        {"id": "out", "action": "data.set", "input": {"value": "v1"}},
    )
    await hub.save_flow(v1, publish=True)
    run_id = await hub.start_run("f")
    while not kit.CALLS["gate:pin"]:
        await asyncio.sleep(0.01)
    v2 = flow(
        {"id": "gate", "action": "test.gate", "input": {"name": "pin"}},
        {"id": "out", "action": "data.set", "input": {"value": "v2"}},
    )
    saved = await hub.save_flow(v2, publish=True)
    assert saved.version == 2
    kit.GATES["pin"].set()
    record = await hub.wait_for_run(run_id, 5)
    assert record["output"] == "v1"
    fresh = await run_flow(hub, v2)
    assert fresh["output"] == "v2"


async def test_secrets_are_redacted_in_run_records_and_logs(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "s3cr3t-token-value"
    await hub.set_connection("svc", "test", {"token": secret, "region": "eu"})
    run = await run_flow(
        hub,
        flow(
            {
                "id": "a",
                "action": "test.use_secret",
                "connection": "svc",
                "input": {"sent": "{{ 'x' }}"},
            },
            {"id": "b", "action": "test.use_secret", "connection": "svc", "input": {"fail": True}},
        ),
    )
    assert run["status"] == "failed"
    text = repr(run)
    assert secret not in text
    assert "Bearer [redacted]" in text
    assert "service refused token [redacted]" in run["error"]["message"]
    assert secret not in caplog.text
    assert "calling with token [redacted]" in caplog.text
    stored = await hub.db.read(
        lambda c: c.exec_driver_sql("SELECT secrets FROM connections").scalar()
    )
    assert secret not in stored


async def test_idempotency_key_is_stable_across_attempts(hub: Hub) -> None:
    run = await run_flow(hub, flow({"id": "k", "action": "test.count_key"}))
    assert run["output"] == {"key": f"{run['id']}:k"}


@pytest.mark.parametrize(
    "bomb",
    [
        "{{ 'a' * 10**9 }}",
        "{{ [1] * 10**9 }}",
        "{% for i in range(10**9) %}x{% endfor %}",
        "{% for a in range(5000) %}{% for b in range(5000) %}x{% endfor %}{% endfor %}",
        "{{ '%999999999s' | format(1) }}",
        "{{ 'x' | center(10**9) }}",
        "{{ 2 ** 100000000 }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ '{0.__class__}'.format(trigger) }}",
    ],
)
async def test_expression_bombs_and_escapes_fail_the_step_and_the_hub_keeps_serving(
    hub: Hub, bomb: str
) -> None:
    started = time.perf_counter()
    run = await run_flow(hub, flow({"id": "b", "action": "data.set", "input": {"value": bomb}}), {})
    assert run["status"] == "failed"
    assert (
        run["error"]["message"].startswith("steps[0].input.value")
        or "steps" in run["error"]["message"]
    )
    assert time.perf_counter() - started < 5
    fine = await run_flow(
        hub, flow({"id": "ok", "action": "data.set", "input": {"value": "{{ 6 * 7 }}"}}, id="g")
    )
    assert fine["output"] == 42


async def test_a_stray_cancellation_of_a_step_queues_it_again(hub: Hub) -> None:
    """On Python 3.11 a timeout expiring as the read it guards completes (redis-py's
    zero-second readiness check) leaves a CancelledError that nobody asked for
    (``cancelling()`` is 0). A step that gets one goes back to the queue at once, its
    attempt unchanged, and runs again; it is neither a failed attempt nor left running
    until its lease expires. A real cancellation (cancelling a run) still stops it."""
    sleepy = {"id": "nap", "action": "test.sleep", "input": {"seconds": 0.3, "value": 7}}
    await hub.save_flow({"id": "nap", "steps": [sleepy]}, publish=True)
    run_id = await hub.start_run("nap")
    while not hub.engine._running:
        await asyncio.sleep(0.005)
    [(_since, _job, task)] = hub.engine._running.values()
    assert task is not None
    task.cancel()  # what the expiring timeout does ...
    task.uncancel()  # ... and what it undoes on leaving the block
    run = await hub.wait_for_run(run_id, 10)
    assert run["status"] == "succeeded" and run["output"] == 7
    attempts = await hub.db.read(
        lambda c: c.execute(
            select(steps.c.attempt, steps.c.status, steps.c.resubmissions).where(
                steps.c.run_id == run_id
            )
        ).all()
    )
    assert [tuple(a) for a in attempts] == [(1, "done", 1)]  # same attempt, handed back once


async def test_runs_facts_asked_for_together_are_read_in_one_query(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burst of new runs reaching a worker asks for each run's facts at once: the runs
    not cached are read in one query, and a run that does not exist fails alone."""
    import hub.engine.reads as engine_module
    from hub.engine import RunNotFound

    await hub.executor.stop()
    await hub.save_flow(
        {"id": "one", "steps": [{"id": "a", "action": "data.set", "input": {"value": 1}}]},
        publish=True,
    )
    run_ids = await hub.engine.start_runs(hub.workspace, "one", [None] * 5)
    hub.engine._runs.clear()
    asked: list[list[str]] = []
    original = engine_module.run_infos

    def counted(conn: Any, ids: Any) -> Any:
        asked.append(sorted(ids))
        return original(conn, ids)

    monkeypatch.setattr(engine_module, "run_infos", counted)
    found = await asyncio.gather(
        *(hub.engine._run_info(run_id) for run_id in [*run_ids, "no-such-run"]),
        return_exceptions=True,
    )
    assert asked == [sorted([*run_ids, "no-such-run"])]
    assert [info.id for info in found[:5]] == run_ids  # type: ignore[union-attr]
    assert isinstance(found[5], RunNotFound)
    assert await hub.engine._run_info(run_ids[0]) is found[0]  # cached now
    assert len(asked) == 1
