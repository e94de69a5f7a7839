"""Trial runs (the flow builder's "try it"): a draft run with pinned outputs, stopping after
a chosen step, kept apart from production runs, in embedded and queue mode.

Nothing is mocked: real SQLite (PostgreSQL and Redis for queue mode, with a separate ``hub
worker`` process), the real engine, and a loopback stand-in HTTP server that counts the
requests it gets (so "not called" is the service's own count, not the hub's word).
"""

from __future__ import annotations

import asyncio
import json
import threading
import types
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from hub import hookimpl
from hub.db.models import audit_log, runs, steps, trial_documents
from hub.db.trials import TRIAL_VERSION
from hub.runtime import Hub
from hub.services.overview import attention
from hub.settings import Settings
from hub.testing import http_client
from tests import kit
from tests.api_kit import Api, started_api
from tests.conftest import started, worker_process

RUNS = "/api/w/default/runs"


class CountingServer(ThreadingHTTPServer):
    """A loopback stand-in service: answers ``{"n": 41}`` and counts the requests."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests = 0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/thing"


class _Handler(BaseHTTPRequestHandler):
    server: CountingServer

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.requests += 1
        body = json.dumps({"n": 41}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def service() -> Iterator[CountingServer]:
    server = CountingServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The conftest's settings, with the loopback stand-in allowed to ``http.request``."""
    return settings.replace(allow_hosts=("127.0.0.1",))


@pytest.fixture
async def hub(settings: Settings) -> AsyncIterator[Hub]:
    async with started(settings) as instance:
        yield instance


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async for value in started_api(settings):
        yield value


def fetch_flow(url: str, flow_id: str = "fetcher") -> dict[str, Any]:
    """fetch (http.request to the stand-in) -> use (reads fetch's output)."""
    return {
        "id": flow_id,
        "trigger": {"type": "manual"},
        "steps": [
            {"id": "fetch", "action": "http.request", "input": {"method": "GET", "url": url}},
            {
                "id": "use",
                "action": "data.set",
                "input": {"value": "{{ steps.fetch.output.json.n + trigger.add }}"},
            },
        ],
    }


PINNED_FETCH = {"status": 200, "headers": {}, "json": {"n": 1000}, "text": ""}


async def finished_run(hub: Hub, run_id: str) -> dict[str, Any]:
    await hub.wait_for_run(run_id, 30)
    return await hub.get_run(run_id)


def by_step(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["key"]: s for s in record["steps"]}


async def test_a_pinned_step_is_not_called_and_the_next_step_reads_its_pin(
    hub: Hub, service: CountingServer
) -> None:
    document = fetch_flow(service.url)
    run_id = await hub.service.start_trial(
        document, trigger={"add": 1}, pins={"fetch": PINNED_FETCH}, stop_after=None
    )
    record = await finished_run(hub, run_id)
    assert record["status"] == "succeeded", record
    assert record["trial"] is True and record["flow_version"] == TRIAL_VERSION
    done = by_step(record)
    assert done["fetch"]["status"] == "done" and done["fetch"]["output"] == PINNED_FETCH
    assert done["use"]["output"] == 1001
    assert record["output"] == 1001
    assert service.requests == 0  # the stand-in was never called
    state = await hub.db.read(
        lambda c: c.execute(
            select(steps.c.state).where(steps.c.run_id == run_id, steps.c.key == "fetch")
        ).scalar_one()
    )
    assert state == {"pinned": True}

    # The same flow saved and run for real: pins live with the trial, not in the document.
    saved = await hub.save_flow(document, publish=True)
    production = await finished_run(hub, await hub.start_run(saved.flow_id, {"add": 1}))
    assert production["status"] == "succeeded" and production["trial"] is False
    assert by_step(production)["use"]["output"] == 42
    assert service.requests == 1


