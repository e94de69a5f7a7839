"""Claims and completions batched into one statement (PostgreSQL) do what one-by-one
claims and completions do (SQLite runs them one by one: the same tests hold there)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select, update

from hub.db.database import HOT_SETTINGS, run_writes
from hub.db.models import now_us, steps
from hub.db.runstate.claims import Claim
from hub.db.runstate.completions import Completion, ItemCompletion, is_final, is_simple
from hub.db.runstate.output import output_renderer
from hub.db.runstate.rows import claim
from hub.db.runstate.types import Outcome, RunInfo
from hub.runtime import Hub


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


FLOW = {
    "id": "fan",
    "steps": [
        {"id": "a", "action": "data.set", "input": {"value": 1}},
        {"id": "b", "action": "data.set", "needs": ["a"], "input": {"value": 2}},
        {"id": "c", "action": "data.set", "needs": ["a"], "input": {"value": 3}},
        {"id": "d", "action": "data.set", "needs": ["b", "c"], "input": {"value": 4}},
    ],
}


async def _rows(hub: Hub, run_id: str) -> dict[str, dict[str, Any]]:
    found = await hub.db.read(
        lambda c: c.execute(
            select(steps.c.key, steps.c.status, steps.c.lease_owner, steps.c.output).where(
                steps.c.run_id == run_id
            )
        ).all()
    )
    return {r.key: dict(r._mapping) for r in found}


async def test_which_completions_are_simple(hub: Hub) -> None:
    saved = await hub.save_flow(FLOW, publish=True)
    run_id = await hub.start_run(saved.flow_id)
    run = await hub.engine._run_info(run_id)
    flow = await hub.engine.get_flow(run.workspace_id, "fan", run.flow_version)
    assert is_simple(flow, "a")  # b and c need only a
    assert not is_simple(flow, "b")  # d is a join: the other need is read under the lock
    assert not is_simple(flow, "d")  # no successor: the run may finish
    assert not is_simple(flow, "a[0]") and not is_simple(flow, "h:a")


async def test_which_completions_finish_their_run(hub: Hub) -> None:
    """A step done finishes its run in the batched statement when every other step leads to
    it, it is last in the document, the flow has no output expression and the run no
    parent: nothing else need be read under the run's lock."""
    parallel = {  # c is last in the document, but b may still be running when c ends
        "id": "parallel",
        "steps": [
            {"id": "a", "action": "data.set", "input": {"value": 1}},
            {"id": "b", "action": "data.set", "needs": ["a"], "input": {"value": 2}},
            {"id": "c", "action": "data.set", "needs": ["a"], "input": {"value": 3}},
        ],
    }
    shaped = {**FLOW, "id": "shaped", "output": "{{ steps.a.output }}"}
    for document in (FLOW, parallel, shaped):
        await hub.save_flow(document, publish=True)
    run_id = await hub.start_run("fan")
    run = await hub.engine._run_info(run_id)
    fan = await hub.engine.get_flow(run.workspace_id, "fan", run.flow_version)
    assert is_final(fan, run, "d", "done")  # the join: a, b and c all lead to it
    assert not is_final(fan, run, "d", "skipped")  # the output is an earlier step's
    assert not any(is_final(fan, run, key, "done") for key in ("a", "b", "c", "d[0]", "h:d"))
    child = RunInfo(**{**vars(run), "parent_run_id": "p", "parent_step_key": "s"})
    assert not is_final(fan, child, "d", "done")  # its parent step is woken one by one
    other = await hub.engine.get_flow(run.workspace_id, "parallel", 1)
    assert not is_final(other, run, "c", "done") and not is_final(other, run, "b", "done")
    shaped_flow = await hub.engine.get_flow(run.workspace_id, "shaped", 1)
    assert not is_final(shaped_flow, run, "d", "done")


