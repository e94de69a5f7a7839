"""The layered cache: TTL, stale-while-revalidate, single flight, L2 in Redis, invalidation."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from hub.cache import Cache, RedisL2
from hub.runtime import Hub
from hub.settings import Settings
from tests import kit
from tests.services import PostgresServer, RedisServer


async def test_a_stampede_of_100_misses_loads_once() -> None:
    cache = Cache()
    loads = 0

    async def load() -> str:
        nonlocal loads
        loads += 1
        await asyncio.sleep(0.05)
        return "value"

    results = await asyncio.gather(*(cache.get_or_load("k", load, ttl=10) for _ in range(100)))
    assert results == ["value"] * 100
    assert loads == 1
    assert cache.stats.misses == 100 and cache.stats.loads == 1
    assert await cache.get_or_load("k", load, ttl=10) == "value"
    assert cache.stats.hits == 1


async def test_ttl_expiry_and_stale_while_revalidate() -> None:
    cache = Cache()
    version = 0

    async def load() -> int:
        nonlocal version
        version += 1
        await asyncio.sleep(0.02)
        return version

    assert await cache.get_or_load("k", load, ttl=0.05, stale_while_revalidate=1) == 1
    await asyncio.sleep(0.06)
    # Stale: answered at once with the old value while one reload runs.
    assert await cache.get_or_load("k", load, ttl=0.05, stale_while_revalidate=1) == 1
    assert cache.stats.stale == 1
    await asyncio.sleep(0.05)
    assert await cache.get_or_load("k", load, ttl=0.05, stale_while_revalidate=1) == 2


async def test_a_failed_load_is_not_cached() -> None:
    cache = Cache()

    async def boom() -> None:
        raise RuntimeError("down")

    with pytest.raises(RuntimeError):
        await cache.get_or_load("k", boom, ttl=10)

    async def fine() -> str:
        return "ok"

    assert await cache.get_or_load("k", fine, ttl=10) == "ok"


async def test_l2_is_shared_and_invalidation_reaches_every_l1(redis_server: RedisServer) -> None:
    import redis.asyncio

    prefix = f"t{uuid.uuid4().hex[:6]}:"
    clients = [redis.asyncio.Redis.from_url(redis_server.url) for _ in range(2)]
    tiers = [RedisL2(c, prefix=prefix) for c in clients]
    first, second = Cache(l2=tiers[0]), Cache(l2=tiers[1])
    listener = asyncio.create_task(tiers[1].listen(second))
    loads = 0

    async def load() -> str:
        nonlocal loads
        loads += 1
        return "v1"

    try:
        await asyncio.sleep(0.1)  # the listener subscribes
        assert await first.get_or_load("k", load, ttl=30) == "v1"
        assert await second.get_or_load("k", load, ttl=30) == "v1"  # from L2: no second load
        assert loads == 1
        await first.changed("k", "v2", ttl=30)
        for _ in range(100):
            if second.invalidations:
                break
            await asyncio.sleep(0.01)
        assert second.invalidations == 1
        assert await second.get_or_load("k", load, ttl=30) == "v2"
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        for client in clients:
            await client.aclose()


async def test_publishing_in_one_process_changes_the_next_run_of_another(
    tmp_path: Any, postgres: PostgresServer, redis_server: RedisServer
) -> None:
    """Two hubs (own L1 caches, own Redis and database connections) share PostgreSQL and Redis."""
    url = postgres.create_database(f"hub_{uuid.uuid4().hex[:12]}", template="hub_template")
    settings = Settings(
        data_dir=tmp_path,
        database_url=url,
        redis_url=redis_server.url,
        queue_name=f"q{uuid.uuid4().hex[:6]}",
    )
    api, other = (
        Hub(settings, plugins=[kit], entry_points=False),
        Hub(settings, plugins=[kit], entry_points=False),
    )
    await api.start(migrate=False, background=False)
    await other.start(migrate=False, background=False)
    try:
        doc = {"id": "f", "steps": [{"id": "a", "action": "data.set", "input": {"value": "v1"}}]}
        await api.save_flow(doc, publish=True)
        await asyncio.sleep(0.1)
        assert await other.engine.published_version("default", "f") == 1  # now in other's L1
        doc["steps"][0]["input"]["value"] = "v2"
        await api.save_flow(doc, publish=True)
        for _ in range(100):
            if other.cache.invalidations:
                break
            await asyncio.sleep(0.01)
        assert other.cache.invalidations >= 1  # dropped by the message, long before the TTL
        assert await other.engine.published_version("default", "f") == 2
        run_id = await other.start_run("f")
        run = await other.get_run(run_id, with_steps=False)
        assert run["flow_version"] == 2
    finally:
        await api.stop(grace=0)
        await other.stop(grace=0)
