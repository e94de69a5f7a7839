"""The builder's expression endpoints (hub/web/builder/expressions.py): scope, completion,
preview (against pins, the latest run and the sample; the three kinds of error with the
validator's messages) and the step panel's data tree.

In-process against the real app (real SQLite, a real run of the engine); no browser.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from hub.flows import FlowError, load_flow
from hub.services.workspace import WorkspaceHub
from hub.settings import Settings
from hub.web.builder.expressions import scopes_of
from tests.api_kit import Api, started_api
from tests.web_kit import htmx_headers, signed_in

API = "/api/w/default/flows"
BUILD = "/w/default/flows/shop/build"
PINNED = {"status": 201, "headers": {"x-id": "7"}, "json": {"n": 5}, "text": "made"}


def document() -> dict[str, Any]:
    """fetch (http.request, never run here) -> hello (test.echo) -> shape (data.set)."""
    return {
        "id": "shop",
        "name": "Shop",
        "trigger": {"type": "manual"},
        "steps": [
            {
                "id": "fetch",
                "action": "http.request",
                "input": {"method": "GET", "url": "http://127.0.0.1:9/"},
            },
            {"id": "hello", "action": "test.echo", "input": {"name": "{{ trigger.name }}"}},
            {"id": "shape", "action": "data.set", "input": {"value": "x"}},
        ],
    }


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async for value in started_api(settings):
        yield value


@pytest.fixture
async def client(api: Api) -> AsyncIterator[httpx.AsyncClient]:
    answer = await api.call("POST", API, api.editor, json={"document": document()})
    assert answer.status_code == 201, answer.text
    browser = await signed_in(api, api.editor)
    opened = await browser.get(BUILD + "/")
    assert opened.status_code == 200, opened.text
    try:
        yield browser
    finally:
        await browser.aclose()


def as_editor(api: Api) -> WorkspaceHub:
    return WorkspaceHub(
        api.hub, "default", actor=api.editor.email, user_id=api.editor.user_id, role="editor"
    )


async def post(client: httpx.AsyncClient, tail: str, **data: Any) -> dict[str, Any]:
    answer = await client.post(BUILD + tail, data=data, headers=htmx_headers(client, BUILD))
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def test_complete_offers_the_upstream_steps_and_the_declared_fields(
    client: httpx.AsyncClient,
) -> None:
    text = "{{ steps."
    found = await post(client, "/complete", step="shape", pointer="/value", text=text, pos=9)
    assert found["from"] == len(text)
    assert [o["label"] for o in found["options"]] == ["fetch", "hello"]
    assert found["options"][0]["detail"] == "http.request"
    found = await post(client, "/complete", step="hello", text="{{ steps.", pos=9)
    assert [o["label"] for o in found["options"]] == ["fetch"]  # shape is not upstream
    text = "{{ steps.fetch.output.st"
    found = await post(client, "/complete", step="shape", pointer="/value", text=text)
    [status] = found["options"]
    assert status == {
        "label": "status",
        "type": "field",
        "detail": "integer",
        "info": "The HTTP status code.",
    }
    assert found["from"] == len("{{ steps.fetch.output.")
    # JSON works too; pos cuts the text; filters after |.
    answer = await client.post(
        BUILD + "/complete",
        json={"step": "shape", "text": "{{ trigger | up }}", "pos": 15},
        headers=htmx_headers(client, BUILD),
    )
    assert [o["label"] for o in answer.json()["options"]] == ["upper"]


async def test_completion_on_a_300_step_flow_is_built_once_per_revision(
    api: Api, client: httpx.AsyncClient
) -> None:
    """Completing on a 300-step draft reads the scopes built for its revision (how fast
    that is: bench/builder.py); an edit makes a new revision, and its scopes anew."""
    steps = [{"id": "fetch", "action": "http.request", "input": {"url": "http://127.0.0.1:9/"}}]
    steps += [{"id": f"s{i}", "action": "data.set", "input": {"value": i}} for i in range(299)]
    big = {"id": "big", "trigger": {"type": "manual"}, "steps": steps}
    answer = await api.call("POST", API, api.editor, json={"document": big})
    assert answer.status_code == 201, answer.text
    path = "/w/default/flows/big/build/complete"
    data = {"step": "s298", "text": "{{ steps.fetch.output.", "pos": "22"}
    headers = htmx_headers(client, path)
    first = await client.post(path, data=data, headers=headers)
    assert [o["label"] for o in first.json()["options"]] == ["status", "headers", "json", "text"]
    ws = as_editor(api)
    draft = await ws.draft("big")
    built = await scopes_of(ws, draft)
    again = await client.post(path, data=data, headers=headers)
    assert again.json() == first.json()
    assert await scopes_of(ws, await ws.draft("big")) is built  # the same revision: kept
    ops = [{"op": "remove", "path": "/steps/0"}]
    edited = await ws.edit_draft("big", ops)
    assert await scopes_of(ws, edited) is not built
    gone = await client.post(path, data=data, headers=headers)
    assert gone.json()["options"] == []  # fetch is no longer upstream of s298


async def test_preview_against_pins_sample_and_schema_examples(
    api: Api, client: httpx.AsyncClient
) -> None:
    text = "{{ steps.fetch.output.status }}"
    found = await post(client, "/preview", step="shape", pointer="/value", text=text)
    assert found["error"] is None and found["source"] == "schema example"
    assert isinstance(found["value"], int)
    ws = as_editor(api)
    await ws.pin_output("shop", "fetch", PINNED)
    await ws.set_sample("shop", {"name": "Ada"})
    found = await post(client, "/preview", step="shape", pointer="/value", text=text)
    assert (found["value"], found["source"], found["error"]) == (201, "pins", None)
    found = await post(
        client, "/preview", step="shape", pointer="/value", text="Hi {{ trigger.name }}"
    )
    assert (found["value"], found["source"]) == ("Hi Ada", "sample")
    plain = await post(client, "/preview", step="shape", pointer="/value", text="just text")
    assert plain["value"] == "just text" and plain["error"] is None


async def test_preview_against_the_latest_run(api: Api, client: httpx.AsyncClient) -> None:
    flow = {
        "id": "echoes",
        "trigger": {"type": "manual"},
        "steps": [
            {"id": "hello", "action": "test.echo", "input": {"who": "{{ trigger.name }}"}},
            {"id": "after", "action": "data.set", "input": {"value": 1}},
        ],
    }
    await api.hub.save_flow(flow, publish=True)
    run_id = await api.hub.start_run("echoes", {"name": "Grace"})
    assert (await api.hub.wait_for_run(run_id, 30))["status"] == "succeeded"
    build = "/w/default/flows/echoes/build"
    assert (await client.get(build + "/")).status_code == 200
    answer = await client.post(
        build + "/preview",
        data={"step": "after", "pointer": "/value", "text": "{{ steps.hello.output.who }}"},
        headers=htmx_headers(client, build),
    )
    found = answer.json()
    assert (found["value"], found["source"], found["error"]) == ("Grace", "last run", None)
    # The open schema of test.echo completes with the last run's keys.
    answer = await client.post(
        build + "/complete",
        data={"step": "after", "text": "{{ steps.hello.output."},
        headers=htmx_headers(client, build),
    )
    assert [o["label"] for o in answer.json()["options"]] == ["who"]


def validator_message(api: Api, text: str) -> str:
    """What ``hub flows validate`` says of the hello step's input ``text``."""
    broken = document()
    broken["steps"][1]["input"]["name"] = text
    with pytest.raises(FlowError) as caught:
        load_flow(broken, expressions=api.hub.expressions, registry=api.hub.registry)
    messages = [i.message for i in caught.value.issues if i.location.startswith("steps[1].input")]
    assert len(messages) == 1, caught.value.issues
    return messages[0]


