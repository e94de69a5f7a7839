"""The ``amqp`` connector: publish to RabbitMQ (AMQP 0-9-1), and consume a queue as a trigger.

- ``amqp.publish`` publishes one message with publisher confirms: it returns once the broker
  has taken responsibility for it. ``message_id`` defaults to the step's idempotency key, so
  a consumer can drop the copy that a retried step may publish again.
- The ``amqp.message`` subscribe trigger consumes a queue with manual acknowledgements: a
  message is acknowledged only after ``emit`` has returned, that is once its run is committed
  in the hub's database. A hub killed in between loses nothing: the broker requeues every
  unacknowledged message when the connection drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from hub import Action, ActionError, Connector, Trigger, hookimpl
from hub.plugin_kit.brokers import Emit, decode_body, encode_body, record_then_ack
from hub_amqp.client import (
    CONNECTION_SCHEMA,
    Settings,
    channel_error,
    connect,
    iso,
    jsonable,
    settings_of,
)

PUBLISH_INPUT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "exchange": {
            "type": "string",
            "default": "",
            "description": "The exchange; empty for the default exchange (routes by queue name).",
        },
        "routing_key": {"type": "string", "description": "The routing key (or queue name)."},
        "body": {
            "description": "The message body: a string is sent as text, anything else as JSON."
        },
        "headers": {
            "type": "object",
            "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
            "description": "Message headers (the AMQP headers table).",
        },
        "persistent": {
            "type": "boolean",
            "default": True,
            "description": "Delivery mode 2: the broker writes it to disk (in durable queues).",
        },
        "message_id": {
            "type": "string",
            "description": "The message id; default: the step's idempotency key.",
        },
        "content_type": {
            "type": "string",
            "description": "Overrides the content type (default application/json or text/plain).",
        },
        "correlation_id": {"type": "string", "description": "The correlation id property."},
        "reply_to": {"type": "string", "description": "The reply-to property (a queue)."},
        "type": {"type": "string", "description": "The message's type property."},
        "priority": {
            "type": "integer",
            "minimum": 0,
            "maximum": 255,
            "description": "The priority (for priority queues).",
        },
        "expiration": {
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "Seconds after which the broker may drop the message.",
        },
        "mandatory": {
            "type": "boolean",
            "default": True,
            "description": "Fail when no queue receives the message (instead of dropping it).",
        },
    },
    "required": ["routing_key", "body"],
    "additionalProperties": False,
}

PUBLISH_OUTPUT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "exchange": {"type": "string", "description": "The exchange ('' = default)."},
        "routing_key": {"type": "string", "description": "The routing key used."},
        "message_id": {"type": "string", "description": "The message id sent."},
        "content_type": {"type": "string", "description": "The content type sent."},
        "bytes": {"type": "integer", "description": "The body's size in bytes."},
    },
    "required": ["exchange", "routing_key", "message_id", "bytes"],
}

MESSAGE_CONFIG: dict[str, Any] = {
    "type": "object",
    "properties": {
        "queue": {"type": "string", "minLength": 1, "description": "The queue to consume."},
        "prefetch": {
            "type": "integer",
            "minimum": 1,
            "maximum": 65535,
            "default": 10,
            "description": "Unacknowledged messages the broker may send ahead (basic.qos).",
        },
        "declare": {
            "type": "boolean",
            "default": True,
            "description": "Declare the queue (durable) if missing; false: it must exist.",
        },
        "arguments": {
            "type": "object",
            "description": "Queue arguments used when declaring (x-queue-type, ...).",
        },
        "bindings": {
            "type": "array",
            "description": "Bind the queue to these exchanges before consuming.",
            "items": {
                "type": "object",
                "properties": {
                    "exchange": {"type": "string", "minLength": 1, "description": "Exchange."},
                    "routing_key": {
                        "type": "string",
                        "default": "",
                        "description": "Binding key (patterns for topic exchanges).",
                    },
                },
                "required": ["exchange"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["queue"],
    "additionalProperties": False,
}

MESSAGE_EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "queue": {"type": "string", "description": "The queue it was consumed from."},
        "exchange": {"type": "string", "description": "The exchange ('' = default)."},
        "routing_key": {"type": "string", "description": "The routing key it was sent with."},
        "body": {"description": "JSON when the body parses as JSON, else text (or base64)."},
        "encoding": {"enum": ["json", "text", "base64"], "description": "How body was decoded."},
        "headers": {"type": "object", "description": "The headers table."},
        "message_id": {"type": ["string", "null"], "description": "The message id property."},
        "correlation_id": {"type": ["string", "null"], "description": "The correlation id."},
        "content_type": {"type": ["string", "null"], "description": "The content type."},
        "reply_to": {"type": ["string", "null"], "description": "The reply-to property."},
        "type": {"type": ["string", "null"], "description": "The type property."},
        "app_id": {"type": ["string", "null"], "description": "The publishing application."},
        "timestamp": {"type": ["string", "null"], "description": "The publisher's timestamp."},
        "redelivered": {
            "type": "boolean",
            "description": "Delivered before (e.g. to a hub that died before recording it).",
        },
        "received_at": {"type": "string", "description": "When the hub received it (UTC)."},
    },
}

NOTES = """\
**Delivery guarantee of the `message` trigger: at least once.** The consumer uses manual
acknowledgements and acknowledges a message only after the hub has committed its run. If the
hub dies (or is killed) before that, the connection drops and RabbitMQ requeues the message:
the next consumer gets it again, with `redelivered: true`. If recording fails, the message is
rejected with `requeue=True` and the consumer restarts with back-off. A hub stopped gracefully
finishes recording the message in hand before it lets go.

