"""The flow builder's drafts (issue 16): a server-side draft per person and flow, each edit a
JSON Patch with its inverse (undo and redo give the document back exactly), the YAML text
edited with it, the save with the version it started from (409 with the diff when another
version was saved since), and the builder's page and edit pipeline.

In-process against the real app (real SQLite); no browser.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from typing import Any

import jsonpatch
import jsonpointer
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.services.drafts import apply_with_inverse
from hub.services.errors import Conflict, Invalid, NotFound
from hub.services.workspace import WorkspaceHub
from hub.settings import Settings
from tests.api_kit import Api, Caller, flow_document, started_api
from tests.web_kit import htmx_headers, post_form, signed_in

API = "/api/w/default/flows"
BUILD = "/w/default/flows/greet/build"


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async for value in started_api(settings):
        yield value


def as_person(api: Api, caller: Caller, role: str = "editor") -> WorkspaceHub:
    """The workspace's services acting as ``caller``."""
    return WorkspaceHub(api.hub, "default", actor=caller.email, user_id=caller.user_id, role=role)


async def create(api: Api, document: dict[str, Any]) -> None:
    answer = await api.call("POST", API, api.editor, json={"document": document})
    assert answer.status_code == 201, answer.text


async def test_undo_and_redo_give_the_document_back_exactly(api: Api) -> None:
    await create(api, flow_document())
    ws = as_person(api, api.editor)
    draft = await ws.draft("greet")
    original = copy.deepcopy(draft.document)
    edits = [
        [{"op": "replace", "path": "/name", "value": "Greet people"}],
        [{"op": "add", "path": "/steps/-", "value": {"id": "b", "action": "test.echo"}}],
        [{"op": "add", "path": "/steps/1/needs", "value": ["hello"]}],
        [{"op": "move", "from": "/steps/1", "path": "/steps/0"}],
        [{"op": "remove", "path": "/steps/1/input"}],
    ]
    seen = [original]
    for number, ops in enumerate(edits):
        draft = await ws.edit_draft("greet", ops, label=f"edit {number}")
        seen.append(copy.deepcopy(draft.document))
    assert draft.undo_labels == [f"edit {n}" for n in range(5)]
    for expected in reversed(seen[:-1]):
        draft = await ws.undo_draft("greet")
        assert draft.document == expected
        assert list(draft.document) == list(expected)  # key order too
    assert draft.undo_labels == [] and len(draft.redo_labels) == 5
    for expected in seen[1:]:
        draft = await ws.redo_draft("greet")
        assert draft.document == expected
    # A new edit drops what could be redone; an edit that changes nothing is not kept.
    await ws.undo_draft("greet")
    draft = await ws.edit_draft("greet", [{"op": "replace", "path": "/name", "value": "X"}])
    assert draft.redo_labels == []
    same = await ws.edit_draft("greet", [{"op": "replace", "path": "/name", "value": "X"}])
    assert len(same.undo_labels) == len(draft.undo_labels)


async def test_a_draft_is_per_person_and_survives(api: Api) -> None:
    await create(api, flow_document())
    editor, owner = as_person(api, api.editor), as_person(api, api.owner, "owner")
    await editor.draft("greet")
    await editor.edit_draft("greet", [{"op": "replace", "path": "/name", "value": "Mine"}])
    assert (await as_person(api, api.editor).draft("greet")).document["name"] == "Mine"
    assert (await owner.draft("greet")).document["name"] == "Greet"
    assert (await editor.draft("greet")).dirty
    assert not (await owner.draft("greet")).dirty


async def test_bad_edits_are_refused_and_change_nothing(api: Api) -> None:
    await create(api, flow_document())
    ws = as_person(api, api.editor)
    before = (await ws.draft("greet")).document
    with pytest.raises(Invalid, match="does not apply"):
        await ws.edit_draft("greet", [{"op": "remove", "path": "/steps/7"}])
    with pytest.raises(Invalid, match="id cannot change"):
        await ws.edit_draft("greet", [{"op": "replace", "path": "/id", "value": "other"}])
    with pytest.raises(Invalid, match=r"not a JSON Patch|does not apply"):
        await ws.edit_draft("greet", [{"op": "frobnicate", "path": "/name"}])
    draft = await ws.edit_draft("greet", [{"op": "replace", "path": "/name", "value": "A"}])
    with pytest.raises(Conflict, match="another tab"):
        await ws.edit_draft(
            "greet",
            [{"op": "replace", "path": "/name", "value": "B"}],
            revision=draft.revision - 1,
        )
    assert (await ws.draft("greet")).document == {**before, "name": "A"}
    with pytest.raises(NotFound):
        await ws.draft("no-such-flow")


