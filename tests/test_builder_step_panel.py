"""The flow builder's step panel (issue 16: forms from JSON Schema, step settings): the input
form of the action's schema with every construct, the Fixed | Expression switch of every
field, dynamic options, the connection, the settings, and the save of the whole panel as one
edit of the draft whose result is exactly what was typed.

In-process against the real app (real SQLite, the real validation); no browser
(``tests/browser/test_builder_forms.py`` drives the same panel in Chromium).
"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from hub.runtime import Hub
from hub.services.workspace import WorkspaceHub
from hub.settings import Settings
from tests import forms_plugin, kit
from tests.api_kit import Api, ApiPlugin, make_api
from tests.web_kit import csrf_token, htmx_headers, signed_in

API = "/api/w/default/flows"
BUILD = "/w/default/flows/forms-flow/build"
SAVE = f"{BUILD}/steps/every"


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    hub = Hub(settings, plugins=[kit, ApiPlugin(), forms_plugin], entry_points=False)
    await hub.start(migrate=False)
    try:
        async for value in make_api(hub):
            yield value
    finally:
        await hub.stop(grace=1.0)


def flow() -> dict[str, Any]:
    """Three steps: one before, the step of every construct, one that can handle errors."""
    return {
        "id": "forms-flow",
        "name": "Forms",
        "trigger": {"type": "manual"},
        "steps": [
            {"id": "first", "action": "test.echo", "input": {"a": 1}},
            {
                "id": "every",
                "action": "forms.every",
                "connection": "main",
                "input": {"url": "https://example.com/"},
            },
            {"id": "rescue", "name": "Rescue", "action": "test.echo"},
        ],
    }


async def editor(api: Api) -> httpx.AsyncClient:
    """The editor signed in, the flow and the connection ``main`` created."""
    made = await api.call(
        "POST",
        "/api/w/default/connections",
        api.editor,
        json={"name": "main", "connector": "forms", "values": {"region": "eu"}},
    )
    assert made.status_code == 201, made.text
    created = await api.call("POST", API, api.editor, json={"document": flow()})
    assert created.status_code == 201, created.text
    return await signed_in(api, api.editor)


def person(api: Api) -> WorkspaceHub:
    return WorkspaceHub(
        api.hub, "default", actor=api.editor.email, user_id=api.editor.user_id, role="editor"
    )


async def step(api: Api, step_id: str = "every") -> dict[str, Any]:
    """The step as the editor's draft has it now."""
    draft = await person(api).draft("forms-flow")
    found = [s for s in draft.document["steps"] if s["id"] == step_id]
    return dict(found[0])


SETTINGS_UNTOUCHED = [
    ("step.name", ""),
    ("step.connection", "main"),
    ("step.needs_mode", "default"),
    ("step.when", ""),
    ("step.for_each", ""),
    ("step.concurrency", ""),
    ("step.retry", "1"),
    ("step.retry.max_attempts", ""),
    ("step.retry.backoff", ""),
    ("step.retry.initial", ""),
    ("step.retry.max", ""),
    ("step.timeout", ""),
    ("step.on_error", ""),
]


async def save(
    client: httpx.AsyncClient, pairs: list[tuple[str, str]], path: str = SAVE
) -> httpx.Response:
    """Post the panel's form as the browser does (pairs in order, repeated names)."""
    answer = await client.post(
        path,
        content=httpx.QueryParams([*pairs, ("_csrf_token", csrf_token(client))]).__str__(),
        headers={
            **htmx_headers(client, BUILD),
            "content-type": "application/x-www-form-urlencoded",
        },
    )
    return answer


async def panel(client: httpx.AsyncClient, step_id: str = "every") -> str:
    """The side panel of a step, as the page swaps it in."""
    answer = await client.get(
        f"{BUILD}?step={step_id}",
        headers={**htmx_headers(client, BUILD), "hx-target": "builder-panel"},
    )
    assert answer.status_code == 200, answer.text
    return answer.text


