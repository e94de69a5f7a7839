"""The web UI's shell (issue 15): signing in and out, the redirect to sign-in and back,
HTML errors, the security headers, the menu hook, templates a deployment or a plugin
overrides, and pages kept out of the OpenAPI document.

In-process against the real app (real SQLite, real argon2); no browser (see
``tests/browser/``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hub import hookimpl
from hub.settings import Settings
from hub.web.routes import CONTENT_SECURITY_POLICY
from tests.api_kit import PASSWORD, Api, started_api
from tests.web_kit import browser, csrf_token, give_password, htmx_headers, post_form, signed_in


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async for value in started_api(settings):
        yield value


async def test_a_signed_out_page_request_goes_to_sign_in_and_comes_back(api: Api) -> None:
    client = browser(api)
    answer = await client.get("/w/default/runs?status=failed")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=/w/default/runs%3Fstatus%3Dfailed"
    await give_password(api, api.editor)
    await client.get(answer.headers["location"])
    signed = await client.post(
        "/login",
        data={
            "email": api.editor.email,
            "password": PASSWORD,
            "next": "/w/default/runs?status=failed",
            "_csrf_token": csrf_token(client),
        },
    )
    assert signed.status_code == 303
    assert signed.headers["location"] == "/w/default/runs?status=failed"
    page = await client.get("/w/default/runs?status=failed")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")


async def test_an_htmx_request_without_a_session_answers_hx_redirect(api: Api) -> None:
    client = browser(api)
    answer = await client.get(
        "/w/default/flows",
        headers={"hx-request": "true", "hx-current-url": "http://x/w/default/runs"},
    )
    assert answer.status_code == 401
    assert answer.headers["hx-redirect"] == "/login?next=/w/default/runs"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil"])
async def test_sign_in_never_returns_to_another_site(api: Api, target: str) -> None:
    await give_password(api, api.viewer)
    client = browser(api)
    await client.get("/login")
    answer = await client.post(
        "/login",
        data={
            "email": api.viewer.email,
            "password": PASSWORD,
            "next": target,
            "_csrf_token": csrf_token(client),
        },
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/"


async def test_a_wrong_password_shows_the_form_again_with_what_went_wrong(api: Api) -> None:
    await give_password(api, api.viewer)
    client = browser(api)
    await client.get("/login")
    answer = await post_form(
        client, "/login", {"email": api.viewer.email, "password": "not it", "next": "/w/default/"}
    )
    assert answer.status_code == 401
    assert "Wrong e-mail address or password." in answer.text
    assert 'value="/w/default/"' in answer.text  # still returns there after a retry
    assert "not it" not in answer.text  # the password typed is never sent back


async def test_a_form_without_its_csrf_token_is_refused_with_a_page(api: Api) -> None:
    client = await signed_in(api, api.editor)
    answer = await client.post("/logout", data={})
    assert answer.status_code == 403
    assert answer.headers["content-type"].startswith("text/html")
    assert "security token" in answer.text
    assert (await client.get("/w/default/")).status_code == 200  # still signed in


async def test_signing_out_ends_the_session_on_the_server(api: Api) -> None:
    client = await signed_in(api, api.editor)
    cookie = client.cookies["hub_session"]
    answer = await post_form(client, "/logout")
    assert answer.status_code == 303 and answer.headers["location"] == "/login"
    thief = browser(api)
    thief.cookies.set("hub_session", cookie, domain="testserver.local")
    assert (await thief.get("/w/default/")).status_code == 303


async def test_root_opens_the_first_workspace(api: Api) -> None:
    client = await signed_in(api, api.viewer)
    answer = await client.get("/")
    assert answer.status_code == 303 and answer.headers["location"] == "/w/default/"


async def test_pages_carry_a_strict_content_security_policy(api: Api) -> None:
    client = await signed_in(api, api.owner)
    page = await client.get("/w/default/")
    csp = page.headers["content-security-policy"]
    assert csp == CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "script-src 'self'" in csp and "style-src 'self'" in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert (
        "<script>" not in page.text and " style=" not in page.text and " onclick=" not in page.text
    )
    login = await browser(api).get("/login")
    assert login.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


async def test_errors_on_pages_are_pages(api: Api) -> None:
    client = await signed_in(api, api.viewer)
    elsewhere = await client.get("/w/other/flows")  # not a member: like a missing workspace
    assert elsewhere.status_code == 404
    assert elsewhere.headers["content-type"].startswith("text/html")
    assert "Not found" in elsewhere.text
    owners_only = await client.get("/w/default/members")
    assert owners_only.status_code == 403
    assert "ask an owner" in owners_only.text
    nowhere = await client.get("/no/such/page", headers={"accept": "text/html"})
    assert nowhere.status_code == 404 and nowhere.headers["content-type"].startswith("text/html")
    assert nowhere.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    api_404 = await client.get("/api/no/such/thing")
    assert api_404.headers["content-type"].startswith("application/json")


async def test_htmx_errors_land_in_the_message_area(api: Api) -> None:
    client = await signed_in(api, api.viewer)
    answer = await client.get("/w/default/members", headers=htmx_headers(client))
    assert answer.status_code == 403
    assert answer.headers["hx-retarget"] == "#messages"
    assert 'role="alert"' in answer.text and "<html" not in answer.text


async def test_the_menu_follows_the_role(api: Api) -> None:
    viewer = await signed_in(api, api.viewer)
    owner = await signed_in(api, api.owner)
    viewer_home = (await viewer.get("/w/default/")).text
    owner_home = (await owner.get("/w/default/")).text
    assert 'href="/w/default/flows"' in viewer_home and 'href="/w/default/flows"' in owner_home
    assert 'href="/w/default/members"' not in viewer_home
    assert 'href="/w/default/members"' in owner_home and 'href="/w/default/audit"' in owner_home


async def test_pages_stay_out_of_the_openapi_document(api: Api) -> None:
    document = (await api.client.get("/schema/openapi.json")).json()
    paths = document["paths"]
    assert not [p for p in paths if p.startswith(("/w/", "/login", "/logout", "/static"))]
    assert "/" not in paths


async def test_static_files_are_served_without_a_session_and_compressed(api: Api) -> None:
    client = browser(api)
    css = await client.get("/static/hub.css", headers={"accept-encoding": "gzip"})
    assert css.status_code == 200 and "--accent" in css.text
    assert css.headers["content-encoding"] == "gzip"
    htmx = await client.get("/static/vendor/htmx/htmx.min.js")
    assert htmx.status_code == 200 and "htmx" in htmx.text


class MenuPlugin:
    """A plugin with a page, its own template, and a menu entry for editors and owners."""

    @hookimpl
    def hub_menu_items(self, workspace: str, role: str) -> list[dict[str, str]]:
        if role == "viewer":
            return []
        return [{"label": "Reports", "href": f"/w/{workspace}/reports", "key": "reports"}]


async def test_hook_hub_menu_items(api: Api) -> None:
    api.hub.pm.register(MenuPlugin())
    editor = await signed_in(api, api.editor)
    viewer = await signed_in(api, api.viewer)
    assert '<a href="/w/default/reports">Reports</a>' in (await editor.get("/w/default/flows")).text
    assert "Reports" not in (await viewer.get("/w/default/flows")).text


async def test_a_templates_folder_overrides_the_hubs_templates(
    settings: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "templates"
    (folder / "pages").mkdir(parents=True)
    (folder / "pages" / "login.html").write_text(
        '{% extends "base.html" %}{% block content %}<h1>ACME sign-in</h1>{% endblock %}'
    )
    async for api in started_api(settings.replace(templates_dir=str(folder))):
        page = await browser(api).get("/login")
        assert page.status_code == 200
        assert "ACME sign-in" in page.text
        assert "/static/hub.css" in page.text  # the hub's own base.html still around it


async def test_a_plugins_templates_folder_comes_before_the_hubs(
    settings: Settings, tmp_path: Path
) -> None:
    package = tmp_path / "acme_ui"
    (package / "templates" / "pages").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "templates" / "pages" / "login.html").write_text(
        '{% extends "base.html" %}{% block content %}<p>signed by the plugin</p>{% endblock %}'
    )
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("acme_ui", package / "__init__.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["acme_ui"] = module
    try:
        from hub.runtime import Hub
        from tests import kit
        from tests.api_kit import ApiPlugin, make_api

        hub = Hub(settings, plugins=[kit, ApiPlugin(), module], entry_points=False)
        await hub.start(migrate=False)
        try:
            async for web in make_api(hub):
                page: Any = await browser(web).get("/login")
                assert "signed by the plugin" in page.text
        finally:
            await hub.stop(grace=1.0)
    finally:
        sys.modules.pop("acme_ui", None)


def page_routes(api: Api) -> list[tuple[str, str]]:
    """(method, path template) of every page route under ``/w/``."""
    from litestar.routes import HTTPRoute

    found = []
    for route in api.app.routes:
        if isinstance(route, HTTPRoute) and route.path.startswith("/w/"):
            for handler in route.route_handlers:
                found.extend((m, route.path) for m in handler.http_methods if m != "OPTIONS")
    return found


async def test_every_page_sends_a_visitor_without_a_session_to_sign_in(api: Api) -> None:
    import re

    checked = 0
    for method, template in page_routes(api):
        path = re.sub(
            r"{(\w+):\w+}", lambda m: "default" if m.group(1) == "workspace" else "x", template
        )
        for headers in ({}, api.owner.headers):  # an API token is not a session
            client = browser(api)
            await client.get("/login")  # the CSRF cookie, so that unsafe methods reach the guard
            answer = await client.request(
                method, path, headers={**headers, "x-csrftoken": csrf_token(client)}
            )
            assert answer.status_code == 303, (method, template, answer.status_code)
            assert answer.headers["location"].startswith("/login?next=/w/default")
        checked += 1
    assert checked >= 20


class StrayMenuPlugin:
    """A plugin whose menu entries lead off the site (a backslash is a slash to browsers)."""

    @hookimpl
    def hub_menu_items(self, workspace: str, role: str) -> list[dict[str, str]]:
        return [
            {"label": "Away", "href": "https://elsewhere.example/"},
            {"label": "Slashed", "href": "//elsewhere.example/"},
            {"label": "Backslashed", "href": "/\\elsewhere.example/"},
            {"label": "Here", "href": f"/w/{workspace}/here"},
        ]


async def test_a_plugin_menu_entry_off_the_site_is_left_out(api: Api) -> None:
    api.hub.pm.register(StrayMenuPlugin())
    page = (await (await signed_in(api, api.viewer)).get("/w/default/flows")).text
    assert '<a href="/w/default/here">Here</a>' in page
    assert "elsewhere.example" not in page
    assert "Away" not in page and "Slashed" not in page


PLUGIN_WITH_A_PAGE = """
from typing import Any

