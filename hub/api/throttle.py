"""The throttle of password guesses: per account and per client address.

Each failed password check (a login, or the current password of ``POST /api/me/password``)
counts once against its account and once against the client's address
(:func:`hub.api.proxy.client_key`); while either has ``HUB_LOGIN_ATTEMPTS_PER_ACCOUNT`` or
``HUB_LOGIN_ATTEMPTS_PER_ADDRESS`` failures within ``HUB_LOGIN_WINDOW_SECONDS``, the next
attempt is answered 429 with ``Retry-After`` before any password is hashed. A good password
clears its account's failures, never its address's (one known password must not reset a
spray across other accounts).

Embedded (no Redis), the counts live in the process (:class:`LoginThrottle`: a sliding
window of failure times, at most :data:`MAX_KEYS` keys, the oldest forgotten first). With
``HUB_REDIS_URL`` they live in Redis (:class:`RedisLoginThrottle`: a sorted set of failure
times per key, named by the key's SHA-256 so no email is stored there), shared by every
``hub serve`` process; while Redis does not answer, each process counts on its own.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

from hub.settings import Settings

log = logging.getLogger(__name__)
REDIS_FAILURES = (RedisError, OSError)

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

    async def check(self, account: str, address: str) -> None:
        """:class:`Throttled` when the account or the address failed too often lately."""
        now = self.clock()
        self._check("account:" + account, self.per_account, "account", now)
        self._check("address:" + address, self.per_address, "address", now)

    async def failed(self, account: str, address: str) -> None:
        """Count a failed password check against both."""
        now = self.clock()
        for key in ("account:" + account, "address:" + address):
            failures = self._failures.pop(key, None) or deque()
            failures.append(now)
            self._failures[key] = failures  # re-inserted: the dict's order is by last failure
        while len(self._failures) > MAX_KEYS:
            self._failures.pop(next(iter(self._failures)))

    async def succeeded(self, account: str) -> None:
        """Forget an account's failures after its password was right."""
        self._failures.pop("account:" + account, None)


class RedisLoginThrottle:
    """The same windows in Redis, shared by every process of the hub (see the module).

    While Redis fails, ``local`` (a :class:`LoginThrottle`) counts in this process."""

    PREFIX = "hub:login-failures:"

    def __init__(self, redis: Any, local: LoginThrottle) -> None:
        self.redis = redis
        self.local = local

    def _key(self, key: str) -> str:
        return self.PREFIX + hashlib.sha256(key.encode()).hexdigest()

    async def check(self, account: str, address: str) -> None:
        """:class:`Throttled` when the account or the address failed too often lately."""
        local = self.local
        limits = (
            ("account:" + account, local.per_account, "account"),
            ("address:" + address, local.per_address, "address"),
        )
        now = time.time()
        try:
            pipe = self.redis.pipeline(transaction=False)
            for key, _limit, _what in limits:
                pipe.zremrangebyscore(self._key(key), "-inf", now - local.window)
                pipe.zrange(self._key(key), 0, -1, withscores=True)
            results = await pipe.execute()
        except REDIS_FAILURES as exc:  # Redis down: count in this process
            log.warning("login throttle: Redis failed (%s); counting in this process", exc)
            await local.check(account, address)
            return
        for (_key, limit, what), failures in zip(limits, results[1::2], strict=True):
            if len(failures) >= limit:
                oldest = float(failures[len(failures) - limit][1])
                raise Throttled(what, max(1, math.ceil(oldest + local.window - now)))

    async def failed(self, account: str, address: str) -> None:
        """Count a failed password check against both."""
        now, ttl = time.time(), int(self.local.window * 1000) + 1000
        try:
            pipe = self.redis.pipeline(transaction=False)
            for key in ("account:" + account, "address:" + address):
                pipe.zadd(self._key(key), {uuid.uuid4().hex: now})
                pipe.pexpire(self._key(key), ttl)
            await pipe.execute()
        except REDIS_FAILURES as exc:  # Redis down: count in this process
            log.warning("login throttle: Redis failed (%s); counting in this process", exc)
            await self.local.failed(account, address)

    async def succeeded(self, account: str) -> None:
        """Forget an account's failures after its password was right."""
        await self.local.succeeded(account)
        try:
            await self.redis.delete(self._key("account:" + account))
        except REDIS_FAILURES as exc:  # Redis down: nothing to forget there
            log.warning("login throttle: Redis failed (%s)", exc)
