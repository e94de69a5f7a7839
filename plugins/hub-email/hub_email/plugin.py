"""The ``email`` connector: send e-mail through an SMTP server (STARTTLS, SSL or plain).

``email.send`` builds a MIME message (text and/or HTML, attachments), and sends it with
aiosmtplib. Its Message-ID is derived from the step's idempotency key, so every retry of a
step sends the same Message-ID and receivers (and their mail stores) can drop a duplicate.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any

import aiosmtplib

from hub import Action, ActionError, Connector, hookimpl
from hub_email.message import build_message, message_id_for

DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "none": 25}

CONNECTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "host": {"type": "string", "minLength": 1, "description": "The SMTP server."},
        "port": {
            "type": "integer",
            "minimum": 1,
            "maximum": 65535,
            "description": "Default: 587 (starttls), 465 (ssl) or 25 (none).",
        },
        "security": {
            "enum": ["starttls", "ssl", "none"],
            "default": "starttls",
            "description": "starttls: upgrade the connection, refuse to go on without it; "
            "ssl: TLS from the first byte (SMTPS); none: plain text (local relays only).",
        },
        "username": {"type": "string", "description": "The user (omit: no authentication)."},
        "password": {
            "type": "string",
            "writeOnly": True,
            "format": "password",
            "description": "The user's password.",
        },
        "from_address": {
            "type": "string",
            "minLength": 3,
            "description": "The sender address (From and the envelope sender).",
        },
        "from_name": {"type": "string", "description": "The sender's display name."},
        "ca_cert": {
            "type": "string",
            "description": "PEM certificate(s) of a private CA to trust.",
        },
        "verify_tls": {
            "type": "boolean",
            "default": True,
            "description": "Verify the server's certificate and host name (keep it on).",
        },
        "message_id_domain": {
            "type": "string",
            "description": "The domain of Message-IDs; default: the from_address's domain.",
        },
        "local_hostname": {"type": "string", "description": "The name sent in EHLO."},
        "timeout": {"type": "number", "exclusiveMinimum": 0, "default": 30},
    },
    "required": ["host", "from_address"],
    "additionalProperties": False,
}

_ADDRESSES = {
    "anyOf": [
        {"type": "string", "minLength": 3},
        {"type": "array", "items": {"type": "string", "minLength": 3}},
    ]
}

SEND_INPUT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "to": {**_ADDRESSES, "description": "Recipient(s): 'a@x.org' or 'Ann <a@x.org>'."},
        "cc": {**_ADDRESSES, "description": "Copy recipient(s)."},
        "bcc": {**_ADDRESSES, "description": "Blind copy recipient(s): envelope only."},
        "subject": {"type": "string", "description": "The subject."},
        "text": {"type": "string", "description": "The plain-text body."},
        "html": {"type": "string", "description": "The HTML body (with text: an alternative)."},
        "attachments": {
            "type": "array",
            "description": "Files to attach.",
            "items": {
                "type": "object",
                "properties": {
                    "filename": {"type": "string", "minLength": 1, "description": "File name."},
                    "content_base64": {"type": "string", "description": "Content, base64."},
                    "content_type": {
                        "type": "string",
                        "default": "application/octet-stream",
                        "description": "MIME type.",
                    },
                },
                "required": ["filename", "content_base64"],
                "additionalProperties": False,
            },
        },
        "reply_to": {**_ADDRESSES, "description": "Reply-To address(es)."},
        "headers": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "Extra headers (not From, To, Subject, Message-ID ...).",
        },
    },
    "required": ["to", "subject"],
    "anyOf": [{"required": ["text"]}, {"required": ["html"]}],
    "additionalProperties": False,
}

SEND_OUTPUT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "message_id": {"type": "string", "description": "The Message-ID header sent."},
        "accepted": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Recipients the server accepted.",
        },
        "refused": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "Recipients the server refused, with its answer.",
        },
        "response": {"type": "string", "description": "The server's answer to the message."},
    },
    "required": ["message_id", "accepted", "refused"],
}

NOTES = """\
**Security.** `starttls` (default, port 587) upgrades the connection and fails if the server
does not offer STARTTLS: the hub never falls back to sending credentials or mail in clear
text. `ssl` is SMTPS (port 465). `none` is for local relays only. Certificates are verified
(`ca_cert` adds a private CA); a certificate that does not verify is not retryable.

