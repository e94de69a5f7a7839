"""The Runs pages (issue 15): the list (filters, keyset pages, the bounded text search), a
run's page (summary, timeline, steps), retry / replay / cancel, the live fragments, the
viewer's read-only view, and escaping.

In-process against the real app (real SQLite, the real engine); no browser.
"""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hub.services import live
from hub.services import runs as runs_service
from hub.settings import Settings
from tests import kit
from tests.api_kit import Api, started_api
from tests.web_kit import post_form, signed_in, write_controls

XSS = "<script>alert('x')</script>"


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async for value in started_api(settings):
        yield value


def echo_flow(flow_id: str) -> dict[str, Any]:
    return {
        "id": flow_id,
        "trigger": {"type": "manual"},
        "steps": [{"id": "hello", "action": "test.echo", "input": {"v": "{{ trigger.v }}"}}],
    }


async def finished_run(api: Api, document: dict[str, Any], data: Any = None) -> str:
    saved = await api.hub.save_flow(document, publish=True)
    run_id = await api.hub.start_run(saved.flow_id, data)
    await api.hub.wait_for_run(run_id, 30)
    return run_id


async def held_run(api: Api, flow_id: str, gate: str) -> str:
    """A run of a new flow ``flow_id`` whose one step waits at the test gate ``gate``."""
    document = {
        "id": flow_id,
        "trigger": {"type": "manual"},
        "steps": [{"id": "wait", "action": "test.gate", "input": {"name": gate}}],
    }
    saved = await api.hub.save_flow(document, publish=True)
    return await api.hub.start_run(saved.flow_id)


def run_ids(page: str) -> list[str]:
    """The run ids the list shows, in order."""
    return re.findall(r'<a class="mono" href="/w/default/runs/([^"?]+)">', page)


async def wait_status(api: Api, run_id: str, status: str) -> dict[str, Any]:
    async with asyncio.timeout(30):
        while True:
            record = await api.hub.get_run(run_id)
            if record["status"] == status:
                return record
            await asyncio.sleep(0.02)


# -- the list ---------------------------------------------------------------------------


async def test_the_list_filters_by_flow_status_and_time(api: Api) -> None:
    a = await finished_run(api, echo_flow("alpha"), {"v": 1})
    b = await finished_run(api, echo_flow("beta"), {"v": 2})
    failing = {
        "id": "gamma",
        "trigger": {"type": "manual"},
        "steps": [{"id": "no", "action": "test.boom"}],
    }
    c = await finished_run(api, failing)
    client = await signed_in(api, api.viewer)

    everything = (await client.get("/w/default/runs")).text
    assert run_ids(everything) == [c, b, a]  # newest first
    assert "test.boom" not in everything  # a list shows no step data
    # the status badge opens the run too, and says which run it opens
    assert (
        f'<a class="status-link" href="/w/default/runs/{c}" aria-label="Run {c}: failed">'
        in everything
    )
    assert run_ids((await client.get("/w/default/runs?flow=alpha")).text) == [a]
    assert run_ids((await client.get("/w/default/runs?status=failed")).text) == [c]
    page = (await client.get("/w/default/runs?flow=gamma&status=succeeded")).text
    assert run_ids(page) == [] and "No runs match" in page
    assert run_ids((await client.get("/w/default/runs?since=2999-01-01T00:00")).text) == []
    assert run_ids((await client.get("/w/default/runs?until=2999-01-01T00:00")).text) == [c, b, a]
    bad = await client.get("/w/default/runs?since=2026-02-31T00:00")
    assert bad.status_code == 200 and "is not a date and time" in bad.text
    assert run_ids(bad.text) == [c, b, a]
    # the filters stay in the form (a filtered list is a link to share)
    assert 'value="alpha"' in (await client.get("/w/default/runs?flow=alpha")).text


