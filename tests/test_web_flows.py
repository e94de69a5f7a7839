"""The Flows pages (issue 15): the list (paged, searched, counts from one grouped query), the
YAML editor with issues at their line, import, export, enable and disable, delete with its
confirmation, a flow's page (versions, diff, roll back, webhook URL, next fire times), the
viewer's read-only pages and escaping.

In-process against the real app (real SQLite, the real engine); no browser.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import markupsafe
import pytest
import yaml

from hub.db.models import now_us, runs
from hub.settings import Settings
from tests.api_kit import PASSWORD, Api, flow_document, started_api
from tests.web_kit import give_password, htmx_headers, post_form, signed_in, write_controls

FLOWS = "/w/default/flows"
API = "/api/w/default/flows"


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async for value in started_api(settings):
        yield value


async def create(api: Api, document: dict[str, Any], publish: bool = True) -> None:
    answer = await api.call(
        "POST", API, api.editor, json={"document": document, "publish": publish}
    )
    assert answer.status_code == 201, answer.text


async def run_once(api: Api, flow_id: str, data: Any = None) -> dict[str, Any]:
    started = await api.call(
        "POST", "/api/w/default/runs", api.editor, json={"flow_id": flow_id, "input": data}
    )
    assert started.status_code == 202, started.text
    return await api.hub.wait_for_run(started.json()["run_id"], 30)


def row_of(html: str, flow_id: str) -> str:
    """The table row of a flow in the list."""
    match = re.search(
        rf'<tr>\s*<td><a href="/w/default/flows/{re.escape(flow_id)}">.*?</tr>', html, re.S
    )
    assert match, f"no row for {flow_id}"
    return match.group(0)


def numbers(row: str) -> list[str]:
    """The numeric cells of a row (succeeded, failed, runs)."""
    cells = re.findall(r'<td class="num[^"]*">(.*?)</td>', row, re.S)
    return [re.sub(r"<[^>]+>", "", c).strip() for c in cells]


# -- the list -------------------------------------------------------------------------------


async def test_an_empty_list_says_what_to_do_next(api: Api) -> None:
    editor = await signed_in(api, api.editor)
    page = await editor.get(FLOWS)
    assert page.status_code == 200
    assert "No flows yet" in page.text
    assert f'href="{FLOWS}/_new"' in page.text and f'href="{FLOWS}/_import"' in page.text


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_the_list_counts_the_last_7_days_and_shows_the_last_run(api: Api) -> None:
    await create(api, flow_document("greet"))
    await create(
        api,
        flow_document(
            "flaky", name="Flaky", steps=[{"id": "x", "action": "test.boom", "input": {}}]
        ),
    )
    await create(api, flow_document("idle", name="Idle"))
    for _ in range(3):
        await run_once(api, "greet", {"name": "a"})
    assert (await run_once(api, "flaky"))["status"] == "failed"
    newest = await run_once(api, "flaky")  # test.boom fails every time
    assert newest["status"] == "failed"
    # A run older than 7 days leaves the counts: move one of greet's runs 8 days back.
    old = now_us() - 8 * 24 * 3600 * 1_000_000
    first = await api.call("GET", "/api/w/default/runs", api.viewer, params={"flow_id": "greet"})
    oldest_id = first.json()["items"][-1]["id"]
    await api.hub.db.write(
        lambda c: c.execute(runs.update().where(runs.c.id == oldest_id).values(created_at=old))
    )
    viewer = await signed_in(api, api.viewer)
    html = (await viewer.get(FLOWS)).text
    assert numbers(row_of(html, "greet")) == ["2", "0", "2"]
    assert numbers(row_of(html, "flaky")) == ["0", "2", "2"]
    assert numbers(row_of(html, "idle")) == ["0", "0", "0"]
    assert "never run" in row_of(html, "idle")
    flaky_row = row_of(html, "flaky")
    assert f'href="/w/default/runs/{newest["id"]}"' in flaky_row  # the newest run
    assert "status-failed" in flaky_row
    assert "status-enabled" in flaky_row and ">manual<" in flaky_row
    assert 'href="/w/default/runs?flow=greet"' in row_of(html, "greet")


async def test_the_stats_are_one_query_for_the_page(api: Api) -> None:
    """The counts and last runs of a page of flows come from ONE statement."""
    for i in range(5):
        await create(api, flow_document(f"f{i}"))
        await run_once(api, f"f{i}")
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if re.search(r"\bFROM runs\b", statement):
            statements.append(statement)

    engine = Engine  # every engine: SQLite's reader and writer alike
    event.listen(engine, "before_cursor_execute", seen)
    try:
        viewer = await signed_in(api, api.viewer)
        statements.clear()
        assert (await viewer.get(FLOWS)).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert len(statements) == 1, statements


async def test_the_list_is_paged_by_50_and_searched_by_name_or_id(api: Api) -> None:
    documents = [flow_document(f"flow-{i:03d}", name=f"Flow {i:03d}") for i in range(52)]
    documents.append(flow_document("orders-sync", name="Sync ORDERS"))
    documents.append(flow_document("leads", name="Order intake"))
    for document in documents:
        await create(api, document, publish=False)
    viewer = await signed_in(api, api.viewer)
    first = (await viewer.get(FLOWS)).text
    assert first.count('<tr>\n      <td><a href="/w/default/flows/') == 50
    assert "54 flows" in first and "page 1 of 2" in first
    assert 'href="?page=2"' in first
    second = (await viewer.get(FLOWS, params={"page": 2})).text
    assert second.count('<tr>\n      <td><a href="/w/default/flows/') == 4
    assert "/w/default/flows/orders-sync" in second and 'rel="prev"' in second
    found = (await viewer.get(FLOWS, params={"q": "order"})).text
    assert "/w/default/flows/orders-sync" in found and "/w/default/flows/leads" in found
    assert "/w/default/flows/flow-001" not in found
    assert 'value="order"' in found  # the search stays in the box (and in the URL)
    by_id = (await viewer.get(FLOWS, params={"q": "FLOW-05"})).text
    assert "/w/default/flows/flow-050" in by_id and "/w/default/flows/flow-049" not in by_id
    nothing = (await viewer.get(FLOWS, params={"q": "zzz"})).text
    assert "No flow matches" in nothing
    past = (await viewer.get(FLOWS, params={"page": 9})).text
    assert "past its end" in past and "No flows yet" not in past


# -- the editor -----------------------------------------------------------------------------

BROKEN = """\
id: broken
name: Broken
trigger:
  type: manual