def slot(text: str, slot_id: str) -> str:
    """The text of an issue slot in a page or an answer."""
    match = re.search(
        rf'<div class="field-error step-issues" id="{re.escape(slot_id)}"[^>]*>(.*?)</div>',
        text,
        re.S,
    )
    assert match, f"no slot {slot_id}"
    return html.unescape(re.sub(r"<[^>]+>", " ", match.group(1))).strip()


def textarea(text: str, control_id: str) -> str:
    """A textarea's content as the browser reads it (the newline after the tag dropped)."""
    match = re.search(
        rf'<textarea[^>]* id="{re.escape(control_id)}"[^>]*>\n(.*?)</textarea>', text, re.S
    )
    assert match, f"no textarea {control_id}"
    return html.unescape(match.group(1))


EXPRESSION = '{{ trigger.base }}/path?q={{ trigger.q | urlencode }} \n  "tail" <&> '
EVERY_FORM: list[tuple[str, str]] = [
    ("step.input", "1"),
    ("v.url.__expr__", "1"),
    ("v.url", EXPRESSION.replace("\n", "\r\n")),
    ("v.count", "7"),
    ("v.ratio", "0.25"),
    ("v.enabled", ""),
    ("v.enabled", "true"),
    ("v.method", "POST"),
    ("v.note", "line one\r\nline two"),
    ("v.tags.__set__", "1"),
    ("v.tags.__row__", "0"),
    ("v.tags.0", "a"),
    ("v.tags.__row__", "1"),
    ("v.tags.1", ""),
    ("v.headers.__kv__", "0"),
    ("v.headers.__key__.0", "X-Trace"),
    ("v.headers.__value__.0.__expr__", "1"),
    ("v.headers.__value__.0", "{{ trigger.id }}"),
    ("v.headers.__kv__", "1"),
    ("v.headers.__key__.1", "Accept"),
    ("v.headers.__value__.1", "application/json"),
    ("v.address.city", "Oslo"),
    ("v.address.zip", ""),
    ("v.content.__choice__", "1"),
    ("v.content.kind", "inline"),
    ("v.content.text", "hi"),
    ("v.pipeline", "sales"),
    ("v.token", "tok-1"),
]
EVERY_INPUT = {
    "url": EXPRESSION,
    "count": 7,
    "ratio": 0.25,
    "enabled": True,
    "method": "POST",
    "note": "line one\nline two",
    "tags": ["a", ""],
    "headers": {"X-Trace": "{{ trigger.id }}", "Accept": "application/json"},
    "address": {"city": "Oslo"},
    "content": {"kind": "inline", "text": "hi"},
    "pipeline": "sales",
    "token": "tok-1",
}


async def test_every_construct_lands_in_the_document_exactly(api: Api) -> None:
    client = await editor(api)
    answer = await save(client, EVERY_FORM + SETTINGS_UNTOUCHED)
    assert answer.status_code == 200, answer.text
    saved = await step(api)
    assert saved == {
        "id": "every",
        "action": "forms.every",
        "connection": "main",
        "input": EVERY_INPUT,
    }
    assert isinstance(saved["input"]["count"], int) and isinstance(saved["input"]["ratio"], float)
    # One edit, named after the step; the answer swaps slots, never the fields.
    draft = await person(api).draft("forms-flow")
    assert draft.undo_labels == ["edit step every"]
    assert 'id="f-v-url-issues"' in answer.text and 'hx-swap-oob="true"' in answer.text
    assert 'name="v.count"' not in answer.text
    # Drawn again, each field shows what the document holds: the expression byte for byte.
    text = await panel(client)
    assert textarea(text, "f-v-url-text") == EXPRESSION
    assert re.search(r'id="f-v-url-expr"[^>]*checked', text)
    assert textarea(text, "f-v-headers-__value__-0-text") == "{{ trigger.id }}"
    assert 'data-pointer="/headers/X-Trace"' in text and 'data-step="every"' in text
    assert not re.search(r'id="f-v-count-expr"[^>]*checked', text)
    assert 'value="7"' in text and 'value="0.25"' in text
    assert 'value="1" selected>Inline text' in text
    # Posting the same form again changes nothing (no second undo entry); the secret left
    # empty keeps its value.
    again = [(k, "" if k == "v.token" else v) for k, v in EVERY_FORM]
    await save(client, again + SETTINGS_UNTOUCHED)
    assert (await step(api))["input"] == EVERY_INPUT
    assert (await person(api).draft("forms-flow")).undo_labels == ["edit step every"]
    # The secret is never shown; it says it is stored, and can be removed.
    assert "tok-1" not in text and "Stored — leave empty to keep it." in text
    await save(client, [*again, ("v.token.__clear__", "1"), *SETTINGS_UNTOUCHED])
    assert "token" not in (await step(api))["input"]


