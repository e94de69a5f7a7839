"""The ``mqtt`` connector: publish to an MQTT broker, and subscribe to a topic as a trigger.

- ``mqtt.publish`` publishes one message and, at QoS 1 or 2, returns once the broker
  acknowledged it. Under MQTT 5 it carries the step's idempotency key as the user property
  ``Idempotency-Key`` (MQTT itself has no de-duplication; consumers may use it).
- The ``mqtt.message`` trigger (see :mod:`hub_mqtt.consumer`) keeps a persistent session and
  acknowledges each QoS 1 message only once its run is recorded.
"""

from __future__ import annotations

import uuid
from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hub import Action, ActionError, Connector, Trigger, hookimpl
from hub.plugin_kit.brokers import encode_body
from hub_mqtt.client import (
    CONNECTION_SCHEMA,
    Settings,
    mqtt_error,
    settings_of,
)
from hub_mqtt.consumer import MESSAGE_CONFIG, MESSAGE_EVENT, consume

IDEMPOTENCY_PROPERTY = "Idempotency-Key"

PUBLISH_INPUT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "topic": {
            "type": "string",
            "minLength": 1,
            "pattern": "^[^+#]*$",
            "description": "The topic (no wildcards).",
        },
        "payload": {"description": "The payload: a string is sent as text, anything else as JSON."},
        "qos": {"enum": [0, 1, 2], "default": 1, "description": "Quality of service."},
        "retain": {
            "type": "boolean",
            "default": False,
            "description": "The broker keeps it as the topic's last value for new subscribers.",
        },
        "headers": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "MQTT 5 user properties.",
        },
        "message_expiry": {
            "type": "integer",
            "minimum": 1,
            "description": "MQTT 5: seconds after which the broker may drop the message.",
        },
    },
    "required": ["topic", "payload"],
    "additionalProperties": False,
}

PUBLISH_OUTPUT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "topic": {"type": "string", "description": "The topic published to."},
        "qos": {"type": "integer", "description": "The QoS used."},
        "retain": {"type": "boolean", "description": "Whether the message was retained."},
        "bytes": {"type": "integer", "description": "The payload's size in bytes."},
        "idempotency_key": {
            "type": ["string", "null"],
            "description": "Sent as the Idempotency-Key user property (MQTT 5), else null.",
        },
    },
    "required": ["topic", "qos", "retain", "bytes"],
}

NOTES = """\
**Delivery guarantee of the `message` trigger (QoS 1, the default): at least once.** The
consumer keeps a persistent session under a client id derived from the flow and its topic
filter (MQTT 5: clean start off, session expiry `session_expiry`, default one day; 3.1.1:
clean session off) and turns paho-mqtt's automatic PUBACK off: a message is acknowledged only
after the hub committed its run. A hub killed before that never acknowledged it; when the
same client id connects again, the broker resends it (and delivers the QoS 1 messages it
queued for the session meanwhile, up to its queue limit, e.g. Mosquitto's
`max_queued_messages`, default 1000). If recording fails, the message stays unacknowledged,
the consumer reconnects with back-off, and the broker resends it.

Remaining window: a hub that dies after the commit but before its PUBACK reaches the broker
gets the message again: a second run. The hub's `emit` has no de-duplication key yet; publish
with `mqtt.publish` under MQTT 5 to have an `Idempotency-Key` header to check.

**Limits.** QoS 2 subscriptions are not offered: paho keeps the QoS 2 handshake state in
memory only, so a killed hub would lose a message it had answered PUBREC for; subscribing at
QoS 1 downgrades QoS 2 publications to QoS 1. QoS 0 is at most once. One client id means one
live connection: two hub processes running the same flow would take the session from each
other, so run MQTT triggers in one hub process (or give each its own `client_id`). Retained
messages: under MQTT 5 they are sent only when the subscription is new; under 3.1.1 the broker
replays them on every reconnect (set `skip_retained: true` to ignore them). A changed topic
filter derives a new client id (the old session stays on the broker until it expires).

aiomqtt has no public manual-acknowledgement API; the trigger uses the paho-mqtt client it
wraps (`manual_ack_set`, `ack`) and refuses to start if that is unavailable.

**Publishing.** QoS 1 and 2 wait for the broker's acknowledgement. MQTT has no
de-duplication: a retried step publishes again (with the same `Idempotency-Key` user property
under MQTT 5). Each call opens its own connection with a random client id. The broker's
address is not behind the hub's SSRF guard: whoever may create connections chooses it.
"""