async def test_a_pinned_for_each_step_is_pinned_whole(hub: Hub) -> None:
    document = {
        "id": "looped",
        "trigger": {"type": "manual"},
        "steps": [
            {
                "id": "each",
                "action": "test.boom",  # would fail on every item if it ran
                "for_each": "{{ trigger.items }}",
                "input": {"x": "{{ item }}"},
            },
            {"id": "count", "action": "data.set", "input": {"value": "{{ steps.each.output }}"}},
        ],
    }
    run_id = await hub.service.start_trial(
        document, trigger={"items": [1, 2, 3]}, pins={"each": ["a", "b"]}, stop_after=None
    )
    record = await finished_run(hub, run_id)
    assert record["status"] == "succeeded", record
    assert [s["key"] for s in record["steps"]] == ["each", "count"]  # no item ran
    assert by_step(record)["count"]["output"] == ["a", "b"]


async def test_stop_after_runs_only_that_step_its_ancestors_and_their_handlers(
    hub: Hub,
) -> None:
    document = {
        "id": "branches",
        "trigger": {"type": "manual"},
        "steps": [
            {"id": "a", "action": "data.set", "input": {"value": 1}},
            {"id": "b", "action": "data.set", "needs": [], "input": {"value": 2}},
            {"id": "c", "action": "test.boom", "input": {}, "on_error": "h"},
            {"id": "h", "action": "data.set", "input": {"value": "{{ error.message }}"}},
            {"id": "d", "action": "data.set", "input": {"value": "{{ steps.c.output }}"}},
        ],
    }
    run_id = await hub.service.start_trial(document, trigger=None, pins=None, stop_after="c")
    record = await finished_run(hub, run_id)
    assert record["status"] == "succeeded", record
    ran = {s["step_id"] for s in record["steps"]}
    # c follows b in the document (no needs): b is its ancestor, a and d are not.
    assert ran == {"b", "c", "h"}, ran
    handler = next(s for s in record["steps"] if s["step_id"] == "h")
    assert "kaboom" in handler["output"], handler
    assert record["output"] is None  # c's: handled, its output is null (not h's)
    only_b = await hub.service.start_trial(document, trigger=None, pins=None, stop_after="b")
    assert (await hub.wait_for_run(only_b, 30))["output"] == 2

    whole = await finished_run(
        hub, await hub.service.start_trial(document, trigger=None, pins=None, stop_after=None)
    )
    assert {s["step_id"] for s in whole["steps"]} == {"a", "b", "c", "h", "d"}


async def test_a_trial_is_refused_like_a_save_and_for_unknown_pins(hub: Hub) -> None:
    from hub.flows import FlowError
    from hub.services.errors import Invalid

    document = {
        "id": "small",
        "trigger": {"type": "manual"},
        "steps": [{"id": "one", "action": "data.set", "input": {"value": 1}}],
    }
    with pytest.raises(FlowError):
        broken = {**document, "steps": [{"id": "one", "action": "no.such"}]}
        await hub.service.start_trial(broken, trigger=None, pins=None, stop_after=None)
    with pytest.raises(Invalid) as caught:
        await hub.service.start_trial(document, trigger=None, pins={"two": 1}, stop_after="x")
    locations = {i["location"] for i in caught.value.details}
    assert locations == {"pins.two", "stop_after"}


