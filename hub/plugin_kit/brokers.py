"""What every broker connector needs: message bodies, TLS, and the consumer's step around emit.

A subscribe trigger (``subscribe(ctx, config, emit)``) consumes a broker's messages for as
long as the hub runs. For each message it decodes the body (:func:`decode_body`), builds the
event, and calls :func:`record_then_ack`, which gives the event to ``emit`` and
acknowledges the message only once ``emit`` has returned, that is once the run is committed
in the hub's database. A hub killed between the two never acknowledged the message, so the
broker delivers it again (at least once); a dedup key (the broker's message id) makes that
second delivery return the run the first one started. When the consumer's connection ends,
the trigger raises (``ConnectionError``, or an :class:`hub.ActionError`): the hub's trigger
runner restarts it with back-off.

The publishing side uses :func:`encode_body` (a string as text, anything else as JSON), and
both sides :func:`tls_context` for a connection with a private CA.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = [
    "RECORD_GRACE",
    "Emit",
    "decode_body",
    "encode_body",
    "record",
    "record_then_ack",
    "tls_context",
]

Emit = Callable[..., Awaitable[Any]]
"""The ``emit`` a subscribe trigger is given: ``await emit(event, dedup_key=...)`` returns
the id of the run once it is committed."""

RECORD_GRACE = 30.0
"""Seconds a stopping hub waits for a record already under way before it lets go."""


def encode_body(value: Any, content_type: str | None = None) -> tuple[bytes, str]:
    """The bytes to send and their content type: a string as UTF-8 text, anything else as JSON.

    JSON is written compactly, non-ASCII characters as they are. ``content_type``, when
    given, is returned instead of the default (``text/plain; charset=utf-8`` or
    ``application/json``).
    """
    if isinstance(value, str):
        return value.encode("utf-8"), content_type or "text/plain; charset=utf-8"
    data = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return data, content_type or "application/json"


def decode_body(body: bytes | bytearray | memoryview, content_type: str | None) -> tuple[Any, str]:
    """``(value, encoding)`` of a received body: ``json``, ``text`` or ``base64``.

    JSON when the body is UTF-8 that parses as JSON, else the text, else (not UTF-8) its
    base64. A ``text/*`` content type keeps the body as text even when it would parse as JSON.
    """
    data = bytes(body)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), "base64"
    if not (content_type or "").lower().startswith("text/") and text.strip():
        try:
            return json.loads(text), "json"
        except ValueError:
            pass
    return text, "text"


def tls_context(ca_cert: str | None = None) -> ssl.SSLContext:
    """A verifying TLS client context that trusts the system's CAs, or ``ca_cert`` (PEM) only."""
    return ssl.create_default_context(cadata=ca_cert) if ca_cert else ssl.create_default_context()


async def record(emit: Emit, event: Any, *, dedup_key: str | None = None) -> bool:
    """Give ``event`` to ``emit`` and wait until its run is recorded; raise what emit raised.

    The record is shielded from cancellation: when the hub stops (this task is cancelled)
    meanwhile, the record still gets up to :data:`RECORD_GRACE` seconds to finish. Returns
    True when that happened and the record finished (the caller acknowledges the message,
    then stops by raising :class:`asyncio.CancelledError`), False after a plain record. A
    cancellation whose record did not finish is re-raised: the message stays
    unacknowledged, and the broker delivers it again.
    """
    pending = emit(event, dedup_key=dedup_key) if dedup_key else emit(event)
    task = asyncio.ensure_future(pending)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(task, RECORD_GRACE)
        if task.done() and not task.cancelled() and task.exception() is None:
            return True
        raise
    return False


async def record_then_ack(
    emit: Emit,
    event: Any,
    *,
    ack: Callable[[], Awaitable[Any]] | None = None,
    nack: Callable[[], Awaitable[Any]] | None = None,
    dedup_key: str | None = None,
) -> None:
    """Record ``event`` (:func:`record`), then ``await ack()``; ``await nack()`` if not recorded.

    ``ack`` acknowledges the message to the broker (None: the broker has no
    acknowledgement); ``nack`` hands it back for redelivery now (None: the broker redelivers
    what was not acknowledged by itself); a failing ``nack`` is ignored, and what prevented
    the record is raised. ``dedup_key`` (the broker's id of the message) makes a redelivered
    message return the run that its first delivery started. A hub stopping during the record
    acknowledges a record that finished (a failing ``ack`` is then ignored) and raises
    :class:`asyncio.CancelledError`.
    """
    try:
        stopping = await record(emit, event, dedup_key=dedup_key)
    except BaseException:
        if nack is not None:
            with contextlib.suppress(Exception):
                await nack()
        raise
    if stopping:
        if ack is not None:
            with contextlib.suppress(Exception):
                await ack()
        raise asyncio.CancelledError
    if ack is not None:
        await ack()
