"""Flow control shared across workers: rate limits and concurrency limits.

- Rate limits are token buckets (``RateLimit(requests, per_seconds)`` of an action, per
  connection or per action). A service's ``Retry-After`` blocks the bucket's key until then,
  so the other steps that use the same connection wait too instead of hammering it.
- Concurrency limits are semaphores with leases: a flow's ``concurrency`` (steps of the flow
  running at once) and a connection's ``max_concurrency`` setting. A slot whose holder died
  expires with its lease.

With Redis (queue mode) the state lives in Redis, shared by every process (Lua scripts keep
each decision atomic); without it, in this process. A step that must wait is not failed and
holds no worker: the engine makes it ``waiting`` until the limiter says it may go.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Protocol

_TOKEN_BUCKET = """
local key, rate, capacity, now = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local blocked = tonumber(redis.call('GET', key .. ':blocked') or '0')
if blocked > now then return tostring(blocked - now) end
local state = redis.call('HMGET', key, 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + (now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', key, 'tokens', tokens, 'at', now)
redis.call('EXPIRE', key, math.ceil(capacity / rate) + 60)
return tostring(wait)
"""

_ACQUIRE_SLOT = """
local key, limit, now, expires, token = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]),
    tonumber(ARGV[3]), ARGV[4]
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
if redis.call('ZCARD', key) < limit then
  redis.call('ZADD', key, expires, token)
  redis.call('EXPIRE', key, math.ceil(expires - now) + 60)
  return 1
end
return 0
"""


class Limiter(Protocol):
    """The flow-control operations the engine uses."""

    async def take(self, key: str, requests: int, per_seconds: float) -> float:
        """Take a token; return 0 if taken, else the seconds to wait before trying again."""
        ...

    async def block(self, key: str, seconds: float) -> None:
        """Refuse tokens of ``key`` for ``seconds`` (a service's Retry-After)."""
        ...

    async def acquire(self, key: str, limit: int, lease: float) -> str | None:
        """Take one of ``limit`` slots for ``lease`` seconds; return its token or None."""
        ...

    async def release(self, key: str, token: str) -> None:
        """Give a slot back."""
        ...


class LocalLimiter:
    """Flow control within one process (the embedded default)."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}
        self._blocked: dict[str, float] = {}
        self._slots: dict[str, dict[str, float]] = {}

    async def take(self, key: str, requests: int, per_seconds: float) -> float:
        """Token bucket refilled at ``requests / per_seconds`` per second."""
        now = time.monotonic()
        blocked = self._blocked.get(key, 0.0)
        if blocked > now:
            return blocked - now
        rate = requests / per_seconds
        tokens, at = self._buckets.get(key, (float(requests), now))
        tokens = min(float(requests), tokens + (now - at) * rate)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1 - tokens) / rate

    async def block(self, key: str, seconds: float) -> None:
        """Block a key until ``seconds`` from now."""
        self._blocked[key] = max(self._blocked.get(key, 0.0), time.monotonic() + seconds)

    async def acquire(self, key: str, limit: int, lease: float) -> str | None:
        """A slot, if fewer than ``limit`` unexpired ones are held."""
        now = time.monotonic()
        held = {t: exp for t, exp in self._slots.get(key, {}).items() if exp > now}
        self._slots[key] = held
        if len(held) >= limit:
            return None
        token = uuid.uuid4().hex
        held[token] = now + lease
        return token

    async def release(self, key: str, token: str) -> None:
        """Give a slot back."""
        self._slots.get(key, {}).pop(token, None)


class RedisLimiter:
    """Flow control shared by every process through Redis."""

    def __init__(self, redis: Any, prefix: str = "hub:fc:") -> None:
        self.redis = redis
        self.prefix = prefix
        self._bucket = redis.register_script(_TOKEN_BUCKET)
        self._slot = redis.register_script(_ACQUIRE_SLOT)

    async def take(self, key: str, requests: int, per_seconds: float) -> float:
        """Token bucket in Redis (one atomic script)."""
        wait = await self._bucket(
            keys=[self.prefix + "rate:" + key],
            args=[requests / per_seconds, requests, time.time()],
        )
        return float(wait)

    async def block(self, key: str, seconds: float) -> None:
        """Block a key until ``seconds`` from now, shared by all processes."""
        until = time.time() + seconds
        name = self.prefix + "rate:" + key + ":blocked"
        await self.redis.set(name, str(until), ex=max(1, int(seconds) + 1))

    async def acquire(self, key: str, limit: int, lease: float) -> str | None:
        """A semaphore slot with a lease (a sorted set scored by expiry)."""
        token = uuid.uuid4().hex
        now = time.time()
        got = await self._slot(
            keys=[self.prefix + "sem:" + key], args=[limit, now, now + lease, token]
        )
        return token if int(got) == 1 else None

    async def release(self, key: str, token: str) -> None:
        """Give a slot back."""
        await self.redis.zrem(self.prefix + "sem:" + key, token)


class StepGate:
    """Decides whether a step may call its action now, and holds its slots meanwhile."""

    def __init__(self, limiter: Limiter, slot_lease: float) -> None:
        self.limiter = limiter
        self.slot_lease = slot_lease

    @staticmethod
    def rate_key(workspace_id: str, action_name: str, connection: str | None, scope: str) -> str:
        """The bucket of an action's rate limit: per connection (default) or per action."""
        if scope == "connection" and connection:
            return f"{workspace_id}:conn:{connection}"
        return f"{workspace_id}:action:{action_name}"

    async def enter(
        self,
        *,
        workspace_id: str,
        flow_id: str,
        flow_limit: int | None,
        action_name: str,
        rate: Any,
        connection: str | None,
        connection_limit: int | None,
    ) -> tuple[float, list[tuple[str, str]]]:
        """Return (0, slots held) when the step may go, or (seconds to wait, [])."""
        held: list[tuple[str, str]] = []
        wanted = []
        if flow_limit:
            wanted.append((f"{workspace_id}:flow:{flow_id}", flow_limit))
        if connection and connection_limit:
            wanted.append((f"{workspace_id}:conn:{connection}", connection_limit))
        for key, limit in wanted:
            token = await self.limiter.acquire(key, limit, self.slot_lease)
            if token is None:
                await self.leave(held)
                return 0.2, []
            held.append((key, token))
        if rate is not None:
            key = self.rate_key(workspace_id, action_name, connection, rate.scope)
            wait = await self.limiter.take(key, rate.requests, rate.per_seconds)
            if wait > 0:
                await self.leave(held)
                return wait, []
        return 0.0, held

    async def leave(self, held: list[tuple[str, str]]) -> None:
        """Release the slots a step held."""
        for key, token in held:
            await self.limiter.release(key, token)
