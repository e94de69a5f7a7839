"""The Home page (issue 15): failed runs of the last 24 hours, runs now running, the flows
that fail most over 7 days, the queue and its workers in queue mode, and the empty states.

In-process against the real app with real runs; in queue mode a real ``hub worker``
process, seen on the page through its queues' presence sets in Redis.
"""

from __future__ import annotations

import asyncio
import html
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import update

from hub.db.models import runs
from hub.settings import Settings
from tests import kit
from tests.api_kit import Api, started_api
from tests.conftest import ROOT, worker_process
from tests.web_kit import signed_in, write_controls

DAY_US = 86_400 * 1_000_000
MIXED = {
    "id": "mixed",
    "name": "Mixed <b>results</b>",
    "steps": [{"id": "maybe", "action": "test.boom", "when": "{{ trigger.fail }}"}],
}
ALWAYS = {"id": "always", "name": "Always fails", "steps": [{"id": "b", "action": "test.boom"}]}
WAITS = {
    "id": "waits",
    "name": "Waits",
    "steps": [{"id": "g", "action": "test.gate", "input": {"name": "home"}}],
}


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async for value in started_api(settings):
        yield value


def section(page: str, ident: str) -> str:
    """The HTML of the section labelled by the heading ``ident``."""
    found = re.search(rf'<section[^>]*aria-labelledby="{ident}".*?</section>', page, re.S)
    assert found, f"no section {ident}"
    return found.group(0)


def stat(block: str) -> int:
    found = re.search(r'<p class="stat[^"]*">(\d+)</p>', block)
    assert found, block
    return int(found.group(1))