async def test_the_rows_fragment_filters_like_the_list_but_never_searches(api: Api) -> None:
    a = await finished_run(api, echo_flow("alpha"), {"v": "needle"})
    b = await finished_run(api, echo_flow("beta"), {"v": "hay"})
    client = await signed_in(api, api.viewer)
    htmx = {"hx-request": "true"}

    rows = await client.get("/w/default/runs/rows?flow=beta", headers=htmx)
    assert rows.status_code == 200 and run_ids(rows.text) == [b]
    # a text search is the list's alone (it reads too much to poll): the rows leave it out
    searched = await client.get("/w/default/runs/rows?q=needle", headers=htmx)
    assert run_ids(searched.text) == [b, a]
    assert run_ids((await client.get("/w/default/runs?q=needle")).text) == [a]
    # the filters are bounded (the list's and its rows' alike)
    assert (await client.get("/w/default/runs?q=" + "x" * 201)).status_code == 400
    assert (await client.get("/w/default/runs/rows?flow=" + "x" * 101)).status_code == 400


async def test_the_list_pages_with_a_keyset_cursor(api: Api) -> None:
    saved = await api.hub.save_flow(echo_flow("many"), publish=True)
    started = [await api.hub.start_run(saved.flow_id, {"v": i}) for i in range(57)]
    for run_id in started:
        await api.hub.wait_for_run(run_id, 30)
    client = await signed_in(api, api.viewer)
    first = (await client.get("/w/default/runs")).text
    assert len(run_ids(first)) == 50
    older = re.search(r'href="(/w/default/runs\?cursor=[^"]+)" rel="next"', first)
    assert older is not None
    second = (await client.get(html.unescape(older.group(1)))).text
    assert len(run_ids(second)) == 7
    assert set(run_ids(first)) | set(run_ids(second)) == set(started)
    assert 'rel="next"' not in second
    assert "Newest" in second
    # only final runs: the first page looks for new runs now and then, an older page never
    assert 'hx-trigger="every 10s"' in first and "every 2s" not in first
    assert "hx-trigger" not in second


async def test_the_text_search_is_bounded_and_says_where_it_stopped(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runs_service, "SCAN_LIMIT", 10)
    saved = await api.hub.save_flow(echo_flow("scan"), publish=True)
    needle = await api.hub.start_run(saved.flow_id, {"v": "needle-42"})
    await api.hub.wait_for_run(needle, 30)
    for i in range(15):
        await api.hub.wait_for_run(await api.hub.start_run(saved.flow_id, {"v": f"hay {i}"}), 30)
    client = await signed_in(api, api.viewer)

    page = (await client.get("/w/default/runs?q=NEEDLE")).text
    assert run_ids(page) == []
    assert "Searched the trigger data of 10 runs" in page
    assert "The search stopped at a run of" in page
    more = re.search(r'href="([^"]+)">Continue searching older runs', page)
    assert more is not None
    rest = (await client.get(html.unescape(more.group(1)))).text
    assert run_ids(rest) == [needle]
    assert "stopped at" not in rest
    assert run_ids((await client.get("/w/default/runs?q=hay%2014")).text) != []


async def test_the_list_polls_while_runs_are_running_and_the_rows_fragment_stops(
    api: Api,
) -> None:
    run_id = await held_run(api, "held", "list")
    client = await signed_in(api, api.viewer)
    page = (await client.get("/w/default/runs")).text
    assert 'hx-trigger="every 2s"' in page and "/w/default/runs/rows" in page
    kit.GATES.setdefault("list", asyncio.Event()).set()
    await api.hub.wait_for_run(run_id, 30)
    rows = await client.get("/w/default/runs/rows", headers={"hx-request": "true"})
    assert rows.status_code == 200
    assert rows.text.lstrip().startswith("<tbody") and run_id in rows.text
    # the run is final: the fast poll stops (the first page looks for new runs slowly)
    assert "every 2s" not in rows.text and 'hx-trigger="every 10s"' in rows.text


