"""Pushed run events (issue 15): a live stream reads the run once, then applies the
engine's events, each carrying only the attempt that changed.

Embedded, the engine's watchers wake the stream; in queue mode a ``hub worker`` process
publishes its events on Redis and the API process's one subscription hands them to the
stream. The streams here run with a safety poll of an hour: a stream that ends at all was
ended by pushed events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from hub.engine.events import MAX_EVENT_BYTES, encode_event
from hub.services import live
from hub.settings import Settings
from tests import kit
from tests.api_kit import Api, started_api
from tests.conftest import worker_process

RUNS = "/api/w/default/runs"


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async for value in started_api(settings):
        yield value


@pytest.fixture
def only_pushed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Streams that never read the run again on their own (an hour between safety polls)."""
    monkeypatch.setattr(live, "SAFETY_POLL_SECONDS", 3600.0)
    monkeypatch.setattr(live, "DOWN_POLL_SECONDS", 3600.0)
    monkeypatch.setattr(live, "SETTLE_SECONDS", 3600.0)  # queue mode: no read after a watch


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """The (event, data) of a server-sent events body."""
    found = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in fields:
            found.append((fields.get("event", "message"), json.loads(fields["data"])))
    return found


async def until(condition: Any, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def test_an_event_too_big_to_publish_goes_without_its_data() -> None:
    small = {"type": "step", "key": "a", "attempt": 1, "output": {"n": 1}, "input": 2}
    assert msgspec.json.decode(encode_event(small, "me")) == {**small, "origin": "me"}
    big = {**small, "output": "x" * MAX_EVENT_BYTES}
    trimmed = msgspec.json.decode(encode_event(big, "me"))
    assert trimmed["trimmed"] is True and "output" not in trimmed and "input" not in trimmed
    assert trimmed["key"] == "a" and trimmed["attempt"] == 1


async def test_a_step_event_carries_the_attempt_that_changed_as_stored(api: Api) -> None:
    heard: list[dict[str, Any]] = []
    document = {
        "id": "told",
        "trigger": {"type": "manual"},
        "steps": [
            {"id": "each", "action": "test.echo", "for_each": "{{ [1, 2] }}", "input": {}},
            {"id": "after", "action": "test.echo", "input": {"got": "{{ trigger.x }}"}},
        ],
    }
    saved = await api.hub.save_flow(document, publish=True)
    with api.hub.service.watch(heard.append):
        run_id = await api.hub.start_run(saved.flow_id, {"x": "hello"})
        await api.hub.wait_for_run(run_id, 30)
    stored = {(s["key"], s["attempt"]): s for s in (await api.hub.get_run(run_id))["steps"]}
    steps = [e for e in heard if e["type"] == "step" and e["status"] in ("done", "waiting")]
    # the fan-out's own step ends in its last item's transaction: no event of its own
    assert sorted((e["key"], e["status"]) for e in steps) == [
        ("after", "done"),
        ("each", "waiting"),
        ("each[0]", "done"),
        ("each[1]", "done"),
    ]
    for event in (e for e in steps if e["status"] == "done"):
        row = stored[(event["key"], event["attempt"])]
        assert event["step_id"] == row["step_id"]
        assert event["item_index"] == row["item_index"]
        assert event["output"] == row["output"] and event["input"] == row["input"]
        assert event["started_at"] <= event["finished_at"]
    runs = [e for e in heard if e["type"] == "run"]
    assert [e["status"] for e in runs] == ["running", "succeeded"]


async def test_a_retried_attempt_event_has_its_error_and_no_end_and_the_next_one_ends(
    api: Api,
) -> None:
    heard: list[dict[str, Any]] = []
    document = {
        "id": "again",
        "trigger": {"type": "manual"},
        "steps": [
            {
                "id": "f",
                "action": "test.flaky",
                "retry": {"max_attempts": 2, "backoff": "constant", "initial": "10ms"},
                "input": {"succeed_on": 2},
            }
        ],
    }
    saved = await api.hub.save_flow(document, publish=True)
    with api.hub.service.watch(heard.append):
        run_id = await api.hub.start_run(saved.flow_id)
        await api.hub.wait_for_run(run_id, 30)
    steps = [e for e in heard if e["type"] == "step"]
    assert [(e["attempt"], e["status"]) for e in steps] == [(1, "retrying"), (2, "done")]
    retrying, done = steps
    assert retrying["finished_at"] is None and "attempt 1" in retrying["error"]["message"]
    assert retrying["input"] == {"succeed_on": 2} and retrying["output"] is None
    assert done["error"] is None and done["output"] == {"attempt": 2}
    assert done["started_at"] <= done["finished_at"] and done["seconds"] >= 0
    assert retrying["run_id"] == done["run_id"] == run_id and done["step_id"] == "f"


async def test_a_follower_sees_a_fan_out_end_before_its_run_does(
    api: Api, only_pushed: None
) -> None:
    document = {
        "id": "fan",
        "trigger": {"type": "manual"},
        "steps": [
            {
                "id": "each",
                "action": "test.gate",
                "for_each": "{{ [1, 2, 3] }}",
                "input": {"name": "fan", "value": "{{ item }}"},
            },
            {"id": "hold", "action": "test.gate", "input": {"name": "fan-after"}},
        ],
    }
    saved = await api.hub.save_flow(document, publish=True)
    run_id = await api.hub.start_run(saved.flow_id)
    await until(lambda: kit.CALLS["gate:fan"] == 3)
    seen: list[tuple[str, str, str]] = []

    async def follow() -> None:
        async for changes in api.hub.service.follow_run(run_id):
            for change in changes:
                seen.append((change.kind, change.data.get("key", ""), change.data["status"]))

    follower = asyncio.create_task(follow())
    await until(lambda: bool(api.hub.engine.watchers))
    kit.GATES.setdefault("fan", asyncio.Event()).set()
    # the step after the fan-out starts only once it ended: the follower must have seen it
    await until(lambda: ("step", "each", "done") in seen)
    assert ("run", "", "succeeded") not in seen
    kit.GATES.setdefault("fan-after", asyncio.Event()).set()
    async with asyncio.timeout(30):
        await follower
    assert seen[-1] == ("run", "", "succeeded")


async def test_the_api_stream_ends_on_pushed_events_embedded(api: Api, only_pushed: None) -> None:
    document = {
        "id": "pushed",
        "trigger": {"type": "manual"},
        "steps": [
            {"id": "hold", "action": "test.gate", "input": {"name": "push", "value": 7}},
            {"id": "after", "action": "test.echo", "input": {"v": "{{ steps.hold.output }}"}},
        ],
    }
    saved = await api.hub.save_flow(document, publish=True)
    run_id = await api.hub.start_run(saved.flow_id)
    await until(lambda: kit.CALLS["gate:push"] > 0)

    async def open_once_watched() -> None:
        await until(lambda: bool(api.hub.engine.watchers))  # the stream has read the run
        kit.GATES.setdefault("push", asyncio.Event()).set()

    opener = asyncio.create_task(open_once_watched())
    async with asyncio.timeout(30):
        response = await api.call("GET", f"{RUNS}/{run_id}/events", api.viewer)
    await opener
    assert response.status_code == 200
    events = sse_events(response.text)
    assert events[0][0] == "step" and events[0][1]["status"] == "running"
    assert events[1][0] == "run" and events[1][1]["status"] == "running"
    done = {d["key"]: d for kind, d in events if kind == "step" and d["status"] == "done"}
    assert done["hold"]["output"] == 7 and done["after"]["output"] == {"v": 7}
    assert events[-1][0] == "run" and events[-1][1]["status"] == "succeeded"


@pytest.mark.parametrize("backend", ["queue"])
async def test_a_step_a_hub_worker_finishes_reaches_the_stream_through_redis(
    api: Api, settings: Settings, only_pushed: None
) -> None:
    """The run is read while nothing has run it; a separate ``hub worker`` process then runs
    its steps: the stream sees them (and the run's end) only through the worker's events
    on Redis, and a step whose output is too big for an event is read alone."""
    big = "b" * (MAX_EVENT_BYTES + 10)
    document = {
        "id": "remote",
        "trigger": {"type": "manual"},
        "steps": [
            {"id": "first", "action": "data.set", "input": {"value": "{{ trigger.small }}"}},
            {"id": "large", "action": "data.set", "input": {"value": "{{ trigger.big }}"}},
        ],
    }
    saved = await api.hub.save_flow(document, publish=True)
    bus = api.hub.engine.events
    assert bus is not None
    await until(lambda: bus.connected)
    run_id = await api.hub.start_run(saved.flow_id, {"small": "from the worker", "big": big})
    log = settings.data_dir / "worker.log"

    async def stream() -> Any:
        return await api.call("GET", f"{RUNS}/{run_id}/events", api.viewer)

    reader = asyncio.create_task(stream())
    await until(lambda: bool(api.hub.engine.watchers))  # read before any step ran
    await until(lambda: bus.subscribed(run_id))
    assert (await api.hub.get_run(run_id))["steps"][0]["status"] == "queued"
    async with worker_process(settings, log):
        async with asyncio.timeout(60):
            response = await reader
    assert response.status_code == 200, response.text
    events = sse_events(response.text)
    assert events[0][0] == "step" and events[0][1]["status"] == "queued"
    done = {d["key"]: d for kind, d in events if kind == "step" and d["status"] == "done"}
    assert done["first"]["output"] == "from the worker", log.read_text()[-2000:]
    assert done["large"]["output"] == big  # trimmed from the event, read alone
    assert events[-1][0] == "run" and events[-1][1]["status"] == "succeeded"


async def test_a_run_nobody_watches_goes_quiet_for_a_moment(redis_server: Any) -> None:
    """A publish that reached nobody drops that run's next events for QUIET_SECONDS (what a
    worker saves when no live view is open); once a view watches, events arrive again."""
    import time

    import redis.asyncio

    from hub.engine import events as bus_module

    client = redis.asyncio.Redis.from_url(redis_server.url)
    publisher = bus_module.EventBus(client, "worker")
    viewer = bus_module.EventBus(client, "api")
    heard: list[dict[str, Any]] = []
    listening = asyncio.create_task(viewer.listen(heard.append))
    run_id = "r" + str(time.time_ns())

    def event(n: int) -> dict[str, Any]:
        return {"type": "step", "run_id": run_id, "key": f"s{n}", "attempt": 1, "status": "done"}

    try:
        await until(lambda: viewer.connected)
        publisher.publish(event(1))  # nobody watches: the run goes quiet
        await publisher.flush()
        quiet_until = time.monotonic() + bus_module.QUIET_SECONDS
        viewer.watch(run_id)
        await until(lambda: viewer.subscribed(run_id))
        publisher.publish(event(2))  # dropped: still quiet
        await publisher.flush()
        await until(lambda: time.monotonic() > quiet_until)
        publisher.publish(event(3))
        await publisher.flush()
        await until(lambda: bool(heard))
        assert [e["key"] for e in heard] == ["s3"]
        viewer.unwatch(run_id)
        await until(lambda: not viewer.subscribed(run_id))
    finally:
        listening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listening
        await client.aclose()


@pytest.mark.parametrize("backend", ["queue"])
async def test_a_follower_reads_once_more_for_what_a_quiet_worker_dropped(
    api: Api, settings: Settings, only_pushed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker (a second hub of this process, publishing through Redis) that found nobody
    watching a run drops its events for a while: the follower's one read after it starts
    watching (SETTLE_SECONDS) finds what was dropped."""
    from hub.engine import events as bus_module
    from hub.engine.executors.arq import PRIORITIES, run_worker
    from tests.conftest import make_hub

    monkeypatch.setattr(bus_module, "QUIET_SECONDS", 3600.0)  # the worker never publishes
    monkeypatch.setattr(live, "SETTLE_SECONDS", 3.0)
    document = {
        "id": "quiet",
        "trigger": {"type": "manual"},
        "steps": [{"id": "hold", "action": "test.gate", "input": {"name": "quiet", "value": 5}}],
    }
    saved = await api.hub.save_flow(document, publish=True)
    worker_hub = make_hub(settings)
    await worker_hub.start(migrate=False)
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(worker_hub, queues=PRIORITIES, stop=stop))
    try:
        run_id = await api.hub.start_run(saved.flow_id)
        await until(lambda: kit.CALLS["gate:quiet"] > 0)
        worker_bus = worker_hub.engine.events
        assert worker_bus is not None
        worker_bus.publish({"type": "run", "run_id": run_id, "status": "running"})
        await worker_bus.flush()  # nobody watched: the run is quiet on the worker
        assert not worker_bus.wants(run_id)
        seen: list[tuple[str, str, str]] = []

        async def follow() -> None:
            async for changes in api.hub.service.follow_run(run_id):
                for change in changes:
                    seen.append((change.kind, change.data.get("key", ""), change.data["status"]))

        follower = asyncio.create_task(follow())
        await until(lambda: ("step", "hold", "running") in seen)
        kit.GATES.setdefault("quiet", asyncio.Event()).set()
        async with asyncio.timeout(30):
            await follower
        assert ("step", "hold", "done") in seen
        assert seen[-1] == ("run", "", "succeeded")
    finally:
        stop.set()
        await worker
        await worker_hub.stop(grace=1.0)
