"""The amqp.message subscribe trigger against the real RabbitMQ: runs, acks, requeues, crashes."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import subprocess
import types
from pathlib import Path
from typing import Any

import aio_pika
import hub_amqp.plugin as plugin
import pytest

from hub.testing import Hub, running_triggers, wait_for_runs


def flow_on(queue: str, flow_id: str = "orders") -> dict[str, Any]:
    return {
        "id": flow_id,
        "trigger": {"type": "amqp.message", "connection": "broker", "config": {"queue": queue}},
        "steps": [{"id": "keep", "action": "data.set", "input": {"value": "{{ trigger.body }}"}}],
    }


async def publish(rabbit: dict[str, Any], queue: str, *messages: aio_pika.Message) -> None:
    """Publish with an independent client to the default exchange (routes by queue name)."""
    connection = await aio_pika.connect(host=rabbit["host"], port=rabbit["port"])
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(queue, durable=True)
        for message in messages:
            await channel.default_exchange.publish(message, routing_key=queue)


async def ready_count(rabbit: dict[str, Any], queue: str) -> int:
    """Messages ready in the queue (unacknowledged ones of a live consumer are not counted)."""
    connection = await aio_pika.connect(host=rabbit["host"], port=rabbit["port"])
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)


async def delete_queue(rabbit: dict[str, Any], queue: str) -> None:
    connection = await aio_pika.connect(host=rabbit["host"], port=rabbit["port"])
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(queue)


@pytest.fixture
async def queue(rabbit: dict[str, Any], unique: str) -> Any:
    """A unique durable queue name, deleted after the test."""
    yield unique
    await delete_queue(rabbit, unique)


async def test_each_message_starts_one_run_with_the_documented_event(
    hub: Hub, rabbit: dict[str, Any], queue: str
) -> None:
    await hub.set_connection("broker", "amqp", rabbit)
    await hub.save_flow(flow_on(queue), publish=True)
    async with running_triggers(hub):
        await publish(
            rabbit,
            queue,
            aio_pika.Message(
                b'{"order": 1}',
                content_type="application/json",
                headers={"tenant": "acme"},
                message_id="m-1",
            ),
            aio_pika.Message(b"plain words", content_type="text/plain"),
            aio_pika.Message(b"\xff\x00binary"),
        )
        runs = await wait_for_runs(hub, "orders", 3)
    runs.sort(key=lambda r: r["trigger"]["encoding"])
    base64_run, json_run, text_run = runs
    event = json_run["trigger"]
    assert event["body"] == {"order": 1} and event["encoding"] == "json"
    assert event["headers"] == {"tenant": "acme"}
    assert event["message_id"] == "m-1"
    assert event["queue"] == queue and event["routing_key"] == queue and event["exchange"] == ""
    assert event["redelivered"] is False and event["received_at"].endswith("+00:00")
    assert text_run["trigger"]["body"] == "plain words"
    assert base64_run["trigger"]["body"] == "/wBiaW5hcnk="
    assert all(r["trigger_type"] == "amqp.message" for r in runs)
    # The consumer is gone (its connection closed): nothing came back to the queue, so every
    # message had been acknowledged.
    assert await ready_count(rabbit, queue) == 0


async def test_a_failed_record_requeues_the_message_for_the_next_consumer(
    rabbit: dict[str, Any], queue: str
) -> None:
    await publish(rabbit, queue, aio_pika.Message(b'{"n": 7}', message_id="again"))
    ctx = types.SimpleNamespace(
        connection=rabbit, flow_id="requeue", log=logging.getLogger("test.amqp")
    )
    config = {"queue": queue}

    async def failing_emit(event: Any, dedup_key: str | None = None) -> str:
        raise RuntimeError("database is down")

    with pytest.raises(RuntimeError, match="database is down"):
        await asyncio.wait_for(plugin.consume(ctx, config, failing_emit), 10)

    got: list[Any] = []

    async def recording_emit(event: Any, dedup_key: str | None = None) -> str:
        got.append(event)
        raise asyncio.CancelledError  # stop the consumer after one message

    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(plugin.consume(ctx, config, recording_emit), 10)
    assert [e["body"] for e in got] == [{"n": 7}]
    assert got[0]["redelivered"] is True and got[0]["message_id"] == "again"


async def test_stopping_while_recording_finishes_the_record_then_acks(
    rabbit: dict[str, Any], queue: str
) -> None:
    """A graceful stop in the middle of emit waits for the record, then acknowledges."""
    await publish(rabbit, queue, aio_pika.Message(b'"only"'))
    ctx = types.SimpleNamespace(connection=rabbit, flow_id="stop", log=logging.getLogger("t"))
    started, recorded = asyncio.Event(), []

    async def slow_emit(event: Any, dedup_key: str | None = None) -> str:
        started.set()
        await asyncio.sleep(0.3)
        recorded.append(event["body"])
        return "run-1"

    task = asyncio.create_task(plugin.consume(ctx, {"queue": queue}, slow_emit))
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert recorded == ["only"]
    assert await ready_count(rabbit, queue) == 0  # acknowledged, not requeued


def close_connections_named(name: str) -> int:
    """Make RabbitMQ close the connections whose client name contains ``name`` (rabbitmqctl)."""
    ctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    if not Path(ctl).exists():
        if os.environ.get("CI") == "true":
            pytest.fail("rabbitmqctl is not installed (CI=true)")
        pytest.skip("rabbitmqctl is not installed")
    listed = subprocess.run(
        [ctl, "-q", "list_connections", "pid", "client_properties"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if listed.returncode != 0:
        pytest.skip(f"rabbitmqctl cannot list connections: {listed.stderr.strip()[:200]}")
    pids = [line.split("\t")[0] for line in listed.stdout.splitlines() if name in line]
    for pid in pids:
        subprocess.run([ctl, "-q", "close_connection", pid, "test"], check=True, timeout=60)
    return len(pids)


async def test_consumer_comes_back_after_the_broker_closed_its_connection(
    hub: Hub, rabbit: dict[str, Any], queue: str
) -> None:
    """The broker drops the consumer's connection: the runner restarts it, nothing is lost."""
    flow_id = f"reconnect-{queue}"
    await hub.set_connection("broker", "amqp", rabbit)
    await hub.save_flow(flow_on(queue, flow_id), publish=True)
    async with running_triggers(hub):
        await publish(rabbit, queue, aio_pika.Message(b'"before"'))
        await wait_for_runs(hub, flow_id, 1)
        closed = await asyncio.to_thread(close_connections_named, f"hub flow {flow_id}")
        assert closed == 1
        await publish(rabbit, queue, aio_pika.Message(b'"after"'))
        found = await wait_for_runs(hub, flow_id, 2, timeout=20)
    assert sorted(r["trigger"]["body"] for r in found) == ["after", "before"]


