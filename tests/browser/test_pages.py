"""Every main page in a real browser: it renders with a heading, keeps no request open (only
a run's page may keep its event stream), has no serious or critical axe-core violation, fits
1280x800 and a 390-pixel-wide phone without sideways scrolling, and renders in dark mode.
Screenshots of each go to ``tests/browser/artifacts/``."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.browser.conftest import PHONE, OpenPage, module_hub
from tests.browser.kit import (
    ROOT,
    HubServer,
    StandIn,
    assert_accessible,
    no_horizontal_scroll,
    screenshot,
    settle,
)

ORDER = json.loads((ROOT / "examples" / "inputs" / "order.json").read_text())
# The main pages: a name (the screenshots' too) and a path; ``{run}`` is a finished run.
PAGES = [
    ("home", "/w/default/"),
    ("flows", "/w/default/flows"),
    ("flow", "/w/default/flows/new-order"),
    ("flow-diff", "/w/default/flows/new-order?from=1&to=2#versions-heading"),
    ("flow-editor", "/w/default/flows/new-order/edit"),
    ("runs", "/w/default/runs"),
    ("run", "/w/default/runs/{run}"),
    ("run-failed", "/w/default/runs/{failed}"),
    ("run-recovered", "/w/default/runs/{recovered}"),
    ("connections", "/w/default/connections"),
    ("connection-form", "/w/default/connections/new?connector=hubspot"),
    ("connectors", "/w/default/connectors"),
    ("connector", "/w/default/connectors/http"),
    ("action", "/w/default/connectors/http/actions/request"),
    ("members", "/w/default/members"),
    ("audit", "/w/default/audit"),
    ("profile", "/w/default/profile"),
]
FULL_PAGE = {"flow", "flow-diff", "run", "run-failed", "run-recovered", "connection-form"}
STREAMING = {
    "run",
    "run-failed",
    "run-recovered",
}  # pages that may keep an event stream open (a running run's)


# The screenshots of these pages are the docs' (docs/ui.md): a hub of their own, whose data
# no other module's tests add to.
hub_server = pytest.fixture(scope="module")(module_hub)


@pytest.fixture(scope="module")
def runs(hub_server: HubServer) -> Iterator[dict[str, str]]:
    """A workspace that looks used: orders priced through the webhook, a second version of
    new-order (for the diff), a run that recovered after retries, a run that failed on a
    service (a loopback stand-in answering 500), a connection, and three more members."""
    with StandIn(fail_first={"/contacts": 1}) as service, hub_server.api() as api:
        flow = api.get("/api/w/default/flows/new-order").json()["document"]
        flow["description"] = "Prices each line of an order, totals it, flags large ones."
        flow["steps"][2]["when"] = "{{ steps.total.output > 500 }}"
        saved = api.put(
            "/api/w/default/flows/new-order",
            json={"document": flow, "message": "Review orders over 500", "publish": True},
        )
        assert saved.status_code in (200, 201), saved.text
        run_ids = [
            hub_server.webhook("new-order", {**ORDER, "order_id": f"A-100{n}"}) for n in range(3)
        ]
        hub_server.save_flow(
            {
                "id": "sync-contact",
                "name": "Sync a contact to the CRM",
                "trigger": {"type": "webhook"},
                "steps": [
                    {
                        "id": "lookup",
                        "action": "http.request",
                        "input": {"url": f"{service.base}/contacts"},
                    },
                    {"id": "store", "action": "data.set", "input": {"value": "stored"}},
                ],
            }
        )
        failed = hub_server.webhook("sync-contact", {"email": "ada@example.com"})
        recovered = hub_server.start_run("retry-and-recover", {"customer": "Ada"})
        for run_id in [*run_ids, failed, recovered]:
            hub_server.wait_run(run_id)
        created = api.post(
            "/api/w/default/connections",
            json={
                "name": "crm",
                "connector": "hubspot",
                "values": {"access_token": "pat-na1-example", "base_url": service.base},
            },
        )
        assert created.status_code in (200, 201), created.text
    for email, role in [
        ("grace@example.com", "owner"),
        ("edsger@example.com", "editor"),
        ("barbara@example.com", "viewer"),
    ]:
        hub_server.add_member(email, role, email.split("@")[0].title())
    yield {"run": run_ids[0], "failed": failed, "recovered": recovered}


def path_of(template: str, runs: dict[str, str]) -> str:
    return template.format(**runs)


def visit(page: Any, name: str, path: str) -> None:
    """Open a page and wait until it has settled (an event stream only on a run's page)."""
    answer = page.goto(path)
    assert answer is not None and answer.status == 200, f"{name}: {path} answered {answer}"
    if name in STREAMING:
        page.wait_for_load_state("load")
    else:
        settle(page)
    assert page.get_by_role("heading", level=1).first.is_visible(), f"{name}: no heading"


@pytest.mark.parametrize(("name", "template"), PAGES, ids=[name for name, _ in PAGES])
def test_a_main_page_is_accessible_and_fits_1280x800(
    open_page: OpenPage, owner_state: dict[str, Any], runs: dict[str, str], name: str, template: str
) -> None:
    page, _ = open_page(storage_state=owner_state)
    visit(page, name, path_of(template, runs))
    screenshot(page, f"{name}")
    if name in FULL_PAGE:
        screenshot(page, f"{name}-full", full_page=True)
    assert_accessible(page, name)
    assert no_horizontal_scroll(page), f"{name} scrolls sideways at 1280x800"


def test_the_main_pages_fit_a_phone(
    open_page: OpenPage, owner_state: dict[str, Any], runs: dict[str, str]
) -> None:
    page, _ = open_page(storage_state=owner_state, viewport=PHONE, is_mobile=True, has_touch=True)
    wide = []
    for name, template in PAGES:
        visit(page, name, path_of(template, runs))
        screenshot(page, f"phone-{name}")
        if not no_horizontal_scroll(page):
            wide.append(f"{name}: {page.evaluate('document.documentElement.scrollWidth')}px wide")
    assert not wide, f"pages that scroll sideways on a 390-pixel phone: {wide}"


def test_the_main_pages_render_in_dark_mode(
    open_page: OpenPage, owner_state: dict[str, Any], runs: dict[str, str]
) -> None:
    page, _ = open_page(storage_state=owner_state, color_scheme="dark")
    for name, template in PAGES:
        visit(page, name, path_of(template, runs))
        screenshot(page, f"dark-{name}")
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert is_dark(background), f"{name}: the body's background is {background} in dark mode"
        assert_accessible(page, f"{name} in dark mode", rules=["color-contrast"])


def is_dark(color: str) -> bool:
    """Whether a CSS ``rgb(...)`` colour is dark (relative luminance below 0.2)."""
    channels = [float(c) for c in color[color.index("(") + 1 : color.index(")")].split(",")[:3]]
    linear = [
        (c / 255) / 12.92 if c <= 10 else (((c / 255) + 0.055) / 1.055) ** 2.4 for c in channels
    ]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return luminance < 0.2


def test_the_sign_in_page_fits_a_phone_and_dark_mode(open_page: OpenPage) -> None:
    page, _ = open_page(viewport=PHONE, is_mobile=True, color_scheme="dark")
    page.goto("/login")
    settle(page)
    screenshot(page, "phone-dark-sign-in")
    assert no_horizontal_scroll(page)
    assert_accessible(page, "sign-in (phone, dark)")


def test_times_are_shown_in_the_browsers_time_zone(
    open_page: OpenPage, owner_state: dict[str, Any], runs: dict[str, str]
) -> None:
    zone = "Pacific/Auckland"  # far from UTC, whatever the machine's zone
    page, _ = open_page(storage_state=owner_state, timezone_id=zone, locale="en-US")
    visit(page, "run", f"/w/default/runs/{runs['run']}")
    first = page.locator("time[datetime]").first
    moment = dt.datetime.fromisoformat(first.get_attribute("datetime") or "")
    local = moment.astimezone(ZoneInfo(zone))
    shown = first.inner_text()
    assert local.strftime("%I:%M:%S") in shown, (moment, shown)
    assert moment.astimezone(dt.UTC).strftime("%I:%M:%S") not in shown
