"""The layered data cache.

L1 lives in the process (a bounded dict of entries with their own expiry times); an optional
L2 backend (Redis, in queue mode) is shared by all processes. Cache-aside with a TTL,
stale-while-revalidate and single flight: when many callers miss one key at once, one load
runs and the others await its future (cachetools cannot hold coroutines, so the in-flight
loads are kept beside it). Hit, miss and stale counts are kept for metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import msgspec
from cachetools import LRUCache


class L2Backend(Protocol):
    """A shared cache tier (Redis in queue mode)."""

    async def get(self, key: str) -> tuple[Any, float] | None: ...

    async def set(self, key: str, value: Any, expires_at: float, ttl: float) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def announce(self, key: str) -> None: ...


@dataclasses.dataclass
class CacheStats:
    """Counters exported as metrics."""

    hits: int = 0
    misses: int = 0
    stale: int = 0
    loads: int = 0


@dataclasses.dataclass
class _Entry:
    value: Any
    fresh_until: float
    stale_until: float


class Cache:
    """Cache-aside with TTL, stale-while-revalidate and single flight."""

    def __init__(self, maxsize: int = 10_000, l2: L2Backend | None = None) -> None:
        self._l1: LRUCache[str, _Entry] = LRUCache(maxsize=maxsize)
        self._inflight: dict[str, asyncio.Future[Any]] = {}
        self._l2 = l2
        self.stats = CacheStats()
        self.invalidations = 0

    async def get_or_load(
        self,
        key: str,
        load: Callable[[], Awaitable[Any]],
        ttl: float,
        stale_while_revalidate: float = 0.0,
    ) -> Any:
        """The cached value of ``key``, loading it with ``load()`` on a miss."""
        now = time.monotonic()
        entry = self._l1.get(key)
        if entry is not None:
            if now < entry.fresh_until:
                self.stats.hits += 1
                return entry.value
            if now < entry.stale_until:
                self.stats.stale += 1
                if key not in self._inflight:
                    self._start_load(key, load, ttl, stale_while_revalidate)
                return entry.value
        if self._l2 is not None:
            found = await self._l2.get(key)
            if found is not None:
                value, expires_at = found
                remaining = expires_at - time.time()
                if remaining > 0:
                    self.stats.hits += 1
                    self._store_l1(key, value, remaining, stale_while_revalidate)
                    return value
        self.stats.misses += 1
        future = self._inflight.get(key)
        if future is None:
            future = self._start_load(key, load, ttl, stale_while_revalidate)
        return await asyncio.shield(future)

    def _start_load(
        self, key: str, load: Callable[[], Awaitable[Any]], ttl: float, swr: float
    ) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future

        async def run() -> None:
            try:
                self.stats.loads += 1
                value = await load()
            except BaseException as exc:
                future.set_exception(exc)
                future.exception()  # mark retrieved: a stale reader may never await it
            else:
                await self.set(key, value, ttl, swr)
                future.set_result(value)
            finally:
                self._inflight.pop(key, None)

        asyncio.get_running_loop().create_task(run())
        return future

    def _store_l1(self, key: str, value: Any, ttl: float, swr: float) -> None:
        now = time.monotonic()
        self._l1[key] = _Entry(value, now + ttl, now + ttl + swr)

    async def set(
        self, key: str, value: Any, ttl: float, stale_while_revalidate: float = 0.0
    ) -> None:
        """Write through both tiers (used when the hub itself writes, e.g. a published flow)."""
        self._store_l1(key, value, ttl, stale_while_revalidate)
        if self._l2 is not None:
            await self._l2.set(key, value, time.time() + ttl, ttl)

    async def invalidate(self, key: str) -> None:
        """Drop a key from both tiers and from every other process's L1."""
        self.drop_local(key)
        if self._l2 is not None:
            await self._l2.delete(key)
            await self._l2.announce(key)

    async def changed(self, key: str, value: Any, ttl: float) -> None:
        """Write a value the hub itself changed through both tiers, and tell the others."""
        await self.set(key, value, ttl)
        if self._l2 is not None:
            await self._l2.announce(key)

    def drop_local(self, key: str) -> None:
        """Drop a key from this process's L1 only (on an invalidation message)."""
        if self._l1.pop(key, None) is not None:
            self.invalidations += 1

    def clear(self) -> None:
        """Empty L1."""
        self._l1.clear()


class RedisL2:
    """The shared tier: values in Redis (msgpack), invalidations on a pub/sub channel."""

    def __init__(self, redis: Any, prefix: str = "hub:cache:") -> None:
        self.redis = redis
        self.prefix = prefix
        self.channel = prefix + "invalidate"

    async def get(self, key: str) -> tuple[Any, float] | None:
        """The value and its absolute expiry, or None."""
        raw = await self.redis.get(self.prefix + key)
        if raw is None:
            return None
        value, expires_at = msgspec.msgpack.decode(raw)
        return value, float(expires_at)

    async def set(self, key: str, value: Any, expires_at: float, ttl: float) -> None:
        """Store with Redis's own expiry."""
        data = msgspec.msgpack.encode([value, expires_at])
        await self.redis.set(self.prefix + key, data, px=max(1, int(ttl * 1000)))

    async def delete(self, key: str) -> None:
        """Remove from Redis."""
        await self.redis.delete(self.prefix + key)

    async def announce(self, key: str) -> None:
        """Tell every process to drop ``key`` from its L1."""
        await self.redis.publish(self.channel, key)

    async def listen(self, cache: Cache) -> None:
        """Drop keys from ``cache``'s L1 as invalidations arrive (run for the hub's life)."""
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        data = message["data"]
                        cache.drop_local(data.decode() if isinstance(data, bytes) else str(data))
            except asyncio.CancelledError:
                raise
            except Exception:
                # Redis went away: what was cached may be stale, so start from empty.
                cache.clear()
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