async def test_trial_runs_are_kept_apart_from_production_runs(
    api: Api, service: CountingServer
) -> None:
    hub = api.hub
    failing = {
        "id": "apart",
        "trigger": {"type": "manual"},
        "steps": [{"id": "stop", "action": "flow.fail", "input": {"message": "no"}}],
    }
    saved = await hub.save_flow(failing, publish=True)
    async with http_client(hub) as client:
        before = await scrape(client)
        production = await hub.start_run(saved.flow_id, {})
        await hub.wait_for_run(production, 30)
        response = await api.call(
            "POST",
            "/api/w/default/flows/apart/trials",
            api.editor,
            json={"document": failing, "trigger": {"t": 1}, "pins": None, "stop_after": None},
        )
        assert response.status_code == 202, response.text
        trial = response.json()["run_id"]
        assert (await hub.wait_for_run(trial, 30))["status"] == "failed"
        after = await scrape(client)

    # The runs list: production runs only, unless trial=true (then only trials).
    listed = await api.call("GET", RUNS, api.viewer)
    assert [r["id"] for r in listed.json()["items"]] == [production]
    listed = await api.call("GET", RUNS, api.viewer, params={"trial": "true"})
    assert [(r["id"], r["trial"]) for r in listed.json()["items"]] == [(trial, True)]
    shown = await api.call("GET", f"{RUNS}/{trial}", api.viewer)
    assert shown.json()["trial"] is True and shown.json()["flow_version"] == 0
    assert [r["id"] for r in await hub.service.runs_page(flow_id="apart")] == [production]

    # The flows list's counts and the delete's count: the production run only.
    stats = await hub.service.run_stats(["apart"])
    assert stats["apart"]["total"] == 1 and stats["apart"]["last_run_id"] == production
    assert await hub.service.run_counts("apart") == (1, 0)

    # The home page: one failure, the production one.
    home = await attention(hub.service)
    assert home["failed_recent"] == 1
    assert [r["id"] for r in home["failed_latest"]] == [production]

    # The metrics: the trial is neither started, nor finished, nor its step counted.
    def delta(name: str, labels: tuple[tuple[str, str], ...] = ()) -> float:
        return after.get((name, labels), 0) - before.get((name, labels), 0)

    assert delta("hub_runs_started_total") == 1
    assert delta("hub_runs_finished_total", (("status", "failed"),)) == 1
    assert delta("hub_steps_finished_total", (("status", "failed"),)) == 1

    # What the trial ran, for the builder.
    detail = await api.call("GET", f"/api/w/default/flows/apart/trials/{trial}", api.viewer)
    assert detail.status_code == 200, detail.text
    assert detail.json()["document"] == failing and detail.json()["pins"] == {}


async def test_the_trials_api_checks_the_document_and_the_role(api: Api) -> None:
    document = {
        "id": "draft",
        "trigger": {"type": "manual"},
        "steps": [{"id": "one", "action": "data.set", "input": {"value": 1}}],
    }
    path = "/api/w/default/flows/draft/trials"
    viewer = await api.call("POST", path, api.viewer, json={"document": document})
    assert viewer.status_code == 403, viewer.text
    other = await api.call(
        "POST", "/api/w/default/flows/other/trials", api.editor, json={"document": document}
    )
    assert other.status_code == 422 and other.json()["error"]["details"][0]["location"] == (
        "document.id"
    )
    bad = {**document, "steps": [{"id": "one", "action": "data.set", "inpt": {}}]}
    invalid = await api.call("POST", path, api.editor, json={"document": bad})
    assert invalid.status_code == 422 and invalid.json()["error"]["code"] == "invalid"
    pins = await api.call(
        "POST", path, api.editor, json={"document": document, "pins": {"nope": 1}}
    )
    assert pins.status_code == 422, pins.text
    assert pins.json()["error"]["details"] == [{"location": "pins.nope", "message": "no such step"}]
    # Never saved: the flow does not exist, and the trial runs all the same.
    body = {"document": document, "trigger": 5, "pins": {"one": "pinned"}}
    started_ = await api.call("POST", path, api.editor, json=body)
    assert started_.status_code == 202, started_.text
    record = await api.hub.wait_for_run(started_.json()["run_id"], 30)
    assert record["status"] == "succeeded" and record["output"] == "pinned"
    shown = await api.call("GET", f"{RUNS}/{started_.json()['run_id']}", api.viewer)
    assert [(s["key"], s["pinned"], s["output"]) for s in shown.json()["steps"]] == [
        ("one", True, "pinned")
    ]
    logged = await api.hub.db.read(
        lambda c: c.execute(
            select(audit_log.c.actor, audit_log.c.target, audit_log.c.details).where(
                audit_log.c.action == "flow.trial"
            )
        ).all()
    )
    assert [(a, t, d["run_id"]) for a, t, d in logged] == [
        (api.editor.email, "draft", started_.json()["run_id"])
    ]


async def test_a_sub_flow_called_by_a_trial_runs_as_a_trial(hub: Hub) -> None:
    child = {
        "id": "child",
        "trigger": {"type": "manual"},
        "steps": [{"id": "double", "action": "data.set", "input": {"value": "{{ trigger * 2 }}"}}],
    }
    await hub.save_flow(child, publish=True)
    parent = {
        "id": "parent",
        "trigger": {"type": "manual"},
        "steps": [
            {"id": "call", "action": "flow.call", "input": {"flow": "child", "input": 21}},
        ],
    }
    run_id = await hub.service.start_trial(parent, trigger=None, pins=None, stop_after=None)
    record = await finished_run(hub, run_id)
    assert record["status"] == "succeeded" and record["output"] == 42, record
    children = await hub.service.child_runs(run_id)
    assert len(children) == 1
    child_run = await hub.get_run(children[0]["id"], with_steps=False)
    assert child_run["trial"] is True
    assert await hub.service.runs_page(flow_id="child") == []


