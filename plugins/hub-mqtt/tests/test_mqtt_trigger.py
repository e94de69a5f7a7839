"""The mqtt.message trigger against the real Mosquitto: runs, persistent session, crashes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import types
from typing import Any

import aiomqtt
import hub_mqtt.plugin as plugin
import pytest
from hub_mqtt.consumer import consume
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hub.testing import Hub, running_triggers, wait_for_runs, wait_until


def flow_on(config: dict[str, Any], flow_id: str = "doors") -> dict[str, Any]:
    return {
        "id": flow_id,
        "trigger": {"type": "mqtt.message", "connection": "broker", "config": config},
        "steps": [
            {"id": "keep", "action": "data.set", "input": {"value": "{{ trigger.payload }}"}}
        ],
    }


async def send(
    conn: dict[str, Any], topic: str, payload: bytes, *, retain: bool = False, **user: str
) -> None:
    """Publish at QoS 1 with an independent MQTT 5 client."""
    props = Properties(PacketTypes.PUBLISH)
    if user:
        props.UserProperty = list(user.items())
    async with aiomqtt.Client(
        conn["host"], conn["port"], protocol=aiomqtt.ProtocolVersion.V5
    ) as client:
        await client.publish(topic, payload, qos=1, retain=retain, properties=props)


class Runner:
    """The hub's triggers running, started and stopped at will; tells when it is subscribed."""

    def __init__(self, hub: Hub, caplog: Any) -> None:
        self.hub, self.caplog = hub, caplog
        self.running = contextlib.AsyncExitStack()
        caplog.set_level(logging.INFO, logger="hub.trigger")

    async def start(self) -> None:
        seen = len(self._consuming())
        await self.running.enter_async_context(running_triggers(self.hub))

        async def subscribed() -> bool:
            return len(self._consuming()) > seen

        await wait_until(subscribed)

    def _consuming(self) -> list[Any]:
        return [r for r in self.caplog.records if "consuming (client id" in r.getMessage()]

    async def stop(self) -> None:
        await self.running.aclose()

    async def runs(self, count: int, flow_id: str = "doors") -> list[dict[str, Any]]:
        return await wait_for_runs(self.hub, flow_id, count)


async def test_messages_start_runs_with_the_documented_event(
    hub: Hub, mosquitto: dict[str, Any], unique: str, caplog: Any
) -> None:
    await hub.set_connection("broker", "mqtt", mosquitto)
    await hub.save_flow(flow_on({"topic": f"{unique}/+/door"}), publish=True)
    runner = Runner(hub, caplog)
    await runner.start()
    try:
        await send(mosquitto, f"{unique}/front/door", b'{"state": "open"}', Site="north")
        await send(mosquitto, f"{unique}/back/door", b"closed")
        runs = await runner.runs(2)
    finally:
        await runner.stop()
    events = {r["trigger"]["topic"]: r["trigger"] for r in runs}
    front, back = events[f"{unique}/front/door"], events[f"{unique}/back/door"]
    assert front["payload"] == {"state": "open"} and front["encoding"] == "json"
    assert front["headers"] == {"Site": "north"} and front["qos"] == 1
    assert front["retain"] is False and front["received_at"].endswith("+00:00")
    assert back["payload"] == "closed" and back["encoding"] == "text"
    assert all(r["trigger_type"] == "mqtt.message" for r in runs)


async def test_messages_sent_while_the_hub_is_down_arrive_when_it_is_back(
    hub: Hub, mosquitto: dict[str, Any], unique: str, caplog: Any
) -> None:
    """The persistent session queues QoS 1 messages for the flow's client id."""
    await hub.set_connection("broker", "mqtt", mosquitto)
    await hub.save_flow(flow_on({"topic": f"{unique}/events"}), publish=True)
    runner = Runner(hub, caplog)
    await runner.start()
    await runner.stop()
    await send(mosquitto, f"{unique}/events", b'"while down"')
    await asyncio.sleep(0.3)
    assert await hub.list_runs(flow_id="doors") == []
    await runner.start()
    try:
        runs = await runner.runs(1)
    finally:
        await runner.stop()
    assert [r["trigger"]["payload"] for r in runs] == ["while down"]