The one window left is a hub that dies after the run is committed but before the
acknowledgement reaches the broker: that message is delivered again and starts a second run
(with `redelivered: true` and the same `message_id`). The hub's `emit` has no de-duplication
key today, so flows that must not act twice should check `trigger.message_id` (publish with
`amqp.publish`, whose `message_id` is the step's idempotency key, to have one).

**Publishing** uses publisher confirms: `amqp.publish` returns once the broker has the
message (persisted, for `persistent: true` in a durable queue). With `mandatory: true` (the
default) an unroutable message fails the step instead of vanishing. A retried step publishes
again with the same `message_id`.

Each action call opens its own connection (no pool is shared between steps yet). The broker's
address is not behind the hub's SSRF guard: whoever may create connections chooses it.
"""


async def publish(ctx: Any, data: dict[str, Any]) -> dict[str, Any]:
    """Publish one message and wait for the broker's confirm."""
    settings = settings_of(ctx.connection, "amqp.publish")
    exchange_name = str(data.get("exchange") or "")
    routing_key = str(data["routing_key"])
    what = f"amqp.publish to exchange {exchange_name or '(default)'!r} key {routing_key!r}"
    body, content_type = encode_body(data["body"], data.get("content_type"))
    message_id = str(data.get("message_id") or ctx.idempotency_key)
    expiration = data.get("expiration")
    message = aio_pika.Message(
        body=body,
        headers=dict(data.get("headers") or {}),
        content_type=content_type,
        delivery_mode=(
            aio_pika.DeliveryMode.PERSISTENT
            if data.get("persistent", True)
            else aio_pika.DeliveryMode.NOT_PERSISTENT
        ),
        message_id=message_id,
        correlation_id=data.get("correlation_id"),
        reply_to=data.get("reply_to"),
        type=data.get("type"),
        priority=data.get("priority"),
        expiration=float(expiration) if expiration is not None else None,
        timestamp=dt.datetime.now(dt.UTC),
        app_id="hub",
    )
    mandatory = bool(data.get("mandatory", True))
    connection = await connect(settings, what)
    try:
        async with asyncio.timeout(settings.timeout):
            channel = await connection.channel(publisher_confirms=True, on_return_raises=mandatory)
            exchange = (
                await channel.get_exchange(exchange_name, ensure=False)
                if exchange_name
                else channel.default_exchange
            )
            await exchange.publish(message, routing_key=routing_key, mandatory=mandatory)
    except ActionError:
        raise
    except Exception as exc:
        raise channel_error(exc, settings, what) from None
    finally:
        with contextlib.suppress(Exception):
            await connection.close()
    ctx.log.info("%s: published %d bytes, message_id %s", what, len(body), message_id)
    return {
        "exchange": exchange_name,
        "routing_key": routing_key,
        "message_id": message_id,
        "content_type": content_type,
        "bytes": len(body),
    }


def to_event(message: AbstractIncomingMessage, queue: str) -> dict[str, Any]:
    """The trigger event of one delivered message (documented in the README)."""
    body, encoding = decode_body(message.body, message.content_type)
    return {
        "queue": queue,
        "exchange": message.exchange or "",
        "routing_key": message.routing_key or "",
        "body": body,
        "encoding": encoding,
        "headers": jsonable(dict(message.headers or {})),
        "message_id": message.message_id,
        "correlation_id": message.correlation_id,
        "content_type": message.content_type,
        "reply_to": message.reply_to,
        "type": message.type,
        "app_id": message.app_id,
        "timestamp": iso(message.timestamp),
        "redelivered": bool(message.redelivered),
        "received_at": iso(dt.datetime.now(dt.UTC)),
    }


async def deliver(emit: Emit, message: AbstractIncomingMessage, queue: str) -> None:
    """Record the message's run, then ack it; requeue it if it was not recorded.

    The publisher's message id is the dedup key: a redelivered message returns its run.
    """
    event = to_event(message, queue)
    await record_then_ack(
        emit,
        event,
        ack=message.ack,
        nack=functools.partial(message.nack, requeue=True),
        dedup_key=f"amqp:{event['message_id']}" if event["message_id"] else None,
    )


async def consume(ctx: Any, config: dict[str, Any], emit: Emit) -> None:
    """The ``amqp.message`` trigger: consume a queue, one run per message, ack after record."""
    settings = settings_of(ctx.connection, "amqp.message")
    queue_name = str(config["queue"])
    what = f"amqp.message on queue {queue_name!r}"
    name = f"hub flow {ctx.flow_id}"
    connection = await connect(settings, what, name=name)
    try:
        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=int(config.get("prefetch") or 10))
            if config.get("declare", True):
                queue = await channel.declare_queue(
                    queue_name, durable=True, arguments=config.get("arguments") or None
                )
            else:
                queue = await channel.declare_queue(queue_name, passive=True)
            for binding in config.get("bindings") or []:
                await queue.bind(binding["exchange"], routing_key=binding.get("routing_key", ""))
        except ActionError:
            raise
        except Exception as exc:
            raise channel_error(exc, settings, what) from None
        ctx.log.info("%s: consuming (flow %s)", what, ctx.flow_id)
        async with queue.iterator() as messages:
            # The iterator ends when the broker closes the channel or the connection.
            async for message in messages:
                await deliver(emit, message, queue_name)
        raise ConnectionError(f"{what}: the broker closed the consumer")
    finally:
        with contextlib.suppress(Exception):
            await connection.close()


