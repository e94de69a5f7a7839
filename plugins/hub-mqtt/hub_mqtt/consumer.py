"""The ``mqtt.message`` subscribe trigger: a persistent session with manual acknowledgements.

The consumer connects with a client id derived from the flow (and its topic filter) and a
persistent session (MQTT 5: clean start off and a session expiry; 3.1.1: clean session off),
subscribes at QoS 1, and turns paho-mqtt's automatic PUBACK off (``manual_ack``). A message's
PUBACK is sent only after ``emit`` returned, that is once its run is committed. A hub killed
in between never acknowledged the message: the broker sends it again (DUP) when the same
client id reconnects, and keeps queueing new QoS 1 messages for the session while no hub is
connected (up to the broker's queue limit and the session expiry).

aiomqtt has no public manual-ack API; it wraps a paho-mqtt client (``Client._client``), whose
``manual_ack_set`` / ``ack`` do exactly this. If a future aiomqtt hides that client, the
trigger refuses to start rather than silently falling back to acknowledging on receipt.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

import aiomqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from hub import ActionError
from hub.plugin_kit.brokers import Emit, decode_body, record_then_ack
from hub_mqtt.client import client_id_for, mqtt_error, settings_of

MESSAGE_CONFIG: dict[str, Any] = {
    "type": "object",
    "properties": {
        "topic": {
            "type": "string",
            "minLength": 1,
            "description": "The topic filter (wildcards + and # allowed).",
        },
        "qos": {
            "enum": [0, 1],
            "default": 1,
            "description": "1 (default): acknowledged after the record, redelivered after a "
            "crash; 0: at most once. QoS 2 publications arrive at QoS 1.",
        },
        "client_id": {
            "type": "string",
            "minLength": 1,
            "maxLength": 128,
            "description": "The client id of the session; default: derived from the flow.",
        },
        "session_expiry": {
            "type": "integer",
            "minimum": 0,
            "default": 86400,
            "description": "MQTT 5: seconds the broker keeps the session (and queues "
            "messages) while no hub is connected.",
        },
        "skip_retained": {
            "type": "boolean",
            "default": False,
            "description": "Ignore retained messages the broker replays on subscribing.",
        },
    },
    "required": ["topic"],
    "additionalProperties": False,
}

MESSAGE_EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "topic": {"type": "string", "description": "The topic it was published to."},
        "payload": {"description": "JSON when the payload parses as JSON, else text (or base64)."},
        "encoding": {
            "enum": ["json", "text", "base64"],
            "description": "How payload was decoded.",
        },
        "qos": {"type": "integer", "description": "The QoS it was delivered at."},
        "retain": {"type": "boolean", "description": "A retained message (new subscription)."},
        "headers": {"type": "object", "description": "MQTT 5 user properties."},
        "content_type": {"type": ["string", "null"], "description": "MQTT 5 content type."},
        "response_topic": {"type": ["string", "null"], "description": "MQTT 5 response topic."},
        "correlation_data": {
            "type": ["string", "null"],
            "description": "MQTT 5 correlation data (text, or base64).",
        },
        "received_at": {"type": "string", "description": "When the hub received it (UTC)."},
    },
}


def payload_bytes(payload: Any) -> bytes:
    """A received payload as bytes (aiomqtt types it bytes, int, float or None)."""
    if isinstance(payload, int | float):
        return str(payload).encode()
    return bytes(payload or b"")


def to_event(message: aiomqtt.Message) -> dict[str, Any]:
    """The trigger event of one message (documented in the README)."""
    props = message.properties
    headers: dict[str, str] = {}
    for key, value in getattr(props, "UserProperty", None) or []:
        headers[str(key)] = str(value)
    content_type = getattr(props, "ContentType", None)
    correlation = getattr(props, "CorrelationData", None)
    payload, encoding = decode_body(payload_bytes(message.payload), content_type)
    return {
        "topic": message.topic.value,
        "payload": payload,
        "encoding": encoding,
        "qos": message.qos,
        "retain": bool(message.retain),
        "headers": headers,
        "content_type": content_type,
        "response_topic": getattr(props, "ResponseTopic", None),
        "correlation_data": decode_body(correlation, "text/")[0] if correlation else None,
        "received_at": dt.datetime.now(dt.UTC).isoformat(),
    }


def _paho_of(client: aiomqtt.Client) -> Any:
    """The paho-mqtt client inside aiomqtt (the only way to acknowledge manually)."""
    paho = getattr(client, "_client", None)
    if paho is None or not hasattr(paho, "manual_ack_set") or not hasattr(paho, "ack"):
        raise ActionError(
            "mqtt.message: this aiomqtt/paho-mqtt version offers no manual acknowledgement; "
            "refusing to consume with acknowledgement on receipt (messages could be lost)"
        )
    return paho


async def acknowledge(paho: Any, message: aiomqtt.Message) -> None:
    """Send the PUBACK of a QoS 1 message (a QoS 0 message has none)."""
    if message.qos > 0:
        paho.ack(message.mid, message.qos)


async def consume(ctx: Any, config: dict[str, Any], emit: Emit) -> None:
    """The ``mqtt.message`` trigger: one run per message, PUBACK after the record."""
    settings = settings_of(ctx.connection, "mqtt.message")
    topic = str(config["topic"])
    qos = int(config.get("qos", 1))
    what = f"mqtt.message on {topic!r}"
    identifier = str(
        config.get("client_id")
        or client_id_for(settings.prefix, ctx.workspace_id, ctx.flow_id, topic)
    )
    client = settings.client(
        identifier,
        persistent=True,
        session_expiry=int(config.get("session_expiry", 86400)),
    )
    paho = _paho_of(client)
    paho.manual_ack_set(True)
    skip_retained = bool(config.get("skip_retained", False))
    try:
        async with client:
            if settings.v5:
                options = SubscribeOptions(
                    qos=qos, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB
                )
                await client.subscribe(topic, options=options)
            else:
                await client.subscribe(topic, qos=qos)
            ctx.log.info("%s: consuming (client id %s, flow %s)", what, identifier, ctx.flow_id)
            async for message in client.messages:
                # A persistent session may still hold an older subscription: ignore (and
                # acknowledge) what this flow did not ask for.
                wanted = message.topic.matches(topic) and not (skip_retained and message.retain)
                ack = functools.partial(acknowledge, paho, message)
                if wanted:
                    await record_then_ack(emit, to_event(message), ack=ack)
                else:
                    await ack()
    except aiomqtt.MqttError as exc:
        raise mqtt_error(exc, settings, what) from None
    raise ConnectionError(f"{what}: the broker closed the connection")
