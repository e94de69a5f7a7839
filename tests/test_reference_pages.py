"""The API reference pages (/schema: Scalar, /schema/swagger: Swagger UI) work offline.

Their scripts and styles are the copies ``scripts/vendor_ui.py`` vendors from the npm
registry (each beside its LICENSE and VERSION), served by the hub at ``/static/vendor/``;
no inline script; a content security policy of their own without ``'unsafe-inline'``.
In-process against the real app; the pages in a real browser are in
``tests/browser/test_reference_pages_browser.py``.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType

import pytest

from hub.api.reference_pages import SCALAR_STYLE_HASHES
from hub.settings import Settings
from tests.api_kit import Api, started_api

ROOT = Path(__file__).resolve().parent.parent
PAGES = ("/schema", "/schema/swagger")


def vendor_script() -> ModuleType:
    """scripts/vendor_ui.py, imported from its path (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("vendor_ui", ROOT / "scripts" / "vendor_ui.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Assets(HTMLParser):
    """The addresses a page loads (script src, link href, img src) and its inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []
        self.attributes: list[tuple[str, str]] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        self.attributes += [(k, v) for k, v in found.items()]
        for name in ("src", "href"):
            if name in found and tag in ("script", "link", "img", "iframe", "source"):
                self.urls.append(found[name])
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append(data)


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async for value in started_api(settings):
        yield value


@pytest.mark.parametrize("path", PAGES)
async def test_the_reference_pages_load_only_the_hubs_own_files(api: Api, path: str) -> None:
    answer = await api.client.get(path)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assets = Assets()
    assets.feed(answer.text)
    assert "http://" not in answer.text and "https://" not in answer.text
    assert assets.urls, "the page loads its scripts and styles"
    assert all(u.startswith("/") and not u.startswith("//") for u in assets.urls), assets.urls
    assert not assets.inline, f"inline script: {assets.inline}"
    assert not [k for k, _ in assets.attributes if k == "style" or k.startswith("on")]
    scripts = [u for u in assets.urls if u.endswith(".js")]
    assert any(u.startswith("/static/vendor/") for u in scripts), scripts
    for url in assets.urls:
        served = await api.client.get(url)
        assert served.status_code == 200, url
        assert served.content, url
        if url.startswith("/static/vendor/"):
            folder = url.rsplit("/", 1)[0]
            for name in ("LICENSE", "VERSION"):
                beside = await api.client.get(f"{folder}/{name}")
                assert beside.status_code == 200 and beside.text.strip(), f"{folder}/{name}"


@pytest.mark.parametrize("path", PAGES)
async def test_the_reference_pages_have_a_strict_content_security_policy(
    api: Api, path: str
) -> None:
    answer = await api.client.get(path)
    policy = {
        d.split()[0]: d.split()[1:] for d in answer.headers["content-security-policy"].split("; ")
    }
    assert policy["default-src"] == ["'none'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["connect-src"] == ["'self'"]
    assert policy["style-src"][0] == "'self'"
    assert all(s.startswith("'sha256-") for s in policy["style-src"][1:])
    assert not [d for d, s in policy.items() if "'unsafe-inline'" in s or "'unsafe-eval'" in s]
    assert answer.headers["x-content-type-options"] == "nosniff"


async def test_swagger_starts_from_a_served_file_with_its_settings_in_data_attributes(
    api: Api,
) -> None:
    answer = await api.client.get("/schema/swagger")
    assert '<script src="/static/swagger-init.js" defer></script>' in answer.text
    assert 'data-url="/schema/openapi.json"' in answer.text
    assert 'data-csrf-cookie="csrftoken"' in answer.text
    init = await api.client.get("/static/swagger-init.js")
    assert init.status_code == 200 and "SwaggerUIBundle(" in init.text
    assert "validatorUrl: null" in init.text  # no badge fetched from swagger.io
    # The oauth2-redirect page Litestar adds (an inline script) is not served.
    assert (await api.client.get("/schema/oauth2-redirect.html")).status_code == 404


async def test_scalar_reads_its_document_and_settings_from_its_script_tag(api: Api) -> None:
    answer = await api.client.get("/schema")
    assert '<script id="api-reference" data-url="/schema/openapi.json"' in answer.text
    assert "&quot;withDefaultFonts&quot;:false" in answer.text  # no fonts from scalar.com
    assert "&quot;telemetry&quot;:false" in answer.text
    document = await api.client.get("/schema/openapi.json")
    assert document.status_code == 200 and document.json()["openapi"].startswith("3.1")


def test_the_styles_scalar_injects_from_its_bundle_are_allowed_by_their_hash() -> None:
    bundle = (ROOT / "ui/static/vendor/scalar/standalone.js").read_text(encoding="utf-8")
    sheets = [
        re.sub(r"\\(.)", r"\1", m.group(1))
        for m in re.finditer(r"createTextNode\(`((?:[^`\\]|\\.)*)`\)", bundle)
    ]
    sheets = [s for s in sheets if s]
    assert len(sheets) >= 2  # Tailwind's and the toasts'
    for sheet in sheets:
        digest = base64.b64encode(hashlib.sha256(sheet.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in SCALAR_STYLE_HASHES, sheet[:80]


def test_every_vendored_library_has_its_files_licence_and_pinned_version() -> None:
    script = vendor_script()
    assert {"@scalar/api-reference", "swagger-ui-dist", "axe-core"} <= set(script.LIBRARIES)
    for package, (version, folder, files, root) in script.LIBRARIES.items():
        target = root / folder
        for served in files.values():
            assert (target / served).stat().st_size > 0, f"{package}: {served}"
        assert (target / "LICENSE").read_text().strip(), package
        assert (target / "VERSION").read_text().startswith(f"{package} {version}\n"), package
    assert script.LIBRARIES["axe-core"][3] == ROOT / "tests" / "vendor"