async def test_the_first_pages_poll_brings_new_runs_to_the_top(api: Api) -> None:
    older = await finished_run(api, echo_flow("fresh"), {"v": 1})
    client = await signed_in(api, api.viewer)
    page = (await client.get("/w/default/runs")).text
    assert run_ids(page) == [older] and "sse-connect" not in page  # no stream on a list
    poll = re.search(r'<tbody id="run-rows" hx-get="([^"]+)" hx-trigger="every 10s"', page)
    assert poll is not None
    newer = await api.hub.start_run("fresh", {"v": 2})
    await api.hub.wait_for_run(newer, 30)
    rows = await client.get(html.unescape(poll.group(1)), headers={"hx-request": "true"})
    assert run_ids(rows.text) == [newer, older]


async def test_an_empty_first_page_polls_for_its_first_run(api: Api) -> None:
    """With no run to show, the list's region asks for the list again and takes its own
    region from it: a new flow's first run appears on a list opened before it."""
    client = await signed_in(api, api.viewer)
    page = (await client.get("/w/default/runs?flow=first")).text
    assert run_ids(page) == [] and "No runs match" in page
    poll = re.search(
        r'<div id="runs-results" hx-get="([^"]+)" hx-trigger="every 10s" '
        r'hx-select="#runs-results" hx-swap="outerHTML">',
        page,
    )
    assert poll is not None, page
    first = await finished_run(api, echo_flow("first"), {"v": 1})
    again = (await client.get(html.unescape(poll.group(1)), headers={"hx-request": "true"})).text
    assert run_ids(again) == [first]
    assert 'id="runs-results">' in again  # runs shown: the rows poll themselves now
    # A text search is never repeated, empty or not.
    searched = (await client.get("/w/default/runs?flow=none&q=x")).text
    assert 'id="runs-results">' in searched


# -- a run ------------------------------------------------------------------------------


async def test_a_runs_page_has_a_bar_per_attempt_and_groups_items_under_their_step(
    api: Api,
) -> None:
    document = {
        "id": "shape",
        "trigger": {"type": "manual"},
        "steps": [
            {
                "id": "each",
                "action": "test.echo",
                "for_each": "{{ trigger.items }}",
                "input": {"item": "{{ item }}"},
            },
            {
                "id": "shaky",
                "action": "test.flaky",
                "input": {"succeed_on": 2},
                "retry": {"max_attempts": 3, "initial": "10ms", "max": "20ms"},
            },
        ],
    }
    run_id = await finished_run(api, document, {"items": ["a", "b", "c"]})
    record = await api.hub.get_run(run_id)
    assert record["status"] == "succeeded", record
    client = await signed_in(api, api.viewer)
    page = (await client.get(f"/w/default/runs/{run_id}")).text

    timeline = page[page.index('id="timeline"') :]
    svg = timeline[: timeline.index("</svg>")]
    bars = re.findall(r'<rect class="bar bar-(\w+)" x="[\d.]+" y="[\d.]+" width="[\d.]+"', svg)
    started = [s for s in record["steps"] if s["started_at"] is not None]
    assert len(bars) == len(started) == 6, svg[:1500]  # each, 3 items, shaky twice
    assert bars.count("failed") == 1
    # a fixed pixel size (a phone scrolls it rather than shrinking its 12 px labels), and
    # the last axis label ends at its tick (not clipped on the right)
    assert re.search(r'<svg [^>]*width="\d+" height="\d+"', svg), svg[:300]
    ticks = re.findall(r'<text x="[\d.]+" y="12"( text-anchor="end")?>', svg)
    assert len(ticks) == 5 and ticks[-1] and not any(ticks[:-1])
    assert "style=" not in page
    # the items are under their step's section, by index
    each = page[page.index('id="step-each"') : page.index('id="step-shaky"')]
    assert re.findall(r'<td class="mono">([^<]+)</td>', each) == [
        "each[0]",
        "each[1]",
        "each[2]",
    ]
    shaky = page[page.index('id="step-shaky"') :]
    assert "flaky failure on attempt 1" in shaky
    assert 'href="/w/default/flows/shape"' in page
    assert "every 2s" not in page and "sse-connect" not in page  # final: nothing live


