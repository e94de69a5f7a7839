"""The flow builder's try-it (issue 16, "Try it"): the trigger's sample (pasted JSON read
with the hub's bounded reader, or a recent run's trigger data), a step tested on it, its
output pinned, a test run of the draft that does not call the pinned step, a production run
that ignores the pin, and the runs list's "Test runs" filter.

In-process against the real app (real SQLite, the embedded engine), signed in through the
sign-in form; the service the steps call is a loopback stand-in that counts its requests
(so "not called" is the service's own count).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from hub.services.workspace import WorkspaceHub
from hub.settings import Settings
from tests.api_kit import Api, flow_document, started_api
from tests.browser.kit import StandIn
from tests.web_kit import htmx_headers, post_form, signed_in

BUILD = "/w/default/flows/fetcher/build"
PIN_VALUE = re.compile(
    r'<form class="try-pin"[^>]*>\s*<input type="hidden" name="output" value="([^"]*)"'
)
RUN_ID = re.compile(r'data-run="([^"]+)"')


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The conftest's settings, with the loopback stand-in allowed to ``http.request``."""
    return settings.replace(allow_hosts=("127.0.0.1",))


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async for value in started_api(settings):
        yield value


@pytest.fixture
def service() -> Iterator[StandIn]:
    with StandIn() as stand_in:
        yield stand_in


def fetch_flow(base: str) -> dict[str, Any]:
    """fetch (http.request to the stand-in) -> use (reads fetch's output and the trigger)."""
    return {
        "id": "fetcher",
        "name": "Fetcher",
        "trigger": {"type": "manual"},
        "steps": [
            {
                "id": "fetch",
                "action": "http.request",
                "input": {"method": "GET", "url": base + "/thing"},
            },
            {
                "id": "use",
                "action": "data.set",
                "input": {"value": "{{ steps.fetch.output.json.call * 100 + trigger.add }}"},
                "needs": ["fetch"],
            },
        ],
    }


def editor_hub(api: Api) -> WorkspaceHub:
    """The workspace's services acting as the editor (whose draft the client edits)."""
    caller = api.editor
    return WorkspaceHub(
        api.hub, "default", actor=caller.email, user_id=caller.user_id, role="editor"
    )


async def editor_client(api: Api, document: dict[str, Any]) -> httpx.AsyncClient:
    """The flow saved and published through the API; the editor signed in, with the
    builder open (its draft made)."""
    answer = await api.call(
        "POST", "/api/w/default/flows", api.editor, json={"document": document, "publish": True}
    )
    assert answer.status_code == 201, answer.text
    client = await signed_in(api, api.editor)
    opened = await client.get(f"/w/default/flows/{document['id']}/build")
    assert opened.status_code == 200, opened.text
    return client


async def htmx_post(
    client: httpx.AsyncClient, path: str, data: dict[str, Any] | None = None
) -> httpx.Response:
    """A form posted by htmx from the builder."""
    return await post_form(client, path, data, headers=htmx_headers(client, BUILD))


async def production_run(api: Api, trigger: Any) -> dict[str, Any]:
    answer = await api.call(
        "POST", "/api/w/default/runs", api.editor, json={"flow_id": "fetcher", "input": trigger}
    )
    assert answer.status_code in (201, 202), answer.text
    run_id = answer.json()["run_id"]
    await api.hub.wait_for_run(run_id, 30)
    return await api.hub.get_run(run_id)


def outputs(record: dict[str, Any]) -> dict[str, Any]:
    return {s["key"]: s["output"] for s in record["steps"] if s["status"] == "done"}