async def test_hub_killed_between_receive_and_record_loses_nothing_and_duplicates_nothing(
    rabbit: dict[str, Any], queue: str, hub_process: Any
) -> None:
    """A real hub process is SIGKILLed while it holds a received, unrecorded message.

    The test-only wrapper in the child script holds the event whose body says "slow" before
    calling emit; the killed process never acknowledged it, so the broker requeues it and the
    restarted hub records it exactly once. The message recorded before the kill was
    acknowledged and is not delivered again.
    """
    child = hub_process(
        module="hub_amqp.plugin",
        connector="amqp",
        body_field="body",
        flow=flow_on(queue, "crash"),
        connection=rabbit,
    )
    first = child.start(hold="slow")
    await child.wait_for("consuming", first)
    await publish(rabbit, queue, aio_pika.Message(b'{"n": "fast"}'))
    await child.wait_for('recorded {"n": "fast"}', first)
    await publish(rabbit, queue, aio_pika.Message(b'{"n": "slow"}'))
    await child.wait_for('received {"n": "slow"}', first)
    child.kill()
    assert not any("recorded" in line and "slow" in line for line in child.lines())

    async def requeued() -> bool:
        return await ready_count(rabbit, queue) == 1

    await asyncio.wait_for(_until(requeued), 10)

    second = child.start()
    await child.wait_for('recorded {"n": "slow"}', second)
    await asyncio.sleep(0.5)  # room for a wrong redelivery of the first message
    child.kill()
    after_restart = child.lines()[second:]
    assert not any('{"n": "fast"}' in line for line in after_restart)
    runs = await child.runs(plugin)
    bodies = sorted(json.dumps(r["trigger"]["body"]) for r in runs)
    assert bodies == ['{"n": "fast"}', '{"n": "slow"}']
    slow = next(r for r in runs if r["trigger"]["body"] == {"n": "slow"})
    assert slow["trigger"]["redelivered"] is True
    assert await ready_count(rabbit, queue) == 0


async def _until(check: Any) -> None:
    while not await check():
        await asyncio.sleep(0.05)
