"""The flow builder's YAML view (issue 16, hub/web/builder/yaml_tab.py): the draft's text
with its comments, a valid text posted becomes the document (kept as typed, one undo
entry), an invalid one is refused at its line with the draft unchanged, and an edit from
the canvas reaches the text with the comments kept.

In-process against the real app (real SQLite); no browser.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hub.services.workspace import WorkspaceHub
from hub.settings import Settings
from tests.api_kit import Api, Caller, flow_document, started_api
from tests.web_kit import htmx_headers, post_form, signed_in

API = "/api/w/default/flows"
BUILD = "/w/default/flows/greet/build"
COMMENTED = (
    "# Greets whoever asks\n"
    "id: greet\n"
    "name: Greet\n"
    "trigger:\n  type: manual\n"
    "steps:\n"
    "  - id: hello  # the only step\n"
    "    action: test.echo\n"
    "    input:\n      name: '{{ trigger.name }}'\n"
)
TWO_STEPS = COMMENTED + (
    "  # the second step\n"
    "  - id: again\n"
    "    action: test.echo\n"
    "    needs: [hello]\n"
    "    input:\n      name: twice\n"
)


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async for value in started_api(settings):
        yield value


def as_person(api: Api, caller: Caller) -> WorkspaceHub:
    """The workspace's services acting as ``caller`` (an editor)."""
    return WorkspaceHub(
        api.hub, "default", actor=caller.email, user_id=caller.user_id, role="editor"
    )


async def commented_draft(api: Api) -> WorkspaceHub:
    """The flow ``greet`` saved, and the editor's draft of it holding :data:`COMMENTED`."""
    answer = await api.call("POST", API, api.editor, json={"document": flow_document()})
    assert answer.status_code == 201, answer.text
    ws = as_person(api, api.editor)
    await ws.draft("greet")
    await ws.replace_draft_text("greet", COMMENTED)
    return ws


def textarea_text(page: str) -> str:
    """The text of the YAML view's textarea (as the browser reads it)."""
    found = re.search(r"<textarea id=\"builder-yaml-text\"[^>]*>\n?(.*?)</textarea>", page, re.S)
    assert found, "no YAML textarea on the page"
    return html.unescape(found.group(1))


def status_of(page: str) -> tuple[str, list[dict[str, Any]]]:
    """The YAML status's state (valid, invalid) and the diagnostics it gives the editor."""
    found = re.search(
        r'id="builder-yaml-status"[^>]*data-yaml-state="(\w+)"[^>]*data-diagnostics=\'([^\']*)\'',
        page,
    )
    assert found, "no YAML status in the answer"
    return found.group(1), json.loads(html.unescape(found.group(2)))


async def test_the_yaml_view_shows_the_drafts_text_with_its_comments(api: Api) -> None:
    await commented_draft(api)
    client = await signed_in(api, api.editor)
    page = await client.get(f"{BUILD}?view=yaml")
    assert page.status_code == 200, page.text
    assert textarea_text(page.text) == COMMENTED
    assert '<label for="builder-yaml-text">' in page.text
    assert f'action="{BUILD}/yaml"' in page.text
    assert 'aria-current="page" data-view-link="yaml"' in page.text
    assert status_of(page.text) == ("valid", [])
    # The canvas view does not draw the text.
    assert "builder-yaml-text" not in (await client.get(BUILD)).text


async def test_a_valid_text_becomes_the_document_kept_as_typed(api: Api) -> None:
    ws = await commented_draft(api)
    client = await signed_in(api, api.editor)
    revision = (await ws.draft("greet")).revision
    answer = await post_form(
        client,
        f"{BUILD}/yaml",
        {"text": TWO_STEPS, "revision": str(revision)},
        headers={**htmx_headers(client, f"{BUILD}?view=yaml"), "x-builder-shown": "yaml:"},
    )
    assert answer.status_code == 200, answer.text
    assert status_of(answer.text) == ("valid", [])
    assert 'id="builder-toolbar"' in answer.text and 'hx-swap-oob="true"' in answer.text
    assert f'data-revision="{revision + 1}"' in answer.text
    assert "builder-canvas-region" not in answer.text  # the YAML view draws no canvas
    draft = await ws.draft("greet")
    assert [s["id"] for s in draft.document["steps"]] == ["hello", "again"]
    assert draft.document["steps"][1] == {
        "id": "again",
        "action": "test.echo",
        "needs": ["hello"],
        "input": {"name": "twice"},
    }
    assert draft.source == TWO_STEPS and await ws.draft_text("greet") == TWO_STEPS
    assert draft.undo_labels[-1] == "YAML edit"
    # The other views render the draft's document: the new step is there.
    for view in ("canvas", "list"):
        shown = (await client.get(f"{BUILD}?view={view}")).text
        assert 'data-step="again"' in shown, view
    # Undo takes the whole text edit back: the document, and the text shown.
    undone = await post_form(client, f"{BUILD}/undo", headers=htmx_headers(client, BUILD))
    assert undone.status_code == 200, undone.text
    assert [s["id"] for s in (await ws.draft("greet")).document["steps"]] == ["hello"]
    shown = textarea_text((await client.get(f"{BUILD}?view=yaml")).text)
    assert "again" not in shown and "# Greets whoever asks" in shown