async def test_a_batch_finishes_the_runs_of_final_steps(hub: Hub) -> None:
    """Final steps completed in one batch (one statement with the other completions on
    PostgreSQL): each finishes its run, the step's output the run's; a final step whose
    lease was lost, or whose run was cancelled, finishes nothing."""
    await hub.executor.stop()
    chain = {
        "id": "pair",
        "steps": [
            {"id": "a", "action": "data.set", "input": {"value": 1}},
            {"id": "b", "action": "data.set", "needs": ["a"], "input": {"value": 2}},
        ],
    }
    await hub.save_flow(chain, publish=True)
    run_ids = await hub.engine.start_runs(hub.workspace, "pair", [None] * 4)
    owner = hub.engine.boot_id
    for run_id in run_ids:
        await hub.db.write(
            lambda c, r=run_id: c.execute(
                update(steps)
                .where(steps.c.run_id == r)
                .values(status="done", lease_owner=None, output=1)
            )
        )
        await hub.db.write(
            lambda c, r=run_id: c.execute(
                steps.insert().values(
                    run_id=r,
                    key="b",
                    step_id="b",
                    attempt=1,
                    status="queued",
                    resubmissions=0,
                    created_at=now_us(),
                )
            )
        )
        assert await hub.db.write(lambda c, r=run_id: claim(c, r, "b", 1, owner, 30)) is not None
    done, also_done, stolen, cancelled = run_ids
    await hub.db.write(
        lambda c: c.execute(
            update(steps)
            .where(steps.c.run_id == stolen, steps.c.key == "b")
            .values(lease_owner="someone-else")
        )
    )
    assert await hub.cancel_run(cancelled)
    completions = []
    for number, run_id in enumerate(run_ids):
        run = await hub.engine._run_info(run_id)
        flow = await hub.engine.get_flow(run.workspace_id, "pair", run.flow_version)
        output = {"n": number}
        completion = Completion(
            hub.engine.transitions,
            flow,
            run,
            (await _row_ids(hub, run_id))["b"],
            "b",
            1,
            "done",
            {"value": 2},
            output,
            output_renderer(run, flow, ("b", output)),
        )
        assert completion.final and completion.batchable
        completions.append(completion)
    outcomes: list[Outcome] = await hub.db.write(lambda c: run_writes(c, completions))

    for number, (run_id, outcome) in enumerate(zip((done, also_done), outcomes, strict=False)):
        assert not outcome.lost and not outcome.jobs and not outcome.eager
        assert [(f["id"], f["status"], f["output"]) for f in outcome.finished] == [
            (run_id, "succeeded", {"n": number})
        ]
        run = await hub.get_run(run_id)
        assert run["status"] == "succeeded" and run["output"] == {"n": number}
        assert run["finished_at"] is not None
        assert (await _rows(hub, run_id))["b"]["status"] == "done"
    assert outcomes[2].lost and not outcomes[2].finished
    assert (await hub.get_run(stolen, with_steps=False))["status"] == "running"
    assert (await _rows(hub, stolen))["b"]["status"] == "running"
    assert outcomes[3].lost and not outcomes[3].finished
    assert (await hub.get_run(cancelled, with_steps=False))["status"] == "cancelled"


async def test_a_batch_completes_its_steps_and_refuses_a_lost_lease(hub: Hub) -> None:
    """Three completions in one transaction (one statement on PostgreSQL): two insert their
    successors (the first one claimed by this process, the other queued); the third lost
    its lease and changes nothing."""
    await hub.executor.stop()  # nothing runs by itself: the test plays the worker
    await hub.save_flow(FLOW, publish=True)
    run_ids = await hub.engine.start_runs(hub.workspace, "fan", [None] * 3)
    owner = hub.engine.boot_id
    for run_id in run_ids:
        assert await hub.db.write(lambda c, r=run_id: claim(c, r, "a", 1, owner, 30)) is not None
    stolen = run_ids[2]
    await hub.db.write(
        lambda c: c.execute(
            update(steps).where(steps.c.run_id == stolen).values(lease_owner="someone-else")
        )
    )
    completions = []
    for run_id in run_ids:
        run = await hub.engine._run_info(run_id)
        flow = await hub.engine.get_flow(run.workspace_id, "fan", run.flow_version)
        row_id = (await _row_ids(hub, run_id))["a"]
        completions.append(
            Completion(
                hub.engine.transitions,
                flow,
                run,
                row_id,
                "a",
                1,
                "done",
                {"value": 1},
                {"n": 1},
                lambda c: ("succeeded", None, None),
            )
        )
    outcomes: list[Outcome] = await hub.db.write(lambda c: run_writes(c, completions))

    for run_id, outcome in zip(run_ids[:2], outcomes[:2], strict=True):
        assert not outcome.lost
        assert [(job.key, row["step_id"]) for job, row in outcome.eager] == [("b", "b")]
        assert [job.key for job in outcome.jobs] == ["c"]
        rows = await _rows(hub, run_id)
        assert rows["a"]["status"] == "done" and rows["a"]["lease_owner"] is None
        assert rows["a"]["output"] == {"n": 1}
        assert rows["b"]["status"] == "running" and rows["b"]["lease_owner"] == owner
        assert rows["c"]["status"] == "queued" and rows["c"]["lease_owner"] is None
        assert "d" not in rows
        eager_id = outcome.eager[0][1]["id"]
        assert (await _row_ids(hub, run_id))["b"] == eager_id

    assert outcomes[2].lost and not outcomes[2].jobs and not outcomes[2].eager
    rows = await _rows(hub, stolen)
    assert set(rows) == {"a"} and rows["a"]["status"] == "running"

    # Completing the same attempt again (a late duplicate) is refused too.
    again = await hub.db.write(lambda c: run_writes(c, completions[:1]))
    assert again[0].lost


