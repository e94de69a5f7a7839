"""Where a request comes from and where to send it: htmx or not, the sign-in page and the
safe way back after it. Kept apart from :mod:`hub.web.pages` so that the error pages
(:mod:`hub.web.errors`), which every page uses, need nothing else of the pages."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from litestar.connection import ASGIConnection


class SignInRequired(Exception):
    """The request needs a browser session it does not have."""


def is_htmx(request: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """Whether htmx sent the request (it wants a fragment, or an ``HX-Redirect``)."""
    return request.headers.get("hx-request") == "true"


def safe_next(target: str | None) -> str:
    """A same-site path to return to after signing in (anything else: the home page)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def sign_in_url(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The sign-in page, returning to the page asked for (an htmx request: the page it was
    made from)."""
    here = connection.url.path
    if connection.url.query:
        here += "?" + connection.url.query
    if is_htmx(connection):
        current = connection.headers.get("hx-current-url", "")
        path = current.split("://", 1)[-1]
        here = "/" + path.split("/", 1)[1] if "/" in path else "/"
    return "/login?next=" + quote(safe_next(here), safe="/")