async def test_an_invalid_text_is_refused_at_its_line_and_changes_nothing(api: Api) -> None:
    ws = await commented_draft(api)
    client = await signed_in(api, api.editor)
    before = await ws.draft("greet")
    broken = COMMENTED.replace("    action: test.echo\n", "    action: [test.echo\n")
    answer = await post_form(
        client, f"{BUILD}/yaml", {"text": broken}, headers=htmx_headers(client, BUILD)
    )
    assert answer.status_code == 422, answer.text
    state, diagnostics = status_of(answer.text)
    assert state == "invalid"
    assert 'role="alert"' in answer.text and "keeps its last valid document" in answer.text
    lines = {d["line"] for d in diagnostics}
    assert lines and all(d["severity"] == "error" for d in diagnostics)
    assert lines <= {8, 9, 10, 11}, diagnostics  # where the unclosed [ is found
    assert 8 in lines, diagnostics  # and where it opened
    assert re.search(r'data-yaml-line="\d+">Line \d+</button>', answer.text)
    after = await ws.draft("greet")
    assert after.document == before.document and after.source == COMMENTED
    assert after.revision == before.revision and after.undo_labels == before.undo_labels

    # Without JavaScript: the YAML view again, the text as typed and the error under it.
    plain = await post_form(client, f"{BUILD}/yaml", {"text": broken})
    assert plain.status_code == 422, plain.text
    assert textarea_text(plain.text) == broken
    assert 'aria-invalid="true"' in plain.text and status_of(plain.text)[0] == "invalid"

    # Another flow's id, or a stale page's revision, is refused too.
    other = await post_form(
        client,
        f"{BUILD}/yaml",
        {"text": COMMENTED.replace("id: greet", "id: other")},
        headers=htmx_headers(client, BUILD),
    )
    assert other.status_code == 422 and "must be &#39;greet&#39;" in other.text
    assert status_of(other.text)[1][0]["line"] == 2  # the id's line
    stale = await post_form(
        client,
        f"{BUILD}/yaml",
        {"text": TWO_STEPS, "revision": str(before.revision + 5)},
        headers=htmx_headers(client, BUILD),
    )
    assert stale.status_code == 409 and "another tab" in stale.text
    assert (await ws.draft("greet")).document == before.document


async def test_a_plain_post_of_valid_text_goes_back_to_the_yaml_view(api: Api) -> None:
    ws = await commented_draft(api)
    client = await signed_in(api, api.editor)
    answer = await post_form(client, f"{BUILD}/yaml", {"text": TWO_STEPS})
    assert answer.status_code == 303
    assert answer.headers["location"] == f"{BUILD}?view=yaml"
    assert (await ws.draft("greet")).source == TWO_STEPS


async def test_validation_issues_are_marked_at_their_lines(api: Api) -> None:
    await commented_draft(api)
    client = await signed_in(api, api.editor)
    unknown = TWO_STEPS.replace("needs: [hello]", "needs: [nowhere]")
    answer = await post_form(
        client, f"{BUILD}/yaml", {"text": unknown}, headers=htmx_headers(client, BUILD)
    )
    assert answer.status_code == 200, answer.text
    state, diagnostics = status_of(answer.text)
    assert state == "valid"
    needs_line = unknown.splitlines().index("    needs: [nowhere]") + 1
    assert any(
        d["line"] == needs_line and d["severity"] == "warning" and "steps[1].needs" in d["message"]
        for d in diagnostics
    ), diagnostics
    # The GET of the region (after an edit from elsewhere) draws the same.
    region = await client.get(f"{BUILD}/yaml", headers=htmx_headers(client, BUILD))
    assert region.status_code == 200 and textarea_text(region.text) == unknown
    assert status_of(region.text) == (state, diagnostics)
    plain = await client.get(f"{BUILD}/yaml")
    assert plain.status_code == 303 and plain.headers["location"] == f"{BUILD}?view=yaml"


async def test_an_edit_from_the_canvas_reaches_the_text_with_its_comments(api: Api) -> None:
    ws = await commented_draft(api)
    client = await signed_in(api, api.editor)
    ops = [
        {"op": "replace", "path": "/steps/0/input/name", "value": "world"},
        {"op": "add", "path": "/steps/-", "value": {"id": "bye", "action": "test.echo"}},
    ]
    edited = await post_form(
        client, f"{BUILD}/edit", {"ops": json.dumps(ops)}, headers=htmx_headers(client, BUILD)
    )
    assert edited.status_code == 200, edited.text
    shown = textarea_text((await client.get(f"{BUILD}?view=yaml")).text)
    assert "# Greets whoever asks" in shown and "# the only step" in shown
    assert "name: 'world'" in shown and "id: bye" in shown
    draft = await ws.draft("greet")
    assert draft.source == shown  # the text shown is kept
    assert [s["id"] for s in draft.document["steps"]] == ["hello", "bye"]
