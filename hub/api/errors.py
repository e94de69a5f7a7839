"""One JSON error shape for every error: ``{"error": {"code", "message", "details"}}``.

The services raise domain errors (:mod:`hub.services.errors`) that know nothing of HTTP;
:data:`STATUS_OF` gives each its status here, and :func:`service_error_handler` answers
with the error's own code, message and details. An invalid flow document
(:class:`hub.flows.FlowError`) is a 422 listing every issue with its location.
:class:`ApiError` remains for what only HTTP knows (authentication, a malformed request).
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.openapi.datastructures import ResponseSpec

from hub.api.models import ErrorBody
from hub.flows import FlowError
from hub.services.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Invalid,
    KeyMismatch,
    NotFound,
    ServiceError,
    Unavailable,
    UpstreamFailed,
)

log = logging.getLogger("hub.api")


class ApiError(HTTPException):
    """An error the API answers with its own code and message."""

    def __init__(self, status_code: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(status_code=status_code, detail=message)
        self.code = code
        self.details = details


CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    502: "bad_gateway",
    503: "unavailable",
}


DESCRIPTIONS = {
    400: "The request is malformed (the details name the field)",
    401: "No valid credentials (an API token or a session cookie)",
    403: "Authenticated, but the role does not allow this (or the CSRF token is missing)",
    404: "No such thing in this workspace (other workspaces' ids answer 404 too)",
    409: "The thing exists already, or is not in a state that allows this",
    422: "The content is invalid: every issue with its location",
    429: "Too many attempts; try again later",
    502: "A service the hub called refused or failed",
}


def error_responses(*codes: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the errors a route answers, all in the one error shape."""
    return {
        code: ResponseSpec(
            data_container=ErrorBody,
            description=DESCRIPTIONS.get(code, "Error"),
            generate_examples=False,
        )
        for code in codes
    }


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The error shape."""
    return {"error": {"code": code, "message": message, "details": details}}


STATUS_OF: dict[type[ServiceError], int] = {
    BadRequest: 400,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    Invalid: 422,
    KeyMismatch: 500,
    UpstreamFailed: 502,
    Unavailable: 503,
}


def status_of(exc: ServiceError) -> int:
    """The HTTP status of a domain error (500 for one without a mapping)."""
    for cls, status in STATUS_OF.items():
        if isinstance(exc, cls):
            return status
    return 500


def flow_issues(exc: FlowError) -> list[dict[str, str]]:
    """A flow's validation errors as issues, each with its location."""
    return [{"location": i.location, "message": i.message} for i in exc.issues]


def invalid(message: str, issues: list[dict[str, str]]) -> ApiError:
    """A 422 listing every issue with its location (a request body the API cannot use)."""
    return ApiError(422, "invalid", message, issues)


def flow_invalid(exc: FlowError) -> ApiError:
    """A 422 from a flow's validation errors."""
    issues = flow_issues(exc)
    return invalid(f"the flow is invalid ({len(issues)} issue(s))", issues)


def service_error_handler(request: Request[Any, Any, Any], exc: ServiceError) -> Response[Any]:
    """Answer a domain error with its status, code, message and details."""
    return Response(error_body(exc.code, exc.message, exc.details), status_code=status_of(exc))


def flow_error_handler(request: Request[Any, Any, Any], exc: FlowError) -> Response[Any]:
    """Answer an invalid flow document: 422, every issue with its location."""
    return http_exception_handler(request, flow_invalid(exc))


def http_exception_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    """Map Litestar's HTTP exceptions (404 and 405 included) to the hub's error shape."""
    status = exc.status_code
    code = getattr(exc, "code", None) or CODES.get(status, "error")
    details = getattr(exc, "details", None)
    if details is None and isinstance(exc.extra, dict | list) and exc.extra:
        details = exc.extra
    return Response(
        error_body(code, str(exc.detail), details), status_code=status, headers=exc.headers
    )


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Log an unexpected error and answer 500 without leaking internals."""
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return Response(error_body("internal", "internal server error"), status_code=500)
