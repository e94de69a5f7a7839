"""A fixed corpus of hostile webhook requests, for every signature form the hub knows.

The forms: no signature (with urlencoded and multipart form bodies), generic HMAC (hex,
base64 with a prefix, GitHub's ``X-Hub-Signature-256: sha256=...``), Stripe
(``Stripe-Signature: t=...,v1=...``, and the Stripe preset's dedup key), Slack (the hub's
``slack`` scheme, ``X-Slack-Signature`` and ``X-Slack-Request-Timestamp``), Svix (Standard
Webhooks), and the two first-party plugin triggers that answer the service themselves
(``slack.events`` and ``hubspot.webhook``). For each: missing, empty, duplicated and
whitespace parts; non-ASCII digits in timestamps (``²`` arrives as a latin-1 header byte,
``٣`` as UTF-8 bytes); timestamps of 10**400, negative, fractional and 5,000 digits, each
*correctly signed* so that the timestamp itself is what is judged; unicode, non-hex and
non-base64 signatures; 64 KB headers; bodies that are not UTF-8, empty, under the wrong
content type, and JSON bombs (100,000 deep, 20,000 keys, a 10**400 number).

Every refused case must answer a 4xx in the documented error shape
(``{"error": {"code", "message", "details"}}``) and start no run; every valid one must be
accepted (2xx). The app runs in-process over ASGI on a started hub (SQLite and PostgreSQL,
the real engine); signatures are made here as the services document them.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import itertools
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import uvicorn
from hub_hubspot import plugin as hubspot_plugin
from hub_hubspot.webhooks import hubspot_signature
from hub_slack import plugin as slack_plugin
from hub_slack.events import slack_signature

from hub.app import create_app
from hub.runtime import Hub
from hub.settings import Settings
from hub.triggers.signatures import SCHEMES
from tests import kit
from tests.api_kit import error_shape_problem
from tests.conftest import make_hub, started

SECRET = "whsec-corpus-signing-secret"
BODY = b'{"order_id":"A-1","total":12.5}'
BASE_URL = "http://testserver.local"
KB = 1024
HUGE = "1" + "0" * 400  # 10**400: int() reads it; float arithmetic overflows on it
LONG = "9" * 5000  # past int()'s 4,300-digit limit

# Timestamps a sender controls: non-ASCII digits (as the bytes a header carries), huge,
# negative, fractional, empty, padded. Each is signed correctly in the cases below.
BAD_STAMPS: dict[str, bytes] = {
    "superscript two": b"\xb2",
    "superscripts": b"17\xb9\xb2\xb3",
    "arabic-indic three (utf-8)": "\u0663".encode(),
    "fullwidth (utf-8)": "\uff11\uff12".encode(),
    "10**400": HUGE.encode(),
    "5000 digits": LONG.encode(),
    "negative": b"-1700000000",
    "float": b"1700000000.5",
    "exponent": b"1.7e9",
    "empty": b"",
    "whitespace": b"   ",
    "underscores": b"1_700_000_000",
    "hex": b"0x65",
    "nul": b"17\x00",
}
BAD_SIGNATURES: dict[str, bytes] = {
    "empty": b"",
    "whitespace": b" \t ",
    "not hex": b"zz" * 32,
    "unicode digits": "\u00b2".encode("latin-1") * 64,
    "utf-8 text": "\u0663\u0663".encode() * 16,
    "odd hex": b"abc",
    "64 KB hex": b"ab" * 32 * KB,
    "64 KB junk": b"\xff" * 64 * KB,
    "control bytes": b"\x01\x02\x7f",
}


def deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# JSON bombs and bodies a sender controls: (body, content type, statuses that fit).
BOMBS: dict[str, tuple[bytes, str, set[int]]] = {
    "JSON 1,000 deep": (deep(1000), "application/json", {422}),
    "JSON 100,000 deep": (deep(100_000), "application/json", {422}),
    "objects 100,000 deep": (
        b'{"a":' * 99_999 + b"{}" + b"}" * 99_999,
        "application/json",
        {422},
    ),
    "20,000 keys": (
        b"{" + b",".join(b'"k%d":0' % i for i in range(20_000)) + b"}",
        "application/json",
        {413},
    ),
    "a 5,000-character key": (b'{"' + b"k" * 5000 + b'":1}', "application/json", {422}),
    "a 10**400 number": (HUGE.encode(), "application/json", {202, 400, 422}),
    "1e999": (b"1e999", "application/json", {400}),
    "a 5,000-digit negative number": (b"-" + LONG.encode(), "application/json", {400}),
    "invalid UTF-8 in JSON": (b'{"a":"\xff\xfe"}', "application/json", {400}),
    "a lone surrogate escape": (b'{"a":"\\ud800"}', "application/json", {400}),
    "truncated JSON": (b'{"a":[1,2', "application/json", {400}),
    "invalid UTF-8 text": (b"\xff\xfe\xfd", "text/plain", {415}),
    "past the body cap": (b"x" * 1_100_000, "text/plain", {413}),
}
# Bodies that are valid requests whatever their content type (data, never templates).
ACCEPTED_BODIES: dict[str, tuple[bytes, str]] = {
    "empty body": (b"", "application/json"),
    "duplicated keys": (b'{"a":1,"a":2}', "application/json"),
    "JSON as text/plain": (BODY, "text/plain"),
    "XML": (b"<a>1</a>", "application/xml"),
    "no content type": (BODY, ""),
    "a template in the body": (b'{"a":"{{ range(10**9)|list }}"}', "application/json"),
    "NUL in a string": (b'{"a":"\\u0000"}', "application/json"),
    "NUL in a key": (b'{"\\u0000":1}', "application/json"),
}


@dataclasses.dataclass(frozen=True)
class Case:
    """One request of the corpus and the statuses that fit it."""

    name: str
    headers: list[tuple[bytes, bytes]]
    body: bytes
    expect: set[int]
    content_type: str = "application/json"
    code: str | None = None  # the error code the answer must carry, when one fits


def hmac_hex(body: bytes) -> str:
    return hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


def stripe_header(stamp: bytes, body: bytes) -> bytes:
    """A Stripe-Signature whose v1 is correct for this exact ``t`` text and body."""
    digest = hmac.new(SECRET.encode(), stamp + b"." + body, hashlib.sha256).hexdigest()
    return b"t=" + stamp + b",v1=" + digest.encode()


def slack_headers(stamp: bytes, body: bytes) -> list[tuple[bytes, bytes]]:
    """The two Slack headers, the signature correct for this exact timestamp text."""
    digest = hmac.new(SECRET.encode(), b"v0:" + stamp + b":" + body, hashlib.sha256)
    return [
        (b"x-slack-request-timestamp", stamp),
        (b"x-slack-signature", b"v0=" + digest.hexdigest().encode()),
    ]


_SHIFT = itertools.count()


def now_stamp() -> bytes:
    """A current timestamp, a second earlier at each call (within the tolerance), so two
    signed requests with one body are not replays of each other."""
    return str(int(time.time()) - next(_SHIFT) % 120).encode()


def body_cases(sign: Callable[[bytes], list[tuple[bytes, bytes]]]) -> list[Case]:
    """The bombs and the odd-but-valid bodies, each correctly signed by ``sign``."""
    cases = [
        Case(name, sign(body), body, expect, content_type)
        for name, (body, content_type, expect) in BOMBS.items()
        if name != "past the body cap"
    ]
    body, content_type, expect = BOMBS["past the body cap"]
    cases.append(Case("past the body cap", [], body, expect, content_type))
    cases += [
        Case(name, sign(body), body, {200, 202}, content_type)
        for name, (body, content_type) in ACCEPTED_BODIES.items()
    ]
    return cases


# -- the cases of each form -----------------------------------------------------------------


def multipart(*parts: bytes, boundary: bytes = b"XyZ") -> bytes:
    """A multipart body of raw ``parts`` (each its headers, a blank line and its data)."""
    out = b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts)
    return out + b"--" + boundary + b"--\r\n"


def field(name: bytes, value: bytes, extra: bytes = b"") -> bytes:
    disposition = b'Content-Disposition: form-data; name="' + name + b'"' + extra
    return disposition + b"\r\n\r\n" + value


FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data; boundary=XyZ"


def nested_multipart(depth: int) -> bytes:
    body = field(b"a", b"1")
    for level in range(depth):
        boundary = b"b%d" % level
        inner = multipart(body, boundary=boundary)
        body = b"Content-Type: multipart/mixed; boundary=" + boundary + b"\r\n"
        body += b'Content-Disposition: form-data; name="n"\r\n\r\n' + inner
    return multipart(body)


# Form bodies (the webhook route decodes urlencoded and multipart forms).
FORMS: dict[str, tuple[bytes, str, set[int]]] = {
    "a form": (b"a=1&a=2&b=%C2%B2", FORM, {202}),
    "a form, not UTF-8": (b"a=\xff\xfe", FORM, {415}),
    "a form, %FF escapes": (b"a=%FF%FE", FORM, {415}),
    "a form of 20,000 fields": (b"&".join(b"f%d=1" % i for i in range(20_000)), FORM, {413}),
    "a form payload 100,000 deep": (b"payload=" + deep(100_000), FORM, {422}),
    "a form payload truncated": (b"payload=%7B%22a", FORM, {400}),
    "a form payload of a 10**400 number": (b"payload=[" + HUGE.encode() + b"]", FORM, {202}),
    "multipart": (multipart(field(b"a", b"1"), field(b"a", b"2")), MULTIPART, {202}),
    "multipart without a boundary": (multipart(field(b"a", b"1")), "multipart/form-data", {400}),
    "multipart with another boundary": (
        multipart(field(b"a", b"1")),
        "multipart/form-data; boundary=other",
        {400},
    ),
    "multipart garbage": (b"\xff\xfe--XyZ\r\n\r\n", MULTIPART, {400}),
    "multipart, a file": (
        multipart(field(b"f", b"data", b'; filename="a.txt"')),
        MULTIPART,
        {415},
    ),
    "multipart, no field name": (
        multipart(b"Content-Disposition: form-data\r\n\r\nx"),
        MULTIPART,
        {400},
    ),
    "multipart, not UTF-8": (multipart(field(b"a", b"\xff\xfe")), MULTIPART, {415}),
    "multipart, a name in an unknown charset": (
        multipart(b"Content-Disposition: form-data; name*=x-bogus''%FF%FE\r\n\r\nv"),
        MULTIPART,
        {202, 400},
    ),
    "multipart, base64 garbage": (
        multipart(
            b'Content-Disposition: form-data; name="a"\r\n'
            b"Content-Transfer-Encoding: base64\r\n\r\n***"
        ),
        MULTIPART,
        {202, 400, 415},
    ),
    "multipart, 20,000 parts": (
        multipart(*(field(b"f%d" % i, b"1") for i in range(20_000))),
        MULTIPART,
        {413},
    ),
    "multipart nested 200 deep": (nested_multipart(200), MULTIPART, {415}),
    "multipart nested 2,000 deep": (nested_multipart(2000), MULTIPART, {415}),
    "multipart nested 2,000 deep, RFC 2231 boundary": (
        nested_multipart(2000),
        "multipart/form-data; boundary*=utf-8''XyZ",
        {415},
    ),
    "multipart, a 64 KB boundary": (
        multipart(field(b"a", b"1"), boundary=b"b" * 64 * KB),
        "multipart/form-data; boundary=" + "b" * 64 * KB,
        {202, 400},
    ),
    "multipart, payload 100,000 deep": (
        multipart(field(b"payload", deep(100_000))),
        MULTIPART,
        {422},
    ),
}


def plain_cases() -> list[Case]:
    cases = body_cases(lambda body: [])
    cases += [
        Case(name, [], body, expect, content_type)
        for name, (body, content_type, expect) in FORMS.items()
    ]
    cases += [
        Case("a valid request", [], BODY, {202}),
        Case("64 KB header", [(b"x-anything", b"a" * 64 * KB)], BODY, {202}),
        Case("500 headers", [(b"x-h%d" % i, b"v" * 100) for i in range(500)], BODY, {202}),
        Case("Content-Length \xb2", [(b"content-length", b"\xb2")], BODY, {202, 400}),
        Case(
            "Content-Length 5000 digits",
            [(b"content-length", LONG.encode())],
            BODY,
            {202, 400, 413},
        ),
        Case("Idempotency-Key non-ASCII", [(b"idempotency-key", b"\xb2\xb3")], BODY, {400}),
        Case("Idempotency-Key 64 KB", [(b"idempotency-key", b"k" * 64 * KB)], BODY, {400}),
        Case("Idempotency-Key empty", [(b"idempotency-key", b"")], BODY, {400}),
    ]
    return cases


def hmac_cases(header: bytes, prefix: bytes, encode: Callable[[bytes], bytes]) -> list[Case]:
    def sign(body: bytes) -> list[tuple[bytes, bytes]]:
        return [(header, prefix + encode(body))]

    good = prefix + encode(BODY)
    cases = body_cases(sign)
    cases += [
        Case("a valid signature", sign(BODY), BODY, {202}),
        Case("padded with whitespace", [(header, b"  " + good + b"  ")], BODY, {202}),
        Case("missing", [], BODY, {401}, code="invalid_signature"),
        Case("duplicated header", [(header, good), (header, good)], BODY, {401}),
        Case("signature of another body", sign(b"{}"), BODY, {401}, code="invalid_signature"),
        Case("unsigned bomb", [], deep(100_000), {401}, code="invalid_signature"),
    ]
    if prefix:
        cases.append(Case("without the prefix", [(header, encode(BODY))], BODY, {401}))
        cases.append(Case("only the prefix", [(header, prefix)], BODY, {401}))
    for name, value in BAD_SIGNATURES.items():
        cases.append(Case(f"signature {name}", [(header, prefix + value)], BODY, {401}))
    return cases


def stripe_cases() -> list[Case]:
    header = b"stripe-signature"

    def sign(body: bytes) -> list[tuple[bytes, bytes]]:
        return [(header, stripe_header(now_stamp(), body))]

    now = now_stamp()
    good = stripe_header(now, BODY)
    v1 = good.split(b",v1=")[1]
    cases = body_cases(sign)
    cases += [
        Case("a valid signature", sign(BODY), BODY, {202}),
        Case("missing", [], BODY, {401}, code="invalid_signature"),
        Case("no t", [(header, b"v1=" + v1)], BODY, {401}),
        Case("no v1", [(header, b"t=" + now)], BODY, {401}),
        Case("t twice", [(header, b"t=" + now + b",t=" + now + b",v1=" + v1)], BODY, {401}),
        Case("duplicated header", [(header, good), (header, good)], BODY, {401}),
        Case("1,000 v1 parts", [(header, b"t=" + now + b",v1=00" * 1000)], BODY, {401}),
        Case("expired", [(header, stripe_header(b"1000000000", BODY))], BODY, {401}),
        Case("only commas", [(header, b",,,,")], BODY, {401}),
        Case("no equals signs", [(header, b"t,v1")], BODY, {401}),
        Case("64 KB", [(header, b"t=" + now + b",v1=" + b"a" * 64 * KB)], BODY, {401}),
    ]
    for name, stamp in BAD_STAMPS.items():
        cases.append(
            Case(f"t {name}, correctly signed", [(header, stripe_header(stamp, BODY))], BODY, {401})
        )
    for name, value in BAD_SIGNATURES.items():
        cases.append(Case(f"v1 {name}", [(header, b"t=" + now + b",v1=" + value)], BODY, {401}))
    return cases


SVIX_SECRET = "whsec_" + base64.b64encode(b"svix-corpus-key-0123456789").decode()


def svix_headers(
    stamp: bytes, body: bytes, message_id: bytes = b"msg_1", prefix: bytes = b"svix-"
) -> list[tuple[bytes, bytes]]:
    """Svix's three headers, the signature correct for these exact id and timestamp texts."""
    key = base64.b64decode(SVIX_SECRET.removeprefix("whsec_"))
    digest = hmac.new(key, message_id + b"." + stamp + b"." + body, hashlib.sha256).digest()
    return [
        (prefix + b"id", message_id),
        (prefix + b"timestamp", stamp),
        (prefix + b"signature", b"v1," + base64.b64encode(digest)),
    ]


