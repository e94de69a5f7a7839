"""email.send against a real local SMTP server (aiosmtpd): STARTTLS, SMTPS, AUTH, attachments."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import hub_email.plugin as plugin
import pytest
from hub_email.message import message_id_for

from hub import ActionError
from hub.testing import check_examples, check_flow_file, make_context, registry_of, run_action

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "connectors" / "email-invoice.yaml"
PDF = b"%PDF-1.4 fake invoice \x00\xff binary"


async def send_with(connection: dict[str, Any], data: dict[str, Any], **ctx_args: Any) -> Any:
    ctx = make_context(connection=connection, **ctx_args)
    try:
        return ctx, await plugin.SEND.run(ctx, data)
    finally:
        await ctx.http.aclose()


def test_registry_accepts_the_connector_and_its_examples() -> None:
    registry = registry_of(plugin)
    assert "email.send" in registry.actions
    props = registry.connectors["email"].connection_schema["properties"]  # type: ignore[index]
    assert props["password"]["writeOnly"] is True
    check_examples(plugin.SEND)


def test_example_flow_validates() -> None:
    flow = check_flow_file(EXAMPLE, plugin)
    assert [s.action for s in flow.steps.values()] == ["email.send"]


async def test_starttls_mail_with_attachment_arrives_parsed_and_complete(
    smtp_server: Any,
) -> None:
    conn, inbox = smtp_server("starttls")
    ctx, out = await send_with(
        conn,
        {
            "to": ["Ann Smith <ann@example.com>", "bob@example.com"],
            "cc": "carol@example.com",
            "bcc": ["audit@example.com"],
            "reply_to": "billing@example.org",
            "subject": "Invoice 42 — due",
            "text": "Please find invoice 42 attached.",
            "html": "<p>Please find <b>invoice 42</b> attached.</p>",
            "attachments": [
                {
                    "filename": "invoice-42.pdf",
                    "content_base64": base64.b64encode(PDF).decode(),
                    "content_type": "application/pdf",
                }
            ],
            "headers": {"X-Order": "42"},
        },
        step_key="mail",
    )
    [got] = inbox.received
    assert got.tls is True and got.login == "mailer"
    assert got.mail_from == "hub@example.org"
    assert sorted(got.rcpt_tos) == sorted(
        ["ann@example.com", "bob@example.com", "carol@example.com", "audit@example.com"]
    )
    msg = got.message
    assert msg["From"] == "The Hub <hub@example.org>"
    assert msg["To"] == "Ann Smith <ann@example.com>, bob@example.com"
    assert msg["Cc"] == "carol@example.com" and msg["Bcc"] is None
    assert msg["Reply-To"] == "billing@example.org"
    assert msg["Subject"] == "Invoice 42 — due" and msg["X-Order"] == "42"
    assert msg["Message-ID"] == message_id_for(ctx.idempotency_key, "example.org")
    assert out["message_id"] == msg["Message-ID"] and out["refused"] == {}
    assert msg.get_body(("plain",)).get_content().strip() == "Please find invoice 42 attached."
    assert "<b>invoice 42</b>" in msg.get_body(("html",)).get_content()
    [attachment] = list(msg.iter_attachments())
    assert attachment.get_filename() == "invoice-42.pdf"
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == PDF


async def test_a_retried_step_sends_the_same_message_id(smtp_server: Any) -> None:
    conn, inbox = smtp_server("starttls")
    data = {"to": "ann@example.com", "subject": "s", "text": "t"}
    first, _ = await send_with(conn, data, step_key="mail", attempt=1)
    retry = make_context(connection=conn, step_key="mail", attempt=2)
    retry.idempotency_key = first.idempotency_key  # same run and step key, as the engine
    try:
        await plugin.SEND.run(retry, data)
    finally:
        await retry.http.aclose()
    await send_with(conn, data, step_key="other")
    ids = [r.message["Message-ID"] for r in inbox.received]
    assert ids[0] == ids[1] != ids[2]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_smtps_and_plain_delivery(smtp_server: Any) -> None:
    tls_conn, tls_inbox = smtp_server("ssl")
    plain_conn, plain_inbox = smtp_server("none", auth=False)
    data = {"to": "ann@example.com", "subject": "hello", "html": "<i>hi</i>"}
    await run_action(plugin.SEND, data, connection=tls_conn)
    await run_action(plugin.SEND, data, connection=plain_conn)
    assert tls_inbox.received[0].tls is True and tls_inbox.received[0].login == "mailer"
    assert plain_inbox.received[0].tls is False
    assert plain_inbox.received[0].message.get_content_type() == "text/html"


async def test_starttls_is_never_skipped_when_the_server_does_not_offer_it(
    smtp_server: Any,
) -> None:
    plain_conn, inbox = smtp_server("none", auth=False)
    with pytest.raises(ActionError, match=r"(?i)starttls") as info:
        await run_action(
            plugin.SEND,
            {"to": "a@example.com", "subject": "s", "text": "t"},
            connection={**plain_conn, "security": "starttls"},
        )
    assert info.value.retryable is False and inbox.received == []


async def test_refused_credentials_are_not_retryable_and_hide_the_password(
    smtp_server: Any,
) -> None:
    conn, inbox = smtp_server("starttls")
    good = await plugin.test_connection(conn)
    assert good["tls"] is True and good["authenticated"] is True
    bad = {**conn, "password": "Wr0ng-s3cret-pw"}
    with pytest.raises(ActionError) as info:
        await plugin.test_connection(bad)
    assert "refused the credentials of user 'mailer'" in str(info.value)
    assert info.value.retryable is False and "Wr0ng-s3cret-pw" not in str(info.value)
    with pytest.raises(ActionError) as step:
        await run_action(
            plugin.SEND, {"to": "a@example.com", "subject": "s", "text": "t"}, connection=bad
        )
    assert step.value.retryable is False and "Wr0ng-s3cret-pw" not in str(step.value)
    assert inbox.received == []


async def test_an_untrusted_certificate_is_refused(smtp_server: Any) -> None:
    conn, _inbox = smtp_server("starttls")
    untrusted = {k: v for k, v in conn.items() if k != "ca_cert"}
    with pytest.raises(ActionError, match="does not verify") as info:
        await plugin.test_connection(untrusted)
    assert info.value.retryable is False


async def test_smtps_against_a_plain_text_port_is_a_configuration_error(
    smtp_server: Any,
) -> None:
    plain_conn, _inbox = smtp_server("none", auth=False)
    with pytest.raises(ActionError, match=r"TLS with .* failed") as info:
        await plugin.test_connection({**plain_conn, "security": "ssl"})
    assert info.value.retryable is False


async def test_refused_recipients(smtp_server: Any) -> None:
    conn, inbox = smtp_server("starttls")
    inbox.refuse = {
        "gone@example.com": "550 5.1.1 no such user",
        "busy@example.com": "450 4.2.1 mailbox busy",
    }
    out = await run_action(
        plugin.SEND,
        {"to": ["ann@example.com", "gone@example.com"], "subject": "s", "text": "t"},
        connection=conn,
    )
    assert out["accepted"] == ["ann@example.com"]
    assert out["refused"] == {"gone@example.com": "550 5.1.1 no such user"}
    with pytest.raises(ActionError, match="every recipient was refused") as permanent:
        await run_action(
            plugin.SEND, {"to": "gone@example.com", "subject": "s", "text": "t"}, connection=conn
        )
    assert permanent.value.retryable is False
    with pytest.raises(ActionError, match="mailbox busy") as temporary:
        await run_action(
            plugin.SEND, {"to": "busy@example.com", "subject": "s", "text": "t"}, connection=conn
        )
    assert temporary.value.retryable is True


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"to": ["a@example.com", "nobody"]}, r"to\[1\]: 'nobody' is not an e-mail address"),
        ({"subject": "hi\r\nBcc: x@evil.test"}, "a header is invalid"),
        (
            {"attachments": [{"filename": "a.txt", "content_base64": "%%%"}]},
            r"attachments\[0\]\.content_base64: not valid base64",
        ),
        ({"headers": {"From": "x@evil.test"}}, "headers.From: set by the action itself"),
    ],
)
async def test_bad_input_is_refused_with_the_place_named(
    smtp_server: Any, data: dict[str, Any], message: str
) -> None:
    conn, inbox = smtp_server("starttls")
    full = {"to": "a@example.com", "subject": "s", "text": "t", **data}
    with pytest.raises(ActionError, match=message) as info:
        await run_action(plugin.SEND, full, connection=conn)
    assert info.value.retryable is False and inbox.received == []


async def test_unreachable_server_is_retryable(closed_port: int) -> None:
    conn = {
        "host": "127.0.0.1",
        "port": closed_port,
        "from_address": "hub@example.org",
        "username": "u",
        "password": "pw-xyz-123",
        "timeout": 3,
    }
    with pytest.raises(ActionError) as info:
        await plugin.test_connection(conn)
    assert info.value.retryable is True and "pw-xyz-123" not in str(info.value)


async def test_send_without_a_connection_names_the_action() -> None:
    with pytest.raises(ActionError, match=r"email\.send: needs a connection"):
        await run_action(plugin.SEND, {"to": "a@example.com", "subject": "s", "text": "t"})