async def test_viewers_have_no_drafts(api: Api) -> None:
    await create(api, flow_document())
    with pytest.raises(Exception, match="editor role"):
        await as_person(api, api.viewer, "viewer").draft("greet")


async def test_yaml_text_is_kept_as_typed_and_edits_reach_it(api: Api) -> None:
    await create(api, flow_document())
    ws = as_person(api, api.editor)
    await ws.draft("greet")
    text = (
        "# Greets whoever asks\n"
        "id: greet\n"
        "name: Greet\n"
        "trigger:\n  type: manual\n"
        "steps:\n"
        "  - id: hello  # the only step\n"
        "    action: test.echo\n"
        "    input:\n      name: '{{ trigger.name }}'\n"
    )
    draft = await ws.replace_draft_text("greet", text)
    assert draft.source == text
    draft = await ws.edit_draft("greet", [{"op": "replace", "path": "/name", "value": "Hi"}])
    assert not draft.text_is_current  # the text is brought up to date when shown
    shown = await ws.draft_text("greet")
    assert "# Greets whoever asks" in shown and "# the only step" in shown
    assert "name: Hi" in shown
    assert (await ws.draft("greet")).revision == draft.revision  # a tab's edits stay valid
    with pytest.raises(Invalid) as refused:
        await ws.replace_draft_text("greet", "id: greet\nsteps: [\n")
    assert "line" in str(refused.value)
    assert (await ws.draft("greet")).document["name"] == "Hi"
    undone = await ws.undo_draft("greet")
    assert undone.document["name"] == "Greet"


async def test_save_sends_its_base_version_and_a_newer_one_refuses_it(api: Api) -> None:
    await create(api, flow_document())
    ws = as_person(api, api.editor)
    await ws.draft("greet")
    await ws.edit_draft("greet", [{"op": "replace", "path": "/name", "value": "Draft"}])
    # Someone else saves version 2 meanwhile.
    other = flow_document(name="Theirs")
    answer = await api.call("PUT", f"{API}/greet", api.owner, json={"document": other})
    assert answer.status_code == 200, answer.text
    with pytest.raises(Conflict) as refused:
        await ws.save_draft("greet")
    assert refused.value.code == "version_conflict"
    details = refused.value.details
    assert details["base_version"] == 1 and details["latest_version"] == 2
    assert 'name changed: "Greet" -> "Theirs"' in details["changes"]
    assert "-name: Theirs" in details["diff"] and "+name: Draft" in details["diff"]
    versions = await api.call("GET", f"{API}/greet/versions", api.editor)
    assert len(versions.json()) == 2  # nothing was written
    # Discarding starts again from the latest; saving then works and moves the base.
    await ws.discard_draft("greet")
    await ws.draft("greet")
    await ws.edit_draft("greet", [{"op": "replace", "path": "/name", "value": "Merged"}])
    saved = await ws.save_draft("greet", message="merged")
    assert saved.version == 3 and saved.created
    draft = await ws.draft("greet")
    assert draft.base_version == 3 and not draft.dirty


async def test_the_api_save_takes_a_base_version(api: Api) -> None:
    await create(api, flow_document())
    first = await api.call(
        "PUT",
        f"{API}/greet",
        api.editor,
        json={"document": flow_document(name="B"), "base_version": 1},
    )
    assert first.status_code == 200, first.text
    stale = await api.call(
        "PUT",
        f"{API}/greet",
        api.editor,
        json={"document": flow_document(name="C"), "base_version": 1},
    )
    assert stale.status_code == 409, stale.text
    error = stale.json()["error"]
    assert error["code"] == "version_conflict"
    assert error["details"]["latest_version"] == 2
    assert "+name: C" in error["details"]["diff"]


