"""The secrets and rules of accounts that need no database: passwords, API tokens, roles.

Passwords are hashed with argon2id (argon2-cffi's defaults). API tokens are random
(``hub_`` and 43 url-safe characters, 256 bits), shown once when created, and stored as their
SHA-256 digest: a token is found by its digest, so the table never holds one that works.
Roles rank ``viewer`` < ``editor`` < ``owner``.
"""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

ROLES = ("viewer", "editor", "owner")
ROLE_RANK = {role: rank for rank, role in enumerate(ROLES)}
TOKEN_PREFIX = "hub_"

_hasher = PasswordHasher()
_dummy_hash: str | None = None


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (slow on purpose: run it off the event loop)."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches; an empty or malformed hash never matches.

    A missing user is checked against a dummy hash, so that the time taken does not tell
    whether an email is registered.
    """
    global _dummy_hash
    if not password_hash:
        if _dummy_hash is None:
            _dummy_hash = _hasher.hash(secrets.token_urlsafe(16))
        password_hash = _dummy_hash
        password = password + "\x00never"
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def new_password() -> str:
    """A random password (24 url-safe characters, 144 bits)."""
    return secrets.token_urlsafe(18)


def new_token() -> str:
    """A new API token: ``hub_`` and 43 url-safe characters."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """The SHA-256 hex digest a token is stored and looked up by."""
    return hashlib.sha256(token.encode()).hexdigest()


def at_least(role: str | None, required: str) -> bool:
    """True when ``role`` grants what ``required`` does (owner > editor > viewer)."""
    return role is not None and ROLE_RANK.get(role, -1) >= ROLE_RANK[required]


def normalize_email(email: str) -> str:
    """Emails are compared case-insensitively: stored trimmed and lower-case."""
    return email.strip().lower()