async def test_preview_errors_are_the_validators(api: Api, client: httpx.AsyncClient) -> None:
    bad = await post(client, "/preview", step="hello", pointer="/name", text="{{ steps. }}")
    assert bad["value"] is None and bad["error"]
    assert bad["diagnostics"][0]["line"] == 1
    text = "{{ steps.shape.output }}"  # shape runs after hello
    found = await post(client, "/preview", step="hello", pointer="/name", text=text)
    assert found["error"] == validator_message(api, text)
    assert "not an ancestor" in found["error"]
    diagnostic = found["diagnostics"][0]
    assert text[diagnostic["from"] : diagnostic["to"]] == "steps.shape.output"
    text = "{{ steps.fetch.output.stats }}"
    found = await post(client, "/preview", step="hello", pointer="/name", text=text)
    assert found["error"] == validator_message(api, text)
    assert "did you mean 'status'" in found["error"]
    # A two-line expression's parse error names its line.
    broken = await post(client, "/preview", step="hello", pointer="/name", text="a\n{{ 1 + }}")
    assert broken["diagnostics"][0]["line"] == 2


async def test_scope_and_data_tree(api: Api, client: httpx.AsyncClient) -> None:
    ws = as_editor(api)
    await ws.pin_output("shop", "fetch", PINNED)
    answer = await client.get(BUILD + "/scope", params={"step": "shape"})
    assert answer.status_code == 200, answer.text
    scope = answer.json()
    names = [r["name"] for r in scope["roots"]]
    assert names[:3] == ["trigger", "steps", "run"] and "item" not in names
    steps = scope["roots"][1]["children"]
    assert [s["name"] for s in steps] == ["fetch", "hello"]
    output = steps[0]["children"][0]
    assert output["expression"] == "steps.fetch.output" and output["source"] == "pins"
    status = next(c for c in output["children"] if c["name"] == "status")
    assert status["value"] == "201" and status["type"] == "integer"
    assert any(f["name"] == "tojson" for f in scope["filters"])
    page = await client.get(BUILD + "/steps/shape/data", headers=htmx_headers(client, BUILD))
    assert page.status_code == 200, page.text
    html = page.text
    assert 'role="tree"' in html and 'role="treeitem"' in html
    assert 'data-insert="{{ steps.fetch.output.status }}"' in html
    assert "pins" in html
    missing = await client.get(BUILD + "/steps/nope/data", headers=htmx_headers(client, BUILD))
    assert missing.status_code == 200 and 'role="tree"' not in missing.text