async def _row_ids(hub: Hub, run_id: str) -> dict[str, int]:
    found = await hub.db.read(
        lambda c: c.execute(select(steps.c.key, steps.c.id).where(steps.c.run_id == run_id)).all()
    )
    return {r.key: r.id for r in found}


async def test_a_batch_of_claims_gives_each_step_once(hub: Hub) -> None:
    """Claims of one transaction (one statement on PostgreSQL): a queued step is taken; the
    same attempt asked for twice in the batch goes to the first asker only; a step that
    is not queued (taken, or a wait not yet due) is refused."""
    await hub.executor.stop()
    await hub.save_flow(
        {"id": "one", "steps": [{"id": "a", "action": "data.set", "input": {"value": 1}}]},
        publish=True,
    )
    free, twice, taken, waiting = await hub.engine.start_runs(hub.workspace, "one", [None] * 4)
    await hub.db.write(lambda c: claim(c, taken, "a", 1, "someone-else", 30))
    await hub.db.write(
        lambda c: c.execute(
            update(steps)
            .where(steps.c.run_id == waiting)
            .values(status="waiting", due_at=now_us() + 60_000_000)
        )
    )
    owner = hub.engine.boot_id
    claims = [
        Claim(free, "a", 1, owner, 30),
        Claim(twice, "a", 1, owner, 30),
        Claim(twice, "a", 1, owner, 30),
        Claim(taken, "a", 1, owner, 30),
        Claim(waiting, "a", 1, owner, 30),
        Claim(free, "a", 2, owner, 30),  # no such attempt
    ]
    results = await hub.db.write(lambda c: run_writes(c, claims))
    ids = await _row_ids(hub, free)
    assert results[0] == {"id": ids["a"], "step_id": "a", "item_index": None, "state": None}
    assert results[1] is not None and results[2] is None
    assert results[3] is None and results[4] is None and results[5] is None
    rows = await _rows(hub, free)
    assert rows["a"]["status"] == "running" and rows["a"]["lease_owner"] == owner
    assert (await _rows(hub, taken))["a"]["lease_owner"] == "someone-else"
    assert (await _rows(hub, waiting))["a"]["status"] == "waiting"
    # A claimed step is not claimed again.
    assert (await hub.db.write(Claim(free, "a", 1, owner, 30))) is None


