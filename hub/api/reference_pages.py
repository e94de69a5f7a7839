"""The API reference pages: Scalar at ``/schema`` and Swagger UI at ``/schema/swagger``.

Litestar's render plugins load both from a CDN and start Swagger UI with an inline script:
blank offline and blocked by a strict content security policy. These subclasses load the
copies vendored by ``scripts/vendor_ui.py`` from ``/static/vendor/`` (served by the web UI's
static router, :mod:`hub.web.routes`; an app built by :func:`hub.api.app.build_app` alone
serves no ``/static``), start Swagger UI from a served file (``ui/static/swagger-init.js``)
that reads its settings from data attributes, and answer with a content security policy
of their own: scripts, styles, fonts and requests from the hub only, no inline script.

Scalar injects its styles at run time as ``<style>`` elements: Tailwind's sheet, its
toasts' sheet (both fixed text in the bundle) and its theme's sheet (built from the theme
and :data:`SCALAR_CONFIGURATION`, the same text on every load). An inline ``<style>`` needs
``'unsafe-inline'``, a nonce or a hash: ``style-src`` lists the SHA-256 of these three
(:data:`SCALAR_STYLE_HASHES`; tests/test_reference_pages.py recomputes the fixed ones from
the vendored file), so the policy needs no ``'unsafe-inline'`` and no per-request nonce.
What the policy still refuses on /schema, without visible effect: two ``style`` attributes
of a hidden probe that measures the scrollbar's width (and two more Vue sets the same way),
and the ``Function('')`` probe of Scalar's zod (it then validates without compiling);
Chromium logs them as violations. Style *properties* set from script (the CSSOM), which
Scalar uses for everything it shows, are not governed by ``style-src``.
"""

from __future__ import annotations

import html
import json
from typing import Any

from litestar import Request, Response
from litestar.enums import MediaType
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin

from hub.api.auth import CSRF_COOKIE, CSRF_HEADER

VENDOR = "/static/vendor"
FAVICON = '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">'

# Scalar's settings (data-configuration): nothing fetched from scalar.com (its fonts, its
# telemetry, the AI agent, the hosted MCP and the proxy for "Test request" are off).
SCALAR_CONFIGURATION: dict[str, Any] = {
    "withDefaultFonts": False,
    "telemetry": False,
    "agent": {"disabled": True},
    "mcp": {"disabled": True},
    "showDeveloperTools": "never",
    "hideClientButton": True,
}

# SHA-256 (base64) of the <style> texts Scalar 1.76.4 injects: its Tailwind sheet and its
# toasts' sheet (fixed text in standalone.js: the test recomputes them) and its theme's sheet
# (built at run time from SCALAR_CONFIGURATION: the hash Chromium reports when it is refused).
SCALAR_STYLE_HASHES: tuple[str, ...] = (
    "'sha256-QaqpfacUoPFhgIiBkPdO5/o7/RySEmsKsOP9zgwBiBM='",  # Tailwind
    "'sha256-l/2OpPg0d+2VLTLgwjf5mQo2CYwHDEqdj5TjbfEyVJI='",  # toasts (vue-sonner)
    "'sha256-T13Uev3xCax2N28XaoAE8DOzQZKvPp7ZQVAi1iRREjo='",  # theme
)


def content_security_policy(style_sources: str = "") -> str:
    """The reference pages' policy: everything from the hub, no inline script.

    ``style_sources`` adds the hashes of the styles Scalar injects (never
    ``'unsafe-inline'``). ``connect-src 'self'``: the document, and "Try it" requests to
    this hub only.
    """
    style = f"style-src 'self' {style_sources}".strip()
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            style,
            "img-src 'self' data:",
            "font-src 'self' data:",
            "connect-src 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ]
    )


def page(title: str, head: str, body: str, csp: str) -> Response[bytes]:
    """An HTML page with the reference pages' security headers."""
    text = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n{FAVICON}\n{head}\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )
    return Response(
        text.encode(),
        media_type=MediaType.HTML,
        headers={
            "Content-Security-Policy": csp,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
            "X-Frame-Options": "DENY",
        },
    )


def attribute(value: Any) -> str:
    """A JSON value as an HTML attribute's (quoted, escaped) text."""
    return html.escape(json.dumps(value, separators=(",", ":")), quote=True)


class ScalarPage(ScalarRenderPlugin):
    """Scalar from ``/static/vendor/scalar/``, its document from ``data-url``."""

    def __init__(self, *, path: str = "/") -> None:
        super().__init__(path=path, js_url=f"{VENDOR}/scalar/standalone.js", favicon="")

    # Litestar's handler passes a Response through as it is (it checks the value's type):
    # that is how the page gets its own headers, though the base class declares bytes.
    def render(  # type: ignore[override]
        self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]
    ) -> Response[bytes]:
        """The page: the script tag Scalar reads its settings from, then Scalar."""
        url = self.get_openapi_json_route(request)
        body = (
            "<noscript>The API reference needs JavaScript; the document itself is at "
            f'<a href="{html.escape(url)}">{html.escape(url)}</a>.</noscript>\n'
            f'<script id="api-reference" data-url="{html.escape(url)}" '
            f'data-configuration="{attribute(SCALAR_CONFIGURATION)}"></script>\n'
            f'<script src="{self.js_url}"></script>'
        )
        title = str(openapi_schema["info"]["title"])
        return page(title, "", body, content_security_policy(" ".join(SCALAR_STYLE_HASHES)))


class SwaggerPage(SwaggerRenderPlugin):
    """Swagger UI from ``/static/vendor/swagger-ui/``, started by ``/static/swagger-init.js``.

    The init script reads the document's address, the CSRF cookie and header names (the
    hub's own CSRF check, :func:`hub.api.auth.csrf_config`: its cookie is readable by script)
    from the container's data attributes: no inline script, no document inlined in the page.
    """

    def __init__(self, *, path: str = "/swagger") -> None:
        super().__init__(
            path=path,
            js_url=f"{VENDOR}/swagger-ui/swagger-ui-bundle.js",
            css_url=f"{VENDOR}/swagger-ui/swagger-ui.css",
            favicon="",
        )

    def render(  # type: ignore[override]
        self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]
    ) -> Response[bytes]:
        """The page: the vendored sheet and bundle, the init script, the settings."""
        data = {
            "data-url": self.get_openapi_json_route(request),
            "data-csrf-cookie": CSRF_COOKIE,
            "data-csrf-header": CSRF_HEADER,
        }
        attrs = " ".join(f'{k}="{html.escape(v, quote=True)}"' for k, v in data.items())
        head = (
            f'<link rel="stylesheet" href="{self.css_url}">\n'
            f'<script src="{self.js_url}" defer></script>\n'
            '<script src="/static/swagger-init.js" defer></script>'
        )
        body = f'<div id="swagger-ui" {attrs}></div>'
        title = str(openapi_schema["info"]["title"])
        return page(title, head, body, content_security_policy())

    def receive_router(self, router: Any) -> None:
        """No ``oauth2-redirect.html`` (an inline script): the hub's schemes are not OAuth2."""
        return
