"""A real local SMTP server (aiosmtpd) for the email tests, with STARTTLS, SMTPS and AUTH.

The TLS certificate is self-signed, made here with ``cryptography`` for 127.0.0.1 and
localhost; the connector trusts it through the connection's ``ca_cert``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HOST = "127.0.0.1"
USER, PASSWORD = "mailer", "Sm7p-s3cret"


@dataclasses.dataclass
class Received:
    """One message as the server got it."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    tls: bool
    login: str | None

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


class Inbox:
    """The aiosmtpd handler: keeps what arrives; refuses the recipients it is told to."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.refuse: dict[str, str] = {}

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        login = session.auth_data.login.decode() if session.auth_data else None
        self.received.append(
            Received(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                raw=envelope.original_content or envelope.content,
                tls=session.ssl is not None
                or server.transport.get_extra_info("ssl_object") is not None,
                login=login,
            )
        )
        return "250 Message accepted for delivery"


def authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    """Accept only USER / PASSWORD."""
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == USER.encode()
        and auth_data.password == PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A self-signed certificate for 127.0.0.1 and localhost: its PEM and a server context."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hub-email-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (folder / "cert.pem").write_bytes(cert_pem)
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return {"pem": cert_pem.decode(), "cert": folder / "cert.pem", "key": folder / "key.pem"}


def free_port() -> int:
    """A loopback port nothing listens on (bound then released)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    return free_port()


@pytest.fixture
def smtp_server(certificate: dict[str, Any]) -> Iterator[Any]:
    """Start SMTP servers: ``make(security, auth=True) -> (connection values, inbox)``."""
    controllers: list[Controller] = []

    def make(security: str = "starttls", auth: bool = True) -> tuple[dict[str, Any], Inbox]:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(Path(certificate["cert"]), Path(certificate["key"]))
        inbox = Inbox()
        port = free_port()
        kwargs: dict[str, Any] = {}
        if auth:
            kwargs.update(authenticator=authenticator, auth_required=True)
        if security == "starttls":
            kwargs.update(tls_context=context, require_starttls=True, auth_require_tls=True)
        elif security == "ssl":
            # aiosmtpd does not count implicit TLS as TLS for AUTH: the socket is TLS anyway.
            kwargs.update(ssl_context=context, auth_require_tls=False)
        else:
            kwargs.update(auth_require_tls=False)
        controller = Controller(inbox, hostname=HOST, port=port, **kwargs)
        controller.start()
        controllers.append(controller)
        values: dict[str, Any] = {
            "host": HOST,
            "port": port,
            "security": security,
            "from_address": "hub@example.org",
            "from_name": "The Hub",
            "ca_cert": certificate["pem"],
            "timeout": 5,
        }
        if auth:
            values.update(username=USER, password=PASSWORD)
        return values, inbox

    yield make
    for controller in controllers:
        controller.stop()
