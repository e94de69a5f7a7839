"""mqtt.publish and the connection test, against the real Mosquitto on 127.0.0.1:1883."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiomqtt
import hub_mqtt.plugin as plugin
import pytest

from hub import ActionError
from hub.testing import check_examples, check_flow_file, make_context, registry_of, run_action

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "connectors"


async def first_message(
    conn: dict[str, Any], topic: str, publish: Any, timeout: float = 5
) -> aiomqtt.Message:
    """Subscribe with an independent MQTT 5 client, run ``publish()``, return what arrived."""
    async with aiomqtt.Client(
        conn["host"], conn["port"], protocol=aiomqtt.ProtocolVersion.V5
    ) as client:
        await client.subscribe(topic, qos=1)
        await publish()
        async with asyncio.timeout(timeout):
            async for message in client.messages:
                return message
    raise AssertionError("no message")


def test_registry_accepts_the_connector_and_its_examples() -> None:
    registry = registry_of(plugin)
    assert "mqtt.publish" in registry.actions
    assert registry.triggers["mqtt.message"].kind == "subscribe"
    props = registry.connectors["mqtt"].connection_schema["properties"]  # type: ignore[index]
    assert props["password"]["writeOnly"] is True
    check_examples(plugin.PUBLISH)


def test_example_flow_validates() -> None:
    flow = check_flow_file(EXAMPLES / "mqtt-door-sensor.yaml", plugin)
    assert flow.trigger.type == "mqtt.message"


async def test_publish_delivers_json_with_headers_and_the_idempotency_key(
    mosquitto: dict[str, Any], unique: str
) -> None:
    topic = f"{unique}/alerts"
    ctx = make_context(connection=mosquitto, step_key="alert")
    out: dict[str, Any] = {}

    async def send() -> None:
        out.update(
            await plugin.PUBLISH.run(
                ctx,
                {"topic": topic, "payload": {"level": "high"}, "headers": {"Site": "north"}},
            )
        )

    try:
        got = await first_message(mosquitto, topic, send)
    finally:
        await ctx.http.aclose()
    assert json.loads(bytes(got.payload)) == {"level": "high"}  # type: ignore[arg-type]
    assert got.qos == 1
    user = dict(got.properties.UserProperty)  # type: ignore[union-attr]
    assert user == {"Idempotency-Key": ctx.idempotency_key, "Site": "north"}
    assert ctx.idempotency_key == f"{ctx.run_id}:alert"
    assert got.properties.ContentType == "application/json"  # type: ignore[union-attr]
    assert out == {
        "topic": topic,
        "qos": 1,
        "retain": False,
        "bytes": len(got.payload),  # type: ignore[arg-type]
        "idempotency_key": ctx.idempotency_key,
    }


async def test_retained_text_reaches_a_later_subscriber(
    mosquitto: dict[str, Any], unique: str
) -> None:
    topic = f"{unique}/status"
    await run_action(
        plugin.PUBLISH,
        {"topic": topic, "payload": "online", "retain": True, "qos": 0},
        connection=mosquitto,
    )

    async def nothing() -> None:
        return None

    try:
        got = await first_message(mosquitto, topic, nothing)
        assert got.payload == b"online" and got.retain is True
    finally:  # clear the retained message
        await run_action(
            plugin.PUBLISH, {"topic": topic, "payload": "", "retain": True}, connection=mosquitto
        )


async def test_mqtt_311_publishes_but_refuses_headers(
    mosquitto: dict[str, Any], unique: str
) -> None:
    conn = {**mosquitto, "protocol": "3.1.1"}
    out = await run_action(plugin.PUBLISH, {"topic": unique, "payload": [1, 2]}, connection=conn)
    assert out["idempotency_key"] is None and out["bytes"] == 5
    with pytest.raises(ActionError, match="need MQTT 5") as info:
        await run_action(
            plugin.PUBLISH, {"topic": unique, "payload": 1, "headers": {"a": "b"}}, connection=conn
        )
    assert info.value.retryable is False


async def test_connection_test_passes_for_both_protocols(mosquitto: dict[str, Any]) -> None:
    assert (await plugin.test_connection(mosquitto))["protocol"] == "5"
    assert (await plugin.test_connection({**mosquitto, "protocol": "3.1.1"}))["ok"] is True


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_refused_credentials_are_not_retryable_and_hide_the_password(
    auth_broker: dict[str, Any], protocol: str
) -> None:
    good = {**auth_broker, "protocol": protocol}
    assert (await plugin.test_connection(good))["ok"] is True
    bad = {**good, "password": "Wr0ng-s3cret-pw"}
    with pytest.raises(ActionError) as info:
        await plugin.test_connection(bad)
    assert "refused the credentials of user 'alice'" in str(info.value)
    assert info.value.retryable is False and "Wr0ng-s3cret-pw" not in str(info.value)
    anonymous = {"host": good["host"], "port": good["port"], "protocol": protocol}
    with pytest.raises(ActionError, match="an anonymous client") as anon:
        await plugin.test_connection(anonymous)
    assert anon.value.retryable is False
    with pytest.raises(ActionError) as step:
        await run_action(plugin.PUBLISH, {"topic": "a", "payload": 1}, connection=bad)
    assert step.value.retryable is False and "Wr0ng-s3cret-pw" not in str(step.value)


async def test_unreachable_broker_is_retryable(closed_port: int) -> None:
    conn = {"host": "127.0.0.1", "port": closed_port, "password": "pw-xyz-123", "username": "u"}
    with pytest.raises(ActionError) as info:
        await plugin.test_connection(conn)
    assert info.value.retryable is True and "pw-xyz-123" not in str(info.value)


async def test_publish_refuses_a_wildcard_topic_by_schema(mosquitto: dict[str, Any]) -> None:
    with pytest.raises(AssertionError, match="topic"):
        await run_action(plugin.PUBLISH, {"topic": "a/#", "payload": 1}, connection=mosquitto)


async def test_publish_without_a_connection_names_the_action() -> None:
    with pytest.raises(ActionError, match=r"mqtt\.publish: needs a connection"):
        await run_action(plugin.PUBLISH, {"topic": "a", "payload": 1})