def svix_cases() -> list[Case]:
    def sign(body: bytes) -> list[tuple[bytes, bytes]]:
        return svix_headers(now_stamp(), body, b"msg_%d" % next(_SHIFT))

    def with_signature(template: bytes) -> list[tuple[bytes, bytes]]:
        headers = sign(BODY)
        return [*headers[:2], (headers[2][0], template.replace(b"{}", headers[2][1]))]

    def drop(headers: list[tuple[bytes, bytes]], index: int) -> list[tuple[bytes, bytes]]:
        return [h for i, h in enumerate(headers) if i != index]

    def twice(headers: list[tuple[bytes, bytes]], index: int) -> list[tuple[bytes, bytes]]:
        return [*headers, headers[index]]

    good = sign(BODY)
    v1 = good[2][1]
    cases = body_cases(sign)
    cases += [
        Case("a valid signature", sign(BODY), BODY, {202}),
        Case(
            "Standard Webhooks names",
            svix_headers(now_stamp(), BODY, b"msg_std", b"webhook-"),
            BODY,
            {202},
        ),
        Case("two signatures, one right", with_signature(b"v1,AAAA {}"), BODY, {202}),
        Case("no id", sign(BODY)[1:], BODY, {401}, code="invalid_signature"),
        Case("no timestamp", drop(sign(BODY), 1), BODY, {401}, code="invalid_signature"),
        Case("no signature", sign(BODY)[:2], BODY, {401}, code="invalid_signature"),
        # Two headers are one, comma-joined: the same signature twice may pass.
        Case("duplicated signature header", twice(sign(BODY), 2), BODY, {202, 401}),
        Case("duplicated timestamp header", twice(sign(BODY), 1), BODY, {401}),
        Case("1,000 v1 parts", with_signature(b"v1,AAAA " * 1000 + b"{}"), BODY, {401}),
        Case("v2 only", [*good[:2], (good[2][0], b"v2," + v1[3:])], BODY, {401}),
        Case("expired", svix_headers(b"1000000000", BODY, b"msg_old"), BODY, {401}),
        Case("64 KB id", svix_headers(now_stamp(), BODY, b"m" * 64 * KB), BODY, {202, 401}),
        Case("non-ASCII id", svix_headers(now_stamp(), BODY, b"\xb2\xff"), BODY, {202, 401}),
    ]
    for name, stamp in BAD_STAMPS.items():
        headers = svix_headers(stamp, BODY, b"msg_" + name.replace(" ", "_").encode())
        cases.append(Case(f"timestamp {name}, correctly signed", headers, BODY, {401}))
    for name, value in BAD_SIGNATURES.items():
        cases.append(
            Case(f"signature {name}", [*good[:2], (good[2][0], b"v1," + value)], BODY, {401})
        )
    return cases