async def test_a_new_flow_is_a_draft_until_saved(api: Api) -> None:
    ws = as_person(api, api.editor)
    document = {"id": "fresh", "name": "Fresh", "trigger": {"type": "manual"}, "steps": []}
    draft = await ws.start_draft(document)
    assert draft.is_new and draft.dirty
    with pytest.raises(Conflict):
        await ws.start_draft(document)
    await ws.edit_draft(
        "fresh", [{"op": "add", "path": "/steps/-", "value": {"id": "a", "action": "test.echo"}}]
    )
    saved = await ws.save_draft("fresh")
    assert saved.version == 1
    listed = await api.call("GET", f"{API}/fresh", api.editor)
    assert listed.json()["document"]["steps"] == [{"id": "a", "action": "test.echo"}]


async def test_pins_and_samples_never_reach_the_document(api: Api) -> None:
    await create(api, flow_document())
    ws = as_person(api, api.editor)
    await ws.draft("greet")
    draft = await ws.pin_output("greet", "hello", {"greeting": "hi"})
    draft = await ws.set_sample("greet", {"name": "Ada"})
    assert draft.pins == {"hello": {"greeting": "hi"}} and draft.sample == {"name": "Ada"}
    assert "pins" not in draft.document and "hi" not in draft.source
    await ws.save_draft("greet")
    exported = await api.call("GET", f"{API}/greet/export", api.editor)
    assert "greeting" not in exported.text
    draft = await ws.unpin_output("greet", "hello")
    assert draft.pins == {}


async def test_the_builder_page_and_its_edit_pipeline(api: Api) -> None:
    await create(api, flow_document())
    client = await signed_in(api, api.editor)
    page = await client.get(BUILD)
    assert page.status_code == 200, page.text
    assert 'id="builder-canvas"' in page.text and "hello" in page.text
    ops = [{"op": "add", "path": "/steps/-", "value": {"id": "second", "action": "test.echo"}}]
    answer = await post_form(
        client,
        f"{BUILD}/edit",
        {"ops": json.dumps(ops), "label": "add second"},
        headers=htmx_headers(client, BUILD),
    )
    assert answer.status_code == 200, answer.text
    assert 'hx-swap-oob="true"' in answer.text and 'data-step="second"' in answer.text
    assert "Undo" in answer.text and "add second" in answer.text
    panel = await client.get(
        f"{BUILD}?step=second",
        headers={**htmx_headers(client, BUILD), "hx-target": "builder-panel"},
    )
    assert panel.status_code == 200 and "<html" not in panel.text
    assert 'data-selected-step="second"' in panel.text
    undone = await post_form(client, f"{BUILD}/undo", headers=htmx_headers(client, BUILD))
    assert 'data-step="second"' not in undone.text
    bad = await post_form(
        client, f"{BUILD}/edit", {"ops": "not json"}, headers=htmx_headers(client, BUILD)
    )
    assert bad.status_code == 422 and "ops is not JSON" in bad.text


async def test_saving_an_invalid_draft_gives_the_api_message(api: Api) -> None:
    await create(api, flow_document())
    client = await signed_in(api, api.editor)
    await client.get(BUILD)
    ops = [{"op": "replace", "path": "/steps/0/action", "value": "test.nope"}]
    await post_form(
        client, f"{BUILD}/edit", {"ops": json.dumps(ops)}, headers=htmx_headers(client, BUILD)
    )
    saved = await post_form(client, f"{BUILD}/save", headers=htmx_headers(client, BUILD))
    assert saved.status_code == 422
    api_answer = await api.call(
        "POST",
        f"{API}/_validate",
        api.editor,
        json={"document": flow_document(steps=[{"id": "hello", "action": "test.nope"}])},
    )
    message = api_answer.json()["issues"][0]["message"] if "issues" in api_answer.json() else ""
    assert message and message in saved.text.replace("&#39;", "'")