**Idempotency.** SMTP has no idempotency key. The Message-ID is derived from the step's
idempotency key (`<sha256(key)[:32].hub@domain>`), so a retried step sends the same
Message-ID: mail stores and receivers that de-duplicate by Message-ID keep one copy. A
connection lost after the server accepted the message but before its answer arrived is
retried (and may deliver a second copy with the same Message-ID).

**Errors.** Refused credentials (535 and other 5xx to AUTH) and 5xx answers (refused sender,
all recipients refused, message refused) are not retryable; 4xx answers (greylisting, rate
limits, mailbox busy), timeouts and connection errors are. Recipients refused while others
were accepted are listed in the output's `refused`, and the step succeeds.

No rate-limit policy is declared: SMTP providers each document their own (set the step's
retry policy: a 4xx answer is retried). No connection pool: each step opens one connection.
The server is not behind the hub's SSRF guard: whoever may create connections chooses it.
"""


class Settings:
    """A connection's values with their defaults applied."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.host = str(values.get("host") or "localhost")
        self.security = str(values.get("security") or "starttls")
        if self.security not in DEFAULT_PORTS:
            raise ActionError(
                f"email: security must be starttls, ssl or none, not {self.security!r}"
            )
        self.port = int(values.get("port") or DEFAULT_PORTS[self.security])
        self.username = values.get("username") or None
        self.password = values.get("password") or None
        self.from_address = str(values.get("from_address") or "")
        self.from_name = values.get("from_name") or None
        self.ca_cert = values.get("ca_cert") or None
        self.verify_tls = bool(values.get("verify_tls", True))
        domain = self.from_address.rpartition("@")[2] or "localhost"
        self.message_id_domain = str(values.get("message_id_domain") or domain)
        self.local_hostname = values.get("local_hostname") or None
        self.timeout = float(values.get("timeout") or 30)

    @property
    def where(self) -> str:
        """The server as errors name it."""
        return f"{self.host}:{self.port}"

    def scrub(self, text: str) -> str:
        """``text`` with the password removed."""
        return text.replace(self.password, "***") if self.password else text

    def smtp(self) -> aiosmtplib.SMTP:
        """An unconnected client for this server."""
        context = None
        if self.security != "none":
            context = ssl.create_default_context(cadata=self.ca_cert or None)
            if not self.verify_tls:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
        return aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            use_tls=self.security == "ssl",
            start_tls=self.security == "starttls",
            tls_context=context,
            timeout=self.timeout,
            local_hostname=self.local_hostname,
        )