async def test_a_step_links_the_run_it_started_and_the_child_links_back(api: Api) -> None:
    await api.hub.save_flow(echo_flow("child"), publish=True)
    parent = {
        "id": "parent",
        "trigger": {"type": "manual"},
        "steps": [{"id": "sub", "action": "flow.call", "input": {"flow": "child", "input": {}}}],
    }
    run_id = await finished_run(api, parent)
    children = await api.hub.service.child_runs(run_id)
    assert len(children) == 1
    child_id = children[0]["id"]
    client = await signed_in(api, api.viewer)
    page = (await client.get(f"/w/default/runs/{run_id}")).text
    sub = page[page.index('id="step-sub"') :]
    assert f'href="/w/default/runs/{child_id}"' in sub
    back = (await client.get(f"/w/default/runs/{child_id}")).text
    assert f'href="/w/default/runs/{run_id}"' in back and "Parent run" in back


async def test_retry_from_the_failed_step_runs_only_that_step_again(api: Api) -> None:
    document = {
        "id": "again",
        "trigger": {"type": "manual"},
        "steps": [
            {"id": "first", "action": "test.echo", "input": {"v": 1}},
            {"id": "second", "action": "test.flaky", "input": {"succeed_on": 2}},
        ],
    }
    run_id = await finished_run(api, document)
    assert (await api.hub.get_run(run_id))["status"] == "failed"
    client = await signed_in(api, api.editor)
    page = (await client.get(f"/w/default/runs/{run_id}")).text
    assert "Retry from the failed step" in page
    # the error comes first, right under the title, naming and linking the failed step
    error = page.index('class="flash flash-error run-error"')
    assert page.index('id="run-head"') < error < page.index('id="timeline"')
    assert page.index('id="h-trigger"') > error
    shown_error = page[error : page.index("</div>", error)]
    assert re.search(r'Step <a href="#step-second">second</a> failed:</strong>', shown_error)
    assert 'id="step-second"' in page
    answer = await post_form(client, f"/w/default/runs/{run_id}/retry")
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/w/default/runs/{run_id}?done=retried"
    record = await api.hub.wait_for_run(run_id, 30)
    assert record["status"] == "succeeded"
    assert kit.CALLS["echo:first"] == 1
    assert kit.CALLS["flaky:second"] == 2
    shown = (await client.get(answer.headers["location"])).text
    assert "Retrying from the failed step" in shown


async def test_replay_starts_a_new_run_with_the_same_trigger_data(api: Api) -> None:
    run_id = await finished_run(api, echo_flow("replayed"), {"v": "same"})
    client = await signed_in(api, api.editor)
    answer = await post_form(client, f"/w/default/runs/{run_id}/replay")
    assert answer.status_code == 303
    new_id = answer.headers["location"].split("/runs/")[1].split("?")[0]
    assert new_id != run_id
    record = await api.hub.wait_for_run(new_id, 30)
    assert record["trigger"] == {"v": "same"} and record["trigger_type"] == "replay"


async def test_cancel_stops_a_running_run(api: Api) -> None:
    run_id = await held_run(api, "stopme", "cancel")
    client = await signed_in(api, api.editor)
    async with asyncio.timeout(30):
        while kit.CALLS["gate:cancel"] == 0:
            await asyncio.sleep(0.02)
    page = (await client.get(f"/w/default/runs/{run_id}")).text
    assert "Cancel run" in page and f'sse-connect="/w/default/runs/{run_id}/live"' in page
    assert "/static/vendor/htmx-ext-sse/sse.min.js" in page
    answer = await post_form(client, f"/w/default/runs/{run_id}/cancel")
    assert answer.status_code == 303
    await wait_status(api, run_id, "cancelled")
    after = (await client.get(f"/w/default/runs/{run_id}")).text
    assert "Cancel run" not in after and "sse-connect" not in after


