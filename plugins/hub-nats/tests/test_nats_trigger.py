"""The nats.message trigger against the real NATS server: JetStream durable consumer and core."""

from __future__ import annotations

import asyncio
import json
import logging
import types
from collections.abc import AsyncIterator
from typing import Any

import hub_nats.plugin as plugin
import nats
import pytest
from hub_nats.consumer import consume, durable_name

from hub.testing import Hub, running_triggers, wait_for_runs, wait_until


def flow_on(config: dict[str, Any], flow_id: str = "sensors") -> dict[str, Any]:
    return {
        "id": flow_id,
        "trigger": {"type": "nats.message", "connection": "broker", "config": config},
        "steps": [{"id": "keep", "action": "data.set", "input": {"value": "{{ trigger.data }}"}}],
    }


@pytest.fixture
async def stream(nats_conn: dict[str, Any], unique: str) -> AsyncIterator[str]:
    """A fresh stream capturing ``<unique>.>`` (its name is ``unique``)."""
    nc = await nats.connect(nats_conn["servers"])
    js = nc.jetstream()
    await js.add_stream(name=unique, subjects=[f"{unique}.>"])
    try:
        yield unique
    finally:
        await js.delete_stream(unique)
        await nc.close()


async def js_publish(nats_conn: dict[str, Any], subject: str, data: bytes, **headers: str) -> None:
    """Publish to JetStream with an independent client."""
    nc = await nats.connect(nats_conn["servers"])
    try:
        await nc.jetstream().publish(subject, data, headers=headers or None)
    finally:
        await nc.close()


async def consumer_state(nats_conn: dict[str, Any], stream: str, durable: str) -> Any:
    nc = await nats.connect(nats_conn["servers"])
    try:
        return await nc.jetstream().consumer_info(stream, durable)
    finally:
        await nc.close()


async def test_jetstream_messages_start_runs_and_are_acked_after_recording(
    hub: Hub, nats_conn: dict[str, Any], stream: str
) -> None:
    subject = f"{stream}.temp"
    await js_publish(nats_conn, subject, b'{"celsius": 41}', **{"Nats-Msg-Id": "r-1", "Site": "n"})
    await js_publish(nats_conn, subject, b"warm", **{"Content-Type": "text/plain"})
    await hub.set_connection("broker", "nats", nats_conn)
    await hub.save_flow(flow_on({"subject": subject, "deliver_policy": "all"}), publish=True)
    async with running_triggers(hub):
        runs = await wait_for_runs(hub, "sensors", 2)
        durable = durable_name(hub.workspace, "sensors", subject, None)

        async def all_acked() -> Any:
            info = await consumer_state(nats_conn, stream, durable)
            return info if info.num_ack_pending == 0 and info.num_pending == 0 else None

        info = await wait_until(all_acked)
    assert info.delivered.stream_seq == 2
    by_seq = {r["trigger"]["stream_seq"]: r["trigger"] for r in runs}
    first, second = by_seq[1], by_seq[2]
    assert first["data"] == {"celsius": 41} and first["encoding"] == "json"
    assert first["msg_id"] == "r-1" and first["headers"]["Site"] == "n"
    assert first["subject"] == subject and first["stream"] == stream
    assert first["consumer"] == durable and first["delivered"] == 1
    assert first["jetstream"] is True and first["published_at"].endswith("+00:00")
    assert second["data"] == "warm" and second["encoding"] == "text"
    assert all(r["trigger_type"] == "nats.message" for r in runs)


async def test_a_failed_record_naks_the_message_for_immediate_redelivery(
    nats_conn: dict[str, Any], stream: str
) -> None:
    subject = f"{stream}.again"
    await js_publish(nats_conn, subject, b'{"n": 7}')
    ctx = types.SimpleNamespace(
        connection=nats_conn, flow_id="nak", workspace_id="w", log=logging.getLogger("t")
    )
    config = {"subject": subject, "deliver_policy": "all", "ack_wait": 30}

    async def failing_emit(event: Any, dedup_key: str | None = None) -> str:
        raise RuntimeError("database is down")

    with pytest.raises(RuntimeError, match="database is down"):
        await asyncio.wait_for(consume(ctx, config, failing_emit), 10)
    got: list[Any] = []

    async def recording_emit(event: Any, dedup_key: str | None = None) -> str:
        got.append(event)
        raise asyncio.CancelledError  # stop after one message

    # ack_wait is 30 s: only the nak explains a redelivery within this timeout.
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(consume(ctx, config, recording_emit), 10)
    assert [(e["data"], e["delivered"]) for e in got] == [({"n": 7}, 2)]


