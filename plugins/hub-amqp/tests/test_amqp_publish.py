"""amqp.publish and the connection test, against the real RabbitMQ on 127.0.0.1:5672."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import hub_amqp.plugin as plugin
import pytest

from hub import ActionError
from hub.testing import check_examples, check_flow_file, make_context, registry_of, run_action

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "connectors" / "amqp-orders.yaml"


@pytest.fixture
async def queue(rabbit: dict[str, Any], unique: str) -> AsyncIterator[aio_pika.abc.AbstractQueue]:
    """A fresh auto-deleted queue on an independent connection, to see what arrived."""
    connection = await aio_pika.connect(host=rabbit["host"], port=rabbit["port"])
    channel = await connection.channel()
    declared = await channel.declare_queue(unique, auto_delete=True)
    try:
        yield declared
    finally:
        await declared.delete(if_unused=False, if_empty=False)
        await connection.close()


async def fetch(queue: aio_pika.abc.AbstractQueue) -> aio_pika.abc.AbstractIncomingMessage:
    message = await queue.get(timeout=5, fail=True)
    assert message is not None
    await message.ack()
    return message


def test_registry_accepts_the_connector_and_its_examples() -> None:
    registry = registry_of(plugin)
    assert "amqp.publish" in registry.actions
    assert registry.triggers["amqp.message"].kind == "subscribe"
    schema = registry.connectors["amqp"].connection_schema
    assert schema is not None and schema["properties"]["password"]["writeOnly"] is True
    check_examples(plugin.PUBLISH)


def test_example_flow_validates() -> None:
    flow = check_flow_file(EXAMPLE, plugin)
    assert flow.trigger.type == "amqp.message"


async def test_publish_delivers_json_body_headers_and_idempotency_message_id(
    rabbit: dict[str, Any], queue: aio_pika.abc.AbstractQueue
) -> None:
    ctx = make_context(connection=rabbit, step_key="notify")
    try:
        out = await plugin.PUBLISH.run(
            ctx,
            {
                "routing_key": queue.name,
                "body": {"order": 42, "items": ["a", "b"]},
                "headers": {"source": "hub", "attempt": 1},
            },
        )
    finally:
        await ctx.http.aclose()
    got = await fetch(queue)
    assert got.body == b'{"order":42,"items":["a","b"]}'
    assert got.content_type == "application/json"
    assert got.headers["source"] == "hub" and got.headers["attempt"] == 1
    assert got.message_id == ctx.idempotency_key == f"{ctx.run_id}:notify"
    assert got.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert out["message_id"] == ctx.idempotency_key and out["bytes"] == len(got.body)


async def test_publish_text_body_with_explicit_id_and_transient_mode(
    rabbit: dict[str, Any], queue: aio_pika.abc.AbstractQueue
) -> None:
    out = await run_action(
        plugin.PUBLISH,
        {
            "routing_key": queue.name,
            "body": "héllo",
            "message_id": "order-42",
            "persistent": False,
            "correlation_id": "c-1",
        },
        connection=rabbit,
    )
    got = await fetch(queue)
    assert got.body == "héllo".encode()
    assert got.content_type == "text/plain; charset=utf-8"
    assert got.message_id == "order-42" == out["message_id"]
    assert got.correlation_id == "c-1"
    assert got.delivery_mode == aio_pika.DeliveryMode.NOT_PERSISTENT


async def test_unroutable_message_fails_the_step_when_mandatory(
    rabbit: dict[str, Any], unique: str
) -> None:
    with pytest.raises(ActionError, match="unroutable") as info:
        await run_action(
            plugin.PUBLISH, {"routing_key": unique + "-nobody", "body": 1}, connection=rabbit
        )
    assert info.value.retryable is False
    # Without mandatory the broker drops it and the step succeeds.
    out = await run_action(
        plugin.PUBLISH,
        {"routing_key": unique + "-nobody", "body": 1, "mandatory": False},
        connection=rabbit,
    )
    assert out["bytes"] == 1


async def test_missing_exchange_is_a_clear_non_retryable_error(
    rabbit: dict[str, Any], unique: str
) -> None:
    with pytest.raises(ActionError, match=f"no exchange '{unique}'") as info:
        await run_action(
            plugin.PUBLISH, {"exchange": unique, "routing_key": "x", "body": {}}, connection=rabbit
        )
    assert info.value.retryable is False


async def test_connection_test_passes_with_good_credentials(rabbit: dict[str, Any]) -> None:
    result = await plugin.test_connection(rabbit)
    assert result["ok"] is True and "5672" in result["broker"]


async def test_refused_credentials_are_not_retryable_and_hide_the_password(
    rabbit: dict[str, Any],
) -> None:
    bad = {**rabbit, "password": "Wr0ng-s3cret-pw"}
    with pytest.raises(ActionError) as info:
        await plugin.test_connection(bad)
    assert "refused the credentials of user 'guest'" in str(info.value)
    assert info.value.retryable is False
    assert "Wr0ng-s3cret-pw" not in str(info.value)
    with pytest.raises(ActionError) as info2:
        await run_action(plugin.PUBLISH, {"routing_key": "q", "body": 1}, connection=bad)
    assert info2.value.retryable is False and "Wr0ng-s3cret-pw" not in str(info2.value)


async def test_unknown_virtual_host_is_not_retryable(rabbit: dict[str, Any], unique: str) -> None:
    with pytest.raises(ActionError, match="virtual host") as info:
        await plugin.test_connection({**rabbit, "virtual_host": unique})
    assert info.value.retryable is False


async def test_unreachable_broker_is_retryable(rabbit: dict[str, Any], closed_port: int) -> None:
    with pytest.raises(ActionError, match="cannot connect") as info:
        await plugin.test_connection({**rabbit, "port": closed_port, "password": "pw-xyz-123"})
    assert info.value.retryable is True
    assert "pw-xyz-123" not in str(info.value)


async def test_publish_without_a_connection_names_the_action() -> None:
    with pytest.raises(ActionError, match=r"amqp\.publish: needs a connection"):
        await run_action(plugin.PUBLISH, {"routing_key": "q", "body": 1})