async def test_a_new_flow_starts_from_a_name(api: Api) -> None:
    client = await signed_in(api, api.editor)
    form = await client.get("/w/default/flows/_build")
    assert form.status_code == 200 and 'name="id"' in form.text
    bad = await post_form(client, "/w/default/flows/_build", {"id": "Bad Id!", "name": "x"})
    assert bad.status_code == 422 and "lowercase" in bad.text
    made = await post_form(client, "/w/default/flows/_build", {"id": "new-one", "name": "New"})
    assert made.status_code == 303
    assert made.headers["location"] == "/w/default/flows/new-one/build"
    page = await client.get(made.headers["location"])
    assert page.status_code == 200 and "not saved yet" in page.text


async def test_an_edit_that_draws_nothing_new_sends_no_canvas(api: Api) -> None:
    """Typing in a field changes no node or edge: the page says what it draws (view and
    signature), and the answer leaves the canvas out; a new step sends it again, and only
    the view the page shows."""
    await create(api, flow_document())
    client = await signed_in(api, api.editor)
    page = await client.get(BUILD)
    signature = page.text.split('id="builder-canvas-region" data-signature="')[1].split('"')[0]
    typed = [{"op": "replace", "path": "/steps/0/input/name", "value": "{{ trigger.who }}"}]
    headers = {**htmx_headers(client, BUILD), "x-builder-shown": f"canvas:{signature}"}
    same = await post_form(client, f"{BUILD}/edit", {"ops": json.dumps(typed)}, headers=headers)
    assert same.status_code == 200, same.text
    assert "builder-canvas-region" not in same.text and "builder-toolbar" in same.text
    added = [{"op": "add", "path": "/steps/-", "value": {"id": "more", "action": "test.echo"}}]
    grown = await post_form(client, f"{BUILD}/edit", {"ops": json.dumps(added)}, headers=headers)
    assert 'id="builder-canvas-region" hx-swap-oob="true"' in grown.text
    assert "builder-list-region" not in grown.text  # the page shows the canvas, not the list


JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text("ab", max_size=3))
JSON_TREE = st.recursive(
    JSON_LEAF,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from("abcd"), inner, max_size=4)
    ),
    max_leaves=12,
)


def pointers(value: Any, base: str = "") -> list[str]:
    """Every JSON Pointer inside ``value`` (not the root)."""
    found = []
    if isinstance(value, dict):
        for key, child in value.items():
            found.append(f"{base}/{key}")
            found += pointers(child, f"{base}/{key}")
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.append(f"{base}/{index}")
            found += pointers(child, f"{base}/{index}")
    return found