async def test_one_field_changed_is_one_edit_named_after_it(api: Api) -> None:
    client = await editor(api)
    untouched = [  # as the browser sends fields left alone: a box, a choice, empty texts
        ("v.enabled", ""),
        ("v.note", ""),
        ("v.content.__choice__", "0"),
        ("v.content.kind", "template"),
        ("v.content.name", ""),
        ("v.tags.__set__", "1"),
    ]
    form = [("step.input", "1"), ("v.url", "https://example.com/new"), *untouched]
    await save(client, [*form, *SETTINGS_UNTOUCHED])
    saved = await step(api)
    assert saved["input"] == {"url": "https://example.com/new"}
    assert (await person(api).draft("forms-flow")).undo_labels == ["edit every.input.url"]
    # A field whose value is a template, posted in fixed mode, is kept as typed too.
    await save(client, [("step.input", "1"), ("v.url", "{{ trigger.url }}"), *SETTINGS_UNTOUCHED])
    assert (await step(api))["input"] == {"url": "{{ trigger.url }}"}
    assert re.search(r'id="f-v-url-expr"[^>]*checked', await panel(client))


async def test_a_required_field_left_empty_shows_the_servers_message_at_it(api: Api) -> None:
    client = await editor(api)
    answer = await save(client, [("step.input", "1"), ("v.url", ""), *SETTINGS_UNTOUCHED])
    assert answer.status_code == 200, answer.text
    assert "url" not in (await step(api))["input"]
    assert slot(answer.text, "f-v-url-issues") == "required: fill this in"
    assert slot(await panel(client), "f-v-url-issues") == "required: fill this in"
    # A required property inside an object: its own slot.
    answer = await save(
        client,
        [("step.input", "1"), ("v.url", "x"), ("v.address.zip", "0150"), ("v.address.city", "")],
    )
    assert (await step(api))["input"] == {"url": "x", "address": {"zip": "0150"}}
    assert slot(answer.text, "f-v-address-city-issues") == "required: fill this in"


async def test_a_bad_expression_shows_its_error_at_the_field(api: Api) -> None:
    client = await editor(api)
    bad = "{{ trigger.url "
    answer = await save(
        client, [("step.input", "1"), ("v.url.__expr__", "1"), ("v.url", bad), *SETTINGS_UNTOUCHED]
    )
    assert (await step(api))["input"] == {"url": bad}
    message = slot(answer.text, "f-v-url-issues")
    assert "unexpected end of template" in message or "expected token" in message, message
    text = await panel(client)
    assert textarea(text, "f-v-url-text") == bad
    assert slot(text, "f-v-url-issues") == message
    # A number field holding letters: the document keeps its value, the field says why.
    await save(client, [("step.input", "1"), ("v.url", "x"), ("v.count", "3")])
    answer = await save(client, [("step.input", "1"), ("v.url", "x"), ("v.count", "three")])
    assert (await step(api))["input"] == {"url": "x", "count": 3}
    assert "is not a whole number" in slot(answer.text, "f-v-count-issues")