async def test_a_fan_out_claims_as_many_items_as_there_is_room_for(hub: Hub) -> None:
    """The first items of a for_each (as many as this process has room for, the expanded
    step's own slot included) are inserted already claimed; the rest are queued for any
    worker; with a concurrency cap, the items beyond it wait as ``pending``."""
    await hub.executor.stop()
    await hub.save_flow(
        {
            "id": "each",
            "steps": [
                {"id": "e", "action": "flow.noop", "for_each": "{{ range(10) | list }}"},
                {"id": "c", "action": "flow.noop", "for_each": "{{ [1, 2] }}", "concurrency": 1},
            ],
        },
        publish=True,
    )
    run_id = await hub.start_run("each")
    run = await hub.engine._run_info(run_id)
    owner = hub.engine.boot_id
    row = await hub.db.write(lambda c: claim(c, run_id, "e", 1, owner, 30))
    assert row is not None
    transitions = hub.engine.transitions
    transitions.room = lambda: 2  # room for two more, and the expanded step's slot
    items = list(range(10))
    outcome = await hub.db.write(
        lambda c: transitions.expand(c, run, row["id"], "e", 1, items, None)
    )
    eager = [(job.key, claimed["item_index"], claimed["state"]) for job, claimed in outcome.eager]
    assert eager == [(f"e[{i}]", i, {"item": i}) for i in range(3)]
    assert [job.key for job in outcome.jobs] == [f"e[{i}]" for i in range(3, 10)]
    rows = await _rows(hub, run_id)
    assert all(rows[f"e[{i}]"]["lease_owner"] == owner for i in range(3))
    assert {rows[f"e[{i}]"]["status"] for i in range(3, 10)} == {"queued"}

    transitions.room = lambda: -5  # overloaded: not even the parent's slot is free
    again = await hub.start_run("each")
    again_row = await hub.db.write(lambda c: claim(c, again, "e", 1, owner, 30))
    assert again_row is not None
    again_run = await hub.engine._run_info(again)
    outcome = await hub.db.write(
        lambda c: transitions.expand(c, again_run, again_row["id"], "e", 1, items, None)
    )
    assert outcome.eager == [] and len(outcome.jobs) == 10
    assert {r["status"] for k, r in (await _rows(hub, again)).items() if "[" in k} == {"queued"}

    transitions.room = lambda: 0  # full: nothing is taken here, all goes to the queue
    capped = await hub.db.write(
        lambda c: c.execute(
            steps.insert()
            .values(
                run_id=run_id,
                key="c",
                step_id="c",
                attempt=1,
                status="running",
                lease_owner=owner,
                resubmissions=0,
                created_at=now_us(),
            )
            .returning(steps.c.id)
        ).scalar_one()
    )
    outcome = await hub.db.write(lambda c: transitions.expand(c, run, capped, "c", 1, [1, 2], 1))
    assert [job.key for job, _claimed in outcome.eager] == ["c[0]"]  # the parent's slot
    assert outcome.jobs == []
    assert (await _rows(hub, run_id))["c[1]"]["status"] == "pending"


async def test_a_completed_item_passes_its_slot_to_a_sibling(hub: Hub) -> None:
    """An item done here with room (its own slot at least) claims a sibling at once, in the
    same transaction: the newest queued one, whose job is then withdrawn (the queue's
    workers start from the oldest); in a capped fan-out, the next pending one (it has no
    job). Overloaded, it takes none: a capped fan-out queues its next item instead."""
    await hub.executor.stop()
    each = {"id": "e", "action": "flow.noop", "for_each": "{{ range(5) | list }}"}
    await hub.save_flow({"id": "each", "steps": [each]}, publish=True)
    await hub.save_flow({"id": "capped", "steps": [{**each, "concurrency": 1}]}, publish=True)
    owner = hub.engine.boot_id
    transitions = hub.engine.transitions
    transitions.room = lambda: 0  # full: each done item's own slot is all there is

    async def fan_out(flow_id: str, cap: int | None) -> tuple[str, Any, Any, Outcome]:
        run_id = await hub.start_run(flow_id)
        run = await hub.engine._run_info(run_id)
        flow = await hub.engine.get_flow(run.workspace_id, flow_id, run.flow_version)
        row = await hub.db.write(lambda c: claim(c, run_id, "e", 1, owner, 30))
        assert row is not None
        outcome = await hub.db.write(
            lambda c: transitions.expand(c, run, row["id"], "e", 1, list(range(5)), cap)
        )
        assert [job.key for job, _ in outcome.eager] == ["e[0]"]
        return run_id, run, flow, outcome

    async def complete(run: Any, flow: Any, job: Any, claimed: dict[str, Any]) -> Outcome:
        return await hub.db.write(
            lambda c: transitions.complete(
                c, flow, run, claimed["id"], job.key, 1, "done", None, None, lambda _c: None
            )
        )

    run_id, run, flow, outcome = await fan_out("each", None)
    after = await complete(run, flow, *outcome.eager[0])
    assert [(job.key, row["item_index"], row["state"]) for job, row in after.eager] == [
        ("e[4]", 4, {"item": 4})
    ]
    assert after.withdraw == [after.eager[0][0]] and after.jobs == []
    rows = await _rows(hub, run_id)
    assert rows["e[4]"]["status"] == "running" and rows["e[4]"]["lease_owner"] == owner
    assert {rows[f"e[{i}]"]["status"] for i in (1, 2, 3)} == {"queued"}

    transitions.room = lambda: -1  # overloaded: the done item's slot is not passed on
    after = await complete(run, flow, *after.eager[0])
    assert after.eager == [] and after.withdraw == [] and after.jobs == []
    assert {r["status"] for k, r in (await _rows(hub, run_id)).items() if "e[" in k} == {
        "done",
        "queued",
    }

    transitions.room = lambda: 0
    run_id, run, flow, outcome = await fan_out("capped", 1)
    after = await complete(run, flow, *outcome.eager[0])
    assert [job.key for job, _ in after.eager] == ["e[1]"]  # pending, in order, no job
    assert after.withdraw == [] and after.jobs == []
    transitions.room = lambda: -1
    after = await complete(run, flow, *after.eager[0])
    assert after.eager == [] and [job.key for job in after.jobs] == ["e[2]"]
    assert (await _rows(hub, run_id))["e[2]"]["status"] == "queued"


