"""Webhook signature schemes, checked over the raw body: generic HMAC, Stripe's, Slack's and
Svix's (Standard Webhooks).

Each verifier takes the scheme's settings (a flow's ``trigger.config.signature``), the
candidate secrets (several during a rotation), the request headers (lower-case names), the
raw body and the current time, and returns a :class:`Verified` or raises
:class:`SignatureError` with a reason (``missing``, ``malformed``, ``mismatch``,
``expired``). Comparisons are constant-time (:func:`hmac.compare_digest` on the digests).

Every header is read as untrusted text: a timestamp is at most :data:`MAX_TIMESTAMP_DIGITS`
ASCII digits (``str.isdigit`` also accepts ``'²'``, which ``int`` refuses, and ``'٣'``, which
it reads as 3), a header part given twice is refused, and anything else is a
:class:`SignatureError` (401), never an unexpected exception.

Timestamped schemes (``stripe``, ``slack``, ``svix``) also return a *replay key*: the signed
timestamp and a digest of the signature that matched. The webhook route stores it with the
run, in the same transaction, and refuses the same key again while the timestamp is inside the
tolerance (after that, the timestamp check refuses the request anyway).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from typing import Any

from hub.flows import FlowError, parse_duration

SCHEMES = ("hmac", "stripe", "slack", "svix")
ALGORITHMS = {"sha256": hashlib.sha256, "sha1": hashlib.sha1, "sha512": hashlib.sha512}
DEFAULT_TOLERANCE = 300.0
DEFAULT_HEADERS = {
    "hmac": "x-signature",
    "stripe": "stripe-signature",
    "slack": "x-slack-signature",
    "svix": "svix-signature",
}
SLACK_TIMESTAMP = "x-slack-request-timestamp"
# Epoch seconds have 10 digits until the year 2286; 12 leave room and keep ``int`` cheap.
MAX_TIMESTAMP_DIGITS = 12
_TIMESTAMP = re.compile(rf"[0-9]{{1,{MAX_TIMESTAMP_DIGITS}}}")
# Stripe sends one v1 per active secret (two while a secret is rolled); each one costs an
# HMAC of the whole body, so a header of thousands of v1 parts is refused, not computed.
MAX_STRIPE_SIGNATURES = 8


class SignatureError(ValueError):
    """A request whose signature is refused; ``reason`` is one word for metrics and details."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Verified:
    """A signature that matched; ``timestamp`` and ``replay_key`` for timestamped schemes."""

    timestamp: int | None = None
    replay_key: str | None = None


@dataclasses.dataclass(frozen=True)
class SignatureSpec:
    """The parsed ``trigger.config.signature`` of a webhook flow."""

    scheme: str
    secret_ref: str
    header: str
    algorithm: str = "sha256"
    encoding: str = "hex"
    prefix: str = ""
    tolerance: float = DEFAULT_TOLERANCE

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> SignatureSpec:
        """Parse and check a signature block; errors name the field (``ValueError``)."""
        where = "trigger.config.signature"
        scheme = raw.get("scheme", "hmac")
        if scheme not in SCHEMES:
            raise ValueError(f"{where}.scheme: must be one of {', '.join(SCHEMES)}")
        secret_ref = raw.get("secret_ref")
        if not isinstance(secret_ref, str) or not secret_ref:
            raise ValueError(f"{where}.secret_ref: the name of a stored connection is required")
        algorithm = raw.get("algorithm", "sha256")
        if algorithm not in ALGORITHMS:
            raise ValueError(f"{where}.algorithm: must be one of {', '.join(ALGORITHMS)}")
        encoding = raw.get("encoding", "hex")
        if encoding not in ("hex", "base64"):
            raise ValueError(f"{where}.encoding: must be hex or base64")
        try:
            tolerance = parse_duration(
                raw.get("tolerance", DEFAULT_TOLERANCE), f"{where}.tolerance"
            )
        except FlowError as exc:
            raise ValueError(str(exc)) from exc
        return cls(
            scheme=scheme,
            secret_ref=secret_ref,
            header=str(raw.get("header") or DEFAULT_HEADERS[scheme]).lower(),
            algorithm=algorithm,
            encoding=encoding,
            prefix=str(raw.get("prefix", "")),
            tolerance=tolerance,
        )


def secrets_of(values: Mapping[str, Any]) -> list[bytes]:
    """The signing secrets of a connection: ``secret``, then every entry of ``secrets``."""
    found: list[bytes] = []
    single = values.get("secret")
    if isinstance(single, str) and single:
        found.append(single.encode())
    many = values.get("secrets")
    if isinstance(many, list):
        found.extend(s.encode() for s in many if isinstance(s, str) and s)
    return found