async def test_settings_round_trip_and_leave_no_empty_key(api: Api) -> None:
    client = await editor(api)
    base = dict(SETTINGS_UNTOUCHED)

    async def settings(**changes: str | list[str]) -> dict[str, Any]:
        pairs: list[tuple[str, str]] = []
        for key, value in {**base, **changes}.items():
            for item in value if isinstance(value, list) else [value]:
                pairs.append((key, item))
        answer = await save(client, pairs)
        assert answer.status_code == 200, answer.text
        return await step(api)

    assert (await settings(**{"step.needs_mode": "trigger"}))["needs"] == []
    assert "needs" not in await settings(**{"step.needs_mode": "default"})
    chosen = await settings(**{"step.needs_mode": "steps", "step.needs": ["rescue", "first"]})
    assert chosen["needs"] == ["first", "rescue"]  # the document's order
    chosen = await settings(**{"step.needs_mode": "steps", "step.needs": ["first"]})
    assert chosen["needs"] == ["first"]
    got = await settings(
        **{
            "step.needs_mode": "default",
            "step.name": "Every field",
            "step.when": "{{ trigger.go }}",
            "step.for_each": "{{ trigger.items }}",
            "step.concurrency": "4",
            "step.retry.max_attempts": "3",
            "step.retry.backoff": "constant",
            "step.retry.initial": "2s",
            "step.retry.max": "30",
            "step.timeout": "1m30s",
            "step.on_error": "rescue",
        }
    )
    assert got == {
        "id": "every",
        "action": "forms.every",
        "connection": "main",
        "input": {"url": "https://example.com/"},
        "name": "Every field",
        "when": "{{ trigger.go }}",
        "for_each": "{{ trigger.items }}",
        "concurrency": 4,
        "retry": {"max_attempts": 3, "backoff": "constant", "initial": "2s", "max": 30},
        "timeout": "1m30s",
        "on_error": "rescue",
    }
    text = await panel(client)
    assert 'value="Every field"' in text and 'value="1m30s"' in text
    assert textarea(text, "step-when") == "{{ trigger.go }}"
    assert re.search(r'<option value="rescue" selected>', text)
    # Emptied: every key goes, retry too (no "retry: {}" left behind).
    assert await settings() == {
        "id": "every",
        "action": "forms.every",
        "connection": "main",
        "input": {"url": "https://example.com/"},
    }
    # The server's issues at their setting: a bad duration, a for_each literal list.
    got = await settings(**{"step.timeout": "soon", "step.for_each": '[1, "two"]'})
    assert got["timeout"] == "soon" and got["for_each"] == [1, "two"]
    text = await panel(client)
    assert "must be a duration" in slot(text, "step-issues-timeout")


async def test_undo_brings_the_panel_back_out_of_band(api: Api) -> None:
    client = await editor(api)
    await save(
        client, [("step.input", "1"), ("v.url", "https://example.com/two"), *SETTINGS_UNTOUCHED]
    )
    answer = await client.post(
        f"{BUILD}/undo",
        data={"select": "every", "panel": "step", "_csrf_token": csrf_token(client)},
        headers=htmx_headers(client, BUILD),
    )
    assert answer.status_code == 200, answer.text
    assert '<div id="builder-panel" hx-swap-oob="innerHTML">' in answer.text
    assert 'value="https://example.com/"' in answer.text
    assert (await step(api))["input"] == {"url": "https://example.com/"}


async def test_add_and_remove_rows_redraw_the_panel(api: Api) -> None:
    client = await editor(api)
    form = [("step.input", "1"), ("v.url", "x"), ("v.tags.__set__", "1")]
    added = await save(client, [*form, ("_form_op", "add:v.tags")])
    assert added.headers["hx-retarget"] == "#builder-panel"
    assert (await step(api))["input"] == {"url": "x", "tags": [""]}
    assert re.search(r'<input type="text" id="f-v-tags-0"[^>]*autofocus', added.text)
    removed = await save(
        client,
        [*form, ("v.tags.__row__", "0"), ("v.tags.0", ""), ("_form_op", "remove:v.tags.0")],
    )
    assert removed.status_code == 200
    assert (await step(api))["input"] == {"url": "x"}


