"""The API reference pages in a real browser: Scalar (/schema) and Swagger UI
(/schema/swagger) render the hub's OpenAPI document from the vendored copies, with every
request to the hub itself (the browser has no other network) and the pages' own content
security policy in force."""

from __future__ import annotations

import re
from typing import Any

from tests.browser.conftest import OpenPage
from tests.browser.kit import HubServer, Watch, screenshot, wait_for

# What the policy still refuses on /schema (hub/api/reference_pages.py says why it is
# harmless): style attributes (a scrollbar probe, icons' markup) and zod's Function('')
# probe, all from Scalar's bundle. Anything else, a refused <style> included, fails.
SCALAR_KNOWN = re.compile(
    r"^(style-src-attr blocked inline|script-src blocked eval) at \S+/static/vendor/scalar/"
    r"standalone\.js:\d+$"
)
SCALAR_CONSOLE = re.compile(
    r"Applying inline style violates|Evaluating a string as JavaScript violates"
)


def requests_of(page: Any) -> list[str]:
    """Every address the page asks for from now on (appended as they happen)."""
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    return urls


def forgive_scalars_known_violations(found: Watch) -> list[str]:
    """Drop the known refusals on /schema from the page's watch; return the others.

    A console message does not name its directive's source, the event does: a refused
    ``<style>`` logs "Applying inline style" too, and its event (style-src-elem) stays.
    """
    events: list[str] = found.page.evaluate("window.__cspViolations")
    others = [e for e in events if not SCALAR_KNOWN.match(e)]
    others += [m for m in found.csp if not SCALAR_CONSOLE.search(m)]
    found.page.evaluate("window.__cspViolations = []")
    found.csp.clear()
    return others


def test_scalar_renders_the_document_offline_under_its_policy(
    open_page: OpenPage, hub_server: HubServer
) -> None:
    page, found = open_page()
    urls = requests_of(page)
    answer = page.goto("/schema")
    assert answer is not None and answer.status == 200
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy
    page.get_by_role("heading", name="Integration hub").wait_for()
    page.get_by_role("button", name=re.compile("Search")).first.wait_for()
    # Its styles applied: the sheet it injects (allowed by its hash) is in the page.
    assert page.evaluate("document.getElementById('scalar-style').sheet.cssRules.length") > 100
    screenshot(page, "api-reference-scalar")
    foreign = [u for u in urls if not u.startswith(hub_server.base + "/")]
    assert not foreign, f"requests outside the hub: {foreign}"
    assert hub_server.base + "/static/vendor/scalar/standalone.js" in urls
    assert hub_server.base + "/schema/openapi.json" in urls
    assert not forgive_scalars_known_violations(found)


def test_swagger_ui_renders_the_document_offline_without_any_violation(
    open_page: OpenPage, hub_server: HubServer
) -> None:
    page, _found = open_page()
    urls = requests_of(page)
    answer = page.goto("/schema/swagger")
    assert answer is not None and answer.status == 200
    assert "unsafe-inline" not in answer.headers["content-security-policy"]
    title = page.locator(".swagger-ui .info .title")
    title.wait_for()
    assert "Integration hub" in title.inner_text()
    login = page.locator(".opblock-summary-path", has_text="/api/auth/login").first
    login.wait_for()
    screenshot(page, "api-reference-swagger")
    wait_for(
        lambda: hub_server.base + "/schema/openapi.json" in urls, "the document fetched", page=page
    )
    foreign = [u for u in urls if not u.startswith(hub_server.base + "/")]
    assert not foreign, f"requests outside the hub: {foreign}"
    # The fixture fails the test on any CSP violation or script error at its end.
