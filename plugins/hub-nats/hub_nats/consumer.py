"""The ``nats.message`` subscribe trigger: a JetStream durable consumer, or a core subscription.

JetStream: a durable pull consumer with explicit acks. A message is acknowledged (with a
confirmed "double" ack) only after ``emit`` returned, that is once its run is committed; a
hub killed in between never acknowledged it, so JetStream delivers it again after
``ack_wait``. While a run is being recorded the consumer tells the server it is still working
on the message (``in_progress``), so a slow record does not cause a redelivery.

Core NATS (``jetstream: false``) has no acknowledgement and no redelivery: a message that
arrives while no hub is subscribed, or that a hub holds when it dies, is lost (at most once).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import hashlib
import re
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy

from hub import ActionError
from hub.plugin_kit.brokers import Emit, decode_body, record_then_ack
from hub_nats.client import connect, jetstream_error, settings_of

MESSAGE_CONFIG: dict[str, Any] = {
    "type": "object",
    "properties": {
        "subject": {
            "type": "string",
            "minLength": 1,
            "description": "The subject (wildcards * and > allowed).",
        },
        "jetstream": {
            "type": "boolean",
            "default": True,
            "description": "Consume through a JetStream durable consumer (at least once); "
            "false: a core NATS subscription (at most once, no redelivery).",
        },
        "stream": {
            "type": "string",
            "description": "The stream; default: the stream that captures the subject.",
        },
        "durable": {
            "type": "string",
            "pattern": "^[A-Za-z0-9_-]+$",
            "description": "The durable consumer's name; default: derived from the flow.",
        },
        "deliver_policy": {
            "enum": ["new", "all", "last"],
            "default": "new",
            "description": "Where a NEW durable consumer starts: messages published from now "
            "on, everything the stream holds, or its last message.",
        },
        "ack_wait": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 30,
            "description": "Seconds before an unacknowledged message is delivered again.",
        },
        "max_deliver": {
            "type": "integer",
            "minimum": 1,
            "description": "Deliveries of one message before JetStream gives up on it.",
        },
        "batch": {
            "type": "integer",
            "minimum": 1,
            "maximum": 256,
            "default": 10,
            "description": "Messages fetched per pull request.",
        },
        "queue": {
            "type": "string",
            "description": "Core NATS only: a queue group, so hub processes share messages.",
        },
    },
    "required": ["subject"],
    "additionalProperties": False,
}

MESSAGE_EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "subject": {"type": "string", "description": "The message's subject."},
        "data": {"description": "JSON when the data parses as JSON, else text (or base64)."},
        "encoding": {"enum": ["json", "text", "base64"], "description": "How data was decoded."},
        "headers": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "The message headers.",
        },
        "reply": {"type": ["string", "null"], "description": "Core NATS: the reply subject."},
        "msg_id": {"type": ["string", "null"], "description": "The Nats-Msg-Id header."},
        "jetstream": {"type": "boolean", "description": "Whether it came through JetStream."},
        "stream": {"type": ["string", "null"], "description": "JetStream: the stream."},
        "consumer": {"type": ["string", "null"], "description": "JetStream: the consumer."},
        "stream_seq": {"type": ["integer", "null"], "description": "JetStream: its sequence."},
        "delivered": {"type": ["integer", "null"], "description": "Deliveries so far (1 = first)."},
        "published_at": {
            "type": ["string", "null"],
            "description": "JetStream: when the stream stored it (UTC).",
        },
        "received_at": {"type": "string", "description": "When the hub received it (UTC)."},
    },
}

FETCH_TIMEOUT = 2.0


def durable_name(workspace_id: str, flow_id: str, subject: str, stream: str | None) -> str:
    """A stable durable name per flow and subject: a new subject means a new consumer."""
    digest = hashlib.sha1(f"{workspace_id}\0{flow_id}\0{subject}\0{stream}".encode()).hexdigest()
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", flow_id)[:40]
    return f"hub_{safe}_{digest[:10]}"


def to_event(msg: Msg, jetstream: bool, consumer: str | None = None) -> dict[str, Any]:
    """The trigger event of one message (documented in the README)."""
    headers = {str(k): str(v) for k, v in (msg.headers or {}).items()}
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
    data, encoding = decode_body(msg.data, content_type)
    event: dict[str, Any] = {
        "subject": msg.subject,
        "data": data,
        "encoding": encoding,
        "headers": headers,
        "reply": msg.reply or None,
        "msg_id": headers.get("Nats-Msg-Id"),
        "jetstream": jetstream,
        "stream": None,
        "consumer": None,
        "stream_seq": None,
        "delivered": None,
        "published_at": None,
        "received_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    if jetstream:
        meta = msg.metadata
        event.update(
            reply=None,
            stream=meta.stream,
            consumer=meta.consumer or consumer,
            stream_seq=meta.sequence.stream,
            delivered=meta.num_delivered,
            published_at=meta.timestamp.astimezone(dt.UTC).isoformat() if meta.timestamp else None,
        )
    return event


def jetstream_dedup_key(event: dict[str, Any]) -> str | None:
    """A JetStream message's stream and sequence identify it: a redelivery returns its run."""
    seq = event.get("stream_seq")
    return f"nats:{event.get('stream')}:{seq}" if seq is not None else None


