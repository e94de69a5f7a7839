"""A connection created through the form generated from its connector's schema, tested
against a loopback stand-in of the service, and its secret never sent back: every response
the browser receives afterwards (pages and htmx fragments) is searched for it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import OpenPage
from tests.browser.kit import HubServer, StandIn, assert_accessible, expect, screenshot, settle

SECRET = "pat-na1-0b5cd5-do-not-show-me-again"
CONTACTS = "/crm/v3/objects/contacts"


@pytest.fixture(scope="module")
def service() -> Iterator[StandIn]:
    """A stand-in of HubSpot's API on a loopback port (HUB_ALLOW_HOSTS lets the hub call it)."""
    with StandIn() as server:
        yield server


def test_a_connection_from_the_generated_form_is_tested_and_its_secret_never_sent_back(
    open_page: OpenPage, owner_state: dict[str, Any], service: StandIn
) -> None:
    page, found = open_page(storage_state=owner_state, record_bodies=True)
    page.goto("/w/default/connections")
    settle(page)
    page.get_by_role("link", name="New connection").first.click()
    settle(page)
    page.get_by_role("link", name="HubSpot").click()
    settle(page)

    # The form generated from the connector's connection schema, by its labels.
    assert_accessible(page, "a connection form")
    page.get_by_label("Name").fill("crm")
    secret = page.get_by_label("Access token")
    assert secret.get_attribute("type") == "password"
    secret.fill(SECRET)
    page.get_by_label("Base url").fill(service.base)
    screenshot(page, "connection-form-filled")
    page.get_by_role("button", name="Create connection").click()
    page.wait_for_url("**/connections/crm*")
    settle(page)
    expect(page.get_by_role("heading", level=1)).to_contain_text("crm")

    # Tested: the hub calls the service with the secret; the page shows the result.
    page.get_by_role("button", name="Test the connection").click()
    result = page.locator("#test-result")
    expect(result).to_contain_text("The test passed", timeout=30_000)
    assert service.count(CONTACTS) == 1
    assert service.headers[CONTACTS]["authorization"] == f"Bearer {SECRET}"
    settle(page)
    screenshot(page, "connection-tested")

    # Every page that shows the connection, and its edit form: never the secret.
    page.goto("/w/default/connections")
    settle(page)
    expect(page.get_by_role("link", name="crm")).to_be_visible()
    page.goto("/w/default/connections/crm/edit")
    settle(page)
    assert page.get_by_label("Access token").input_value() == ""
    page.goto("/w/default/connections/crm/delete")
    settle(page)
    bodies = [url for url, text in found.bodies if SECRET in text]
    assert found.bodies, "no response was recorded"
    assert bodies == [], f"the secret came back in {bodies}"
    assert SECRET not in page.content()


def test_deleting_a_connection_first_lists_the_flows_that_use_it(
    open_page: OpenPage, owner_state: dict[str, Any], hub_server: HubServer, service: StandIn
) -> None:
    with hub_server.api() as api:
        made = api.post(
            "/api/w/default/connections",
            json={
                "name": "crm-old",
                "connector": "hubspot",
                "values": {"access_token": "pat-old", "base_url": service.base},
            },
        )
        assert made.status_code in (200, 201), made.text
    hub_server.save_flow(
        {
            "id": "uses-crm-old",
            "name": "Look a contact up",
            "trigger": {"type": "manual"},
            "steps": [
                {
                    "id": "find",
                    "action": "hubspot.get_contact",
                    "connection": "crm-old",
                    "input": {"id": "ada@example.com", "id_property": "email"},
                }
            ],
        }
    )
    page, _ = open_page(storage_state=owner_state)
    page.goto("/w/default/connections/crm-old")
    settle(page)
    page.get_by_role("link", name="Delete").click()
    settle(page)
    warning = page.get_by_role("alert")
    expect(warning).to_contain_text("1 flow uses this connection")
    expect(page.get_by_role("link", name="Look a contact up")).to_be_visible()
    screenshot(page, "connection-delete")
    page.get_by_role("button", name="Delete crm-old").click()
    page.wait_for_url(re.compile(r"/w/default/connections/?(\?.*)?$"))
    settle(page)
    expect(page.get_by_role("link", name="crm-old", exact=True)).to_have_count(0)
    with hub_server.api() as api:
        assert api.get("/api/w/default/connections/crm-old").status_code == 404