def verify(
    spec: SignatureSpec,
    secrets: Sequence[bytes],
    headers: Mapping[str, str],
    body: bytes,
    now: float,
) -> Verified:
    """Check a request against ``spec``; raise :class:`SignatureError` to refuse it."""
    if spec.scheme == "stripe":
        return verify_stripe(secrets, headers, body, now, spec.tolerance, spec.header)
    if spec.scheme == "slack":
        return verify_slack(secrets, headers, body, now, spec.tolerance, spec.header)
    if spec.scheme == "svix":
        return verify_svix(secrets, headers, body, now, spec.tolerance)
    return verify_hmac(spec, secrets, headers, body)


def _decode(value: str, encoding: str) -> bytes | None:
    try:
        if encoding == "hex":
            return bytes.fromhex(value)
        return base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        return None


def _matches(candidate: bytes, secrets: Sequence[bytes], payload: bytes, algorithm: str) -> bool:
    """True when ``candidate`` is the HMAC of ``payload`` under one of the secrets.

    Every secret is tried (no early exit), so the time taken does not tell which one matched.
    """
    digest = ALGORITHMS[algorithm]
    found = False
    for secret in secrets:
        expected = hmac.new(secret, payload, digest).digest()
        found |= hmac.compare_digest(expected, candidate)
    return found


def _matches_any(candidate: bytes, expected: Sequence[bytes]) -> bool:
    """True when ``candidate`` is one of the ``expected`` digests (each compared, no early
    exit)."""
    found = False
    for digest in expected:
        found |= hmac.compare_digest(digest, candidate)
    return found


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None or not value.strip():
        raise SignatureError("missing", f"the request has no {name} header")
    return value.strip()


def verify_hmac(
    spec: SignatureSpec, secrets: Sequence[bytes], headers: Mapping[str, str], body: bytes
) -> Verified:
    """Generic HMAC over the raw body: ``{prefix}{hex or base64 digest}`` in one header."""
    value = _header(headers, spec.header)
    if spec.prefix:
        if not value.startswith(spec.prefix):
            raise SignatureError(
                "malformed", f"the {spec.header} header must start with the prefix"
            )
        value = value[len(spec.prefix) :]
    candidate = _decode(value, spec.encoding)
    if candidate is None:
        raise SignatureError("malformed", f"the {spec.header} header is not {spec.encoding}")
    if not _matches(candidate, secrets, body, spec.algorithm):
        raise SignatureError("mismatch", "the signature does not match the body")
    return Verified()


def parse_timestamp(text: str, where: str) -> int:
    """A signed timestamp: 1 to :data:`MAX_TIMESTAMP_DIGITS` ASCII digits (epoch seconds).

    ``where`` names the header (and part) in the error; the value itself is not quoted.
    """
    if _TIMESTAMP.fullmatch(text) is None:
        raise SignatureError(
            "malformed",
            f"{where} must be epoch seconds: 1 to {MAX_TIMESTAMP_DIGITS} ASCII digits",
        )
    return int(text)


def _check_time(timestamp: int, now: float, tolerance: float) -> None:
    if abs(now - timestamp) > tolerance:
        raise SignatureError(
            "expired", f"the signed timestamp is outside the tolerance of {tolerance:g} s"
        )


def _replay_key(timestamp: int, signature: bytes) -> str:
    # Zero-padded seconds first: markers sort by time, so old ones are pruned by key range.
    return f"{timestamp:012d}:{hashlib.sha256(signature).hexdigest()}"


def _one_of_v1(
    candidates: Sequence[bytes],
    keys: Sequence[bytes],
    payload: bytes,
    timestamp: int,
    now: float,
    tolerance: float,
) -> Verified:
    """The end of a scheme that sends several v1 signatures (Stripe, Svix): one of
    ``candidates`` must be the HMAC-SHA256 of ``payload`` under one of ``keys`` (while a
    secret is rotated, the connection holds both and the sender may sign with both), then
    the timestamp must be within ``tolerance``; the replay marker is made of the signature
    that matched."""
    expected = [hmac.new(key, payload, hashlib.sha256).digest() for key in keys]
    matched = next((c for c in candidates if _matches_any(c, expected)), None)
    if matched is None:
        raise SignatureError("mismatch", "no v1 signature matches the body")
    _check_time(timestamp, now, tolerance)
    return Verified(timestamp, _replay_key(timestamp, matched))


