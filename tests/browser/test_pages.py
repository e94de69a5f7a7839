"""Every main page in a real browser: it renders with a heading, keeps no request open (only
a run's page may keep its event stream), has no serious or critical axe-core violation, fits
1280x800 and a 390-pixel-wide phone without sideways scrolling, and renders in dark mode.
Screenshots of each go to ``tests/browser/artifacts/``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.browser.conftest import PHONE, OpenPage
from tests.browser.kit import (
    ROOT,
    HubServer,
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
    ("runs", "/w/default/runs"),
    ("run", "/w/default/runs/{run}"),
    ("connections", "/w/default/connections"),
    ("connection-form", "/w/default/connections/new?connector=hubspot"),
    ("connectors", "/w/default/connectors"),
    ("connector", "/w/default/connectors/http"),
    ("action", "/w/default/connectors/http/actions/request"),
    ("members", "/w/default/members"),
    ("audit", "/w/default/audit"),
    ("profile", "/w/default/profile"),
]
STREAMING = {"run"}  # pages that may keep an event stream open (a running run's)


@pytest.fixture(scope="module")
def runs(hub_server: HubServer) -> dict[str, str]:
    """Finished runs: an order priced through the webhook."""
    run_id = hub_server.webhook("new-order", ORDER)
    record = hub_server.wait_run(run_id)
    assert record["status"] == "succeeded", record
    return {"run": run_id}


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
    assert_accessible(page, "dark mode: the last page")


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
