"""Connecting to an MQTT broker and mapping its errors.

Errors name the broker and the user, never the password (text from the client library is
scrubbed of it).
"""

from __future__ import annotations

import hashlib
import re
import ssl
from collections.abc import Mapping
from typing import Any

import aiomqtt
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

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
            "default": 1883,
            "description": "The broker's port (1883, or 8883 for TLS).",
        },
        "username": {"type": "string", "description": "The user name."},
        "password": {
            "type": "string",
            "writeOnly": True,
            "format": "password",
            "description": "The user's password.",
        },
        "protocol": {
            "enum": ["5", "3.1.1"],
            "default": "5",
            "description": "The MQTT version (5 carries headers as user properties).",
        },
        "tls": {"type": "boolean", "default": False, "description": "Connect with TLS."},
        "ca_cert": {
            "type": "string",
            "description": "PEM certificate(s) of a private CA to trust (TLS only).",
        },
        "client_id_prefix": {
            "type": "string",
            "pattern": "^[A-Za-z0-9_-]*$",
            "default": "hub",
            "description": "Prefix of the client ids the hub derives.",
        },
        "keepalive": {"type": "integer", "minimum": 5, "default": 60},
        "timeout": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 10,
            "description": "Seconds to wait for the broker's answers.",
        },
    },
    "required": ["host"],
    "additionalProperties": False,
}

# CONNACK codes that mean "these credentials are refused" (3.1.1: 4, 5; MQTT 5: 134, 135, 140)
AUTH_CODES = {4, 5, 134, 135, 140}


class Settings:
    """A connection's values with their defaults applied."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.host = str(values.get("host") or "localhost")
        self.port = int(values.get("port") or 1883)
        self.username = values.get("username") or None
        self.password = values.get("password") or None
        self.v5 = str(values.get("protocol") or "5") == "5"
        self.tls = bool(values.get("tls", False))
        self.ca_cert = values.get("ca_cert") or None
        self.prefix = str(values.get("client_id_prefix") or "hub")
        self.keepalive = int(values.get("keepalive") or 60)
        self.timeout = float(values.get("timeout") or 10)

    @property
    def where(self) -> str:
        """The broker as errors name it (no secret)."""
        return f"{self.host}:{self.port}"

    def scrub(self, text: str) -> str:
        """``text`` with the password removed."""
        return text.replace(self.password, "***") if self.password else text

    def client(
        self,
        identifier: str | None,
        *,
        persistent: bool = False,
        session_expiry: int = 0,
    ) -> aiomqtt.Client:
        """An aiomqtt client; ``persistent`` keeps the broker session across connections."""
        kwargs: dict[str, Any] = {}
        if self.v5:
            kwargs["protocol"] = aiomqtt.ProtocolVersion.V5
            kwargs["clean_start"] = not persistent
            if persistent:
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = session_expiry
                kwargs["properties"] = props
        else:
            kwargs["protocol"] = aiomqtt.ProtocolVersion.V311
            kwargs["clean_session"] = not persistent
        return aiomqtt.Client(
            self.host,
            self.port,
            username=self.username,
            password=self.password,
            identifier=identifier,
            keepalive=self.keepalive,
            timeout=self.timeout,
            tls_context=tls_context(self.ca_cert) if self.tls else None,
            **kwargs,
        )


def settings_of(connection: Mapping[str, Any] | None, what: str) -> Settings:
    """The settings of a step's or trigger's connection; a clear error when there is none."""
    if not connection:
        raise ActionError(f"{what}: needs a connection of the 'mqtt' connector")
    return Settings(connection)


def client_id_for(prefix: str, workspace_id: str, flow_id: str, topic: str) -> str:
    """A stable client id per flow and topic filter: a new filter means a new session."""
    digest = hashlib.sha1(f"{workspace_id}\0{flow_id}\0{topic}".encode()).hexdigest()[:10]
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", flow_id)[:32]
    return f"{prefix}-{safe}-{digest}"


def _code(exc: BaseException) -> int | None:
    rc = getattr(exc, "rc", None)
    value = getattr(rc, "value", rc)
    return value if isinstance(value, int) else None


def mqtt_error(exc: BaseException, settings: Settings, what: str) -> BaseException:
    """The error to raise for a failure talking to the broker."""
    code = _code(exc)
    if isinstance(exc, MqttConnectError) and code in AUTH_CODES:
        who = f"user {settings.username!r}" if settings.username else "an anonymous client"
        return ActionError(
            f"{what}: the broker at {settings.where} refused the credentials of {who}"
        )
    if isinstance(exc, MqttConnectError):
        detail = settings.scrub(str(exc))
        retryable = code in (3, 136, 137, 151, 159)  # server unavailable / busy / quota / rate
        return ActionError(
            f"{what}: the broker at {settings.where} refused the connection: {detail}",
            retryable=retryable,
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ActionError(
            f"{what}: the TLS certificate of {settings.where} does not verify: "
            f"{exc.verify_message or exc}"
        )
    if isinstance(exc, TimeoutError):
        return ActionError(f"{what}: no answer from {settings.where} in time", retryable=True)
    if isinstance(exc, aiomqtt.MqttError | OSError):
        detail = settings.scrub(str(exc) or type(exc).__name__)
        return ActionError(f"{what}: {settings.where}: {detail}", retryable=True)
    return exc
