"""The flow builder's catalog, trigger panel and flow panel (issue 16): adding a step from
every installed action (at the end, after a step in its chain, as a branch), the trigger's
type, config, connection, schedule and webhook URL, and the flow-level fields. Every edit is
one undo entry that undo takes back exactly.

In-process against the real app (real SQLite), signed in through the sign-in form; no
browser (tests/browser/test_builder_catalog.py drives the same panels in Chromium).
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jsonpatch
import pytest

from hub import Action
from hub.services.workspace import WorkspaceHub
from hub.settings import Settings
from hub.web.builder.catalog import (
    add_step_ops,
    catalog_groups,
    default_input,
    new_step,
    new_step_id,
    resolved_needs,
)
from hub.web.builder.trigger_panel import fire_times, trigger_types
from tests.api_kit import Api, flow_document, started_api
from tests.web_kit import htmx_headers, post_form, signed_in

API = "/api/w/default/flows"
BUILD = "/w/default/flows/greet/build"


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async for value in started_api(settings):
        yield value


def editor_ws(api: Api) -> WorkspaceHub:
    caller = api.editor
    return WorkspaceHub(
        api.hub, "default", actor=caller.email, user_id=caller.user_id, role="editor"
    )


async def builder(api: Api, **changes: Any) -> tuple[httpx.AsyncClient, WorkspaceHub]:
    """The flow ``greet`` (``changes`` to its document) saved, the editor signed in with its
    draft open."""
    answer = await api.call("POST", API, api.editor, json={"document": flow_document(**changes)})
    assert answer.status_code == 201, answer.text
    client = await signed_in(api, api.editor)
    opened = await client.get(BUILD)
    assert opened.status_code == 200, opened.text
    return client, editor_ws(api)


async def post(client: httpx.AsyncClient, tail: str, data: dict[str, Any]) -> httpx.Response:
    answer = await post_form(client, BUILD + tail, data, headers=htmx_headers(client, BUILD))
    assert answer.status_code == 200, answer.text
    return answer


async def panel(client: httpx.AsyncClient, query: str) -> str:
    """The side panel alone (as htmx asks for it)."""
    answer = await client.get(
        f"{BUILD}?{query}", headers={**htmx_headers(client, BUILD), "hx-target": "builder-panel"}
    )
    assert answer.status_code == 200, answer.text
    assert "<html" not in answer.text
    return answer.text


async def one_undo_entry(ws: WorkspaceHub, before: dict[str, Any], labels: int) -> dict[str, Any]:
    """The draft after an edit that must be one undo entry: undo gives ``before`` back
    exactly (key order too), redo the edit again; the edited document."""
    draft = await ws.draft("greet")
    assert len(draft.undo_labels) == labels + 1, draft.undo_labels
    after = copy.deepcopy(draft.document)
    undone = await ws.undo_draft("greet")
    assert undone.document == before and list(undone.document) == list(before)
    redone = await ws.redo_draft("greet")
    assert redone.document == after
    return after


CHAIN = [
    {"id": "a", "action": "test.echo"},
    {"id": "b", "action": "test.echo"},
    {"id": "c", "action": "test.echo", "needs": ["a", "b"]},
    {"id": "d", "action": "test.echo", "on_error": "h"},
    {"id": "h", "action": "test.echo"},
    {"id": "e", "action": "test.echo"},
]


def apply(document: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    return jsonpatch.apply_patch(document, ops)


# -- the catalog -----------------------------------------------------------------------------


async def test_the_catalog_lists_every_action_and_searches_on_the_server(api: Api) -> None:
    registry = api.hub.registry
    listed = {a.full_name: a for g in catalog_groups(registry) for a in g.actions}
    assert set(listed) == set(registry.actions)  # the plugins' too (test, vault, oauthy)
    assert listed["vault.reveal"].needs_connection and not listed["http.request"].needs_connection
    kept = {a.full_name for g in catalog_groups(registry, "VAULT reveal") for a in g.actions}
    assert kept == {"vault.reveal"}

    client, _ = await builder(api)
    text = await panel(client, "panel=catalog")
    for name in registry.actions:
        assert f'value="{name}"' in text
    assert 'for="catalog-q"' in text and "needs a connection" in text
    results = await client.get(f"{BUILD}/catalog?q=echo", headers=htmx_headers(client, BUILD))
    assert results.status_code == 200 and 'id="catalog-results"' in results.text
    assert 'value="test.echo"' in results.text and 'value="http.request"' not in results.text
    # Without JavaScript: the search form reloads the page with the panel filtered.
    whole = await client.get(f"{BUILD}?panel=catalog&q=reveal")
    assert "<html" in whole.text and 'value="vault.reveal"' in whole.text
    assert 'value="http.request"' not in whole.text
    after = await panel(client, "panel=catalog&after=hello")
    assert 'name="after" value="hello"' in after


async def test_adding_at_the_end_selects_the_step_with_unique_ids(api: Api) -> None:
    client, ws = await builder(api)
    before = copy.deepcopy((await ws.draft("greet")).document)
    answer = await post(client, "/steps", {"action": "http.request"})
    assert 'data-selected-step="http_request"' in answer.text
    assert answer.headers.get("hx-push-url") == f"{BUILD}?step=http_request"
    document = await one_undo_entry(ws, before, 0)
    assert document["steps"][-1] == {
        "id": "http_request",
        "name": "HTTP request",
        "action": "http.request",
        "input": {},
    }
    assert (await ws.draft("greet")).undo_labels == ["add http_request (http.request)"]
    needs, _ = resolved_needs(document, api.hub.expressions)
    assert needs["http_request"] == ("hello",)
    await post(client, "/steps", {"action": "http.request"})
    await post(client, "/steps", {"action": "http.request"})
    ids = [s["id"] for s in (await ws.draft("greet")).document["steps"]]
    assert ids == ["hello", "http_request", "http_request_2", "http_request_3"]
    refused = await post_form(
        client, f"{BUILD}/steps", {"action": "no.such"}, headers=htmx_headers(client, BUILD)
    )
    assert refused.status_code == 422
    # Without JavaScript: back to the builder with the new step selected.
    plain = await post_form(client, f"{BUILD}/steps", {"action": "test.echo"})
    assert plain.status_code == 303 and plain.headers["location"] == f"{BUILD}?step=test_echo"


async def test_after_a_step_rewires_its_chain_exactly(api: Api) -> None:
    client, ws = await builder(api, steps=copy.deepcopy(CHAIN))
    before = copy.deepcopy((await ws.draft("greet")).document)
    await post(client, "/steps", {"action": "test.echo", "after": "a"})
    document = await one_undo_entry(ws, before, 0)
    steps = document["steps"]
    assert [s["id"] for s in steps] == ["a", "test_echo", "b", "c", "d", "h", "e"]
    assert "needs" not in steps[1] and "needs" not in steps[2]  # the chain says it already
    assert steps[3]["needs"] == ["test_echo", "b"]  # explicit needs of a: now the new step
    old, _ = resolved_needs(before, api.hub.expressions)
    new, _ = resolved_needs(document, api.hub.expressions)
    assert new["test_echo"] == ("a",)
    expected = {k: tuple("test_echo" if n == "a" else n for n in v) for k, v in old.items()}
    assert {k: v for k, v in new.items() if k != "test_echo"} == expected


async def test_implicit_needs_that_would_change_are_written_out(api: Api) -> None:
    """After an error handler: the step after it needed the step before the handler (the
    previous non-handler step); inserting a step there would make it need the new one, so it
    gets an explicit needs saying what it meant; the new step needs the handler explicitly."""
    expressions = api.hub.expressions
    document = {"id": "f", "steps": copy.deepcopy(CHAIN)}
    step = {"id": "n", "action": "test.echo", "input": {}}
    ops = add_step_ops(document, step, expressions, after="h")
    result = apply(document, ops)
    assert [s["id"] for s in result["steps"]] == ["a", "b", "c", "d", "h", "n", "e"]
    assert result["steps"][5]["needs"] == ["h"]
    assert result["steps"][6]["needs"] == ["d"]  # e needed d (h is a handler), still does
    old, _ = resolved_needs(document, expressions)
    new, _ = resolved_needs(result, expressions)
    assert {k: v for k, v in new.items() if k != "n"} == old
    # After the last step: like adding at the end, nothing written out.
    last = apply(document, add_step_ops(document, step, expressions, after="e"))
    assert last["steps"][-1] == step
    assert apply(document, add_step_ops(document, step, expressions)) == last


async def test_a_branch_needs_its_step_and_changes_nothing_else(api: Api) -> None:
    client, ws = await builder(api, steps=copy.deepcopy(CHAIN))
    before = copy.deepcopy((await ws.draft("greet")).document)
    text = await panel(client, "panel=catalog&branch=b")
    assert "as a branch from" in text and 'name="branch" value="b"' in text
    await post(client, "/steps", {"action": "test.echo", "branch": "b"})
    document = await one_undo_entry(ws, before, 0)
    assert document["steps"][:-1] == before["steps"]
    assert document["steps"][-1]["needs"] == ["b"]
    old, _ = resolved_needs(before, api.hub.expressions)
    new, _ = resolved_needs(document, api.hub.expressions)
    assert new == {**old, "test_echo": ("b",)}
    bad = await post_form(
        client,
        f"{BUILD}/steps",
        {"action": "test.echo", "after": "nope"},
        headers=htmx_headers(client, BUILD),
    )
    assert bad.status_code == 422 and "no step" in bad.text


def test_a_new_step_takes_the_defaults_of_required_fields_only() -> None:
    async def run(ctx: Any, data: Any) -> Any:
        return data

    act = Action(
        name="make",
        title="Make a thing",
        run=run,
        input_schema={
            "type": "object",
            "properties": {
                "size": {"type": "integer", "default": 3},
                "colour": {"type": "string", "default": "red"},
                "label": {"type": "string"},
                "shape": {"$ref": "#/$defs/shape"},
            },
            "required": ["size", "label", "shape"],
            "$defs": {"shape": {"enum": ["round", "square"], "default": "round"}},
        },
    )
    assert default_input(act) == {"size": 3, "shape": "round"}
    document = {"steps": [{"id": "x_make"}, {"id": "x_make_2"}]}
    assert new_step_id(document, "x.make") == "x_make_3"
    assert new_step_id({"steps": []}, "9.fail") == "_9_fail"
    assert new_step(document, "x.make", act)["name"] == "Make a thing"


# -- the trigger -----------------------------------------------------------------------------


async def test_every_trigger_of_the_registry_is_offered(api: Api) -> None:
    keys = [t.key for t in trigger_types(api.hub.registry)]
    assert keys[0] == "manual" and {"webhook", "schedule", "test.events", "test.feed"} <= set(keys)
    client, _ = await builder(api)
    text = await panel(client, "panel=trigger")
    for key in keys:
        assert f'value="{key}"' in text
    assert "This trigger has no settings." in text  # manual


async def test_changing_the_trigger_type_drops_the_old_config(api: Api) -> None:
    client, ws = await builder(api, trigger={"type": "webhook", "config": {"methods": ["PUT"]}})
    text = await panel(client, "panel=trigger")
    assert "/hooks/default/greet" in text and 'data-copy="trigger-webhook-url"' in text
    before = copy.deepcopy((await ws.draft("greet")).document)
    answer = await post(client, "/trigger", {"_part": "type", "type": "schedule"})
    assert answer.headers.get("hx-retarget") == "#builder-panel"
    assert "Cron presets" in answer.text
    document = await one_undo_entry(ws, before, 0)
    assert document["trigger"] == {"type": "schedule"}
    assert (await ws.draft("greet")).undo_labels == ["trigger: schedule"]


async def test_the_schedule_config_round_trips_with_its_next_runs(api: Api) -> None:
    client, ws = await builder(api, trigger={"type": "schedule", "config": {"cron": "0 * * * *"}})
    text = await panel(client, "panel=trigger")
    assert 'name="v.cron"' in text and 'value="0 * * * *"' in text
    assert '<option value="Europe/Paris">' in text  # the time zone select
    assert text.count("<li><time") == 5
    before = copy.deepcopy((await ws.draft("greet")).document)
    answer = await post(
        client,
        "/trigger",
        {"_part": "config", "v.cron": "*/5 * * * *", "v.timezone": "Europe/Paris"},
    )
    assert "hx-retarget" not in answer.headers  # typing: out-of-band regions only
    assert 'id="trigger-schedule" class="trigger-schedule" aria-live="polite" hx-swap-oob' in (
        answer.text
    )
    assert answer.text.count("<li><time") == 5 and 'data-panel="trigger"' not in answer.text
    document = await one_undo_entry(ws, before, 0)
    assert document["trigger"] == {
        "type": "schedule",
        "config": {"cron": "*/5 * * * *", "timezone": "Europe/Paris"},
    }
    again = await panel(client, "panel=trigger")
    assert 'value="*/5 * * * *"' in again
    assert '<option value="Europe/Paris" selected>' in again
    # A preset sets the cron expression and draws the panel again.
    preset = await post(
        client, "/trigger", {"_part": "config", "v.cron": "x", "preset": "0 9 * * 1-5"}
    )
    assert preset.headers.get("hx-retarget") == "#builder-panel"
    trigger = (await ws.draft("greet")).document["trigger"]
    assert trigger["config"]["cron"] == "0 9 * * 1-5"


def test_fire_times_are_the_schedulers_ticks() -> None:
    start = dt.datetime(2026, 12, 4, 16, 30, tzinfo=dt.UTC)  # a Friday
    times, error = fire_times({"cron": "0 9 * * 1-5", "timezone": "Europe/Paris"}, now=start)
    assert error == ""
    assert [t.isoformat() for t in times] == [
        "2026-12-07T09:00:00+01:00",
        "2026-12-08T09:00:00+01:00",
        "2026-12-09T09:00:00+01:00",
        "2026-12-10T09:00:00+01:00",
        "2026-12-11T09:00:00+01:00",
    ]
    assert fire_times({}, now=start) == ([], "")
    assert fire_times({"cron": "nope"}, now=start)[1].startswith("the schedule cannot be read")
    assert "cannot be read" in fire_times({"cron": "* * * * *", "timezone": "Mars/Base"})[1]


async def test_a_bad_cron_shows_its_error_at_the_field(api: Api) -> None:
    client, ws = await builder(api, trigger={"type": "schedule", "config": {"cron": "0 * * * *"}})
    answer = await post(client, "/trigger", {"_part": "config", "v.cron": "every day"})
    live = answer.text.split('id="trigger-live-errors"')[1].split("</div>\n</div>")[0]
    assert 'data-error-for="f-v-cron"' in live and "not a valid cron expression" in live
    assert "the schedule cannot be read" in answer.text
    assert (await ws.draft("greet")).document["trigger"]["config"] == {"cron": "every day"}
    text = await panel(client, "panel=trigger")
    error = re.search(r'<div class="field-error" id="f-v-cron-error">(.*?)</div>', text, re.S)
    assert error and "not a valid cron expression" in error.group(1)
    assert 'aria-invalid="true"' in text


async def test_a_connectors_trigger_takes_its_connection(api: Api) -> None:
    client, ws = await builder(api, trigger={"type": "test.events"})
    await ws.create_connection("events-source", "test", {"token": "t0ken"})
    text = await panel(client, "panel=trigger")
    assert 'id="trigger-connection"' in text and '<option value="events-source">' in text
    before = copy.deepcopy((await ws.draft("greet")).document)
    await post(client, "/trigger", {"_part": "config", "connection": "events-source"})
    document = await one_undo_entry(ws, before, 0)
    assert document["trigger"] == {"type": "test.events", "connection": "events-source"}
    answer = await post(client, "/trigger", {"_part": "config", "connection": "nope"})
    errors = answer.text.split('id="trigger-connection-errors"')[1].split("</div></div>")[0]
    assert "no connection named" in errors
    await post(client, "/trigger", {"_part": "config", "connection": ""})
    assert (await ws.draft("greet")).document["trigger"] == {"type": "test.events"}


# -- the flow-level fields -------------------------------------------------------------------


async def test_the_flow_fields_round_trip_and_show_their_issues(api: Api) -> None:
    client, ws = await builder(api, description="Says hello")
    text = await panel(client, "panel=flow")
    assert 'data-pointer="/output"' in text and "data-expression-field" in text
    assert 'value="Greet"' in text and "Says hello" in text
    before = copy.deepcopy((await ws.draft("greet")).document)
    answer = await post(
        client,
        "/flow",
        {
            "name": "Greet people",
            "description": "",
            "output": "{{ steps.hello.output }}",
            "priority": "high",
            "concurrency": "3",
        },
    )
    assert 'id="flow-name-errors"' in answer.text and 'data-panel="flow"' not in answer.text
    document = await one_undo_entry(ws, before, 0)
    assert "description" not in document
    assert {k: document[k] for k in ("name", "output", "priority", "concurrency")} == {
        "name": "Greet people",
        "output": "{{ steps.hello.output }}",
        "priority": "high",
        "concurrency": 3,
    }
    text = await panel(client, "panel=flow")
    assert '<option value="high" selected>' in text and 'value="3"' in text
    # An object output is JSON in the field and back; a bad concurrency: its issue at it.
    await post(client, "/flow", {"output": '{"greeting": "{{ steps.hello.output }}"}'})
    assert (await ws.draft("greet")).document["output"] == {"greeting": "{{ steps.hello.output }}"}
    bad = await post(client, "/flow", {"concurrency": "0"})
    errors = bad.text.split('id="flow-concurrency-errors"')[1].split("</div></div>")[0]
    assert "minimum" in errors or "less than" in errors
    labels = (await ws.draft("greet")).undo_labels
    assert labels == ["flow: name, description, output, priority, concurrency", "flow: output",
                      "flow: concurrency"]  # fmt: skip
    # Only the keys sent change; an empty field removes its key.
    await post(client, "/flow", {"priority": "", "concurrency": ""})
    document = (await ws.draft("greet")).document
    assert "priority" not in document and "concurrency" not in document
    assert document["name"] == "Greet people"


def form_values(html: str, form_id: str) -> list[tuple[str, str]]:
    """What a browser submits of the form ``form_id`` as drawn (inputs with their values,
    ticked boxes only, each select's chosen option, textareas), without its buttons."""
    from html.parser import HTMLParser

    class Reader(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.inside = False
            self.pairs: list[tuple[str, str]] = []
            self.select: str | None = None
            self.options: list[tuple[str, bool]] = []
            self.textarea: str | None = None

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            a = {k: v or "" for k, v in attrs}
            if tag == "form" and a.get("id") == form_id:
                self.inside = True
            if not self.inside:
                return
            if tag == "input" and a.get("name") and a.get("type") not in ("submit", "button"):
                if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                    return
                self.pairs.append((a["name"], a.get("value", "")))
            elif tag == "select":
                self.select, self.options = a.get("name"), []
            elif tag == "option" and self.select is not None:
                self.options.append((a.get("value", ""), "selected" in a))
            elif tag == "textarea":
                self.textarea = a.get("name")
                self.pairs.append((self.textarea or "", ""))

        def handle_data(self, data: str) -> None:
            if self.textarea is not None:
                name, text = self.pairs[-1]
                self.pairs[-1] = (name, text + data)

        def handle_endtag(self, tag: str) -> None:
            if tag == "form" and self.inside:
                self.inside = False
            elif tag == "select" and self.select is not None:
                chosen = [v for v, on in self.options if on] or [v for v, _ in self.options[:1]]
                if self.select and chosen:
                    self.pairs.append((self.select, chosen[0]))
                self.select = None
            elif tag == "textarea":
                self.textarea = None

    reader = Reader()
    reader.feed(html)
    return reader.pairs


async def test_an_untouched_config_form_writes_no_config(api: Api) -> None:
    """Every field of a big config (the webhook's: checkboxes, choices, nested objects) as
    the browser sends it untouched gives the config back as it was: nothing is invented."""
    for config in ({}, {"methods": ["PUT"], "response": {"mode": "sync", "timeout": 5}}):
        trigger = {"type": "webhook", **({"config": config} if config else {})}
        answer = await api.call("POST", API, api.editor, json={"document": flow_document(
            f"hook{len(config)}", trigger=trigger)})  # fmt: skip
        assert answer.status_code == 201, answer.text
        client = await signed_in(api, api.editor)
        build = f"/w/default/flows/hook{len(config)}/build"
        text = (await client.get(f"{build}?panel=trigger")).text
        pairs: dict[str, list[str]] = {}
        for key, value in form_values(text, "trigger-config-form"):
            if key != "_csrf_token":
                pairs.setdefault(key, []).append(value)
        assert len(pairs) > 15 and "v.signature.scheme" in pairs, pairs
        sent = await post_form(
            client, f"{build}/trigger", pairs, headers=htmx_headers(client, build)
        )
        assert sent.status_code == 200, sent.text
        draft = await editor_ws(api).draft(f"hook{len(config)}")
        assert draft.document["trigger"] == trigger
        assert draft.undo_labels == []


async def test_an_edit_from_a_stale_page_is_refused(api: Api) -> None:
    client, ws = await builder(api)
    revision = (await ws.draft("greet")).revision
    await post(client, "/flow", {"name": "First", "revision": str(revision)})
    for tail, data in (
        ("/flow", {"name": "Second"}),
        ("/steps", {"action": "test.echo"}),
        ("/trigger", {"_part": "type", "type": "webhook"}),
    ):
        stale = await post_form(
            client,
            BUILD + tail,
            {**data, "revision": str(revision)},
            headers=htmx_headers(client, BUILD),
        )
        assert stale.status_code == 409, (tail, stale.text)
    document = (await ws.draft("greet")).document
    assert document["name"] == "First" and len(document["steps"]) == 1
