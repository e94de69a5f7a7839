"""Errors the storage functions raise, for the services to catch without SQLAlchemy."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

__all__ = ["Conflict", "IntegrityError"]


class Conflict(ValueError):
    """The thing to create exists already (a user's email, a workspace id, a connection name)."""


# IntegrityError (re-exported): a constraint refused a row, typically because another
# process inserted the same key first; the services catch it under this module's name.