def text_of(block: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", block)).split())


async def until(check: Callable[[], Awaitable[bool]], what: str, deadline: float = 30) -> None:
    """Wait for ``check`` to hold (up to ``deadline`` seconds)."""
    end = time.monotonic() + deadline
    while not await check():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def finished(api: Api, flow: dict[str, Any], inputs: list[Any]) -> list[dict[str, Any]]:
    await api.hub.save_flow(flow, publish=True)
    ids = [await api.hub.start_run(flow["id"], value) for value in inputs]
    return [await api.hub.wait_for_run(run_id, 30) for run_id in ids]


async def backdate(api: Api, run_id: str, days: float) -> None:
    moved = int(days * DAY_US)
    await api.hub.db.write(
        lambda c: c.execute(
            update(runs).where(runs.c.id == run_id).values(created_at=runs.c.created_at - moved)
        )
    )


async def test_home_counts_failed_running_and_the_flows_that_fail_most(api: Api) -> None:
    mixed = await finished(api, MIXED, [{"fail": True}] * 3 + [{"fail": False}] * 5)
    always = await finished(api, ALWAYS, [None, None])
    assert [r["status"] for r in mixed].count("failed") == 3
    assert {r["status"] for r in always} == {"failed"}
    # one of "always" failed 2 days ago (7-day window, not the last 24 h), one of "mixed"
    # 8 days ago (in neither window)
    await backdate(api, always[0]["id"], 2)
    await backdate(api, mixed[0]["id"], 8)
    await api.hub.save_flow(WAITS, publish=True)
    waiting = [await api.hub.start_run("waits") for _ in range(2)]

    async def both_running() -> bool:
        found = [await api.hub.get_run(r, with_steps=False) for r in waiting]
        return all(r["status"] == "running" for r in found)

    await until(both_running, "the gated runs to be running")
    client = await signed_in(api, api.viewer)
    try:
        answer = await client.get("/w/default/")
    finally:
        kit.GATES.setdefault("home", asyncio.Event()).set()
    assert answer.status_code == 200, answer.text
    page = answer.text

    failed = section(page, "home-failed")
    assert stat(failed) == 3  # mixed: 2 of the last 24 h; always: 1
    recent_failed = {mixed[1]["id"], mixed[2]["id"], always[1]["id"]}
    linked = set(re.findall(r'href="/w/default/runs/([^"]+)"', failed))
    assert linked == recent_failed
    assert "kaboom" in failed  # the error's message
    all_failed = re.search(r'href="(/w/default/runs\?[^"]+)"', failed)
    assert all_failed
    query = parse_qs(urlsplit(html.unescape(all_failed.group(1))).query)
    assert query["status"] == ["failed"]
    answer_of_api = await api.call("GET", "/api/w/default/runs", api.viewer, params=query)
    assert {r["id"] for r in answer_of_api.json()["items"]} == recent_failed
    listed = await client.get(html.unescape(all_failed.group(1)))  # the runs page
    assert listed.status_code == 200, listed.text
    assert set(re.findall(r'href="/w/default/runs/([0-9a-f]+)"', listed.text)) == recent_failed

    running = section(page, "home-running")
    assert stat(running) == 2
    assert set(re.findall(r'href="/w/default/runs/([^"]+)"', running)) == set(waiting)

    failing = section(page, "home-failing")
    body = failing.split("<tbody>", 1)[1]
    rows = re.findall(r"<tr>(.*?)</tr>", body, re.S)
    table = [text_of(row) for row in rows]
    # always: 2 failed of 2 runs in 7 days; mixed: 2 failed of 7 (one is 8 days old)
    assert table == [
        "Always fails always 2 2 100% Failed runs of always",
        "Mixed <b>results</b> mixed 2 7 29% Failed runs of mixed",
    ]
    assert "<b>results</b>" not in page  # a flow's name is text
    per_flow = re.findall(r'href="(/w/default/runs\?[^"]+)"', failing)
    assert len(per_flow) == 2 and "flow=always" in per_flow[0]
    listed = await client.get(html.unescape(per_flow[0]))
    assert set(re.findall(r'href="/w/default/runs/([0-9a-f]+)"', listed.text)) == {
        r["id"] for r in always
    }
    assert 'aria-labelledby="home-queue"' not in page  # embedded mode: no queue block
    assert write_controls(page) == []  # a viewer's page, read-only anyway


async def test_home_counts_only_the_workspace_of_the_page(api: Api) -> None:
    await finished(api, ALWAYS, [None])
    client = await signed_in(api, api.stranger)
    answer = await client.get("/w/other/")
    assert answer.status_code == 200
    assert stat(section(answer.text, "home-failed")) == 0
    assert "No flows yet" in answer.text


async def test_empty_states_say_what_to_do_next(api: Api) -> None:
    viewer = await signed_in(api, api.viewer)
    page = (await viewer.get("/w/default/")).text
    assert "No flows yet" in page
    assert 'href="/w/default/flows"' in page
    assert "An editor or owner can create or import one" in page
    assert "Nothing failed in the last 24 hours." in page
    assert "No run is running." in page
    editor = await signed_in(api, api.editor)
    page = (await editor.get("/w/default/")).text
    assert "Create or import a flow" in page
    await finished(api, MIXED, [{"fail": False}])
    page = (await editor.get("/w/default/")).text
    assert "No flows yet" not in page
    assert "No flow failed in the last 7 days." in page
    assert "Nothing failed in the last 24 hours." in page


@pytest.mark.parametrize("backend", ["queue"])
async def test_queue_mode_shows_the_queue_depth_and_a_real_worker(
    api: Api, settings: Settings, tmp_path: Path
) -> None:
    await api.hub.save_flow(
        {"id": "echo", "steps": [{"id": "e", "action": "test.echo", "input": {"x": 1}}]},
        publish=True,
    )
    run_id = await api.hub.start_run("echo")  # no worker yet: its job waits in the queue
    client = await signed_in(api, api.viewer)

    async def queue_block() -> str:
        answer = await client.get("/w/default/")
        assert answer.status_code == 200, answer.text
        return section(answer.text, "home-queue")

    block = await queue_block()
    assert f"<code>{settings.queue_name}</code>" in block
    assert "default 1 1 0" in text_of(block)  # priority, jobs, due now, workers
    assert "No worker is running" in block
    log = tmp_path / "worker.log"
    async with worker_process(
        settings, log, HUB_PLUGIN_MODULES="tests.kit", PYTHONPATH=str(ROOT)
    ) as worker:
        run = await api.hub.wait_for_run(run_id, 60)
        assert run["status"] == "succeeded", log.read_text()
        seen = ""

        async def worker_listed() -> bool:
            nonlocal seen
            seen = await queue_block()
            return f"<td>{worker.pid}</td>" in seen

        await until(worker_listed, "the worker on the home page", 60)
        text = text_of(seen)
        assert "default 0 0 1" in text and "high 0 0 1" in text and "low 0 0 1" in text
        assert re.search(rf"{worker.pid} high, default, low", text), text
        assert "No worker is running" not in seen

    async def worker_gone() -> bool:
        return "No worker is running" in await queue_block()

    await until(worker_gone, "the stopped worker to leave the page")


@pytest.mark.parametrize("backend", ["queue"])
async def test_queue_mode_says_when_redis_does_not_answer(api: Api) -> None:
    """The page still answers, and says Redis did not (a real client on a closed port in
    place of the hub's for this request)."""
    import redis.asyncio

    client = await signed_in(api, api.viewer)
    kept = api.hub.redis
    api.hub.redis = redis.asyncio.Redis.from_url("redis://127.0.0.1:9/0")
    try:
        answer = await client.get("/w/default/")
    finally:
        await api.hub.redis.aclose()
        api.hub.redis = kept
    assert answer.status_code == 200
    block = section(answer.text, "home-queue")
    assert "Redis did not answer (ConnectionError)" in block
