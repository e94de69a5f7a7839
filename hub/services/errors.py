"""The services' errors: what went wrong, in the domain's words, with no HTTP in them.

Each error carries a ``code`` (a stable word a face may show or map), a message for people,
and ``details`` (for :class:`Invalid`, the issues, each ``{"location", "message"}``). The
HTTP face maps each class to a status in :mod:`hub.api.errors`; the CLI prints the message.
The classes also derive from the built-in error a Python caller would expect (a missing
thing is a ``LookupError``, an invalid value a ``ValueError``), so that code holding a
:class:`hub.runtime.Hub` catches them without knowing this module.
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """A request the services refused; ``code`` names the reason."""

    code = "error"

    def __init__(self, message: str, details: Any = None, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code


class NotFound(ServiceError, LookupError):
    """No such thing in this workspace (or not one the caller may see)."""

    code = "not_found"


class Invalid(ServiceError, ValueError):
    """The content is invalid; ``details`` lists every issue with its location."""

    code = "invalid"


class Conflict(ServiceError):
    """The thing exists already, or is not in a state that allows this."""

    code = "conflict"


class Forbidden(ServiceError):
    """The caller's role (or identity) does not allow this."""

    code = "forbidden"


class BadRequest(ServiceError):
    """An argument is malformed or no longer usable (a forged or expired OAuth2 state)."""

    code = "bad_request"


class Unavailable(ServiceError):
    """A service the hub depends on (the database, Redis) does not answer."""

    code = "not_ready"


class UpstreamFailed(ServiceError):
    """A service the hub called on the caller's behalf refused or failed."""

    code = "bad_gateway"


class KeyMismatch(ServiceError):
    """Stored secrets cannot be decrypted with the configured key (HUB_SECRET_KEY)."""

    code = "secret_key"


def issues_of(errors: list[str]) -> list[dict[str, str]]:
    """``location: message`` strings (from :func:`hub.schemas.schema_errors`) as issues."""
    issues = []
    for text in errors:
        location, _, message = text.partition(": ")
        issues.append({"location": location, "message": message})
    return issues