def _caused_by(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """``exc`` or the first exception of its cause chain that is a ``kind``."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return None
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def smtp_error(exc: BaseException, settings: Settings, what: str) -> BaseException:
    """The error to raise for an SMTP failure (4xx and network trouble are retryable)."""
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        if 400 <= exc.code < 500:
            return ActionError(
                f"{what}: {settings.where} could not check the credentials now ({exc.code})",
                retryable=True,
            )
        return ActionError(
            f"{what}: the server at {settings.where} refused the credentials of user "
            f"{settings.username!r} ({exc.code})"
        )
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        answers = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        temporary = all(400 <= r.code < 500 for r in exc.recipients)
        return ActionError(f"{what}: every recipient was refused: {answers}", retryable=temporary)
    if isinstance(exc, aiosmtplib.SMTPSenderRefused):
        return ActionError(
            f"{what}: the sender {exc.sender!r} was refused: {exc.code} {exc.message}",
            retryable=400 <= exc.code < 500,
        )
    if _caused_by(exc, ssl.SSLCertVerificationError):
        return ActionError(f"{what}: the TLS certificate of {settings.where} does not verify")
    tls_error = _caused_by(exc, ssl.SSLError)
    if tls_error is not None:  # e.g. security "ssl" against a plain-text port: not transient
        reason = getattr(tls_error, "reason", None) or tls_error
        return ActionError(f"{what}: TLS with {settings.where} failed: {reason}")
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return ActionError(f"{what}: {settings.where} did not answer in time", retryable=True)
    if isinstance(exc, aiosmtplib.SMTPConnectError | aiosmtplib.SMTPServerDisconnected):
        detail = settings.scrub(str(exc))
        return ActionError(f"{what}: cannot talk to {settings.where}: {detail}", retryable=True)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return ActionError(
            f"{what}: {settings.where} answered {exc.code} {settings.scrub(exc.message)}",
            retryable=400 <= exc.code < 500,
        )
    if isinstance(exc, aiosmtplib.SMTPException):
        # Not a server answer: STARTTLS or AUTH not offered, and the like.
        return ActionError(f"{what}: {settings.where}: {settings.scrub(str(exc))}")
    if isinstance(exc, OSError):
        return ActionError(f"{what}: cannot connect to {settings.where}: {exc}", retryable=True)
    return exc


def settings_of(connection: Mapping[str, Any] | None) -> Settings:
    """The settings of the step's connection; a clear error when there is none."""
    if not connection:
        raise ActionError("email.send: needs a connection of the 'email' connector")
    settings = Settings(connection)
    if "@" not in settings.from_address:
        raise ActionError("email.send: the connection has no valid from_address")
    return settings


async def send(ctx: Any, data: dict[str, Any]) -> dict[str, Any]:
    """Send one message; its Message-ID is derived from the step's idempotency key."""
    settings = settings_of(ctx.connection)
    message_id = message_id_for(str(ctx.idempotency_key), settings.message_id_domain)
    message, recipients = build_message(
        data,
        sender=settings.from_address,
        sender_name=settings.from_name,
        message_id=message_id,
    )
    what = f"email.send via {settings.where}"
    smtp = settings.smtp()
    try:
        async with smtp:
            refused, response = await smtp.send_message(
                message, sender=settings.from_address, recipients=recipients
            )
    except Exception as exc:
        raise smtp_error(exc, settings, what) from None
    refused_text = {addr: f"{r.code} {r.message}" for addr, r in refused.items()}
    accepted = [r for r in recipients if r not in refused]
    ctx.log.info("%s: sent %s to %d recipient(s)", what, message_id, len(accepted))
    return {
        "message_id": message_id,
        "accepted": accepted,
        "refused": refused_text,
        "response": response,
    }


async def test_connection(connection: dict[str, Any]) -> dict[str, Any]:
    """Connect, upgrade to TLS as configured, log in; raise ActionError when refused."""
    settings = Settings(connection)
    smtp = settings.smtp()
    try:
        async with smtp:
            await smtp.noop()
            tls = smtp.get_transport_info("sslcontext") is not None
    except Exception as exc:
        raise smtp_error(exc, settings, "email connection test") from None
    authenticated = bool(settings.username)
    return {"ok": True, "server": settings.where, "tls": tls, "authenticated": authenticated}


SEND = Action(
    name="send",
    run=send,
    title="Send an e-mail",
    description=(
        "Send one e-mail through SMTP: text and/or HTML, attachments (base64), cc, bcc, "
        "reply-to. The Message-ID is derived from the step's idempotency key."
    ),
    input_schema=SEND_INPUT,
    output_schema=SEND_OUTPUT,
    needs_connection=True,
    timeout=120,
    examples=[
        {
            "input": {
                "to": ["Ann <ann@example.com>"],
                "subject": "Your invoice",
                "text": "Please find the invoice attached.",
                "attachments": [
                    {
                        "filename": "invoice.txt",
                        "content_base64": "SW52b2ljZSAjNDI=",
                        "content_type": "text/plain",
                    }
                ],
            }
        }
    ],
)


@hookimpl
def hub_connectors() -> list[Connector]:
    """The ``email`` connector."""
    return [
        Connector(
            name="email",
            title="E-mail (SMTP)",
            version="1",
            icon="email",
            description="Send e-mail through any SMTP server (STARTTLS, SSL, attachments).",
            connection_schema=CONNECTION_SCHEMA,
            actions=[SEND],
            test_connection=test_connection,
            notes=NOTES,
        )
    ]
