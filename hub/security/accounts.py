"""The secrets and rules of accounts that need no database: passwords, API tokens, roles.

Passwords are hashed with argon2id (argon2-cffi's defaults). API tokens are random
(``hub_`` and 43 url-safe characters, 256 bits), shown once when created, and stored as their
SHA-256 digest: a token is found by its digest, so the table never holds one that works.
Roles rank ``viewer`` < ``editor`` < ``owner``.

Argon2 is slow on purpose (tens of milliseconds of CPU and 64 MiB each), so a process runs
at most a few at once: :class:`HashGate` refuses the ones beyond its limit at once
(:class:`HashesBusy`, never a queue that an attacker could fill), and runs the admitted ones
in a thread so that the event loop keeps answering. Browser sessions are random secrets
(:func:`new_session_secret`), stored as their SHA-256 like tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import threading
from collections.abc import Callable
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

ROLES = ("viewer", "editor", "owner")
ROLE_RANK = {role: rank for rank, role in enumerate(ROLES)}
TOKEN_PREFIX = "hub_"
TOKEN_SCOPES = ("read", "runs")  # what a limited token may do (hub.api.scopes)

_hasher = PasswordHasher()
_dummy_hash: str | None = None
_dummy_lock = threading.Lock()
T = TypeVar("T")


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (slow on purpose: run it off the event loop)."""
    return _hasher.hash(password)


def dummy_hash() -> str:
    """The fixed hash that a missing user's password is checked against: made once per
    process with the same parameters as every real hash, from a random password that is
    never used again, so nothing matches it and checking it takes as long as a real one."""
    global _dummy_hash
    with _dummy_lock:
        if _dummy_hash is None:
            _dummy_hash = _hasher.hash(secrets.token_urlsafe(16))
        return _dummy_hash


def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches; an empty or malformed hash never matches.

    A missing user (or one without a password) is checked against :func:`dummy_hash`, so
    that the time taken does not tell whether an email is registered.
    """
    if not password_hash:
        with contextlib.suppress(VerifyMismatchError, VerificationError, InvalidHashError):
            _hasher.verify(dummy_hash(), password)
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


class HashesBusy(Exception):
    """Every argon2 slot of this process is taken: try again in a moment."""


class HashGate:
    """At most ``limit`` argon2 computations at once; more are refused, not queued.

    A slot is taken on the event loop and given back by the thread when the computation
    ends (not when the awaiting request is cancelled, which would let a client that hangs
    up exceed the limit), or by the caller when it is cancelled before the thread started.
    """

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self._busy = 0
        self._lock = threading.Lock()

    @property
    def busy(self) -> int:
        """How many computations run now."""
        return self._busy

    async def run(self, work: Callable[..., T], *args: object) -> T:
        """``work(*args)`` in a thread, or :class:`HashesBusy` at once when all slots are
        taken."""
        with self._lock:
            if self._busy >= self.limit:
                raise HashesBusy(f"{self.limit} at once")
            self._busy += 1

        state = ["queued"]  # -> "running" in the thread, or "abandoned" by a cancellation

        def in_slot() -> T:
            with self._lock:
                if state[0] == "abandoned":
                    raise asyncio.CancelledError
                state[0] = "running"
            try:
                return work(*args)
            finally:
                with self._lock:
                    self._busy -= 1

        try:
            return await asyncio.to_thread(in_slot)
        except asyncio.CancelledError:
            with self._lock:
                if state[0] == "queued":
                    state[0] = "abandoned"
                    self._busy -= 1
            raise


def new_password() -> str:
    """A random password (24 url-safe characters, 144 bits)."""
    return secrets.token_urlsafe(18)


def new_token() -> str:
    """A new API token: ``hub_`` and 43 url-safe characters."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """The SHA-256 hex digest a token is stored and looked up by."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_session_secret() -> str:
    """A new browser session's secret (43 url-safe characters, 256 bits): the cookie holds
    it, the sessions table its :func:`token_digest`."""
    return secrets.token_urlsafe(32)


def at_least(role: str | None, required: str) -> bool:
    """True when ``role`` grants what ``required`` does (owner > editor > viewer)."""
    return role is not None and ROLE_RANK.get(role, -1) >= ROLE_RANK[required]


def normalize_email(email: str) -> str:
    """Emails are compared case-insensitively: stored trimmed and lower-case."""
    return email.strip().lower()