def stripe_preset_cases() -> list[Case]:
    """Stripe's preset: the signature, and the event's ``id`` field as the dedup key."""
    header = b"stripe-signature"

    def signed(body: bytes, expect: set[int], name: str) -> Case:
        return Case(name, [(header, stripe_header(now_stamp(), body))], body, expect)

    ids: dict[str, tuple[bytes, set[int]]] = {
        "an event id": (b'"evt_1"', {202}),
        "the same id again": (b'"evt_1"', {200}),
        "a 400-digit id": (HUGE.encode(), {202}),
        "a 4,300-digit id": (b"7" * 4300, {202}),
        "a 100,000-character id": (b'"' + b"e" * 100_000 + b'"', {202}),
        "a non-ASCII id": ('"\u00b2\u0663"'.encode(), {202}),
        "a NUL id": (b'"\\u0000"', {202}),
        "an empty id": (b'""', {400}),
        "a blank id": (b'"   "', {400}),
        "a null id": (b"null", {400}),
        "a boolean id": (b"true", {400}),
        "a float id": (b"1.5", {400}),
        "an object id": (b'{"a":1}', {400}),
        "a deep id": (deep(1000), {422}),
    }
    cases = [signed(b'{"id":' + raw + b"}", expect, name) for name, (raw, expect) in ids.items()]
    cases.append(signed(b'{"type":"x"}', {400}, "no id"))
    cases.append(signed(b"[1,2]", {400}, "a list body"))
    cases.append(signed(b"", {400}, "an empty body"))
    return cases


