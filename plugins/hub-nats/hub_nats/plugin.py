"""The ``nats`` connector: publish to NATS or JetStream, and consume a subject as a trigger.

- ``nats.publish`` publishes one message. With ``jetstream: true`` it waits for the stream's
  acknowledgement and sets ``Nats-Msg-Id`` to the step's idempotency key, so JetStream drops
  the copy a retried step publishes again (within the stream's duplicate window).
- The ``nats.message`` trigger (see :mod:`hub_nats.consumer`) consumes through a JetStream
  durable consumer, acknowledging a message only once its run is recorded.
"""

from __future__ import annotations

import contextlib
from typing import Any

from hub import Action, ActionError, Connector, Trigger, hookimpl
from hub.plugin_kit.brokers import encode_body
from hub_nats.client import (
    CONNECTION_SCHEMA,
    Settings,
    connect,
    jetstream_error,
    settings_of,
)
from hub_nats.consumer import MESSAGE_CONFIG, MESSAGE_EVENT, consume

PUBLISH_INPUT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "subject": {"type": "string", "minLength": 1, "description": "The subject."},
        "data": {"description": "The data: a string is sent as text, anything else as JSON."},
        "headers": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "Message headers.",
        },
        "jetstream": {
            "type": "boolean",
            "default": False,
            "description": "Publish to JetStream and wait for the stream's acknowledgement.",
        },
        "stream": {
            "type": "string",
            "description": "JetStream only: fail unless this stream stores the message.",
        },
        "msg_id": {
            "type": "string",
            "description": "The Nats-Msg-Id header; default: the step's idempotency key.",
        },
    },
    "required": ["subject", "data"],
    "additionalProperties": False,
}

PUBLISH_OUTPUT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "subject": {"type": "string", "description": "The subject published to."},
        "bytes": {"type": "integer", "description": "The data's size in bytes."},
        "msg_id": {"type": "string", "description": "The Nats-Msg-Id header sent."},
        "jetstream": {"type": "boolean", "description": "Published through JetStream."},
        "stream": {"type": ["string", "null"], "description": "The stream that stored it."},
        "seq": {"type": ["integer", "null"], "description": "Its sequence in the stream."},
        "duplicate": {
            "type": "boolean",
            "description": "JetStream already had a message with this Nats-Msg-Id.",
        },
    },
    "required": ["subject", "bytes", "msg_id", "jetstream"],
}

NOTES = """\
**Delivery guarantee of the `message` trigger.**

- *JetStream* (`jetstream: true`, the default): **at least once**. A durable pull consumer
  with explicit acks; a message is acknowledged (double ack, confirmed by the server) only
  after the hub has committed its run. A hub killed before that never acknowledged it, so
  JetStream delivers it again after `ack_wait` (default 30 s) to the next consumer. If
  recording fails, the message is nak'ed (redelivered at once) and the consumer restarts with
  back-off. While a run is being recorded the consumer sends `in_progress`, so a slow record
  does not trigger a redelivery. The window left: a hub that dies after the commit but before
  the ack reaches the server gets the message again (`delivered` > 1, same `msg_id` and
  `stream_seq`): a second run.
- *Core NATS* (`jetstream: false`): **at most once**. Core NATS has no acknowledgement and no
  redelivery: messages published while no hub is subscribed, and messages a hub holds when it
  dies, are lost. Use a JetStream stream for anything that matters.

**Publishing.** `nats.publish` with `jetstream: true` waits for the stream's acknowledgement
and sends `Nats-Msg-Id` = the step's idempotency key (or `msg_id`), so a retried step does not
store the message twice within the stream's duplicate window (2 minutes by default). The
header is sent on core publishes too (a stream capturing the subject de-duplicates with it).
A core publish is flushed to the server but not acknowledged by anyone.

A new durable consumer starts at `deliver_policy: new` (messages published from then on);
set `all` to process what the stream already holds. The durable name is derived from the flow
and the subject, so changing the subject starts a new consumer.

Each action call opens its own connection (no pool is shared between steps yet). The servers
are not behind the hub's SSRF guard: whoever may create connections chooses them.
"""


