"""Flow control: rate limits, Retry-After, concurrency limits per flow and per connection."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from hub import Action, ActionError, Connector, RateLimit, hookimpl
from hub.engine.limits import LocalLimiter, RedisLimiter
from hub.settings import Settings
from tests import kit
from tests.conftest import started
from tests.services import RedisServer

CALL_TIMES: list[float] = []


async def limited(ctx: Any, data: Any) -> Any:
    CALL_TIMES.append(time.monotonic())
    return data


async def busy_429(ctx: Any, data: Any) -> Any:
    CALL_TIMES.append(time.monotonic())
    if len(CALL_TIMES) == 1:
        raise ActionError("429 Too Many Requests", retryable=True, retry_after=0.5)
    return data


IN_FLIGHT = {"now": 0, "max": 0}


async def slow_conn(ctx: Any, data: Any) -> Any:
    IN_FLIGHT["now"] += 1
    IN_FLIGHT["max"] = max(IN_FLIGHT["max"], IN_FLIGHT["now"])
    try:
        await asyncio.sleep(0.1)
    finally:
        IN_FLIGHT["now"] -= 1
    return {"ok": True}


class Limited:
    @staticmethod
    @hookimpl
    def hub_connectors() -> list[Connector]:
        return [
            Connector(
                name="rl",
                connection_schema={
                    "type": "object",
                    "properties": {"max_concurrency": {"type": "integer", "minimum": 1}},
                },
                actions=[
                    Action(name="slow", run=slow_conn, needs_connection=True),
                    Action(name="call", run=limited, rate_limit=RateLimit(5, 1.0, scope="action")),
                    Action(name="busy", run=busy_429),
                ],
            )
        ]


@pytest.fixture(params=["sqlite", "queue"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def _reset() -> None:
    CALL_TIMES.clear()
    IN_FLIGHT.update(now=0, max=0)


async def test_rate_limit_spreads_calls_without_failing_steps(settings: Settings) -> None:
    async with started(settings, plugins=[kit, Limited]) as hub:
        await hub.save_flow(
            {
                "id": "r",
                "steps": [
                    {
                        "id": "c",
                        "action": "rl.call",
                        "for_each": "{{ range(12) | list }}",
                        "input": {},
                    }
                ],
            },
            publish=True,
        )
        record = await hub.wait_for_run(await hub.start_run("r"), 30)
        assert record["status"] == "succeeded"
        assert len(CALL_TIMES) == 12
        span = max(CALL_TIMES) - min(CALL_TIMES)
        # A bucket of 5 refilled at 5/s: 12 calls need at least (12 - 5) / 5 = 1.4 s.
        assert span >= 1.2, span
        run = await hub.get_run(record["id"])
        assert all(s["attempt"] == 1 for s in run["steps"])


async def test_retry_after_from_a_service_is_honoured(settings: Settings) -> None:
    async with started(settings, plugins=[kit, Limited]) as hub:
        await hub.save_flow(
            {
                "id": "b",
                "steps": [
                    {
                        "id": "c",
                        "action": "rl.busy",
                        "retry": {"max_attempts": 3, "initial": "10ms"},
                    }
                ],
            },
            publish=True,
        )
        record = await hub.wait_for_run(await hub.start_run("b"), 30)
        assert record["status"] == "succeeded"
        assert CALL_TIMES[1] - CALL_TIMES[0] >= 0.45


async def test_flow_concurrency_caps_steps_in_flight(settings: Settings) -> None:
    async with started(settings) as hub:
        await hub.save_flow(
            {
                "id": "c",
                "concurrency": 2,
                "steps": [
                    {
                        "id": "s",
                        "action": "test.sleep",
                        "for_each": "{{ range(6) | list }}",
                        "input": {"seconds": 0.15},
                    }
                ],
            },
            publish=True,
        )
        record = await hub.wait_for_run(await hub.start_run("c"), 30)
        assert record["status"] == "succeeded"
        assert kit.IN_FLIGHT["max"] == 2


async def test_connection_concurrency_caps_steps_across_runs(settings: Settings) -> None:
    async with started(settings, plugins=[kit, Limited]) as hub:
        await hub.set_connection("svc", "rl", {"max_concurrency": 1})
        await hub.save_flow(
            {
                "id": "k",
                "steps": [{"id": "s", "action": "rl.slow", "connection": "svc", "input": {}}],
            },
            publish=True,
        )
        ids = [await hub.start_run("k") for _ in range(4)]
        for run_id in ids:
            assert (await hub.wait_for_run(run_id, 30))["status"] == "succeeded"
        assert IN_FLIGHT["max"] == 1


async def test_redis_limiter_shares_buckets_and_slots_between_processes(
    redis_server: RedisServer,
) -> None:
    import redis.asyncio

    one = redis.asyncio.Redis.from_url(redis_server.url)
    two = redis.asyncio.Redis.from_url(redis_server.url)
    a, b = RedisLimiter(one, prefix="t1:"), RedisLimiter(two, prefix="t1:")
    try:
        waits = [await (a if i % 2 else b).take("k", 3, 10.0) for i in range(5)]
        assert waits[:3] == [0.0, 0.0, 0.0] and all(w > 0 for w in waits[3:])
        token = await a.acquire("sem", 1, 5.0)
        assert token is not None and await b.acquire("sem", 1, 5.0) is None
        await a.release("sem", token)
        assert await b.acquire("sem", 1, 5.0) is not None
        await a.block("blocked", 2.0)
        assert await b.take("blocked", 100, 1.0) > 1.5
    finally:
        await one.aclose()
        await two.aclose()


async def test_a_slot_whose_holder_died_expires_with_its_lease() -> None:
    limiter = LocalLimiter()
    assert await limiter.acquire("x", 1, 0.05) is not None
    assert await limiter.acquire("x", 1, 0.05) is None
    await asyncio.sleep(0.06)
    assert await limiter.acquire("x", 1, 0.05) is not None