steps:
  - id: first
    action: test.echo
    input: {}
  - id: second
    action: nope.missing
    input: {}
"""


async def test_the_editor_validates_and_shows_each_issue_at_its_line(api: Api) -> None:
    editor = await signed_in(api, api.editor)
    form = await editor.get(f"{FLOWS}/_new")
    assert form.status_code == 200
    assert '<label for="flow-source">' in form.text and 'id="flow-source"' in form.text
    checked = await editor.post(
        f"{FLOWS}/_validate",
        data={"source": BROKEN},
        headers=htmx_headers(editor, f"{FLOWS}/_new"),
    )
    assert checked.status_code == 200
    assert "Line 10" in checked.text and "steps[1].action" in checked.text
    assert "action: nope.missing" in checked.text  # the line itself
    valid = await editor.post(
        f"{FLOWS}/_validate",
        data={"source": BROKEN.replace("nope.missing", "test.echo")},
        headers=htmx_headers(editor, f"{FLOWS}/_new"),
    )
    assert "The flow is valid" in valid.text
    syntax = await editor.post(
        f"{FLOWS}/_validate",
        data={"source": "id: x\nsteps: [\n"},
        headers=htmx_headers(editor, f"{FLOWS}/_new"),
    )
    assert re.search(r"Line [23]", syntax.text)


async def test_saving_an_invalid_flow_keeps_the_text_and_a_valid_one_is_created(
    api: Api,
) -> None:
    editor = await signed_in(api, api.editor)
    await editor.get(f"{FLOWS}/_new")
    refused = await post_form(editor, f"{FLOWS}/_save", {"source": BROKEN, "publish": "on"})
    assert refused.status_code == 422
    assert "Line 10" in refused.text
    assert "action: nope.missing" in refused.text  # the text is kept in the textarea
    assert (await api.call("GET", f"{API}/broken", api.viewer)).status_code == 404
    fixed = BROKEN.replace("nope.missing", "test.echo")
    saved = await post_form(
        editor, f"{FLOWS}/_save", {"source": fixed, "publish": "on", "message": "first"}
    )
    assert saved.status_code == 303 and saved.headers["location"] == f"{FLOWS}/broken"
    detail = (await api.call("GET", f"{API}/broken", api.viewer)).json()
    assert detail["flow"]["published_version"] == 1
    again = await post_form(editor, f"{FLOWS}/_save", {"source": fixed})
    assert again.status_code == 409 and "exists already" in again.text
    # Editing: the current text, and a new version.
    edit = await editor.get(f"{FLOWS}/broken/edit")
    assert "action: test.echo" in edit.text and 'name="flow" value="broken"' in edit.text
    changed = fixed.replace("name: Broken", "name: Fixed")
    updated = await post_form(
        editor, f"{FLOWS}/_save", {"source": changed, "flow": "broken", "publish": "on"}
    )
    assert updated.status_code == 303
    assert (await api.call("GET", f"{API}/broken", api.viewer)).json()["flow"]["name"] == "Fixed"
    other = await post_form(
        editor,
        f"{FLOWS}/_save",
        {"source": changed.replace("id: broken", "id: x"), "flow": "broken"},
    )
    assert other.status_code == 422 and "must be" in other.text


# -- import and export ----------------------------------------------------------------------


async def test_import_a_yaml_or_json_file_and_export_it(api: Api) -> None:
    editor = await signed_in(api, api.editor)
    assert (await editor.get(f"{FLOWS}/_import")).status_code == 200
    text = "# kept comment\n" + yaml.safe_dump(flow_document("imported", name="Imported"))
    token = editor.cookies.get("csrftoken", "")
    answer = await editor.post(
        f"{FLOWS}/_import",
        data={"_csrf_token": token, "publish": "on"},
        files={"file": ("imported.yaml", text.encode(), "application/yaml")},
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == f"{FLOWS}/imported"
    exported = await editor.get(f"{FLOWS}/imported/export")
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("application/yaml")
    assert "attachment" in exported.headers["content-disposition"]
    assert exported.text == text  # the text as it was imported, comment kept
    json_text = json.dumps(flow_document("from-json"))
    as_json = await editor.post(
        f"{FLOWS}/_import",
        data={"_csrf_token": token},
        files={"file": ("flow.json", json_text.encode(), "application/json")},
    )
    assert as_json.status_code == 303, as_json.text
    assert (await api.call("GET", f"{API}/from-json", api.viewer)).status_code == 200


async def test_an_invalid_or_oversized_import_shows_why_and_saves_nothing(
    api: Api,
) -> None:
    editor = await signed_in(api, api.editor)
    await editor.get(f"{FLOWS}/_import")
    token = editor.cookies.get("csrftoken", "")
    bad = await editor.post(
        f"{FLOWS}/_import",
        data={"_csrf_token": token},
        files={"file": ("bad.yaml", BROKEN.encode(), "application/yaml")},
    )
    assert bad.status_code == 422
    assert "Line 10" in bad.text and "bad.yaml" in bad.text
    limit = api.hub.settings.max_document_bytes
    big = ("id: big\nname: " + "x" * (limit + 10) + "\n").encode()
    oversized = await editor.post(
        f"{FLOWS}/_import",
        data={"_csrf_token": token},
        files={"file": ("big.yaml", big, "application/yaml")},
    )
    assert oversized.status_code == 422 and "HUB_MAX_DOCUMENT_BYTES" in oversized.text
    not_text = await editor.post(
        f"{FLOWS}/_import",
        data={"_csrf_token": token},
        files={"file": ("x.yaml", b"\xff\xfe\x00bad", "application/yaml")},
    )
    assert not_text.status_code == 422 and "not UTF-8" in not_text.text
    listed = await api.call("GET", API, api.viewer)
    assert listed.json()["items"] == []


# -- enable, disable, delete ----------------------------------------------------------------


async def test_enable_and_disable_with_htmx_and_without(api: Api) -> None:
    await create(api, flow_document("hooked", trigger={"type": "webhook", "config": {}}))
    editor = await signed_in(api, api.editor)
    page = (await editor.get(f"{FLOWS}/hooked")).text
    assert f'hx-post="{FLOWS}/hooked/disable"' in page
    off = await editor.post(f"{FLOWS}/hooked/disable", headers=htmx_headers(editor))
    assert off.status_code == 200 and "<html" not in off.text
    assert "status-disabled" in off.text and f'hx-post="{FLOWS}/hooked/enable"' in off.text
    assert (await api.client.post("/hooks/default/hooked", json={})).status_code == 404
    on = await post_form(editor, f"{FLOWS}/hooked/enable")
    assert on.status_code == 303 and on.headers["location"] == f"{FLOWS}/hooked"
    assert (await api.client.post("/hooks/default/hooked", json={})).status_code == 202


async def test_delete_asks_first_then_removes_the_flow_and_its_runs(api: Api) -> None:
    await create(api, flow_document("doomed", name="Doomed"))
    run = await run_once(api, "doomed")
    await run_once(api, "doomed")
    editor = await signed_in(api, api.editor)
    flow_page = (await editor.get(f"{FLOWS}/doomed")).text
    assert f'href="{FLOWS}/doomed/delete"' in flow_page
    confirm = await editor.get(f"{FLOWS}/doomed/delete")
    assert confirm.status_code == 200
    assert "its 2 runs" in confirm.text
    assert re.search(
        r'<form method="post" action="/w/default/flows/doomed/delete" data-confirm="', confirm.text
    )
    deleted = await post_form(editor, f"{FLOWS}/doomed/delete")
    assert deleted.status_code == 303
    assert deleted.headers["location"] == f"{FLOWS}?deleted=doomed"
    listed = await editor.get(deleted.headers["location"])
    assert "was deleted" in listed.text and '/w/default/flows/doomed"' not in listed.text
    forged = await editor.get(FLOWS, params={"deleted": "Your account was hacked, call +1 555"})
    assert "was deleted" not in forged.text
    assert (await editor.get(f"{FLOWS}/doomed")).status_code == 404
    gone = await api.call("GET", f"/api/w/default/runs/{run['id']}", api.viewer)
    assert gone.status_code == 404


async def test_delete_is_refused_while_a_run_is_unfinished(api: Api) -> None:
    document = flow_document(
        "slow", steps=[{"id": "wait", "action": "flow.delay", "input": {"seconds": 3600}}]
    )
    await create(api, document)
    await api.call("POST", "/api/w/default/runs", api.editor, json={"flow_id": "slow"})
    editor = await signed_in(api, api.editor)
    confirm = (await editor.get(f"{FLOWS}/slow/delete")).text
    assert "1 run is not finished" in confirm
    assert 'href="/w/default/runs?flow=slow&amp;status=running"' in confirm
    assert "data-confirm" not in confirm
    forced = await post_form(editor, f"{FLOWS}/slow/delete")
    assert forced.status_code == 409 and "cancel" in forced.text
    assert (await api.call("GET", f"{API}/slow", api.viewer)).status_code == 200


# -- a flow's page --------------------------------------------------------------------------


async def test_versions_diff_and_roll_back(api: Api) -> None:
    await create(api, flow_document("greet", name="Greet"))
    second = flow_document("greet", name="Greet people")
    saved = await api.call(
        "PUT", f"{API}/greet", api.editor, json={"document": second, "publish": True}
    )
    assert saved.json()["version"] == 2
    editor = await signed_in(api, api.editor)
    page = (await editor.get(f"{FLOWS}/greet")).text
    assert "v2" in page and "v1" in page
    assert "Roll back to v1" in page
    diff = await editor.get(f"{FLOWS}/greet", params={"from": 1, "to": 2})
    assert diff.status_code == 200
    assert (
        '<span class="del"><span class="visually-hidden">removed: </span>-name: Greet</span>'
        in diff.text
    )
    assert (
        '<span class="add"><span class="visually-hidden">added: </span>+name: Greet people</span>'
        in diff.text
    )
    assert '<span class="hunk">@@' in diff.text
    rolled = await post_form(editor, f"{FLOWS}/greet/publish", {"version": "1"})
    assert rolled.status_code == 303
    detail = (await api.call("GET", f"{API}/greet", api.viewer)).json()
    assert detail["flow"]["published_version"] == 1
    audit = await api.call("GET", "/api/w/default/audit", api.owner, params={"target": "greet"})
    assert audit.json()["items"][0]["action"] == "flow.rollback"
    republished = await post_form(editor, f"{FLOWS}/greet/publish", {"version": "2"})
    assert republished.status_code == 303
    assert (await api.call("GET", f"{API}/greet", api.viewer)).json()["version"] == 2
    missing = await editor.get(f"{FLOWS}/greet", params={"from": 1, "to": 9})
    assert missing.status_code == 404


async def test_a_webhook_flows_page_shows_its_url_with_a_copy_button(api: Api) -> None:
    await create(api, flow_document("hooked", trigger={"type": "webhook", "config": {}}))
    viewer = await signed_in(api, api.viewer)
    page = (await viewer.get(f"{FLOWS}/hooked")).text
    # Without HUB_PUBLIC_URL: the address the page was asked on.
    assert '<code id="webhook-url">http://testserver.local/hooks/default/hooked</code>' in page
    assert 'data-copy="webhook-url"' in page
    assert 'id="webhook-url"' not in (await viewer.get(FLOWS)).text


async def test_the_webhook_url_starts_with_hub_public_url(settings: Settings) -> None:
    async for api in started_api(settings.replace(public_url="https://hub.example.com/")):
        await create(api, flow_document("hooked", trigger={"type": "webhook", "config": {}}))
        await give_password(api, api.viewer)
        transport = httpx.ASGITransport(app=api.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="https://hub.example.com"
        ) as viewer:
            await viewer.get("/login")
            signed = await viewer.post(
                "/login",
                data={
                    "email": api.viewer.email,
                    "password": PASSWORD,
                    "_csrf_token": viewer.cookies.get("csrftoken", ""),
                },
            )
            assert signed.status_code == 303, signed.text
            page = (await viewer.get(f"{FLOWS}/hooked")).text
        assert '<code id="webhook-url">https://hub.example.com/hooks/default/hooked</code>' in page


async def test_a_schedule_flows_page_shows_its_next_fire_times(api: Api) -> None:
    document = flow_document(
        "nightly",
        trigger={"type": "schedule", "config": {"cron": "30 2 * * *", "timezone": "Europe/Paris"}},
    )
    await create(api, document)
    viewer = await signed_in(api, api.viewer)
    page = (await viewer.get(f"{FLOWS}/nightly")).text
    times = re.findall(r'<li><time datetime="([^"]+)">', page)
    assert len(times) == 5
    assert all("T02:30:00+0" in t for t in times)  # 02:30 in Paris, with its offset
    assert times == sorted(times, key=lambda t: t[:10])
    assert "Europe/Paris" in page


async def test_a_flows_page_lists_its_recent_runs(api: Api) -> None:
    await create(api, flow_document("greet"))
    run = await run_once(api, "greet", {"name": "x"})
    viewer = await signed_in(api, api.viewer)
    page = (await viewer.get(f"{FLOWS}/greet")).text
    assert f'href="/w/default/runs/{run["id"]}"' in page
    assert 'href="/w/default/runs?flow=greet"' in page
    assert "status-succeeded" in page


# -- roles and escaping ---------------------------------------------------------------------


async def test_a_viewer_sees_no_write_control_and_forged_writes_answer_403(api: Api) -> None:
    await create(
        api,
        flow_document("hooked", trigger={"type": "webhook", "config": {}}),
    )
    await api.call(
        "PUT",
        f"{API}/hooked",
        api.editor,
        json={
            "document": flow_document(
                "hooked", name="Two", trigger={"type": "webhook", "config": {}}
            )
        },
    )
    viewer = await signed_in(api, api.viewer)
    for path in (FLOWS, f"{FLOWS}/hooked", f"{FLOWS}/hooked?from=1&to=2"):
        page = await viewer.get(path)
        assert page.status_code == 200
        assert write_controls(page.text) == [], path
        assert "/edit" not in page.text and "/delete" not in page.text
    for path in (
        f"{FLOWS}/_new",
        f"{FLOWS}/_import",
        f"{FLOWS}/hooked/edit",
        f"{FLOWS}/hooked/delete",
    ):
        assert (await viewer.get(path)).status_code == 403, path
    assert (await viewer.get(f"{FLOWS}/hooked/export")).status_code == 200
    forged: list[tuple[str, dict[str, str]]] = [
        (f"{FLOWS}/hooked/disable", {}),
        (f"{FLOWS}/hooked/enable", {}),
        (f"{FLOWS}/hooked/delete", {}),
        (f"{FLOWS}/hooked/publish", {"version": "1"}),
        (f"{FLOWS}/_save", {"source": yaml.safe_dump(flow_document("sneaky"))}),
        (f"{FLOWS}/_validate", {"source": "id: x"}),
    ]
    for path, data in forged:
        answer = await post_form(viewer, path, data)
        assert answer.status_code == 403, path
    token = viewer.cookies.get("csrftoken", "")
    upload = await viewer.post(
        f"{FLOWS}/_import",
        data={"_csrf_token": token},
        files={"file": ("x.yaml", yaml.safe_dump(flow_document("sneaky")).encode())},
    )
    assert upload.status_code == 403
    detail = (await api.call("GET", f"{API}/hooked", api.viewer)).json()
    assert detail["flow"]["enabled"] is True and detail["flow"]["published_version"] == 1
    assert (await api.call("GET", f"{API}/sneaky", api.viewer)).status_code == 404


@pytest.mark.parametrize("name", ["<script>alert(1)</script>", '" onmouseover="x'])
async def test_a_hostile_flow_name_is_shown_as_text(api: Api, name: str) -> None:
    await create(api, flow_document("xss", name=name))
    await run_once(api, "xss")
    editor = await signed_in(api, api.editor)
    pages: list[httpx.Response] = [
        await editor.get(FLOWS),
        await editor.get(f"{FLOWS}/xss"),
        await editor.get(f"{FLOWS}/xss/edit"),
        await editor.get(f"{FLOWS}/xss/delete"),
        await editor.get(FLOWS, params={"q": name}),
    ]
    for page in pages:
        assert page.status_code == 200
        assert name not in page.text
        assert "<script>alert" not in page.text and 'onmouseover="x' not in page.text
    escaped = str(markupsafe.escape(name))
    assert all(escaped in page.text for page in pages)


async def test_hostile_text_in_a_documents_issues_is_shown_as_text(api: Api) -> None:
    editor = await signed_in(api, api.editor)
    await editor.get(f"{FLOWS}/_new")
    hostile = BROKEN.replace("nope.missing", '"<img src=x onerror=alert(1)>"')
    answer = await editor.post(
        f"{FLOWS}/_validate", data={"source": hostile}, headers=htmx_headers(editor)
    )
    assert answer.status_code == 200
    assert "<img" not in answer.text and "&lt;img src=x onerror=alert(1)&gt;" in answer.text


def test_issues_are_found_at_their_line_in_yaml_and_json_text() -> None:
    from hub.web.flow_lines import locate

    yaml_text = "id: x\nsteps:\n  - id: a\n    input:\n      X-Key: 1\n"
    found = locate(yaml_text, [{"location": "steps[0].input['X-Key']", "message": "m"}])
    assert (found[0]["line"], found[0]["snippet"]) == (5, "      X-Key: 1")
    json_text = (
        '{\n  "id": "x",\n  "steps": [\n    {"id": "a"},\n'
        '    {"id": "b",\n     "action": 1}\n  ]\n}'
    )
    found = locate(json_text, [{"location": "steps[1].action", "message": "m"}])
    assert found[0]["line"] == 6
    unknown = locate(
        yaml_text, [{"location": "", "message": "m"}, {"location": "nope", "message": "n"}]
    )
    assert [i["line"] for i in unknown] == [None, None]
    assert locate("id: [", [{"location": "line 1, column 5", "message": "m"}])[0]["line"] == 1


async def test_an_editor_runs_a_flow_now_with_json_trigger_data(api: Api) -> None:
    """The flow's page has a "Run now" form: its JSON is the run's trigger data and the
    answer goes to the new run's page; bad JSON comes back naming the problem; a viewer
    sees no form and a forged post is refused."""
    await create(api, flow_document("greet"))
    editor = await signed_in(api, api.editor)
    html = (await editor.get(f"{FLOWS}/greet")).text
    assert f'action="{FLOWS}/greet/run"' in html
    assert '<label for="run-input">Trigger data (JSON)</label>' in html
    started = await post_form(editor, f"{FLOWS}/greet/run", {"input": '{"name": "Ada"}'})
    assert started.status_code == 303, started.text
    match = re.fullmatch(r"/w/default/runs/([0-9a-f]{32})", started.headers["location"])
    assert match, started.headers["location"]
    run = await api.hub.wait_for_run(match.group(1), 30)
    assert run["status"] == "succeeded"
    detail = await api.call("GET", f"/api/w/default/runs/{match.group(1)}", api.viewer)
    assert detail.json()["trigger"] == {"name": "Ada"}

    bad = await post_form(editor, f"{FLOWS}/greet/run", {"input": '{"name": <b>x</b>'})
    assert bad.status_code == 422
    assert "The trigger data is not valid JSON: invalid character (byte 9)." in bad.text
    assert 'aria-invalid="true"' in bad.text and "&lt;b&gt;x&lt;/b&gt;" in bad.text

    viewer = await signed_in(api, api.viewer)
    assert "/greet/run" not in (await viewer.get(f"{FLOWS}/greet")).text
    forged = await post_form(viewer, f"{FLOWS}/greet/run", {"input": "{}"})
    assert forged.status_code == 403
    runs_now = await api.call("GET", "/api/w/default/runs", api.viewer, params={"flow_id": "greet"})
    assert len(runs_now.json()["items"]) == 1


async def test_run_now_of_a_flow_without_a_published_version_says_why(api: Api) -> None:
    await create(api, flow_document("draft"), publish=False)
    editor = await signed_in(api, api.editor)
    html = (await editor.get(f"{FLOWS}/draft")).text
    assert "Publish a version first: a run uses the published version." in html
    refused = await post_form(editor, f"{FLOWS}/draft/run", {"input": ""})
    assert refused.status_code == 409
    assert "has no published version" in refused.text and 'role="alert"' in refused.text