async def test_a_batch_of_item_completions_passes_slots_counts_down_and_fans_in_once(
    hub: Hub,
) -> None:
    """Item completions of two fan-outs in one transaction (one statement on PostgreSQL,
    one by one on SQLite, with the same result): each done item passes its slot to a
    queued sibling (claimed here, its job withdrawn); each fan-out's ``items_left`` goes
    down by its items done; an item whose lease was lost changes nothing; the batch that
    completes a fan-out's last items runs its fan-in once: the step is done with its items'
    outputs in order, and its successor follows."""
    await hub.executor.stop()  # nothing runs by itself: the test plays the worker
    each = {"id": "e", "action": "flow.noop", "for_each": "{{ range(4) | list }}"}
    after = {"id": "after", "action": "flow.noop", "needs": ["e"]}
    await hub.save_flow({"id": "four", "steps": [each, after]}, publish=True)
    pair = {**each, "for_each": "{{ range(2) | list }}"}
    await hub.save_flow({"id": "pair", "steps": [pair]}, publish=True)
    owner = hub.engine.boot_id
    transitions = hub.engine.transitions

    async def fan_out(flow_id: str, n: int) -> tuple[str, Any, Any]:
        run_id = await hub.start_run(flow_id)
        run = await hub.engine._run_info(run_id)
        flow = await hub.engine.get_flow(run.workspace_id, flow_id, run.flow_version)
        row = await hub.db.write(lambda c: claim(c, run_id, "e", 1, owner, 30))
        assert row is not None
        transitions.room = lambda: -1  # every item queued
        await hub.db.write(
            lambda c: transitions.expand(c, run, row["id"], "e", 1, list(range(n)), None)
        )
        return run_id, run, flow

    def item(run: Any, flow: Any, row_id: int, index: int) -> ItemCompletion:
        return ItemCompletion(
            transitions,
            flow,
            run,
            row_id,
            f"e[{index}]",
            1,
            "done",
            None,
            {"i": index},
            output_renderer(run, flow),
        )

    four_id, four, four_flow = await fan_out("four", 4)
    pair_id, pair_run, pair_flow = await fan_out("pair", 2)
    for run_id, key in ((four_id, "e[0]"), (four_id, "e[1]"), (pair_id, "e[0]"), (pair_id, "e[1]")):
        assert await hub.db.write(lambda c, r=run_id, k=key: claim(c, r, k, 1, owner, 30))
    await hub.db.write(
        lambda c: c.execute(
            update(steps)
            .where(steps.c.run_id == pair_id, steps.c.key == "e[1]")
            .values(lease_owner="someone-else")
        )
    )
    ids = await _row_ids(hub, four_id)
    pair_ids = await _row_ids(hub, pair_id)
    batch = [
        item(four, four_flow, ids["e[0]"], 0),
        item(four, four_flow, ids["e[1]"], 1),
        item(pair_run, pair_flow, pair_ids["e[0]"], 0),
        item(pair_run, pair_flow, pair_ids["e[1]"], 1),
    ]
    assert all(c.batchable for c in batch)
    transitions.room = lambda: 0  # full: each done item's own slot is all there is
    outcomes: list[Outcome] = await hub.db.write(lambda c: run_writes(c, batch))

    pulled = {job.key for o in outcomes[:2] for job, _row in o.eager}
    assert pulled == {"e[2]", "e[3]"}  # the siblings, claimed here ...
    assert {job.key for o in outcomes[:2] for job in o.withdraw} == pulled  # ... jobs withdrawn
    assert all(len(o.eager) == 1 for o in outcomes[:2])  # one slot each
    assert not outcomes[2].lost and outcomes[2].eager == []  # no sibling left to pull
    assert outcomes[3].lost and not outcomes[3].eager
    rows = await _rows(hub, four_id)
    assert [rows[f"e[{i}]"]["status"] for i in range(4)] == ["done", "done", "running", "running"]
    assert rows["e[2]"]["lease_owner"] == owner and rows["e"]["status"] == "waiting"
    left = await hub.db.read(
        lambda c: dict(
            c.execute(
                select(steps.c.run_id, steps.c.items_left).where(
                    steps.c.key == "e", steps.c.run_id.in_([four_id, pair_id])
                )
            ).all()
        )
    )
    assert left == {four_id: 2, pair_id: 1}  # the lost item was not counted
    assert (await _rows(hub, pair_id))["e[1]"]["status"] == "running"

    # The last two items, in one batch: the fan-in runs once, under the run's lock.
    last = [
        item(four, four_flow, row["id"], row["item_index"])
        for o in outcomes[:2]
        for _job, row in o.eager
    ]
    transitions.room = lambda: 5
    outcomes = await hub.db.write(lambda c: run_writes(c, last))
    successors = [job.key for o in outcomes for job, _row in o.eager] + [
        job.key for o in outcomes for job in o.jobs
    ]
    assert successors == ["after"]
    rows = await _rows(hub, four_id)
    assert rows["e"]["status"] == "done"
    assert rows["e"]["output"] == [{"i": 0}, {"i": 1}, {"i": 2}, {"i": 3}]
    assert rows["after"]["status"] == "running" and rows["after"]["lease_owner"] == owner