async def test_options_and_connections_come_from_the_connector(api: Api) -> None:
    client = await editor(api)
    text = await panel(client)
    whole = await client.get(f"{BUILD}?step=every")  # the whole page draws the panel too
    assert whole.status_code == 200 and 'data-selected-step="every"' in whole.text
    assert f'hx-post="{SAVE}/options/pipeline?status=f-v-pipeline-options"' in text
    assert re.search(r'<option value="main" selected>main</option>', text)
    assert 'href="/w/default/connections/new?connector=forms"' in text
    answer = await client.post(
        f"{SAVE}/options/pipeline?status=f-v-pipeline-options", headers=htmx_headers(client, BUILD)
    )
    assert answer.status_code == 200, answer.text
    assert '<option value="sales">Sales (eu)</option>' in answer.text
    assert "2 options listed by the service." in answer.text
    # Another connection made elsewhere shows up on Refresh.
    made = await api.call(
        "POST",
        "/api/w/default/connections",
        api.editor,
        json={"name": "second", "connector": "forms", "values": {"region": "us"}},
    )
    assert made.status_code == 201
    listed = await client.get(f"{SAVE}/connections", headers=htmx_headers(client, BUILD))
    assert '<option value="second">second</option>' in listed.text
    # Without a connection the service cannot be asked: the status says why.
    await save(client, [("step.connection", "")])
    assert "connection" not in await step(api)
    answer = await client.post(
        f"{SAVE}/options/pipeline?status=f-v-pipeline-options", headers=htmx_headers(client, BUILD)
    )
    assert 'class="field-error"' in answer.text and "connection" in answer.text


async def test_an_action_of_any_input_is_one_json_field(api: Api) -> None:
    client = await editor(api)
    text = await panel(client, "first")
    assert textarea(text, "f-v") == '{\n  "a": 1\n}'
    first = f"{BUILD}/steps/first"
    value = '{"a": 2, "b": [true, null, 1.5], "c": {"d": "{{ trigger.x }}"}}'
    await save(client, [("step.input", "1"), ("v", value)], path=first)
    assert (await step(api, "first"))["input"] == {
        "a": 2,
        "b": [True, None, 1.5],
        "c": {"d": "{{ trigger.x }}"},
    }
    await save(client, [("step.input", "1"), ("v", "")], path=first)
    assert "input" not in await step(api, "first")
    # The whole input as an expression.
    await save(
        client, [("step.input", "1"), ("v.__expr__", "1"), ("v", "{{ trigger }}")], path=first
    )
    assert (await step(api, "first"))["input"] == "{{ trigger }}"
    assert textarea(await panel(client, "first"), "f-v-text") == "{{ trigger }}"


async def test_a_value_its_control_cannot_show_is_kept_as_an_expression(api: Api) -> None:
    client = await editor(api)
    odd = {"url": "x", "count": "many", "method": "FETCH", "tags": "a,b"}
    await person(api).draft("forms-flow")
    await person(api).edit_draft(
        "forms-flow", [{"op": "replace", "path": "/steps/1/input", "value": odd}]
    )
    text = await panel(client)
    for name in ("count", "method", "tags"):
        assert re.search(rf'id="f-v-{name}-expr"[^>]*checked', text), name
    assert textarea(text, "f-v-count-text") == "many"
    pairs = [
        ("step.input", "1"),
        ("v.url", "x"),
        ("v.count.__expr__", "1"),
        ("v.count", "many"),
        ("v.method.__expr__", "1"),
        ("v.method", "FETCH"),
        ("v.tags.__expr__", "1"),
        ("v.tags", "a,b"),
        ("v.note", "now"),
    ]
    await save(client, pairs)
    assert (await step(api))["input"] == {**odd, "note": "now"}