async def test_a_retained_message_is_not_replayed_when_the_consumer_restarts(
    hub: Hub, mosquitto: dict[str, Any], unique: str, caplog: Any
) -> None:
    topic = f"{unique}/status"
    await send(mosquitto, topic, b'"online"', retain=True)
    try:
        await hub.set_connection("broker", "mqtt", mosquitto)
        await hub.save_flow(flow_on({"topic": topic}), publish=True)
        runner = Runner(hub, caplog)
        await runner.start()
        try:
            runs = await runner.runs(1)
        finally:
            await runner.stop()
        assert runs[0]["trigger"]["retain"] is True
        await runner.start()
        await asyncio.sleep(0.5)
        await runner.stop()
        assert len(await hub.list_runs(flow_id="doors")) == 1
    finally:
        await send(mosquitto, topic, b"", retain=True)


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_an_unrecorded_message_is_delivered_again(
    mosquitto: dict[str, Any], unique: str, protocol: str
) -> None:
    """emit fails: no PUBACK; the next connection of the session gets the message again."""
    topic = f"{unique}/again"
    ctx = types.SimpleNamespace(
        connection={**mosquitto, "protocol": protocol},
        flow_id=unique,
        workspace_id="w",
        log=logging.getLogger(f"t.{unique}"),
    )
    subscribed = asyncio.Event()

    class Ready(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            subscribed.set()

    ctx.log.addHandler(Ready())
    ctx.log.setLevel(logging.INFO)

    async def failing_emit(event: Any) -> str:
        raise RuntimeError("database is down")

    failing = asyncio.create_task(consume(ctx, {"topic": topic}, failing_emit))
    await asyncio.wait_for(subscribed.wait(), 10)
    await send(mosquitto, topic, b'{"n": 7}')
    with pytest.raises(RuntimeError, match="database is down"):
        await asyncio.wait_for(failing, 10)
    got: list[Any] = []

    async def recording_emit(event: Any) -> str:
        got.append(event["payload"])
        raise asyncio.CancelledError  # stop after one message

    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(consume(ctx, {"topic": topic}, recording_emit), 10)
    assert got == [{"n": 7}]


async def test_hub_killed_between_receive_and_record_loses_nothing_and_duplicates_nothing(
    mosquitto: dict[str, Any], unique: str, hub_process: Any
) -> None:
    """A real hub process is SIGKILLed while it holds a received, unrecorded QoS 1 message.

    The test-only wrapper in the child script holds the event whose payload says "slow"
    before calling emit, so no PUBACK was sent. When the restarted hub reconnects with the
    same client id, Mosquitto resends the message from the persistent session and it is
    recorded exactly once; the message recorded (and acknowledged) before the kill is not
    delivered again.
    """
    topic = f"{unique}/crash"
    child = hub_process(
        module="hub_mqtt.plugin",
        connector="mqtt",
        body_field="payload",
        flow=flow_on({"topic": topic}, "crash"),
        connection=mosquitto,
    )
    first = child.start(hold="slow")
    await child.wait_for("consuming", first)
    await send(mosquitto, topic, b'{"n": "fast"}')
    await child.wait_for('recorded {"n": "fast"}', first)
    await send(mosquitto, topic, b'{"n": "slow"}')
    await child.wait_for('received {"n": "slow"}', first)
    child.kill()
    assert not any("recorded" in line and "slow" in line for line in child.lines())

    second = child.start()
    await child.wait_for('recorded {"n": "slow"}', second)
    await asyncio.sleep(0.5)  # room for a wrong redelivery of the first message
    child.kill()
    assert not any('{"n": "fast"}' in line for line in child.lines()[second:])
    runs = await child.runs(plugin)
    assert sorted(json.dumps(r["trigger"]["payload"]) for r in runs) == [
        '{"n": "fast"}',
        '{"n": "slow"}',
    ]
