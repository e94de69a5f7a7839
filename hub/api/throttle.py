"""The throttle of password guesses: per account and per client address.

Each failed password check (a login, or the current password of ``POST /api/me/password``)
counts once against its account and once against the client's address
(:func:`hub.api.proxy.client_key`); while either has ``HUB_LOGIN_ATTEMPTS_PER_ACCOUNT`` or
``HUB_LOGIN_ATTEMPTS_PER_ADDRESS`` failures within ``HUB_LOGIN_WINDOW_SECONDS``, the next
attempt is answered 429 with ``Retry-After`` before any password is hashed. A good password
clears its account's failures, never its address's (one known password must not reset a
spray across other accounts).

The counts live in the process (a sliding window of failure times, at most
:data:`MAX_KEYS` keys, the oldest forgotten first): several ``hub serve`` processes each
count their own share.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from hub.settings import Settings

MAX_KEYS = 100_000  # bounds memory against made-up emails and rotating addresses


class Throttled(Exception):
    """Too many failures lately; ``retry_after`` is in whole seconds."""

    def __init__(self, what: str, retry_after: int) -> None:
        super().__init__(f"too many failed password checks for this {what}; try again later")
        self.retry_after = retry_after


class LoginThrottle:
    """Sliding windows of failures per account and per address (see the module)."""

    def __init__(
        self,
        per_account: int,
        per_address: int,
        window: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_account = per_account
        self.per_address = per_address
        self.window = window
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginThrottle:
        """The throttle configured by the ``HUB_LOGIN_*`` settings."""
        return cls(
            settings.login_attempts_per_account,
            settings.login_attempts_per_address,
            settings.login_window_seconds,
        )

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.get(key)
        if failures is None:
            return deque()
        cutoff = now - self.window
        while failures and failures[0] <= cutoff:
            failures.popleft()
        if not failures:
            del self._failures[key]
        return failures

    def _check(self, key: str, limit: int, what: str, now: float) -> None:
        failures = self._recent(key, now)
        if len(failures) >= limit:
            wait = failures[len(failures) - limit] + self.window - now
            raise Throttled(what, max(1, math.ceil(wait)))

    def check(self, account: str, address: str) -> None:
        """:class:`Throttled` when the account or the address failed too often lately."""
        now = self.clock()
        self._check("account:" + account, self.per_account, "account", now)
        self._check("address:" + address, self.per_address, "address", now)

    def failed(self, account: str, address: str) -> None:
        """Count a failed password check against both."""
        now = self.clock()
        for key in ("account:" + account, "address:" + address):
            failures = self._failures.pop(key, None) or deque()
            failures.append(now)
            self._failures[key] = failures  # re-inserted: the dict's order is by last failure
        while len(self._failures) > MAX_KEYS:
            self._failures.pop(next(iter(self._failures)))

    def succeeded(self, account: str) -> None:
        """Forget an account's failures after its password was right."""
        self._failures.pop("account:" + account, None)