from litestar import Request, get, post
from litestar.response import Template

from hub import hookimpl
from hub.api.deps import EDITOR
from hub.web.pages import WorkspacePage, page


class Reports(WorkspacePage):
    path = "/w/{workspace:str}/reports"

    @get("/", name="acme_reports")
    async def index(self, request: Request[Any, Any, Any]) -> Template:
        return await page(request, "acme/reports.html", section="reports", title="Reports")

    @post("/", name="acme_reports_make", opt=EDITOR, status_code=200)
    async def make(self, request: Request[Any, Any, Any]) -> Template:
        return await page(request, "acme/reports.html", section="reports", title="Made")


@hookimpl
def hub_routes() -> list[Any]:
    return [Reports]


@hookimpl
def hub_menu_items(workspace: str, role: str) -> list[dict[str, str]]:
    return [{"label": "Reports", "href": f"/w/{workspace}/reports", "key": "reports"}]
"""


async def test_a_plugin_adds_a_page_with_its_template_and_menu_entry(
    settings: Settings, tmp_path: Path
) -> None:
    """docs/plugin-guide.md's "Pages in the web UI": a module plugin's page is guarded like
    the hub's own (sign-in, membership, role), renders its own template inside the hub's
    layout, and its menu entry is marked current on it."""
    import importlib.util
    import sys

    from hub.runtime import Hub
    from tests import kit
    from tests.api_kit import ApiPlugin, make_api

    package = tmp_path / "acme_reports"
    (package / "templates" / "acme").mkdir(parents=True)
    (package / "__init__.py").write_text(PLUGIN_WITH_A_PAGE)
    (package / "templates" / "acme" / "reports.html").write_text(
        '{% extends "base.html" %}{% block content %}<h1>{{ title }} of {{ workspace }}</h1>'
        "{% endblock %}"
    )
    spec = importlib.util.spec_from_file_location("acme_reports", package / "__init__.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["acme_reports"] = module
    spec.loader.exec_module(module)
    try:
        hub = Hub(settings, plugins=[kit, ApiPlugin(), module], entry_points=False)
        await hub.start(migrate=False)
        try:
            async for web in make_api(hub):
                editor = await signed_in(web, web.editor)
                shown = await editor.get("/w/default/reports")
                assert shown.status_code == 200
                assert "<h1>Reports of default</h1>" in shown.text
                assert '<a href="/w/default/reports" aria-current="page">Reports</a>' in shown.text
                assert shown.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
                made = await post_form(editor, "/w/default/reports")
                assert made.status_code == 200 and "<h1>Made of default</h1>" in made.text
                viewer = await signed_in(web, web.viewer)
                refused = await post_form(viewer, "/w/default/reports")
                assert refused.status_code == 403
                assert refused.headers["content-type"].startswith("text/html")
                assert (await browser(web).get("/w/default/reports")).status_code == 303
                assert (await editor.get("/w/other/reports")).status_code == 404
        finally:
            await hub.stop(grace=1.0)
    finally:
        sys.modules.pop("acme_reports", None)