def slack_scheme_cases() -> list[Case]:
    def sign(body: bytes) -> list[tuple[bytes, bytes]]:
        return slack_headers(now_stamp(), body)

    now = now_stamp()
    good = slack_headers(now, BODY)
    cases = body_cases(sign)
    cases += [
        Case("a valid signature", sign(BODY), BODY, {202}),
        Case("no timestamp", good[1:], BODY, {401}, code="invalid_signature"),
        Case("no signature", good[:1], BODY, {401}, code="invalid_signature"),
        Case("duplicated timestamp", [good[0], *good], BODY, {401}),
        Case("duplicated signature", [*good, good[1]], BODY, {401}),
        Case(
            "v1= instead of v0=",
            [good[0], (b"x-slack-signature", b"v1=" + good[1][1][3:])],
            BODY,
            {401},
        ),
        Case("expired", slack_headers(b"1000000000", BODY), BODY, {401}),
    ]
    for name, stamp in BAD_STAMPS.items():
        cases.append(
            Case(f"timestamp {name}, correctly signed", slack_headers(stamp, BODY), BODY, {401})
        )
    for name, value in BAD_SIGNATURES.items():
        cases.append(
            Case(
                f"signature {name}", [good[0], (b"x-slack-signature", b"v0=" + value)], BODY, {401}
            )
        )
    return cases