async def test_item_completions_take_more_siblings_when_there_is_room(
    hub: Hub, backend: str
) -> None:
    """With room to spare, a batch of item completions claims more queued siblings than
    the items it completed (on PostgreSQL, where a sibling taken in the statement saves
    its job's round trips to Redis); one by one (SQLite), each done item takes one."""
    await hub.executor.stop()
    each = {"id": "e", "action": "flow.noop", "for_each": "{{ range(6) | list }}"}
    await hub.save_flow({"id": "six", "steps": [each]}, publish=True)
    owner = hub.engine.boot_id
    transitions = hub.engine.transitions
    run_id = await hub.start_run("six")
    run = await hub.engine._run_info(run_id)
    flow = await hub.engine.get_flow(run.workspace_id, "six", run.flow_version)
    row = await hub.db.write(lambda c: claim(c, run_id, "e", 1, owner, 30))
    assert row is not None
    transitions.room = lambda: -1  # every item queued
    await hub.db.write(
        lambda c: transitions.expand(c, run, row["id"], "e", 1, list(range(6)), None)
    )
    assert await hub.db.write(lambda c: claim(c, run_id, "e[0]", 1, owner, 30))
    done = ItemCompletion(
        transitions,
        flow,
        run,
        (await _row_ids(hub, run_id))["e[0]"],
        "e[0]",
        1,
        "done",
        None,
        None,
        output_renderer(run, flow),
    )
    transitions.room = lambda: 3  # three more than the done item's own slot
    [outcome] = await hub.db.write(lambda c: run_writes(c, [done]))
    taken = [job.key for job, _row in outcome.eager]
    expected = ["e[5]", "e[4]", "e[3]", "e[2]"] if backend == "postgres" else ["e[5]"]
    assert taken == expected
    assert [job.key for job in outcome.withdraw] == expected
    # Slots beyond the done item's own stay promised until the engine starts their tasks.
    assert outcome.promised == transitions.promised == len(expected) - 1
    rows = await _rows(hub, run_id)
    assert {k for k, r in rows.items() if r["status"] == "running"} == set(expected)
    assert rows["e[1]"]["status"] == "queued"