async def publish(ctx: Any, data: dict[str, Any]) -> dict[str, Any]:
    """Publish one message; at QoS 1 or 2, wait for the broker's acknowledgement."""
    settings = settings_of(ctx.connection, "mqtt.publish")
    topic = str(data["topic"])
    qos = int(data.get("qos", 1))
    retain = bool(data.get("retain", False))
    what = f"mqtt.publish to {topic!r}"
    payload, content_type = encode_body(data["payload"])
    headers = dict(data.get("headers") or {})
    properties = None
    key: str | None = None
    if settings.v5:
        key = str(ctx.idempotency_key)
        properties = Properties(PacketTypes.PUBLISH)
        properties.ContentType = content_type
        properties.UserProperty = [(IDEMPOTENCY_PROPERTY, key), *headers.items()]
        if data.get("message_expiry"):
            properties.MessageExpiryInterval = int(data["message_expiry"])
    elif headers or data.get("message_expiry"):
        raise ActionError(f"{what}: headers and message_expiry need MQTT 5 (protocol: '5')")
    client = settings.client(f"{settings.prefix}-pub-{uuid.uuid4().hex[:16]}")
    try:
        async with client:
            await client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
    except Exception as exc:
        raise mqtt_error(exc, settings, what) from None
    ctx.log.info("%s: published %d bytes at QoS %d", what, len(payload), qos)
    return {
        "topic": topic,
        "qos": qos,
        "retain": retain,
        "bytes": len(payload),
        "idempotency_key": key,
    }


async def test_connection(connection: dict[str, Any]) -> dict[str, Any]:
    """Connect (clean session) and disconnect; raise ActionError when the broker refuses."""
    settings = Settings(connection)
    client = settings.client(f"{settings.prefix}-test-{uuid.uuid4().hex[:12]}")
    try:
        async with client:
            pass
    except Exception as exc:
        raise mqtt_error(exc, settings, "mqtt connection test") from None
    return {"ok": True, "broker": settings.where, "protocol": "5" if settings.v5 else "3.1.1"}


PUBLISH = Action(
    name="publish",
    run=publish,
    title="Publish a message",
    description=(
        "Publish one message to a topic. A string payload is sent as text, anything else as "
        "JSON. QoS 1 and 2 wait for the broker's acknowledgement. Under MQTT 5 the step's "
        "idempotency key travels as the Idempotency-Key user property."
    ),
    input_schema=PUBLISH_INPUT,
    output_schema=PUBLISH_OUTPUT,
    needs_connection=True,
    timeout=60,
    examples=[
        {"input": {"topic": "site/north/alerts", "payload": {"level": "high"}, "qos": 1}},
        {"input": {"topic": "site/north/status", "payload": "online", "retain": True}},
    ],
)

MESSAGE = Trigger(
    name="message",
    kind="subscribe",
    title="Message on a topic",
    description=(
        "One run per message on a topic filter. At QoS 1 (default) a message is acknowledged "
        "only once its run is recorded, in a persistent session (at least once)."
    ),
    config_schema=MESSAGE_CONFIG,
    output_schema=MESSAGE_EVENT,
    subscribe=consume,
)


@hookimpl
def hub_connectors() -> list[Connector]:
    """The ``mqtt`` connector."""
    return [
        Connector(
            name="mqtt",
            title="MQTT",
            version="1",
            icon="mqtt",
            description="Publish to and subscribe to topics of an MQTT 3.1.1 or 5 broker.",
            connection_schema=CONNECTION_SCHEMA,
            actions=[PUBLISH],
            triggers=[MESSAGE],
            test_connection=test_connection,
            notes=NOTES,
        )
    ]