SLACK_EVENT = (
    b'{"type":"event_callback","event_id":"Ev1","event":{"type":"app_mention","text":"hi"}}'
)


def slack_plugin_headers(stamp: bytes, body: bytes) -> list[tuple[bytes, bytes]]:
    signature = slack_signature(SECRET, stamp.decode("latin-1"), body).encode("latin-1")
    return [(b"x-slack-request-timestamp", stamp), (b"x-slack-signature", signature)]


def slack_plugin_cases() -> list[Case]:
    def sign(body: bytes) -> list[tuple[bytes, bytes]]:
        return slack_plugin_headers(now_stamp(), body)

    good = sign(SLACK_EVENT)
    challenge = b'{"type":"url_verification","challenge":"c1"}'
    cases = [
        Case("a valid event", good, SLACK_EVENT, {200}),
        Case("the url_verification handshake", sign(challenge), challenge, {200}),
        Case("retry number \xb2", [*good, (b"x-slack-retry-num", b"\xb2")], SLACK_EVENT, {200}),
        Case(
            "retry number 5000 digits",
            [*good, (b"x-slack-retry-num", LONG.encode())],
            SLACK_EVENT,
            {200},
        ),
        Case("no signature", [], SLACK_EVENT, {401}),
        Case("JSON 100,000 deep, signed", sign(deep(100_000)), deep(100_000), {422}),
        Case("JSON 1,000 deep, signed", sign(deep(1000)), deep(1000), {422}),
        Case("not JSON, signed", sign(b"\xff"), b"\xff", {400}),
        Case("a list, signed", sign(b"[]"), b"[]", {400}),
        Case("past the body cap", [], b"x" * 1_100_000, {413}, "text/plain"),
    ]
    for name, stamp in BAD_STAMPS.items():
        cases.append(
            Case(
                f"timestamp {name}, signed",
                slack_plugin_headers(stamp, SLACK_EVENT),
                SLACK_EVENT,
                {401},
            )
        )
    for name, value in BAD_SIGNATURES.items():
        headers = [good[0], (b"x-slack-signature", b"v0=" + value)]
        cases.append(Case(f"signature {name}", headers, SLACK_EVENT, {401}))
    return cases


HUBSPOT_EVENT = (
    b'[{"eventId":1,"subscriptionId":2,"portalId":3,"subscriptionType":"contact.creation"}]'
)