async def test_a_runs_default_output_is_its_last_step_in_document_order(hub: Hub) -> None:
    """Without an ``output`` expression, a run's output is that of its last step in
    document order that ran: taken as it completes when that step, done, finishes the run
    (no read of every step's output), read back when another step finishes it or the last
    step was skipped."""
    chain = {
        "id": "chain",
        "steps": [
            {"id": "a", "action": "data.set", "input": {"value": 1}},
            {"id": "b", "action": "data.set", "needs": ["a"], "input": {"value": 2}},
        ],
    }
    late = {  # c is last in the document; b, slower, finishes the run
        "id": "late",
        "steps": [
            {"id": "a", "action": "data.set", "input": {"value": 1}},
            {"id": "b", "action": "test.sleep", "needs": ["a"], "input": {"seconds": 0.3}},
            {"id": "c", "action": "data.set", "needs": ["a"], "input": {"value": 3}},
        ],
    }
    skipped = {
        "id": "skipped",
        "steps": [
            {"id": "a", "action": "data.set", "input": {"value": 1}},
            {
                "id": "b",
                "action": "data.set",
                "needs": ["a"],
                "when": "{{ false }}",
                "input": {"value": 2},
            },
        ],
    }
    for flow in (chain, late, skipped):
        await hub.save_flow(flow, publish=True)
    outputs = []
    for flow_id in ("chain", "late", "skipped"):
        run = await hub.wait_for_run(await hub.start_run(flow_id), 20)
        assert run["status"] == "succeeded"
        outputs.append(run["output"])
    assert outputs == [2, 3, 1]  # a skipped step did not run: a's output


@pytest.mark.parametrize("backend", ["postgres"])
@pytest.mark.parametrize("runs", [100, 3000])
def test_the_batched_statements_find_every_row_by_key(settings: Any, runs: int) -> None:
    """Whatever the tables' statistics (a hundred runs, or thousands), the batched
    statements' plans, under the hot pipeline's connection's settings (generic plans, made
    once per connection; no sequential scans), reach runs and steps through their keys,
    never by scanning a table. Planned while the runs table was small, finishing runs
    hashed the whole table on each call: PostgreSQL's CPU per step doubled in the
    benchmark as the table grew."""
    import psycopg

    from hub.db.runstate.claims import _CLAIM_MANY
    from hub.db.runstate.completions import _COMPLETE_ITEMS, _COMPLETE_MANY

    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO runs (id, workspace_id, flow_id, flow_version, status, trigger_type,"
            " depth, created_at) SELECT 'r' || g, 'default', 'f', 1, 'running', 'manual', 0, 0"
            " FROM generate_series(1, %s) g",
            [runs],
        )
        conn.execute(
            "INSERT INTO steps (run_id, key, step_id, attempt, status, resubmissions,"
            " created_at) SELECT 'r' || g, 's' || k, 's' || k, 1, 'done', 0, 0"
            " FROM generate_series(1, %s) g, generate_series(1, 20) k",
            [runs],
        )
        conn.execute("ANALYZE")
        for name, value in HOT_SETTINGS.items():
            conn.execute(f"SET {name} = {value}".encode())
        for number, statement in enumerate((_COMPLETE_MANY, _COMPLETE_ITEMS, _CLAIM_MANY)):
            names: list[str] = []

            def numbered(match: re.Match[str], names: list[str] = names) -> str:
                if match.group(1) not in names:
                    names.append(match.group(1))
                return f"${names.index(match.group(1)) + 1}"

            text_clause = getattr(statement, "element", statement)
            sql = re.sub(r"(?<!:):(\w+)", numbered, text_clause.text)
            conn.execute(f"PREPARE batched{number} AS {sql}".encode())
            nulls = ", ".join(["NULL"] * len(names))
            plan = "\n".join(
                row[0] for row in conn.execute(f"EXPLAIN EXECUTE batched{number}({nulls})".encode())
            )
            assert "Seq Scan" not in plan, plan
