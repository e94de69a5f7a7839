"""The hub's HTTP app: the API (:mod:`hub.api`) and the web UI (:mod:`hub.web`) in one.

``hub serve``, :mod:`hub.testing` and the benchmarks build it here. Responses are
compressed (gzip, above 500 bytes) except the live streams (server-sent events, which must
reach the browser as they are written) and the webhooks (small answers on the hot path).
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar, Request, Response
from litestar.config.compression import CompressionConfig
from litestar.exceptions import HTTPException
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template import TemplateConfig

from hub.api.app import build_app
from hub.api.errors import http_exception_handler
from hub.runtime import Hub
from hub.web.errors import error_page, wants_html
from hub.web.headers import SECURITY_HEADER_VALUES
from hub.web.routes import web_handlers
from hub.web.templates import environment

# Paths whose responses are never compressed: event streams (a compressor buffers them)
# and webhooks.
UNCOMPRESSED = ["^/hooks/", "/events$", "/live$"]


def compression() -> CompressionConfig:
    """gzip for pages, assets and API answers; never for streams."""
    return CompressionConfig(
        backend="gzip", minimum_size=500, gzip_compress_level=6, exclude=UNCOMPRESSED
    )


def not_found_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    """An address no route serves: a page for a browser, the API's error shape otherwise."""
    if wants_html(request):
        return error_page(
            request, exc.status_code, str(exc.detail), headers=dict(SECURITY_HEADER_VALUES)
        )
    return http_exception_handler(request, exc)


def create_app(hub: Hub, *, manage_hub: bool = True, bootstrap: bool = True) -> Litestar:
    """The app for ``hub``: API and UI; with ``manage_hub`` the app starts and stops the hub.

    On start the app checks that the secret key decrypts the stored secrets (failing loudly,
    naming HUB_SECRET_KEY) and, with ``bootstrap``, creates the first owner of an empty hub.
    """
    plugins = [p for _name, p in hub.pm.list_name_plugin() if p is not None]
    env = environment(hub.settings.templates_dir, plugins)
    return build_app(
        hub,
        manage_hub=manage_hub,
        bootstrap=bootstrap,
        pages=web_handlers(),
        compression=compression(),
        template_config=TemplateConfig(instance=JinjaTemplateEngine.from_environment(env)),
        exception_handlers={404: not_found_handler, 405: not_found_handler},
    )
