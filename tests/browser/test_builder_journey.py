"""The newcomer's journey through the flow builder, in a real browser, through the UI alone.

A person who does not write YAML connects a "CRM" (a loopback stand-in started by the test)
to the hub: **New flow** on the flows list (a name and an id), a **webhook** trigger chosen
in the builder, an ``http.request`` step found in the catalog by searching "http" and its
method and URL typed in the form generated from its input schema, a ``data.set`` step added
after it whose value is an expression picked from the completion list (``{{ steps.`` offers
the http step, ``.output.`` offers the fields of http.request's **output schema**), then
**Save**, **Publish** and **Enable** (a flow built in the builder starts with its trigger off:
each is an explicit step), the toolbar saying which version runs. The test then sends
the webhook to the URL the trigger panel shows (as the CRM would), opens the run from the
runs list while the CRM still holds its answer, watches it finish live (no reload), and
reads its outputs: the data.set step's output is what the CRM answered.

The API is used only to read results (the saved document, the run) and the webhook is sent
by the test; everything else is a click or a keystroke on a page, found by what a person
reads. Screenshots of each main moment go to ``tests/browser/artifacts/builder-journey-*``.

The second test is the builder's tour of ``docs/ui.md``: each part it describes, at work on
a flow of four steps. Its screenshots (``builder-tour-*``) and some of the journey's are the
docs' images: ``docs/images/`` holds them as taken here, reduced with ``pngquant``.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.browser.conftest import OpenPage
from tests.browser.kit import DEADLINE, HubServer, StandIn, expect, screenshot, settle

FLOW = "crm-contact"
NAME = "Sync a CRM contact"
BUILD = f"/w/default/flows/{FLOW}/build"
CRM_PATH = "/crm/contacts/42"
TIMEOUT = DEADLINE * 1000  # Playwright counts milliseconds
EXPRESSION = "{{ steps.http_request.output.json }}"


def idle(page: Any) -> None:
    """No save of the step form pending (typing saves after a pause) or in flight."""
    expect(page.locator("form[data-step-form]")).not_to_have_attribute("data-pending", "true")
    settle(page)


def test_a_newcomer_builds_publishes_triggers_and_watches_a_flow(
    open_page: OpenPage, owner_state: dict[str, Any], hub_server: HubServer
) -> None:
    with StandIn() as crm:
        page, _ = open_page(storage_state=owner_state)
        panel = page.locator("#builder-panel")
        toolbar = page.locator("#builder-toolbar")

        # New flow, from the flows list: a name and an id, then the builder.
        page.goto("/w/default/flows")
        page.get_by_role("link", name="New flow").first.click()
        expect(page.get_by_role("heading", name="New flow", level=1)).to_be_visible()
        page.get_by_label("Name").fill(NAME)
        page.get_by_label(re.compile("^Id")).fill(FLOW)
        screenshot(page, "builder-journey-new")
        page.get_by_role("button", name="Open the builder").click()
        page.wait_for_url(re.compile(rf"{BUILD}$"))
        settle(page)
        expect(toolbar.get_by_role("heading", level=1)).to_contain_text(NAME)

        # The trigger: a webhook, among every trigger type the registry offers.
        panel.get_by_role("link", name="trigger").click()
        expect(panel.get_by_role("group", name="Trigger type")).to_be_visible()
        panel.get_by_role("radio", name=re.compile("^Webhook webhook")).check()
        panel.get_by_role("button", name="Use this trigger").click()
        webhook_url = panel.locator("#trigger-webhook-url")
        expect(webhook_url).to_have_text(re.compile(rf"/hooks/default/{FLOW}$"))
        screenshot(page, "builder-journey-trigger")

        # http.request from the catalog, found by searching "http".
        page.get_by_role("link", name="Add a step").first.click()
        expect(panel.get_by_role("heading", name="Add a step", exact=True)).to_be_visible()
        settle(page)  # the swapped-in search form is wired before one types
        search = panel.get_by_label("Search the actions")
        search.press_sequentially("http")
        expect(panel.locator("#catalog-count")).to_contain_text("match")
        http_action = panel.get_by_role("button", name=re.compile(r"http\.request"))
        expect(http_action).to_be_visible()
        expect(panel.get_by_role("button", name=re.compile(r"data\.set"))).to_have_count(0)
        screenshot(page, "builder-journey-catalog")
        http_action.click()
        expect(panel.locator('[data-selected-step="http_request"]')).to_be_visible()

        # Its form, from http.request's input schema: GET, and the CRM's URL typed in.
        panel.get_by_label("Method", exact=True).select_option("GET")
        url = panel.get_by_role("textbox", name="Url", exact=True)  # "Url *": required
        url.fill("")
        url.press_sequentially(crm.base + CRM_PATH)
        idle(page)
        expect(toolbar).to_contain_text("Valid")
        screenshot(page, "builder-journey-http-step")

        # data.set after it, from the step's own "Add after".
        panel.get_by_role("link", name="Add after").click()
        expect(
            panel.get_by_role("heading", name=re.compile("Add a step after http_request"))
        ).to_be_visible()
        settle(page)
        panel.get_by_label("Search the actions").press_sequentially("set")
        panel.get_by_role("button", name=re.compile(r"data\.set")).click()
        expect(panel.locator('[data-selected-step="data_set"]')).to_be_visible()

        # Its value: an expression picked from the completion list.
        panel.get_by_role("switch", name=re.compile(r"^Value: Expression")).check()
        field = panel.locator('textarea[data-expression-field][data-pointer="/value"]')
        expect(field).to_be_visible()
        field.focus()
        editor = panel.get_by_role("textbox", name=re.compile(r"^Value \(expression\)"))
        expect(editor).to_be_focused()
        page.keyboard.press("ControlOrMeta+a")
        page.keyboard.press("Delete")
        page.keyboard.type("{{ steps.")
        options = page.locator(".cm-tooltip-autocomplete [role=option]")
        expect(options.filter(has_text="http_request")).to_be_visible()
        options.filter(has_text="http_request").click()
        page.keyboard.type(".output.")
        # The fields offered are those http.request's output schema declares.
        for name in ("status", "headers", "json", "text"):
            expect(options.filter(has_text=re.compile(rf"^{name}"))).to_be_visible()
        screenshot(page, "builder-journey-completion")
        options.filter(has_text=re.compile(r"^json")).click()
        page.keyboard.type(" }}")
        expect(editor).to_have_text(EXPRESSION)
        expect(field).to_have_value(EXPRESSION)
        page.keyboard.press("Tab")  # leaves the editor: the form saves the field
        idle(page)
        expect(toolbar).to_contain_text("Valid")
        screenshot(page, "builder-journey-data-step")

        # Save, then Publish, from the toolbar: it says which version runs.
        toolbar.get_by_role("button", name="Save", exact=True).click()
        expect(page.locator("#builder-notice")).to_contain_text("Saved as version 1")
        expect(toolbar).to_contain_text("Nothing published yet")
        toolbar.get_by_role("button", name="Publish version 1").click()
        expect(page.locator("#builder-notice")).to_contain_text("Version 1 is published")
        expect(toolbar).to_contain_text("Version 1 runs")
        expect(toolbar.get_by_role("button", name=re.compile("^Publish"))).to_have_count(0)

        # The trigger's switch, in the toolbar: a flow built here starts off; Enable is a
        # step of its own.
        expect(toolbar.locator("#builder-trigger-state")).to_have_text(re.compile("Trigger off"))
        toolbar.get_by_role("button", name="Enable trigger").click()
        expect(toolbar.locator("#builder-trigger-state")).to_have_text(re.compile("Trigger on"))
        expect(toolbar.get_by_role("button", name="Disable trigger")).to_be_visible()
        screenshot(page, "builder-journey-published")

        # What was saved is exactly what was chosen and typed.
        with hub_server.api() as api:
            answer = api.get(f"/api/w/default/flows/{FLOW}")
        assert answer.status_code == 200, answer.text
        assert answer.json()["flow"]["published_version"] == 1
        document = answer.json()["document"]
        assert document["id"] == FLOW and document["name"] == NAME
        assert document["trigger"] == {"type": "webhook"}
        assert [(s["id"], s["action"], s["input"]) for s in document["steps"]] == [
            ("http_request", "http.request", {"method": "GET", "url": crm.base + CRM_PATH}),
            ("data_set", "data.set", {"value": EXPRESSION}),
        ]

        # The CRM calls the webhook URL the trigger panel showed, and holds its answer.
        page.goto(f"{BUILD}?panel=trigger")
        hook = webhook_url.inner_text().strip()
        assert hook.endswith(f"/hooks/default/{FLOW}"), hook
        page.goto(f"/w/default/runs?flow={FLOW}")
        settle(page)
        crm.hold.clear()
        sent = httpx.post(hub_server.url(hook[hook.index("/hooks/") :]), json={"contact": 42})
        assert sent.status_code == 202, sent.text
        run_id = sent.json()["run_id"]

        # The run appears on the open runs list; open it while it is still running.
        run_link = page.get_by_role("link", name=run_id, exact=True)
        expect(run_link).to_be_visible(timeout=TIMEOUT)
        run_link.click()
        page.wait_for_url(re.compile(rf"/runs/{run_id}$"))
        heading = page.get_by_role("heading", level=1)
        expect(heading).to_contain_text("running")
        page.evaluate("window.__notReloaded = true")
        screenshot(page, "builder-journey-run-live")

        # The CRM answers: the page follows the run to its end without a reload.
        crm.hold.set()
        expect(heading).to_contain_text("succeeded", timeout=TIMEOUT)
        data_step = page.locator("#step-data_set")
        expect(data_step).to_contain_text(CRM_PATH, timeout=TIMEOUT)
        assert page.evaluate("window.__notReloaded === true"), "the run's page was reloaded"
        screenshot(page, "builder-journey-run", full_page=True)

        # Its outputs: data.set's is what the CRM answered.
        run = hub_server.wait_run(run_id)
        assert run["status"] == "succeeded", run
        steps = {s["step_id"]: s for s in run["steps"]}
        answered = {"path": CRM_PATH, "call": 1}
        assert steps["http_request"]["output"]["json"] == answered
        assert steps["data_set"]["output"] == answered
        assert crm.count(CRM_PATH) == 1


# -- the builder's tour (docs/ui.md, "The flow builder"): each part the docs show, at work ----


def tour_flow(base: str) -> dict[str, Any]:
    """fetch -> (score, tag) -> update: a branch and a join, expressions, a setting."""
    return {
        "id": TOUR,
        "name": "Score and tag a CRM contact",
        "description": "Fetches a contact, scores and tags it, and writes both back.",
        "trigger": {"type": "webhook"},
        "steps": [
            {
                "id": "fetch",
                "name": "Fetch the contact",
                "action": "http.request",
                "input": {"method": "GET", "url": base + "/contacts/{{ trigger.body.id }}"},
            },
            {
                "id": "score",
                "name": "Score the lead",
                "action": "data.set",
                "input": {"value": "{{ steps.fetch.output.json.call * 10 }}"},
            },
            {
                "id": "tag",
                "name": "Tag it",
                "action": "data.set",
                "needs": ["fetch"],
                "input": {"value": "lead"},
            },
            {
                "id": "update",
                "name": "Update the CRM",
                "action": "http.request",
                "needs": ["score", "tag"],
                "timeout": "10s",
                "retry": {"max_attempts": 3, "initial": "1s"},
                "input": {
                    "method": "POST",
                    "url": base + "/contacts",
                    "json": {"score": "{{ steps.score.output }}", "tag": "{{ steps.tag.output }}"},
                },
            },
        ],
    }


TOUR = "crm-tour"
TOUR_BUILD = f"/w/default/flows/{TOUR}/build"


def type_in_editor(page: Any, pointer: str, text: str) -> None:
    """Focus the expression field at ``pointer`` (the code editor takes its place), replace
    its text with ``text`` and leave it with Tab (the form saves the field)."""
    field = page.locator(
        f'#builder-panel textarea[data-expression-field][data-pointer="{pointer}"]'
    )
    if field.is_hidden():  # the code editor is on it already (the field was edited)
        page.locator("#builder-panel .cm-content").first.click()
    else:
        field.focus()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.press("Delete")
    page.keyboard.type(text)
    page.keyboard.press("Escape")  # closes the completion list
    expect(field).to_have_value(text)
    page.keyboard.press("Tab")
    idle(page)


def test_the_builders_tour(
    open_page: OpenPage, owner_state: dict[str, Any], hub_server: HubServer
) -> None:
    with StandIn() as crm:
        hub_server.save_flow(tour_flow(crm.base))
        page, _ = open_page(storage_state=owner_state)
        panel = page.locator("#builder-panel")
        toolbar = page.locator("#builder-toolbar")

        # The canvas: the trigger and the steps laid out, a step selected beside it.
        page.goto(f"{TOUR_BUILD}?step=update")
        settle(page)
        canvas = page.locator("#builder-canvas-region")
        for step in ("fetch", "score", "tag", "update"):
            expect(canvas.locator(f'[data-step="{step}"]').first).to_be_visible()
        expect(panel.get_by_role("heading", name="Update the CRM", level=2)).to_be_visible()
        screenshot(page, "builder-tour-canvas")

        # The list view of the same steps, with what each needs.
        page.get_by_role("link", name="Steps list").click()
        steps = page.locator("#builder-steps")
        expect(steps).to_be_visible()
        expect(steps.locator('li[data-step="update"]')).to_contain_text("needs score, tag")
        screenshot(page, "builder-tour-list")

        # The step's settings, each with its explanation.
        page.goto(f"{TOUR_BUILD}?step=update")
        settle(page)
        panel.get_by_text("Step settings", exact=True).click()
        settings = panel.locator("#step-settings, details.step-settings").first
        expect(panel.locator("#step-when")).to_be_visible()
        settings.scroll_into_view_if_needed()
        screenshot(page, "builder-tour-settings")

        # The data that reaches the step, as a tree to drag from.
        tree = panel.get_by_role("tree")
        expect(tree).to_be_visible()
        expect(
            tree.get_by_role("treeitem", name=re.compile(r"^steps\.score\.output"))
        ).to_be_visible()
        tree.scroll_into_view_if_needed()
        screenshot(page, "builder-tour-data")

        # The catalog, opened after a step, searched.
        page.goto(f"{TOUR_BUILD}?step=tag")
        settle(page)
        panel.get_by_role("link", name="Add after").click()
        expect(
            panel.get_by_role("heading", name=re.compile("Add a step after tag"))
        ).to_be_visible()
        settle(page)  # the swapped-in search form is wired before one types
        panel.get_by_label("Search the actions").press_sequentially("contact")
        expect(panel.locator("#catalog-count")).to_contain_text("match")
        screenshot(page, "builder-tour-catalog")

        # Validation as one types: a misspelt output field, under its field.
        page.goto(f"{TOUR_BUILD}?step=score")
        settle(page)
        type_in_editor(page, "/value", "{{ steps.fetch.output.jsn.call * 10 }}")
        expect(panel).to_contain_text("declares no output field 'jsn'")
        expect(toolbar).to_contain_text("1 issue")
        screenshot(page, "builder-tour-validation")
        type_in_editor(page, "/value", "{{ steps.fetch.output.status }}")
        expect(toolbar).to_contain_text("Valid")

        # The trigger: a schedule with the cron helper and its next runs; then undone.
        page.goto(f"{TOUR_BUILD}?panel=trigger")
        settle(page)
        panel.get_by_text("Change the trigger", exact=True).click()
        panel.get_by_role("radio", name=re.compile(r"^Schedule schedule")).check()
        panel.get_by_role("button", name="Use this trigger").click()
        expect(panel.get_by_role("heading", level=2)).to_contain_text("schedule")
        settle(page)
        panel.get_by_role("button", name=re.compile("^Weekdays at 09:00")).click()
        expect(panel.get_by_label(re.compile("^Cron"))).to_have_value("0 9 * * 1-5")
        expect(panel.locator("#trigger-schedule li")).to_have_count(5)
        panel.locator("#trigger-schedule").scroll_into_view_if_needed()
        screenshot(page, "builder-tour-schedule")
        undo = toolbar.get_by_role("button", name=re.compile("^Undo"))
        undo.click()
        expect(toolbar.get_by_role("button", name=re.compile("^Redo"))).to_be_enabled()
        undo.click()
        page.goto(f"{TOUR_BUILD}?panel=trigger")
        expect(panel.get_by_role("heading", level=2)).to_contain_text("webhook")

        # Try it: a sample, a step tested and pinned, a test run up to a later step.
        page.goto(f"{TOUR_BUILD}?panel=try")
        settle(page)
        page.get_by_label("Sample (JSON)").fill('{"body": {"id": 42}}')
        page.get_by_role("button", name="Keep as sample").click()
        expect(page.get_by_text("The sample is kept.")).to_be_visible()
        page.goto(f"{TOUR_BUILD}?step=fetch")
        page.get_by_role("button", name="Test this step").click()
        page.get_by_role("button", name="Pin this output of fetch").click()
        expect(page.get_by_role("button", name="Unpin the output of fetch")).to_be_visible()
        page.goto(f"{TOUR_BUILD}?step=update")
        page.get_by_role("button", name="Run the flow up to here").click()
        run = page.locator("#try-run")
        expect(run).to_have_attribute("data-status", "succeeded", timeout=TIMEOUT)
        expect(run.get_by_label("Step fetch")).to_contain_text("pinned: not called")
        run.scroll_into_view_if_needed()
        screenshot(page, "builder-tour-try")
        assert crm.count("/contacts/42") == 1, "the pinned step was called again"
        assert crm.count("/contacts") == 1

        # The YAML tab: the same document as text.
        page.goto(f"{TOUR_BUILD}?view=yaml")
        settle(page)
        expect(page.locator("#builder-views")).to_contain_text(f"id: {TOUR}")
        screenshot(page, "builder-tour-yaml")

        # Someone else saves a version meanwhile: Save answers 409 with the difference.
        with hub_server.api() as api:
            other = tour_flow(crm.base)
            other["description"] = "Changed by someone else."
            saved = api.put(
                f"/api/w/default/flows/{TOUR}",
                json={"document": other, "message": "Another person's change"},
            )
            assert saved.status_code in (200, 201), saved.text
        page.goto(f"{TOUR_BUILD}?step=score")
        settle(page)
        toolbar.get_by_role("button", name="Save", exact=True).click()
        expect(panel.get_by_role("heading", name="Not saved: the flow changed")).to_be_visible()
        screenshot(page, "builder-tour-conflict")
