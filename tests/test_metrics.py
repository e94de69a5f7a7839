"""``/metrics`` reflects what the hub did; ``/readyz`` checks the database and Redis.

The app runs in-process on a started hub (real SQLite, real engine); the metrics text is
parsed with prometheus-client's own parser, so a malformed exposition fails the test. The
Redis of the readiness test is a throwaway ``redis-server`` that the test kills.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hub.app import create_app
from hub.runtime import Hub
from hub.settings import Settings
from hub.testing import http_client
from tests.conftest import make_hub
from tests.services import RedisServer

TWO_STEPS: dict[str, Any] = {
    "id": "metered",
    "trigger": {"type": "webhook"},
    "steps": [
        {"id": "a", "action": "data.set", "input": {"value": "{{ trigger.body.n }}"}},
        {"id": "b", "action": "data.set", "input": {"value": "{{ steps.a.output + 1 }}"}},
    ],
}


@pytest.fixture
async def client(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    """The app on the started hub (httpx's ASGI transport, same event loop)."""
    async with http_client(hub) as c:
        yield c


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics by (name, sorted labels)."""
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def test_metrics_reflect_a_webhook_run_and_its_steps(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    await hub.save_flow(TWO_STEPS, publish=True)
    before = await scrape(client)
    assert before[("hub_runs_started_total", ())] == 0
    response = await client.post("/hooks/default/metered", json={"n": 41})
    assert response.status_code == 202
    run = await hub.wait_for_run(response.json()["run_id"], 10)
    assert run["output"] == 42
    missing = await client.post("/hooks/default/no-such-flow", json={})
    assert missing.status_code == 404

    after = await scrape(client)
    assert after[("hub_runs_started_total", ())] == 1
    assert after[("hub_runs_finished_total", (("status", "succeeded"),))] == 1
    assert after[("hub_steps_finished_total", (("status", "done"),))] == 2
    assert after[("hub_run_duration_seconds_count", ())] == 1
    assert after[("hub_step_duration_seconds_count", ())] == 2
    assert (
        0
        < after[("hub_step_duration_seconds_sum", ())]
        <= after[("hub_run_duration_seconds_sum", ())]
    )
    assert after[("hub_webhook_requests_total", (("outcome", "accepted"),))] == 1
    assert after[("hub_webhook_requests_total", (("outcome", "not_found"),))] == 1
    assert after[("hub_queue_depth", (("status", "queued"),))] == 0
    assert after[("hub_runs_running", ())] == 0
    # The webhook route read the published version through the cache.
    hits_misses = after[("hub_cache_hits_total", ())] + after[("hub_cache_misses_total", ())]
    assert (
        hits_misses > before[("hub_cache_hits_total", ())] + before[("hub_cache_misses_total", ())]
    )


async def test_queue_depth_and_running_runs_come_from_the_database(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    await hub.save_flow(
        {
            "id": "sleepy",
            "steps": [{"id": "wait", "action": "flow.delay", "input": {"seconds": 3600}}],
        },
        publish=True,
    )
    run_id = await hub.start_run("sleepy")
    for _ in range(200):
        samples = await scrape(client)
        if samples[("hub_queue_depth", (("status", "waiting"),))] == 1:
            break
        await asyncio.sleep(0.01)
    assert samples[("hub_queue_depth", (("status", "waiting"),))] == 1
    assert samples[("hub_runs_running", ())] == 1
    assert samples[("hub_steps_finished_total", (("status", "waiting"),))] == 1
    await hub.cancel_run(run_id)
    samples = await scrape(client)
    assert samples[("hub_queue_depth", (("status", "waiting"),))] == 0
    assert samples[("hub_runs_running", ())] == 0
    assert samples[("hub_runs_finished_total", (("status", "cancelled"),))] == 1


async def test_readyz_without_redis_checks_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


async def test_readyz_checks_redis_when_one_is_configured(settings: Settings) -> None:
    server = RedisServer()
    server.start()
    hub = make_hub(settings.replace(redis_url=server.url))
    app = create_app(hub, manage_hub=False, bootstrap=False)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.local") as client:
            ready = await client.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json() == {"status": "ok", "database": "ok", "redis": "ok"}
            server.kill()
            down = await client.get("/readyz")
            assert down.status_code == 503
            error = down.json()["error"]
            assert error["code"] == "not_ready"
            assert error["message"].startswith("redis unavailable")
    finally:
        server.stop()
        await hub.redis.aclose()
        await hub.db.close()