def sse_events(text: str) -> list[tuple[str, str]]:
    """The (event, data) of a server-sent events body."""
    found = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        event, data = "message", []
        for line in block.splitlines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        if data:
            found.append((event, "\n".join(data)))
    return found


async def open_once_watched(api: Api, gate: str) -> None:
    """Open a gate once a live view watches the run (the in-process transport hands the
    body over only when the stream ends: the stream's first read has happened by then)."""
    async with asyncio.timeout(30):
        while not api.hub.engine.watchers:
            await asyncio.sleep(0.01)
    kit.GATES.setdefault(gate, asyncio.Event()).set()


async def test_the_live_stream_sends_a_steps_end_and_the_final_run(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "SAFETY_POLL_SECONDS", 3600.0)  # only pushed events end it
    held = {
        "id": "watched",
        "trigger": {"type": "manual"},
        "steps": [
            {"id": "wait", "action": "test.gate", "input": {"name": "live", "value": "opened"}},
            {"id": "after", "action": "test.echo", "input": {"seen": "{{ steps.wait.output }}"}},
        ],
    }
    saved = await api.hub.save_flow(held, publish=True)
    run_id = await api.hub.start_run(saved.flow_id)
    client = await signed_in(api, api.viewer)
    async with asyncio.timeout(30):
        while kit.CALLS["gate:live"] == 0:
            await asyncio.sleep(0.02)
        opener = asyncio.create_task(open_once_watched(api, "live"))
        response = await client.get(f"/w/default/runs/{run_id}/live")
        await opener
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    seen = sse_events(response.text)
    # the catch-up: the whole section (out of band), the gate still held
    assert seen[0][0] == "step" and '<div id="run" hx-swap-oob="true"' in seen[0][1]
    assert "opened" not in seen[0][1]
    pushed = [data for event, data in seen[1:] if event == "step"]
    assert any('id="step-wait" hx-swap-oob="true"' in d and "opened" in d for d in pushed)
    assert seen[-1][0] == "done"
    final = seen[-1][1]
    assert final.lstrip().startswith('<div id="run" aria-live')
    assert "succeeded" in final and "sse-connect" not in final and "hx-swap-oob" not in final
    assert 'id="step-after"' in final


# -- who may do what, and escaping -----------------------------------------------------


async def test_a_viewer_sees_no_write_control_and_forged_posts_answer_403(api: Api) -> None:
    document = {
        "id": "ro",
        "trigger": {"type": "manual"},
        "steps": [{"id": "no", "action": "test.boom"}],
    }
    run_id = await finished_run(api, document)
    viewer = await signed_in(api, api.viewer)
    page = (await viewer.get(f"/w/default/runs/{run_id}")).text
    assert write_controls(page) == []
    assert "Retry from the failed step" not in page and "Replay" not in page
    for action in ("retry", "replay", "cancel"):
        forged = await post_form(viewer, f"/w/default/runs/{run_id}/{action}")
        assert forged.status_code == 403, (action, forged.text)
    assert (await api.hub.get_run(run_id))["status"] == "failed"
    assert len(run_ids((await viewer.get("/w/default/runs")).text)) == 1  # no replay made
    editor = await signed_in(api, api.editor)
    assert len(write_controls((await editor.get(f"/w/default/runs/{run_id}")).text)) == 2


async def test_step_output_error_and_trigger_data_render_as_text(api: Api) -> None:
    document = {
        "id": "xss",
        "trigger": {"type": "manual"},
        "steps": [
            {"id": "echoed", "action": "test.echo", "input": {"said": "{{ trigger.evil }}"}},
            {"id": "failing", "action": "flow.fail", "input": {"message": "{{ trigger.evil }}"}},
        ],
    }
    run_id = await finished_run(api, document, {"evil": XSS})
    client = await signed_in(api, api.viewer)
    page = (await client.get(f"/w/default/runs/{run_id}")).text
    assert XSS not in page
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(" in page
    listed = (await client.get("/w/default/runs?q=script")).text
    assert run_ids(listed) == [run_id] and "<script>alert" not in listed