async def test_a_viewer_gets_nothing(api: Api) -> None:
    answer = await api.call("POST", API, api.editor, json={"document": document()})
    assert answer.status_code == 201, answer.text
    viewer = await signed_in(api, api.viewer)
    answer = await viewer.get(BUILD + "/scope", params={"step": "shape"})
    await viewer.aclose()
    assert answer.status_code == 403


async def test_the_flow_output_and_for_each_items(api: Api, client: httpx.AsyncClient) -> None:
    ws = as_editor(api)
    await ws.pin_output("shop", "fetch", PINNED)
    # The flow's output (the flow panel's field: no step, pointer /output) reads any step.
    text = "{{ steps.shape.output }} {{ steps.fetch.output.json.n }}"
    found = await post(client, "/preview", step="", pointer="/output", text=text)
    assert found["error"] is None and found["value"].endswith(" 5")
    found = await post(client, "/complete", step="", pointer="/output", text="{{ steps.")
    assert [o["label"] for o in found["options"]] == ["fetch", "hello", "shape"]
    # A for_each step reads item (and index) in its input and when, not in for_each.
    ops = [{"op": "add", "path": "/steps/2/for_each", "value": [{"sku": "A-1"}, {"sku": "B"}]}]
    await ws.edit_draft("shop", ops)
    found = await post(client, "/complete", step="shape", pointer="/value", text="{{ item.")
    assert [o["label"] for o in found["options"]] == ["sku"]
    found = await post(client, "/preview", step="shape", setting="when", text="{{ item.sku }}")
    assert found["value"] == "A-1" and found["error"] is None
    found = await post(client, "/complete", step="shape", setting="for_each", text="{{ it")
    assert "item" not in [o["label"] for o in found["options"]]