@st.composite
def edits(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A document and a sequence of operations that apply to it one after another."""
    document = {"id": "x", "body": draw(JSON_TREE)}
    current: Any = copy.deepcopy(document)
    ops = []
    for _ in range(draw(st.integers(1, 4))):
        places = pointers(current["body"], "/body")
        kind = draw(st.sampled_from(["add", "remove", "replace", "move", "copy"]))
        if kind == "add" or not places:
            containers = ["/body"] + [
                p
                for p in places
                if isinstance(jsonpointer.resolve_pointer(current, p), dict | list)
            ]
            parent = draw(st.sampled_from(containers))
            target = jsonpointer.resolve_pointer(current, parent)
            if isinstance(target, list):
                key = draw(st.sampled_from(["-", *map(str, range(len(target) + 1))]))
            elif isinstance(target, dict):
                key = draw(st.sampled_from("abcde"))
            else:
                continue
            op = {"op": "add", "path": f"{parent}/{key}", "value": draw(JSON_LEAF)}
        elif kind in ("remove", "replace"):
            op = {"op": kind, "path": draw(st.sampled_from(places))}
            if kind == "replace":
                op["value"] = draw(JSON_TREE)
        else:
            source = draw(st.sampled_from(places))
            targets = [p for p in places if not p.startswith(source)]
            if not targets:
                continue
            op = {"op": kind, "from": source, "path": draw(st.sampled_from(targets))}
        try:
            current = jsonpatch.apply_patch(current, [op])
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException):
            continue
        ops.append(op)
    return document, ops


@settings(max_examples=300, deadline=None)
@given(edits())
def test_the_inverse_of_any_edit_gives_the_document_back(case: Any) -> None:
    document, ops = case
    after, inverse = apply_with_inverse(document, ops)
    assert after == jsonpatch.apply_patch(document, ops)
    restored, _ = apply_with_inverse(after, inverse)
    assert restored == document


async def test_save_publish_and_enable_from_the_toolbar(api: Api) -> None:
    """Publishing and enabling are explicit: a save publishes nothing; Publish publishes the
    version saved (refused with unsaved changes); the trigger is turned on and off."""
    await create(api, flow_document())
    client = await signed_in(api, api.editor)
    await client.get(BUILD)
    headers = htmx_headers(client, BUILD)
    ops = [{"op": "replace", "path": "/name", "value": "Greet v2"}]
    await post_form(client, f"{BUILD}/edit", {"ops": json.dumps(ops)}, headers=headers)
    early = await post_form(client, f"{BUILD}/publish", headers=headers)
    assert early.status_code == 422 and "save the changes first" in early.text
    saved = await post_form(client, f"{BUILD}/save", {"message": "v2"}, headers=headers)
    assert saved.status_code == 200 and "Saved as version 2" in saved.text
    assert saved.headers.get("hx-reswap") == "none"  # the side panel stays as it is
    flow = (await api.call("GET", f"{API}/greet", api.editor)).json()["flow"]
    assert flow["latest_version"] == 2 and flow["published_version"] is None
    published = await post_form(client, f"{BUILD}/publish", headers=headers)
    assert published.status_code == 200 and "Version 2 runs" in published.text
    assert "Publish version" not in published.text
    flow = (await api.call("GET", f"{API}/greet", api.editor)).json()["flow"]
    assert flow["published_version"] == 2
    off = await post_form(client, f"{BUILD}/enable", {"enabled": "false"}, headers=headers)
    assert "Trigger off" in off.text
    assert (await api.call("GET", f"{API}/greet", api.editor)).json()["flow"]["enabled"] is False
    on = await post_form(client, f"{BUILD}/enable", {"enabled": "true"}, headers=headers)
    assert "Trigger on" in on.text
    assert (await api.call("GET", f"{API}/greet", api.editor)).json()["flow"]["enabled"] is True


async def test_a_burst_of_edits_with_one_label_is_one_undo_entry(api: Api) -> None:
    """Typing in a field saves after each pause: the edits of one field close together are
    undone together (and redone together), exactly."""
    await create(api, flow_document())
    ws = as_person(api, api.editor)
    original = copy.deepcopy((await ws.draft("greet")).document)
    for text in ("A", "Ad", "Ada"):
        ops = [{"op": "replace", "path": "/steps/0/input/name", "value": text}]
        draft = await ws.edit_draft("greet", ops, label="edit hello input")
    assert draft.undo_labels == ["edit hello input"]
    draft = await ws.edit_draft(
        "greet", [{"op": "replace", "path": "/name", "value": "N"}], label="edit flow"
    )
    assert draft.undo_labels == ["edit hello input", "edit flow"]
    await ws.undo_draft("greet")
    undone = await ws.undo_draft("greet")
    assert undone.document == original
    redone = await ws.redo_draft("greet")
    assert redone.document["steps"][0]["input"]["name"] == "Ada"


async def test_a_flow_built_in_the_builder_starts_with_its_trigger_off(api: Api) -> None:
    """Saving a new flow from the builder creates it disabled (enable is explicit there);
    the API's create still enables it."""
    ws = as_person(api, api.editor)
    document = {"id": "quiet", "name": "Quiet", "trigger": {"type": "webhook"}, "steps": []}
    await ws.start_draft(document)
    await ws.edit_draft(
        "quiet", [{"op": "add", "path": "/steps/-", "value": {"id": "a", "action": "test.echo"}}]
    )
    await ws.save_draft("quiet", publish=True)
    assert (await api.call("GET", f"{API}/quiet", api.editor)).json()["flow"]["enabled"] is False
    await create(api, flow_document("loud"))
    assert (await api.call("GET", f"{API}/loud", api.editor)).json()["flow"]["enabled"] is True