async def _keep_in_progress(pending: list[Msg], every: float) -> None:
    """Tell JetStream that the messages still held are being worked on (resets ack_wait)."""
    while True:
        await asyncio.sleep(every)
        for msg in list(pending):
            with contextlib.suppress(Exception):
                await msg.in_progress()


async def consume(ctx: Any, config: dict[str, Any], emit: Emit) -> None:
    """The ``nats.message`` trigger: one run per message; JetStream acks after the record."""
    settings = settings_of(ctx.connection, "nats.message")
    subject = str(config["subject"])
    what = f"nats.message on subject {subject!r}"
    nc = await connect(settings, what, name=f"hub flow {ctx.flow_id}")
    try:
        if config.get("jetstream", True):
            await _consume_jetstream(ctx, config, emit, nc, settings, subject, what)
        else:
            await _consume_core(ctx, config, emit, nc, subject, what)
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


async def _consume_core(
    ctx: Any, config: dict[str, Any], emit: Emit, nc: Any, subject: str, what: str
) -> None:
    sub = await nc.subscribe(subject, queue=str(config.get("queue") or ""))
    await nc.flush(timeout=5)
    ctx.log.info("%s: consuming (core NATS, flow %s)", what, ctx.flow_id)
    async for msg in sub.messages:
        await record_then_ack(emit, to_event(msg, jetstream=False))
    raise ConnectionError(f"{what}: the subscription ended (connection closed)")


async def _consume_jetstream(
    ctx: Any,
    config: dict[str, Any],
    emit: Emit,
    nc: Any,
    settings: Any,
    subject: str,
    what: str,
) -> None:
    js = nc.jetstream(timeout=settings.timeout)
    try:
        stream = config.get("stream") or await js.find_stream_name_by_subject(subject)
    except nats.js.errors.NotFoundError:
        raise ActionError(f"{what}: no JetStream stream captures this subject") from None
    durable = config.get("durable") or durable_name(
        ctx.workspace_id, ctx.flow_id, subject, config.get("stream")
    )
    consumer_config = ConsumerConfig(
        durable_name=durable,
        deliver_policy=DeliverPolicy(config.get("deliver_policy") or "new"),
        ack_wait=float(config.get("ack_wait") or 30),
        max_deliver=config.get("max_deliver"),
        filter_subject=subject,
    )
    try:
        psub = await js.pull_subscribe(
            subject, durable=durable, stream=stream, config=consumer_config
        )
        info = await psub.consumer_info()
    except Exception as exc:
        raise jetstream_error(exc, settings, what) from None
    ack_wait = float(info.config.ack_wait or consumer_config.ack_wait or 30)
    batch = int(config.get("batch") or 10)
    ctx.log.info(
        "%s: consuming (stream %s, durable %s, flow %s)", what, stream, durable, ctx.flow_id
    )
    while True:
        if nc.is_closed:
            raise ConnectionError(f"{what}: the connection closed")
        try:
            msgs = await psub.fetch(batch, timeout=FETCH_TIMEOUT)
        except nats.errors.TimeoutError:
            continue
        await _deliver_batch(emit, msgs, durable, ack_wait)


async def _ack(msg: Msg, pending: list[Msg]) -> None:
    """Acknowledge a recorded message (confirmed by the server); it is no longer pending."""
    await msg.ack_sync(timeout=10)
    pending.remove(msg)


async def _deliver_batch(emit: Emit, msgs: list[Msg], durable: str, ack_wait: float) -> None:
    """Record each message in order, acking each once recorded; on failure nak the rest."""
    pending = list(msgs)
    keeper = asyncio.create_task(_keep_in_progress(pending, max(ack_wait / 3, 0.1)))
    try:
        for msg in msgs:
            event = to_event(msg, jetstream=True, consumer=durable)
            ack = functools.partial(_ack, msg, pending)
            await record_then_ack(emit, event, ack=ack, dedup_key=jetstream_dedup_key(event))
    except BaseException:
        # Not recorded (or not acknowledged): let JetStream deliver them again now.
        for msg in pending:
            with contextlib.suppress(Exception):
                await msg.nak()
        raise
    finally:
        keeper.cancel()
        with contextlib.suppress(BaseException):
            await keeper
