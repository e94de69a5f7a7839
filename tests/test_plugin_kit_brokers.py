"""hub.plugin_kit.brokers: bodies encoded and decoded, and the consumer's step around emit.

The broker plugins (hub-amqp, hub-mqtt, hub-nats) test the same pieces against the real
brokers; these tests pin each rule down without one: what is acknowledged when, what is
handed back, what a stopping hub does with a record in hand.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import pytest

from hub.plugin_kit import brokers
from hub.plugin_kit.brokers import decode_body, encode_body, record, record_then_ack, tls_context


@pytest.mark.parametrize(
    ("value", "content_type", "sent"),
    [
        ("héllo", None, (b"h\xc3\xa9llo", "text/plain; charset=utf-8")),
        ({"n": 1, "s": "é"}, None, (b'{"n":1,"s":"\xc3\xa9"}', "application/json")),
        ([1, None], "application/x-list", (b"[1,null]", "application/x-list")),
        ("<a/>", "text/xml", (b"<a/>", "text/xml")),
    ],
)
def test_encode_body_sends_a_string_as_text_and_anything_else_as_json(
    value: Any, content_type: str | None, sent: tuple[bytes, str]
) -> None:
    assert encode_body(value, content_type) == sent


@pytest.mark.parametrize(
    ("body", "content_type", "decoded"),
    [
        (b'{"order": 1}', None, ({"order": 1}, "json")),
        (b'{"order": 1}', "application/json", ({"order": 1}, "json")),
        (b'{"order": 1}', "Text/Plain", ('{"order": 1}', "text")),
        (b"plain words", None, ("plain words", "text")),
        (b"42", None, (42, "json")),
        (b"  ", None, ("  ", "text")),
        (b"", None, ("", "text")),
        (bytearray(b"\xff\x00binary"), None, ("/wBiaW5hcnk=", "base64")),
        (memoryview(b'"x"'), None, ("x", "json")),
    ],
)
def test_decode_body_gives_json_else_text_else_base64(
    body: Any, content_type: str | None, decoded: tuple[Any, str]
) -> None:
    assert decode_body(body, content_type) == decoded


def test_tls_context_verifies_and_trusts_a_private_ca_when_given() -> None:
    context = tls_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    with pytest.raises(ssl.SSLError):  # the PEM is read: garbage is refused
        tls_context("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----")


class Broker:
    """What a consumer told the broker about one message."""

    def __init__(self) -> None:
        self.said: list[str] = []

    async def ack(self) -> None:
        self.said.append("ack")

    async def nack(self) -> None:
        self.said.append("nack")


def recorder(runs: list[tuple[Any, str | None]], *, fail: bool = False) -> Any:
    async def emit(event: Any, dedup_key: str | None = None) -> str:
        if fail:
            raise RuntimeError("database is down")
        runs.append((event, dedup_key))
        return f"run-{len(runs)}"

    return emit


async def test_a_recorded_event_is_acknowledged_after_emit_with_its_dedup_key() -> None:
    runs: list[tuple[Any, str | None]] = []
    broker = Broker()
    await record_then_ack(
        recorder(runs), {"n": 1}, ack=broker.ack, nack=broker.nack, dedup_key="amqp:m-1"
    )
    assert runs == [({"n": 1}, "amqp:m-1")] and broker.said == ["ack"]


async def test_without_a_dedup_key_emit_is_called_with_the_event_alone() -> None:
    seen: list[Any] = []

    async def emit(event: Any) -> str:  # an emit that knows no dedup key
        seen.append(event)
        return "run-1"

    assert await record(emit, "e") is False
    await record_then_ack(emit, "f")  # no ack, no nack: a broker without acknowledgements
    assert seen == ["e", "f"]


async def test_an_event_not_recorded_is_handed_back_and_the_error_raised() -> None:
    broker = Broker()
    with pytest.raises(RuntimeError, match="database is down"):
        await record_then_ack(recorder([], fail=True), {}, ack=broker.ack, nack=broker.nack)
    assert broker.said == ["nack"]


async def test_a_failing_nack_does_not_hide_why_the_record_failed() -> None:
    async def broken_nack() -> None:
        raise ConnectionError("channel closed")

    with pytest.raises(RuntimeError, match="database is down"):
        await record_then_ack(recorder([], fail=True), {}, nack=broken_nack)


async def test_a_hub_stopping_during_the_record_finishes_it_acks_then_stops() -> None:
    release = asyncio.Event()
    runs: list[Any] = []
    broker = Broker()

    async def slow_emit(event: Any) -> str:
        await release.wait()
        runs.append(event)
        return "run-1"

    task = asyncio.create_task(record_then_ack(slow_emit, "e", ack=broker.ack, nack=broker.nack))
    await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.sleep(0.01)
    assert not task.done()  # the record in hand is not abandoned
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert runs == ["e"] and broker.said == ["ack"]


async def test_a_record_that_outlasts_the_grace_is_handed_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(brokers, "RECORD_GRACE", 0.05)
    broker = Broker()

    async def stuck_emit(event: Any) -> str:
        await asyncio.sleep(3600)
        return "never"

    task = asyncio.create_task(record_then_ack(stuck_emit, "e", ack=broker.ack, nack=broker.nack))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert broker.said == ["nack"]
