"""Connecting to an AMQP 0-9-1 broker, mapping its errors, and converting header values.

Everything here keeps secrets out of messages: errors name the user, host, port and virtual
host, never the password (and any text that comes from the client library is scrubbed of it).
"""

from __future__ import annotations

import base64
import datetime as dt
import ssl
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import aio_pika
import aiormq.exceptions as amqp_errors
from aio_pika.abc import AbstractConnection

from hub import ActionError
from hub.plugin_kit.brokers import tls_context

CONNECTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "host": {"type": "string", "minLength": 1, "description": "The broker's host name."},
        "port": {
            "type": "integer",
            "minimum": 1,
            "maximum": 65535,
            "default": 5672,
            "description": "The broker's port (5672, or 5671 for TLS).",
        },
        "virtual_host": {"type": "string", "default": "/", "description": "The virtual host."},
        "username": {"type": "string", "default": "guest", "description": "The user name."},
        "password": {
            "type": "string",
            "writeOnly": True,
            "format": "password",
            "description": "The user's password.",
        },
        "tls": {"type": "boolean", "default": False, "description": "Connect with TLS (amqps)."},
        "ca_cert": {
            "type": "string",
            "description": "PEM certificate(s) of a private CA to trust (TLS only).",
        },
        "timeout": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 10,
            "description": "Seconds to wait for the connection to open.",
        },
    },
    "required": ["host"],
    "additionalProperties": False,
}


class Settings:
    """A connection's values with their defaults applied."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.host = str(values.get("host") or "localhost")
        self.port = int(values.get("port") or 5672)
        self.virtual_host = str(values.get("virtual_host") or "/")
        self.username = str(values.get("username") or "guest")
        self.password = str(values.get("password") or "")
        self.tls = bool(values.get("tls", False))
        self.ca_cert = values.get("ca_cert") or None
        self.timeout = float(values.get("timeout") or 10)

    @property
    def where(self) -> str:
        """The broker as errors name it (no secret)."""
        return f"{self.host}:{self.port} (virtual host {self.virtual_host!r})"

    def scrub(self, text: str) -> str:
        """``text`` with the password removed."""
        return text.replace(self.password, "***") if self.password else text


def settings_of(connection: Mapping[str, Any] | None, what: str) -> Settings:
    """The settings of a step's or trigger's connection; a clear error when there is none."""
    if not connection:
        raise ActionError(f"{what}: needs a connection of the 'amqp' connector")
    return Settings(connection)


async def connect(settings: Settings, what: str, name: str = "hub") -> AbstractConnection:
    """Open a connection, mapping refusals to :class:`hub.ActionError`."""
    try:
        return await aio_pika.connect(
            host=settings.host,
            port=settings.port,
            login=settings.username,
            password=settings.password,
            virtualhost=settings.virtual_host,
            ssl=settings.tls,
            ssl_context=tls_context(settings.ca_cert) if settings.tls else None,
            timeout=settings.timeout,
            client_properties={"connection_name": name},
        )
    except BaseException as exc:
        raise connect_error(exc, settings, what) from None


def connect_error(exc: BaseException, settings: Settings, what: str) -> BaseException:
    """The error to raise for a failed connection attempt (not retryable when it cannot heal)."""
    if isinstance(exc, amqp_errors.ProbableAuthenticationError):
        return ActionError(
            f"{what}: the broker at {settings.where} refused the credentials of user "
            f"{settings.username!r}"
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ActionError(
            f"{what}: the TLS certificate of {settings.where} does not verify: "
            f"{settings.scrub(exc.verify_message or str(exc))}"
        )
    if isinstance(exc, amqp_errors.ProtocolSyntaxError | amqp_errors.ConnectionNotAllowed):
        return ActionError(
            f"{what}: the broker at {settings.where} refused to open the virtual host "
            f"(does it exist, and may user {settings.username!r} use it?)"
        )
    if isinstance(exc, TimeoutError):
        return ActionError(
            f"{what}: no answer from {settings.where} within {settings.timeout:g} s",
            retryable=True,
        )
    if isinstance(exc, OSError | amqp_errors.AMQPError):
        detail = settings.scrub(str(exc) or type(exc).__name__)
        return ActionError(f"{what}: cannot connect to {settings.where}: {detail}", retryable=True)
    return exc


def channel_error(exc: BaseException, settings: Settings, what: str) -> BaseException:
    """The error to raise for a failure after the connection opened."""
    if isinstance(exc, amqp_errors.ChannelNotFoundEntity):
        return ActionError(f"{what}: {_reply_text(exc)}")
    if isinstance(exc, amqp_errors.ChannelAccessRefused):
        return ActionError(
            f"{what}: user {settings.username!r} may not do this on {settings.where}: "
            f"{_reply_text(exc)}"
        )
    if isinstance(exc, amqp_errors.ChannelPreconditionFailed):
        return ActionError(
            f"{what}: the broker refused the declaration (it exists with other settings): "
            f"{_reply_text(exc)}"
        )
    if isinstance(exc, amqp_errors.PublishError):
        return ActionError(
            f"{what}: the broker returned the message as unroutable (no queue is bound for "
            "this exchange and routing key; set mandatory: false to allow dropping it)"
        )
    if isinstance(exc, amqp_errors.DeliveryError):
        return ActionError(f"{what}: the broker refused the message (nack)", retryable=True)
    if isinstance(exc, TimeoutError):
        return ActionError(f"{what}: the broker did not answer in time", retryable=True)
    if isinstance(exc, OSError | amqp_errors.AMQPError):
        detail = settings.scrub(str(exc) or type(exc).__name__)
        return ActionError(f"{what}: {detail}", retryable=True)
    return exc


def _reply_text(exc: BaseException) -> str:
    text = str(exc)
    start = text.find('"')
    return text[start + 1 : text.rfind('"')] if start >= 0 else text


# -- header values --------------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """AMQP field values (bytes, datetimes, decimals, nested tables) as JSON-friendly data."""
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode("ascii")
    if isinstance(value, dt.datetime):
        return iso(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def iso(when: dt.datetime | None) -> str | None:
    """ISO 8601 in UTC (a naive time is taken as UTC), or None."""
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).isoformat()