async def test_connection(connection: dict[str, Any]) -> dict[str, Any]:
    """Open a connection and a channel; raise ActionError when the broker refuses."""
    settings = Settings(connection)
    conn = await connect(settings, "amqp connection test")
    try:
        try:
            channel = await conn.channel()
            await channel.close()
        except Exception as exc:
            raise channel_error(exc, settings, "amqp connection test") from None
        props = getattr(conn.transport, "connection", None)
        server = getattr(props, "server_properties", None) or {}
        version = jsonable(server.get("version")) if isinstance(server, dict) else None
    finally:
        with contextlib.suppress(Exception):
            await conn.close()
    return {"ok": True, "broker": settings.where, "server_version": version}


PUBLISH = Action(
    name="publish",
    run=publish,
    title="Publish a message",
    description=(
        "Publish one message to an exchange with publisher confirms. A string body is sent "
        "as text, anything else as JSON. message_id defaults to the step's idempotency key."
    ),
    input_schema=PUBLISH_INPUT,
    output_schema=PUBLISH_OUTPUT,
    needs_connection=True,
    timeout=60,
    examples=[
        {
            "input": {
                "exchange": "orders",
                "routing_key": "order.created",
                "body": {"id": 42, "total": 99.5},
                "headers": {"source": "hub"},
            }
        }
    ],
)

MESSAGE = Trigger(
    name="message",
    kind="subscribe",
    title="Message in a queue",
    description=(
        "One run per message consumed from a queue. A message is acknowledged only once its "
        "run is recorded (at least once: a killed hub loses nothing)."
    ),
    config_schema=MESSAGE_CONFIG,
    output_schema=MESSAGE_EVENT,
    subscribe=consume,
)


@hookimpl
def hub_connectors() -> list[Connector]:
    """The ``amqp`` connector."""
    return [
        Connector(
            name="amqp",
            title="AMQP (RabbitMQ)",
            version="1",
            icon="rabbitmq",
            description="Publish to and consume from RabbitMQ or any AMQP 0-9-1 broker.",
            connection_schema=CONNECTION_SCHEMA,
            actions=[PUBLISH],
            triggers=[MESSAGE],
            test_connection=test_connection,
            notes=NOTES,
        )
    ]
