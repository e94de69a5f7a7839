"""Connecting to NATS and mapping its errors.

Errors name the servers and the user, never a password or token (text that comes from the
client library is scrubbed of them, and credentials embedded in server URLs are hidden).
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS

from hub import ActionError
from hub.plugin_kit.brokers import tls_context

CONNECTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "servers": {
            "description": "A nats:// (or tls://) URL, or a list of them.",
            "anyOf": [
                {"type": "string", "minLength": 1},
                {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
            ],
            "default": "nats://localhost:4222",
        },
        "user": {"type": "string", "description": "User name (user/password auth)."},
        "password": {
            "type": "string",
            "writeOnly": True,
            "format": "password",
            "description": "The user's password.",
        },
        "token": {
            "type": "string",
            "writeOnly": True,
            "format": "password",
            "description": "An authentication token (instead of user/password).",
        },
        "tls": {"type": "boolean", "default": False, "description": "Require TLS."},
        "ca_cert": {
            "type": "string",
            "description": "PEM certificate(s) of a private CA to trust (TLS only).",
        },
        "timeout": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 5,
            "description": "Seconds to wait for the connection and for JetStream answers.",
        },
    },
    "required": ["servers"],
    "additionalProperties": False,
}

_USERINFO = re.compile(r"(\w+://)[^@/\s]+@")


class Settings:
    """A connection's values with their defaults applied."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        servers = values.get("servers") or "nats://localhost:4222"
        self.servers: list[str] = [servers] if isinstance(servers, str) else list(servers)
        self.user = values.get("user") or None
        self.password = values.get("password") or None
        self.token = values.get("token") or None
        self.tls = bool(values.get("tls", False))
        self.ca_cert = values.get("ca_cert") or None
        self.timeout = float(values.get("timeout") or 5)

    @property
    def where(self) -> str:
        """The servers as errors name them (credentials in URLs hidden)."""
        return ", ".join(_USERINFO.sub(r"\1***@", s) for s in self.servers)

    def scrub(self, text: str) -> str:
        """``text`` with secrets and URL credentials removed."""
        for secret in (self.password, self.token):
            if secret:
                text = text.replace(str(secret), "***")
        return _USERINFO.sub(r"\1***@", text)


def settings_of(connection: Mapping[str, Any] | None, what: str) -> Settings:
    """The settings of a step's or trigger's connection; a clear error when there is none."""
    if not connection:
        raise ActionError(f"{what}: needs a connection of the 'nats' connector")
    return Settings(connection)


async def connect(settings: Settings, what: str, name: str = "hub") -> NATS:
    """Connect once, without automatic reconnects, mapping refusals to ActionError.

    The hub restarts a trigger whose connection broke (with back-off), so reconnecting is
    left to it; an action simply fails (retryably) and its step's retry policy decides.
    """
    errors: list[BaseException] = []

    async def remember(exc: BaseException) -> None:
        errors.append(exc)

    options: dict[str, Any] = {
        "servers": settings.servers,
        "name": name,
        "connect_timeout": settings.timeout,
        "allow_reconnect": False,
        "max_reconnect_attempts": 1,
        "reconnect_time_wait": 0.1,
        "error_cb": remember,
    }
    if settings.user is not None:
        options["user"] = settings.user
        options["password"] = settings.password or ""
    if settings.token is not None:
        options["token"] = settings.token
    if settings.tls:
        options["tls"] = tls_context(settings.ca_cert)
    try:
        return await nats.connect(**options)
    except BaseException as exc:
        cause = errors[-1] if errors and isinstance(exc, nats.errors.NoServersError) else exc
        raise connect_error(cause, settings, what) from None


def _is_auth(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, nats.errors.AuthorizationError) or (
        "authorization violation" in text or "authentication" in text
    )


def connect_error(exc: BaseException, settings: Settings, what: str) -> BaseException:
    """The error to raise for a failed connection attempt."""
    if _is_auth(exc):
        who = f"user {settings.user!r}" if settings.user else "the token" if settings.token else ""
        return ActionError(
            f"{what}: the NATS server at {settings.where} refused the credentials"
            + (f" of {who}" if who else " (none were given)")
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ActionError(
            f"{what}: the TLS certificate of {settings.where} does not verify: "
            f"{exc.verify_message or exc}"
        )
    if isinstance(exc, TimeoutError | nats.errors.TimeoutError):
        return ActionError(f"{what}: no answer from {settings.where}", retryable=True)
    if isinstance(exc, OSError | nats.errors.Error):
        detail = settings.scrub(str(exc) or type(exc).__name__)
        return ActionError(f"{what}: cannot connect to {settings.where}: {detail}", retryable=True)
    return exc


def jetstream_error(exc: BaseException, settings: Settings, what: str) -> BaseException:
    """The error to raise for a failed publish or JetStream request."""
    if isinstance(exc, nats.js.errors.NoStreamResponseError | nats.errors.NoRespondersError):
        return ActionError(f"{what}: no JetStream stream captures this subject")
    if isinstance(exc, nats.js.errors.ServiceUnavailableError):
        return ActionError(f"{what}: JetStream is unavailable", retryable=True)
    if isinstance(exc, nats.js.errors.APIError):
        detail = exc.description or type(exc).__name__
        retryable = bool(exc.code and exc.code >= 500)
        return ActionError(f"{what}: JetStream refused: {detail}", retryable=retryable)
    if isinstance(exc, nats.errors.MaxPayloadError):
        return ActionError(f"{what}: the message is larger than the server's max_payload")
    if isinstance(exc, nats.errors.BadSubjectError):
        return ActionError(f"{what}: invalid subject")
    if isinstance(exc, TimeoutError | nats.errors.TimeoutError):
        return ActionError(f"{what}: the server did not answer in time", retryable=True)
    if isinstance(exc, OSError | nats.errors.Error):
        detail = settings.scrub(str(exc) or type(exc).__name__)
        return ActionError(f"{what}: {detail}", retryable=True)
    return exc
