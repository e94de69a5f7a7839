"""Errors on pages: an HTML page (or, for htmx, a fragment shown in the page's message
area) that says what happened and what to try; never a stack trace, never JSON.

A request without a session is sent to the sign-in page (303, or ``HX-Redirect`` for htmx)
and comes back after it.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.response import Redirect, Template

from hub.api.errors import flow_issues, status_of
from hub.flows import FlowError
from hub.services.errors import ServiceError
from hub.web.navigation import SignInRequired, is_htmx, sign_in_url

log = logging.getLogger(__name__)

TITLES = {
    400: "That request could not be used",
    401: "Please sign in",
    403: "You cannot do that here",
    404: "Not found",
    405: "Not allowed",
    409: "That conflicts with what is there",
    413: "That is too large",
    422: "That is not valid",
    429: "Too many attempts",
    500: "Something went wrong on the hub",
    502: "A service the hub called failed",
    503: "The hub is not ready",
}
HINTS = {
    403: "Your role in this workspace does not allow it: ask an owner of the workspace. If you "
    "were filling in a form, reload the page and try again (its security token may have "
    "expired).",
    404: "The address may be mistyped, or the item was deleted. Go back, or start from the "
    "home page.",
    429: "Wait a moment, then try again.",
    500: "The error was logged on the server. Try again; if it happens again, tell whoever runs "
    "the hub what you were doing.",
}


def error_page(
    request: Request[Any, Any, Any],
    status: int,
    message: str,
    *,
    issues: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    """The error as a page, or for an htmx request as a fragment placed in ``#messages``."""
    context = {
        "status": status,
        "heading": TITLES.get(status, "That did not work"),
        "message": message,
        "hint": HINTS.get(status, ""),
        "issues": issues or [],
    }
    if is_htmx(request):
        fragment_headers = {"HX-Retarget": "#messages", "HX-Reswap": "innerHTML"}
        return Template(
            template_name="partials/error.html",
            context=context,
            status_code=status,
            headers={**fragment_headers, **(headers or {})},
        )
    return Template(
        template_name="errors/error.html", context=context, status_code=status, headers=headers
    )


def sign_in_redirect(request: Request[Any, Any, Any], _exc: Exception) -> Response[Any]:
    """To the sign-in page, coming back afterwards."""
    target = sign_in_url(request)
    if is_htmx(request):
        return Response(b"", status_code=401, headers={"HX-Redirect": target})
    return Redirect(target, status_code=303)


def http_error_page(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    """Litestar's and the API's HTTP errors (403 from a guard, a CSRF failure, 404...)."""
    status = exc.status_code
    if status == 401:
        return sign_in_redirect(request, exc)
    message = str(exc.detail)
    if status == 403 and "CSRF" in message:
        message = "The form's security token did not match (it may have expired)."
    return error_page(request, status, message, headers=exc.headers)


def service_error_page(request: Request[Any, Any, Any], exc: ServiceError) -> Response[Any]:
    """A domain error (not found, invalid, conflict, forbidden...)."""
    return error_page(request, status_of(exc), exc.message)


def flow_error_page(request: Request[Any, Any, Any], exc: FlowError) -> Response[Any]:
    """An invalid flow document: every issue with its place."""
    issues = flow_issues(exc)
    return error_page(request, 422, f"The flow is invalid ({len(issues)} issue(s)).", issues=issues)


def internal_error_page(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """An unexpected error: logged, and a page that leaks nothing."""
    log.exception("unhandled error on page %s %s", request.method, request.url.path)
    return error_page(request, 500, "The hub could not show this page.")


PAGE_EXCEPTION_HANDLERS: dict[Any, Any] = {
    SignInRequired: sign_in_redirect,
    HTTPException: http_error_page,
    ServiceError: service_error_page,
    FlowError: flow_error_page,
    Exception: internal_error_page,
}


def wants_html(request: Request[Any, Any, Any]) -> bool:
    """Whether a request outside the API is a browser's asking for a page."""
    path = request.url.path
    if path.startswith(("/w/", "/login", "/logout")) or path == "/":
        return True
    if path.startswith(("/api/", "/hooks/", "/schema")) or path in ("/metrics", "/healthz"):
        return False
    return "text/html" in request.headers.get("accept", "")