async def test_a_pasted_sample_is_read_with_the_bounded_reader(
    api: Api, service: StandIn, settings: Settings
) -> None:
    client = await editor_client(api, fetch_flow(service.base))
    shown = await client.get(f"{BUILD}/try/sample", headers=htmx_headers(client, BUILD))
    assert shown.status_code == 200 and 'id="trigger-sample"' in shown.text
    assert "Sample (JSON)" in shown.text
    panel_headers = {**htmx_headers(client, BUILD), "hx-target": "builder-panel"}
    trigger = await client.get(f"{BUILD}/?panel=trigger", headers=panel_headers)
    assert f'hx-get="{BUILD}/try/sample" hx-trigger="load"' in trigger.text  # loads it

    good = await htmx_post(client, f"{BUILD}/try/sample", {"sample": '{"add": 7}'})
    assert good.status_code == 200, good.text
    assert "The sample is kept." in good.text
    assert 'id="builder-toolbar"' in good.text  # the draft's revision moved: the toolbar too
    ws = editor_hub(api)
    assert (await ws.draft("fetcher")).sample == {"add": 7}

    bad = await htmx_post(client, f"{BUILD}/try/sample", {"sample": '{\n  "add": 7,\n}'})
    assert bad.status_code == 422
    assert "not valid JSON: line 3, column 1" in html.unescape(bad.text)
    assert 'aria-invalid="true"' in bad.text
    deep = "[" * (settings.max_document_depth + 1) + "]" * (settings.max_document_depth + 1)
    too_deep = await htmx_post(client, f"{BUILD}/try/sample", {"sample": deep})
    assert too_deep.status_code == 422
    assert "nested deeper than" in too_deep.text and "line 1, column" in too_deep.text
    big = json.dumps({"text": "x" * settings.max_document_bytes})
    too_big = await htmx_post(client, f"{BUILD}/try/sample", {"sample": big})
    assert too_big.status_code == 422
    assert f"over the limit of {settings.max_document_bytes}" in too_big.text
    # None of the refused ones replaced the sample.
    assert (await ws.draft("fetcher")).sample == {"add": 7}


async def test_a_recent_runs_trigger_data_becomes_the_sample(api: Api, service: StandIn) -> None:
    client = await editor_client(api, fetch_flow(service.base))
    record = await production_run(api, {"add": 3, "who": "ada"})
    shown = await client.get(f"{BUILD}/try/sample", headers=htmx_headers(client, BUILD))
    assert f'value="{record["id"]}"' in shown.text
    assert '"who": "ada"' in html.unescape(shown.text)  # its trigger data's preview
    taken = await htmx_post(client, f"{BUILD}/try/sample/run", {"run": record["id"]})
    assert taken.status_code == 200, taken.text
    assert f"the trigger data of run {record['id']}" in taken.text
    assert (await editor_hub(api).draft("fetcher")).sample == {"add": 3, "who": "ada"}
    # A run of another flow is not this flow's: refused, the sample unchanged.
    answer = await api.call(
        "POST",
        "/api/w/default/flows",
        api.editor,
        json={"document": flow_document(), "publish": True},
    )
    assert answer.status_code == 201, answer.text
    started = await api.call(
        "POST", "/api/w/default/runs", api.editor, json={"flow_id": "greet", "input": {}}
    )
    other = await htmx_post(client, f"{BUILD}/try/sample/run", {"run": started.json()["run_id"]})
    assert other.status_code == 404
    assert (await editor_hub(api).draft("fetcher")).sample == {"add": 3, "who": "ada"}
    missing = await htmx_post(client, f"{BUILD}/try/sample/run", {"run": "no-such-run"})
    assert missing.status_code == 404