def hubspot_headers(path: str, stamp: bytes, body: bytes) -> list[tuple[bytes, bytes]]:
    text = stamp.decode("latin-1")
    signature = hubspot_signature(SECRET, "POST", BASE_URL + path, body, text)
    return [
        (b"x-hubspot-request-timestamp", stamp),
        (b"x-hubspot-signature-v3", signature.encode()),
    ]


def hubspot_cases(path: str) -> list[Case]:
    def sign(body: bytes) -> list[tuple[bytes, bytes]]:
        return hubspot_headers(path, str(int(time.time() * 1000)).encode(), body)

    good = sign(HUBSPOT_EVENT)
    cases = [
        Case("a valid batch", good, HUBSPOT_EVENT, {200}),
        Case("no signature", [], HUBSPOT_EVENT, {401}),
        Case("JSON 100,000 deep, signed", sign(deep(100_000)), deep(100_000), {422}),
        Case("not JSON, signed", sign(b"\xff"), b"\xff", {400}),
    ]
    for name, stamp in BAD_STAMPS.items():
        headers = hubspot_headers(path, stamp, HUBSPOT_EVENT)
        cases.append(Case(f"timestamp {name}, signed", headers, HUBSPOT_EVENT, {401}))
    for name, value in BAD_SIGNATURES.items():
        headers = [good[0], (b"x-hubspot-signature-v3", value)]
        cases.append(Case(f"signature {name}", headers, HUBSPOT_EVENT, {401}))
    return cases


# -- running a corpus -----------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """Both databases: PostgreSQL refuses what SQLite stores (NUL in text)."""
    return str(request.param)


@pytest.fixture
async def hub(settings: Settings) -> AsyncIterator[Hub]:
    """A started hub with the kit, Slack and HubSpot plugins and the signing secrets."""
    plugins = (kit, slack_plugin, hubspot_plugin)
    async with started(settings, plugins=plugins) as instance:
        await instance.set_connection("hook-secret", "core", {"secret": SECRET})
        await instance.set_connection(
            "slack-app", "slack", {"bot_token": "xoxb-1-2", "signing_secret": SECRET}
        )
        await instance.set_connection(
            "hubspot-app", "hubspot", {"access_token": "pat-1", "client_secret": SECRET}
        )
        yield instance