def verify_stripe(
    secrets: Sequence[bytes],
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE,
    header: str = "stripe-signature",
) -> Verified:
    """Stripe's scheme: ``Stripe-Signature: t=...,v1=...[,v1=...]`` over ``{t}.{body}``."""
    value = _header(headers, header)
    timestamp: int | None = None
    candidates: list[bytes] = []
    for part in value.split(","):
        name, sep, item = part.strip().partition("=")
        if not sep:
            continue
        if name == "t":
            if timestamp is not None:
                raise SignatureError("malformed", f"the {header} header has more than one t=")
            timestamp = parse_timestamp(item.strip(), f"the t= of the {header} header")
        elif name == "v1":
            decoded = _decode(item, "hex")
            if decoded is not None:
                candidates.append(decoded)
            if len(candidates) > MAX_STRIPE_SIGNATURES:
                raise SignatureError(
                    "malformed",
                    f"the {header} header has more than {MAX_STRIPE_SIGNATURES} v1= signatures",
                )
    if timestamp is None or not candidates:
        raise SignatureError("malformed", f"the {header} header has no t=... and v1=... values")
    payload = str(timestamp).encode() + b"." + body
    return _one_of_v1(candidates, secrets, payload, timestamp, now, tolerance)


def verify_slack(
    secrets: Sequence[bytes],
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE,
    header: str = "x-slack-signature",
) -> Verified:
    """Slack's scheme: ``X-Slack-Signature: v0=<hex>`` over ``v0:{timestamp}:{body}``.

    The timestamp is the ``X-Slack-Request-Timestamp`` header.
    """
    value = _header(headers, header)
    stamp = _header(headers, SLACK_TIMESTAMP)
    timestamp = parse_timestamp(stamp, f"the {SLACK_TIMESTAMP} header")
    version, sep, digest = value.partition("=")
    candidate = _decode(digest, "hex") if sep and version == "v0" else None
    if candidate is None:
        raise SignatureError("malformed", f"the {header} header must be v0=<hex digest>")
    payload = b"v0:" + stamp.encode() + b":" + body
    if not _matches(candidate, secrets, payload, "sha256"):
        raise SignatureError("mismatch", "the signature does not match the body")
    _check_time(timestamp, now, tolerance)
    return Verified(timestamp, _replay_key(timestamp, candidate))


def svix_key(secret: bytes) -> bytes:
    """The HMAC key of a Svix secret: ``whsec_<base64>`` is base64 (a secret without the
    prefix, or not base64, is used as it is)."""
    text = secret[6:] if secret.startswith(b"whsec_") else secret
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        return secret


def _svix_header(headers: Mapping[str, str], name: str) -> str:
    # Svix sends svix-*; the Standard Webhooks spelling is webhook-*.
    if headers.get("svix-" + name) is None and headers.get("webhook-" + name) is not None:
        return _header(headers, "webhook-" + name)
    return _header(headers, "svix-" + name)


def verify_svix(
    secrets: Sequence[bytes],
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE,
) -> Verified:
    """Svix's scheme (Standard Webhooks): ``svix-signature: v1,<base64> [v1,<base64> ...]``,
    HMAC-SHA256 over ``{svix-id}.{svix-timestamp}.{body}`` keyed with the base64 of the
    ``whsec_`` secret."""
    message_id = _svix_header(headers, "id")
    stamp = _svix_header(headers, "timestamp")
    value = _svix_header(headers, "signature")
    timestamp = parse_timestamp(stamp, "the svix-timestamp header")
    candidates: list[bytes] = []
    for part in value.split(" "):
        version, sep, digest = part.partition(",")
        if sep and version == "v1":
            decoded = _decode(digest, "base64")
            if decoded is not None:
                candidates.append(decoded)
            if len(candidates) > MAX_STRIPE_SIGNATURES:
                raise SignatureError(
                    "malformed", f"the signature header has more than {MAX_STRIPE_SIGNATURES} v1"
                )
    if not candidates:
        raise SignatureError("malformed", "the signature header has no v1,<base64> value")
    payload = f"{message_id}.{stamp}.".encode() + body
    keys = [svix_key(s) for s in secrets]
    return _one_of_v1(candidates, keys, payload, timestamp, now, tolerance)


def sign_svix(secret: str, message_id: str, body: bytes, timestamp: int) -> dict[str, str]:
    """The three Svix headers for ``body`` (for tests and for calling a hub's webhook)."""
    payload = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(svix_key(secret.encode()), payload, hashlib.sha256).digest()
    return {
        "svix-id": message_id,
        "svix-timestamp": str(timestamp),
        "svix-signature": "v1," + base64.b64encode(digest).decode(),
    }


def sign_stripe(secret: str, body: bytes, timestamp: int) -> str:
    """A ``Stripe-Signature`` header value (for tests and for calling a hub's webhook)."""
    payload = str(timestamp).encode() + b"." + body
    digest = hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def sign_slack(secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    """The two Slack headers for ``body`` signed at ``timestamp``."""
    payload = b"v0:" + str(timestamp).encode() + b":" + body
    digest = hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()
    return {"X-Slack-Signature": f"v0={digest}", "X-Slack-Request-Timestamp": str(timestamp)}