async def test_slow_record_is_kept_in_progress_instead_of_redelivered(
    nats_conn: dict[str, Any], stream: str
) -> None:
    """A record slower than ack_wait is not delivered again to another idle hub process.

    Two consumers share the flow's durable consumer (two hub processes); the one holding the
    message sends in_progress while it records, so the other never gets a second copy.
    """
    subject = f"{stream}.slow"
    ctx = types.SimpleNamespace(
        connection=nats_conn, flow_id="slow", workspace_id="w", log=logging.getLogger("t")
    )
    seen: list[tuple[Any, int]] = []

    async def slow_emit(event: Any, dedup_key: str | None = None) -> str:
        seen.append((event["data"], event["delivered"]))
        await asyncio.sleep(2.5)  # ack_wait is 1 s
        return "run"

    config = {"subject": subject, "deliver_policy": "all", "ack_wait": 1, "batch": 1}
    tasks = [asyncio.create_task(consume(ctx, config, slow_emit)) for _ in range(2)]
    await asyncio.sleep(0.5)
    await js_publish(nats_conn, subject, b"1")
    await asyncio.sleep(3.5)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert seen == [(1, 1)]


async def test_core_nats_subscription_starts_runs(
    hub: Hub, nats_conn: dict[str, Any], unique: str, caplog: Any
) -> None:
    caplog.set_level(logging.INFO, logger="hub.trigger")
    subject = f"{unique}.core"
    await hub.set_connection("broker", "nats", nats_conn)
    await hub.save_flow(flow_on({"subject": subject, "jetstream": False}, "core"), publish=True)
    async with running_triggers(hub):

        async def subscribed() -> bool:
            return any("consuming (core NATS" in r.getMessage() for r in caplog.records)

        await wait_until(subscribed)
        nc = await nats.connect(nats_conn["servers"])
        await nc.publish(subject, b'{"core": true}', headers={"A": "b"})
        await nc.close()
        runs = await wait_for_runs(hub, "core", 1)
    event = runs[0]["trigger"]
    assert event["data"] == {"core": True} and event["headers"] == {"A": "b"}
    assert event["jetstream"] is False and event["stream"] is None


async def test_hub_killed_between_receive_and_record_loses_nothing_and_duplicates_nothing(
    nats_conn: dict[str, Any], stream: str, hub_process: Any
) -> None:
    """A real hub process is SIGKILLed while it holds a received, unrecorded message.

    The test-only wrapper in the child script holds the event whose data says "slow" before
    calling emit. The killed hub never acknowledged it, so JetStream delivers it again after
    ack_wait (1 s here) to the restarted hub, which records it exactly once; the message
    recorded (and acknowledged) before the kill is not delivered again.
    """
    subject = f"{stream}.crash"
    config = {"subject": subject, "deliver_policy": "all", "ack_wait": 1, "batch": 1}
    child = hub_process(
        module="hub_nats.plugin",
        connector="nats",
        body_field="data",
        flow=flow_on(config, "crash"),
        connection=nats_conn,
    )
    first = child.start(hold="slow")
    await child.wait_for("consuming", first)
    await js_publish(nats_conn, subject, b'{"n": "fast"}')
    await child.wait_for('recorded {"n": "fast"}', first)
    await js_publish(nats_conn, subject, b'{"n": "slow"}')
    await child.wait_for('received {"n": "slow"}', first)
    child.kill()
    assert not any("recorded" in line and "slow" in line for line in child.lines())

    second = child.start()
    await child.wait_for('recorded {"n": "slow"}', second)
    await asyncio.sleep(2.0)  # two ack_waits: room for a wrong redelivery of the first one
    child.kill()
    assert not any('{"n": "fast"}' in line for line in child.lines()[second:])
    runs = await child.runs(plugin)
    assert sorted(json.dumps(r["trigger"]["data"]) for r in runs) == [
        '{"n": "fast"}',
        '{"n": "slow"}',
    ]
    slow = next(r["trigger"] for r in runs if r["trigger"]["data"] == {"n": "slow"})
    assert slow["delivered"] == 2 and slow["stream_seq"] == 2
    durable = durable_name("default", "crash", subject, None)
    info = await consumer_state(nats_conn, stream, durable)
    assert info.num_ack_pending == 0 and info.num_pending == 0