async def test_a_pinned_step_is_not_called_in_test_runs_and_production_ignores_the_pin(
    api: Api, service: StandIn
) -> None:
    client = await editor_client(api, fetch_flow(service.base))
    await htmx_post(client, f"{BUILD}/try/sample", {"sample": '{"add": 5}'})

    # Test the step: the stand-in is called once; the output is shown with "Pin".
    step_page = await client.get(f"{BUILD}/?step=fetch")
    assert f'hx-get="{BUILD}/steps/fetch/try" hx-trigger="load"' in step_page.text
    slot = await client.get(f"{BUILD}/steps/fetch/try", headers=htmx_headers(client, BUILD))
    assert slot.status_code == 200 and "Test this step" in slot.text
    assert "Run the flow up to here" in slot.text
    tested = await htmx_post(client, f"{BUILD}/steps/fetch/test")
    assert tested.status_code == 200, tested.text
    assert service.count("/thing") == 1
    assert "Pin this output" in tested.text
    found = PIN_VALUE.search(tested.text)
    assert found is not None, tested.text
    output = json.loads(html.unescape(found.group(1)))
    assert output["json"] == {"path": "/thing", "call": 1}

    pinned = await htmx_post(client, f"{BUILD}/steps/fetch/pin", {"output": json.dumps(output)})
    assert pinned.status_code == 200, pinned.text
    assert "Pinned" in pinned.text and "Unpin" in pinned.text
    ws = editor_hub(api)
    assert (await ws.draft("fetcher")).pins == {"fetch": output}

    # Testing the next step reads the pinned output (and calls nothing).
    used = await htmx_post(client, f"{BUILD}/steps/use/test")
    assert used.status_code == 200, used.text
    assert re.search(r"<pre[^>]*>105</pre>", used.text), used.text
    assert service.count("/thing") == 1

    # A test run up to "use": the pinned step is not called; "use" reads the pin.
    started = await htmx_post(client, f"{BUILD}/try/run", {"stop_after": "use"})
    assert started.status_code == 200, started.text
    run_id = RUN_ID.search(started.text)
    assert run_id is not None, started.text
    trial = await api.hub.wait_for_run(run_id.group(1), 30)
    assert trial["status"] == "succeeded", trial
    record = await api.hub.get_run(run_id.group(1))
    assert record["trial"] is True
    assert outputs(record) == {"fetch": output, "use": 105}
    assert service.count("/thing") == 1
    shown = await client.get(
        f"{BUILD}/try/runs/{record['id']}", headers=htmx_headers(client, BUILD)
    )
    assert "pinned: not called" in shown.text and "test run" in shown.text
    assert "hx-trigger" not in shown.text  # final: no more polling
    assert "Pin this output" in shown.text  # the output of "use" can be pinned from here
    panel = await client.get(f"{BUILD}/?panel=try", headers=htmx_headers(client, BUILD))
    assert panel.status_code == 200 and record["id"] in panel.text
    assert "Try the flow" in panel.text and 'id="try-stop-after"' in panel.text

    # Saved and published, the flow's production run calls the step: pins are the draft's.
    saved = await htmx_post(client, f"{BUILD}/save")
    assert saved.status_code == 200, saved.text
    published = await htmx_post(client, f"{BUILD}/publish")
    assert published.status_code == 200, published.text
    production = await production_run(api, {"add": 5})
    assert production["status"] == "succeeded", production
    assert service.count("/thing") == 2
    assert outputs(production)["use"] == 205

    # The test run is not in the default runs list, and is with ?trial=true.
    listed = await client.get("/w/default/runs")
    assert production["id"] in listed.text and record["id"] not in listed.text
    trials = await client.get("/w/default/runs?trial=true")
    assert record["id"] in trials.text and production["id"] not in trials.text
    assert 'id="f-trial"' in trials.text and "checked" in trials.text
    run_page = await client.get(f"/w/default/runs/{record['id']}")
    assert "Test run (from the builder)" in run_page.text
    production_page = await client.get(f"/w/default/runs/{production['id']}")
    assert "Test run (from the builder)" not in production_page.text

    # Unpinned, a test run calls the step again.
    unpinned = await htmx_post(client, f"{BUILD}/steps/fetch/unpin", {"output": json.dumps(output)})
    assert unpinned.status_code == 200 and "Pin this output" in unpinned.text
    assert (await ws.draft("fetcher")).pins == {}
    again = await htmx_post(client, f"{BUILD}/try/run", {"stop_after": "fetch"})
    again_id = RUN_ID.search(again.text)
    assert again_id is not None, again.text
    await api.hub.wait_for_run(again_id.group(1), 30)
    assert service.count("/thing") == 3


async def test_a_test_run_of_an_invalid_draft_says_why(api: Api, service: StandIn) -> None:
    client = await editor_client(api, fetch_flow(service.base))
    ws = editor_hub(api)
    await ws.edit_draft(
        "fetcher", [{"op": "replace", "path": "/steps/1/needs", "value": ["nowhere"]}]
    )
    refused = await htmx_post(client, f"{BUILD}/try/run")
    assert refused.status_code == 422
    assert "No test run" in refused.text and "nowhere" in refused.text
    stop = await htmx_post(client, f"{BUILD}/try/run", {"stop_after": "ghost"})
    assert stop.status_code == 422
    assert service.count("/thing") == 0
    missing = await client.get(f"{BUILD}/steps/ghost/try", headers=htmx_headers(client, BUILD))
    assert missing.status_code == 404


async def test_viewers_cannot_try(api: Api, service: StandIn) -> None:
    await editor_client(api, fetch_flow(service.base))
    viewer = await signed_in(api, api.viewer)
    answer = await post_form(
        viewer, f"{BUILD}/steps/fetch/test", headers=htmx_headers(viewer, BUILD)
    )
    assert answer.status_code == 403
    assert service.count("/thing") == 0