@pytest.fixture
async def client(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(hub, manage_hub=False, bootstrap=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as c:
        yield c


async def run_corpus(
    hub: Hub, client: httpx.AsyncClient, flow_id: str, trigger: dict[str, Any], cases: list[Case]
) -> None:
    """Send every case to a flow with ``trigger``; fail listing every case answered wrong,
    and when a refused case started a run."""
    document = {
        "id": flow_id,
        "trigger": trigger,
        "steps": [{"id": "keep", "action": "data.set", "input": {"value": "{{ trigger }}"}}],
    }
    await hub.save_flow(document, publish=True)
    path = f"/hooks/default/{flow_id}"
    failures: list[str] = []
    accepted = 0
    for case in cases:
        headers = list(case.headers)
        if case.content_type and not any(k == b"content-type" for k, _ in headers):
            headers.append((b"content-type", case.content_type.encode()))
        response = await client.post(path, content=case.body, headers=headers)
        status = response.status_code
        if status not in case.expect:
            failures.append(
                f"{case.name}: {status} (expected {sorted(case.expect)}) {response.text[:200]}"
            )
            continue
        if status < 400:
            accepted += 1 if status in (200, 202) else 0
            continue
        problem = error_shape_problem(response)
        if (
            problem is None
            and case.code is not None
            and response.json()["error"]["code"] != case.code
        ):
            problem = f"code {response.json()['error']['code']!r}, not {case.code!r}"
        if problem is not None:
            failures.append(f"{case.name}: {status} {problem}")
    assert not failures, f"{len(failures)} of {len(cases)} cases:\n" + "\n".join(failures)
    runs = await hub.list_runs(flow_id=flow_id, limit=1000)
    assert len(runs) <= accepted, f"{len(runs)} runs for {accepted} accepted requests"


async def test_plain_webhooks_refuse_hostile_bodies_with_4xx(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    await run_corpus(hub, client, "plain", {"type": "webhook"}, plain_cases())


def nested_parts(depth: int, content_type: Callable[[bytes], bytes]) -> bytes:
    """``depth`` parts each inside the last, each part's Content-Type ``content_type(boundary)``
    (the boundary its own body is delimited by)."""
    body = field(b"a", b"1")
    for level in range(depth):
        boundary = b"b%d" % level
        body = (
            b"Content-Type: "
            + content_type(boundary)
            + b'\r\nContent-Disposition: form-data; name="n"\r\n\r\n'
            + multipart(body, boundary=boundary)
        )
    return multipart(body)


def nested_messages(depth: int) -> bytes:
    """A field whose part is a message holding a message, ``depth`` deep."""
    part = b'Content-Disposition: form-data; name="n"\r\n'
    return multipart(part + b"Content-Type: message/rfc822\r\n\r\n" * depth + b"x")


NESTED_2231 = "multipart/form-data; boundary*=utf-8''XyZ"


@pytest.mark.parametrize(
    ("body", "form_type"),
    [
        (nested_parts(2000, lambda b: b"multipart/mixed; boundary*=utf-8''" + b), MULTIPART),
        (nested_parts(2000, lambda b: b"multipart/mixed; boundary*0=" + b), MULTIPART),
        (nested_parts(2000, lambda b: b"multipart/mixed; boundary*=utf-8''" + b), NESTED_2231),
        (
            nested_parts(2000, lambda b: b"Multipart/Mixed;\r\n boundary*0=" + b),
            "multipart/form-data; boundary*0=XyZ",
        ),
        (nested_messages(2000), MULTIPART),
    ],
    ids=["part 2231", "part 2231 continued", "both 2231", "folded, both 2231", "messages"],
)
async def test_nested_parts_are_refused_before_parsing_however_the_boundary_is_written(
    hub: Hub,
    client: httpx.AsyncClient,
    body: bytes,
    form_type: str,
) -> None:
    """Parts nested 2,000 deep, boundaries written the RFC 2231 way (``boundary*=``,
    ``boundary*0=``, in the parts and in the form's own Content-Type) or messages inside
    messages: a flat-form 415 in the error shape before the body is parsed, and no run starts.
    (The form's boundary read by a ``boundary=`` pattern let ``boundary*=`` bodies reach the
    email parser, which recursed for about 0.6 s before its RecursionError became a 400.)"""
    document = {
        "id": "nested",
        "trigger": {"type": "webhook"},
        "steps": [{"id": "keep", "action": "data.set", "input": {"value": "{{ trigger }}"}}],
    }
    await hub.save_flow(document, publish=True)
    response = await client.post(
        "/hooks/default/nested",
        content=body,
        headers={"content-type": form_type},
    )
    assert response.status_code == 415, response.text[:300]
    assert error_shape_problem(response) is None
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert await hub.list_runs(flow_id="nested", limit=10) == []


@pytest.mark.parametrize(
    ("form", "signature", "prefix", "encode"),
    [
        ("hex", {"header": "X-Signature"}, b"", lambda b: hmac_hex(b).encode()),
        (
            "base64",
            {"header": "X-Signature", "encoding": "base64", "prefix": "sha256="},
            b"sha256=",
            lambda b: base64.b64encode(bytes.fromhex(hmac_hex(b))),
        ),
        (
            "github",
            {"header": "X-Hub-Signature-256", "prefix": "sha256="},
            b"sha256=",
            lambda b: hmac_hex(b).encode(),
        ),
    ],
)
async def test_hmac_signatures_refuse_every_hostile_variant_with_4xx(
    hub: Hub,
    client: httpx.AsyncClient,
    form: str,
    signature: dict[str, Any],
    prefix: bytes,
    encode: Callable[[bytes], bytes],
) -> None:
    trigger = {
        "type": "webhook",
        "config": {"signature": {"secret_ref": "hook-secret", **signature}},
    }
    header = signature["header"].lower().encode()
    await run_corpus(hub, client, f"hmac-{form}", trigger, hmac_cases(header, prefix, encode))


async def test_stripe_signatures_refuse_every_hostile_variant_with_4xx(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    signature = {"scheme": "stripe", "secret_ref": "hook-secret"}
    trigger = {"type": "webhook", "config": {"signature": signature}}
    await run_corpus(hub, client, "stripe", trigger, stripe_cases())


async def test_the_stripe_preset_dedups_on_hostile_ids_without_a_5xx(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    trigger = {
        "type": "webhook",
        "config": {"sender": {"preset": "stripe", "secret_ref": "hook-secret"}},
    }
    await run_corpus(hub, client, "stripe-preset", trigger, stripe_preset_cases())


async def test_slack_signatures_refuse_every_hostile_variant_with_4xx(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    signature = {"scheme": "slack", "secret_ref": "hook-secret"}
    trigger = {"type": "webhook", "config": {"signature": signature}}
    await run_corpus(hub, client, "slack", trigger, slack_scheme_cases())


@pytest.mark.skipif("svix" not in SCHEMES, reason="no svix scheme in this checkout")
async def test_svix_signatures_refuse_every_hostile_variant_with_4xx(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    await hub.set_connection("svix-secret", "core", {"secret": SVIX_SECRET})
    signature = {"scheme": "svix", "secret_ref": "svix-secret"}
    trigger = {"type": "webhook", "config": {"signature": signature}}
    await run_corpus(hub, client, "svix", trigger, svix_cases())


async def test_the_slack_events_trigger_refuses_every_hostile_variant_with_4xx(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    trigger = {"type": "slack.events", "connection": "slack-app"}
    await run_corpus(hub, client, "slack-events", trigger, slack_plugin_cases())


async def test_the_hubspot_trigger_refuses_every_hostile_variant_with_4xx(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    trigger = {"type": "hubspot.webhook", "connection": "hubspot-app"}
    cases = hubspot_cases("/hooks/default/hubspot-events")
    await run_corpus(hub, client, "hubspot-events", trigger, cases)


def test_the_corpus_covers_every_scheme_the_hub_verifies() -> None:
    """A new scheme in hub/triggers/signatures.py needs its corpus here."""
    assert set(SCHEMES) <= {"hmac", "stripe", "slack", "svix"}, "add the new scheme's corpus"


# -- the same through a real HTTP server ----------------------------------------------------

RAW_REQUESTS: dict[str, bytes] = {
    "a raw non-ASCII byte in the path": b"POST /hooks/default/plain\xb2 HTTP/1.1\r\n",
    "a raw byte in the query": b"POST /hooks/default/plain?a=\xff HTTP/1.1\r\n",
    "NUL escaped in the path": b"POST /hooks/%00/plain HTTP/1.1\r\n",
    "invalid UTF-8 escaped in the path": b"POST /hooks/default/%ff%fe HTTP/1.1\r\n",
    "Content-Length \xb2": b"POST /hooks/default/plain HTTP/1.1\r\nContent-Length: \xb2\r\n",
    "Content-Length of 5000 digits": (
        b"POST /hooks/default/plain HTTP/1.1\r\nContent-Length: " + LONG.encode() + b"\r\n"
    ),
    "a NUL in a header": b"POST /hooks/default/plain HTTP/1.1\r\nX-A: a\x00b\r\n",
    "a 64 KB header": b"POST /hooks/default/plain HTTP/1.1\r\nX-A: " + b"a" * 64 * KB + b"\r\n",
    "latin-1 bytes in a header": b"POST /hooks/default/plain HTTP/1.1\r\nX-A: \xb2\xff\r\n",
    "a bad chunk": b"POST /hooks/default/plain HTTP/1.1\r\nTransfer-Encoding: chunked\r\n",
    "latin-1 bytes in Authorization": b"GET /api/me HTTP/1.1\r\nAuthorization: Bearer \xff\xb2\r\n",
    "latin-1 bytes in the cookie": b"GET /api/me HTTP/1.1\r\nCookie: hub_session=\xff\xb2\r\n",
    "latin-1 bytes in Host": b"GET /api/me HTTP/1.1\r\nHost: \xff\xb2\r\n",
    "an absolute URI": b"GET http://elsewhere.invalid/api/me HTTP/1.1\r\n",
}


def raw_exchange(port: int, head: bytes) -> bytes:
    """Send one raw request (a Host header and a small body added) and read the answer."""
    if b"\r\nhost:" not in head.lower():
        head += b"Host: 127.0.0.1\r\n"
    if b"chunked" in head:
        message = head + b"\r\nzz\r\n"
    elif b"content-length" in head.lower():
        message = head + b"\r\n"
    else:
        message = head + b"Content-Length: 2\r\n\r\n{}"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(message)
        answer = b""
        while b"\r\n\r\n" not in answer:
            piece = conn.recv(65536)
            if not piece:
                break
            answer += piece
    return answer


def test_raw_requests_through_uvicorn_answer_no_5xx(settings: Settings) -> None:
    """What only a real HTTP server lets through (raw bytes, malformed framing) is answered
    2xx or 4xx (by uvicorn itself for what is not HTTP), never 5xx, with the server still up."""

    async def publish() -> None:
        async with started(settings) as seeding:
            await seeding.save_flow(
                {
                    "id": "plain",
                    "trigger": {"type": "webhook"},
                    "steps": [{"id": "keep", "action": "data.set", "input": {"value": 1}}],
                },
                publish=True,
            )

    asyncio.run(publish())
    hub = make_hub(settings, plugins=(kit,))
    app = create_app(hub, bootstrap=False)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", proxy_headers=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline and thread.is_alive():
            time.sleep(0.05)
        assert server.started, "uvicorn did not start"
        failures = []
        accepted = []
        for name, head in RAW_REQUESTS.items():
            answer = raw_exchange(port, head)
            status = answer.split(b" ", 2)[1] if answer.startswith(b"HTTP/1.1 ") else b"?"
            if not status.startswith((b"2", b"4")):
                failures.append(f"{name}: {answer[:120]!r}")
            if status == b"202":
                accepted.append(name)
        # Those that are HTTP reach the webhook and start a run.
        assert "latin-1 bytes in a header" in accepted, accepted
        health = raw_exchange(port, b"GET /healthz HTTP/1.1\r\n")
        assert health.startswith(b"HTTP/1.1 200"), health[:200]
        assert not failures, "\n".join(failures)
    finally:
        server.should_exit = True
        thread.join(30)