async def test_delete_flow_removes_its_trial_runs(hub: Hub) -> None:
    document = {
        "id": "doomed",
        "trigger": {"type": "manual"},
        "steps": [{"id": "one", "action": "data.set", "input": {"value": 1}}],
    }
    await hub.save_flow(document, publish=True)
    trial = await hub.service.start_trial(document, trigger=None, pins=None, stop_after=None)
    await hub.wait_for_run(trial, 30)
    deleted = await hub.service.delete_flow("doomed")
    assert deleted.runs == 1

    def count(conn: Any) -> tuple[int, int, int]:
        return (
            conn.execute(select(func.count()).select_from(runs)).scalar_one(),
            conn.execute(select(func.count()).select_from(trial_documents)).scalar_one(),
            conn.execute(select(func.count()).select_from(steps)).scalar_one(),
        )

    assert await hub.db.read(count) == (0, 0, 0)


@pytest.mark.parametrize("backend", ["queue"])
async def test_a_trial_runs_on_a_hub_worker_from_its_stored_document(
    api: Api, settings: Settings, service: CountingServer
) -> None:
    """A separate ``hub worker`` process (nothing of this process cached there) compiles the
    trial's flow from the trial's row: the pinned step is not called, the next one reads the
    pin. A version of the same flow saved meanwhile changes nothing (no version 0)."""
    document = fetch_flow(service.url)
    await api.hub.save_flow({**document, "steps": document["steps"][:1]}, publish=True)
    run_id = await api.hub.service.start_trial(
        document, trigger={"add": 2}, pins={"fetch": PINNED_FETCH}, stop_after=None
    )
    log = settings.data_dir / "worker.log"
    async with worker_process(settings, log, HUB_ALLOW_HOSTS="127.0.0.1"):
        record = await api.hub.wait_for_run(run_id, 60)
    assert record["status"] == "succeeded", log.read_text()[-2000:]
    found = await api.hub.get_run(run_id)
    assert by_step(found)["use"]["output"] == 1002
    assert service.requests == 0


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics by (name, sorted labels)."""
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def test_a_trial_never_calls_hub_run_finished(settings: Settings) -> None:
    finished: list[str] = []

    async def hub_run_finished(run: dict[str, Any]) -> None:
        finished.append(run["id"])

    observer = types.SimpleNamespace(hub_run_finished=hookimpl(hub_run_finished))
    async with started(settings, plugins=[kit, observer]) as hub:
        document = {
            "id": "observed",
            "trigger": {"type": "manual"},
            "steps": [{"id": "one", "action": "data.set", "input": {"value": 1}}],
        }
        trial = await hub.service.start_trial(document, trigger=None, pins=None, stop_after=None)
        await hub.wait_for_run(trial, 30)
        saved = await hub.save_flow(document, publish=True)
        production = await hub.start_run(saved.flow_id)
        await hub.wait_for_run(production, 30)
        deadline = asyncio.get_running_loop().time() + 30
        while not finished:  # called after the run's waiters are answered
            assert asyncio.get_running_loop().time() < deadline, "hub_run_finished not called"
            await asyncio.sleep(0.01)
        assert finished == [production]


async def test_replaying_a_trial_starts_a_trial_of_the_same_draft_and_pins(
    hub: Hub, service: CountingServer
) -> None:
    document = fetch_flow(service.url, "replayed")
    first = await hub.service.start_trial(
        document, trigger={"add": 3}, pins={"fetch": PINNED_FETCH}, stop_after=None
    )
    await hub.wait_for_run(first, 30)
    again = await hub.service.replay_run(first)
    record = await finished_run(hub, again)
    assert record["trial"] is True and record["trigger_type"] == "replay"
    assert record["output"] == 1003
    assert (await hub.service.get_trial(again))["pins"] == {"fetch": PINNED_FETCH}
    assert service.requests == 0