async def publish(ctx: Any, data: dict[str, Any]) -> dict[str, Any]:
    """Publish one message (to JetStream, waiting for its acknowledgement, if asked)."""
    settings = settings_of(ctx.connection, "nats.publish")
    subject = str(data["subject"])
    jetstream = bool(data.get("jetstream", False))
    what = f"nats.publish to {subject!r}"
    payload, content_type = encode_body(data["data"])
    msg_id = str(data.get("msg_id") or ctx.idempotency_key)
    headers = {"Content-Type": content_type, **(data.get("headers") or {}), "Nats-Msg-Id": msg_id}
    nc = await connect(settings, what)
    try:
        if jetstream:
            js = nc.jetstream(timeout=settings.timeout)
            ack = await js.publish(subject, payload, stream=data.get("stream"), headers=headers)
            result = {"stream": ack.stream, "seq": ack.seq, "duplicate": bool(ack.duplicate)}
        else:
            await nc.publish(subject, payload, headers=headers)
            await nc.flush(timeout=max(1, round(settings.timeout)))
            result = {"stream": None, "seq": None, "duplicate": False}
    except ActionError:
        raise
    except Exception as exc:
        raise jetstream_error(exc, settings, what) from None
    finally:
        with contextlib.suppress(Exception):
            await nc.close()
    ctx.log.info("%s: published %d bytes (msg id %s)", what, len(payload), msg_id)
    base = {"subject": subject, "bytes": len(payload), "msg_id": msg_id, "jetstream": jetstream}
    return {**base, **result}


async def test_connection(connection: dict[str, Any]) -> dict[str, Any]:
    """Connect and round-trip a PING; raise ActionError when the server refuses."""
    settings = Settings(connection)
    nc = await connect(settings, "nats connection test")
    try:
        await nc.flush(timeout=max(1, round(settings.timeout)))
        version = str(nc.connected_server_version)
        try:
            await nc.jetstream(timeout=settings.timeout).account_info()
            jetstream = True
        except Exception:  # no JetStream for this account (or at all)
            jetstream = False
    finally:
        with contextlib.suppress(Exception):
            await nc.close()
    return {"ok": True, "servers": settings.where, "version": version, "jetstream": jetstream}


PUBLISH = Action(
    name="publish",
    run=publish,
    title="Publish a message",
    description=(
        "Publish one message to a subject. A string is sent as text, anything else as JSON. "
        "With jetstream: true, waits for the stream's acknowledgement and de-duplicates "
        "retries through Nats-Msg-Id (the step's idempotency key)."
    ),
    input_schema=PUBLISH_INPUT,
    output_schema=PUBLISH_OUTPUT,
    needs_connection=True,
    timeout=60,
    examples=[
        {"input": {"subject": "orders.created", "data": {"id": 42}, "jetstream": True}},
        {"input": {"subject": "alerts", "data": "disk almost full"}},
    ],
)

MESSAGE = Trigger(
    name="message",
    kind="subscribe",
    title="Message on a subject",
    description=(
        "One run per message on a subject. Through JetStream (default) a message is "
        "acknowledged only once its run is recorded (at least once); core NATS has no "
        "redelivery (at most once)."
    ),
    config_schema=MESSAGE_CONFIG,
    output_schema=MESSAGE_EVENT,
    subscribe=consume,
)


@hookimpl
def hub_connectors() -> list[Connector]:
    """The ``nats`` connector."""
    return [
        Connector(
            name="nats",
            title="NATS",
            version="1",
            icon="nats",
            description="Publish to and consume from NATS subjects and JetStream streams.",
            connection_schema=CONNECTION_SCHEMA,
            actions=[PUBLISH],
            triggers=[MESSAGE],
            test_connection=test_connection,
            notes=NOTES,
        )
    ]
