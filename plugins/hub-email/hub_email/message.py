"""Building an e-mail message from the ``email.send`` input, with a clear error per field."""

from __future__ import annotations

import base64
import binascii
import email.utils
import hashlib
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

from hub import ActionError

# Headers the action sets itself; an input header may not replace them.
RESERVED_HEADERS = frozenset(
    {"from", "to", "cc", "bcc", "subject", "reply-to", "message-id", "date", "sender"}
    | {"mime-version", "content-type", "content-transfer-encoding"}
)


def addresses(value: Any, field: str) -> list[str]:
    """A list of plain addresses from a string or a list; an error names the bad entry."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    out: list[str] = []
    for i, item in enumerate(items):
        where = field if isinstance(value, str) else f"{field}[{i}]"
        text = str(item)
        if "\r" in text or "\n" in text:
            raise ActionError(f"email.send: {where}: an address may not contain line breaks")
        name, addr = email.utils.parseaddr(text)
        local, at, domain = addr.rpartition("@")
        if not at or not local or ("." not in domain and domain != "localhost"):
            raise ActionError(f"email.send: {where}: {text!r} is not an e-mail address")
        out.append(email.utils.formataddr((name, addr)) if name else addr)
    return out


def bare(address: str) -> str:
    """The address without its display name (what the SMTP envelope carries)."""
    return email.utils.parseaddr(address)[1]


def message_id_for(idempotency_key: str, domain: str) -> str:
    """A Message-ID derived from the idempotency key: the same on every retry of the step."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    return f"<{digest}.hub@{domain}>"


def build_message(
    data: dict[str, Any],
    *,
    sender: str,
    sender_name: str | None,
    message_id: str,
) -> tuple[EmailMessage, list[str]]:
    """The message and its envelope recipients (Bcc goes in the envelope only)."""
    to = addresses(data.get("to"), "to")
    cc = addresses(data.get("cc"), "cc")
    bcc = addresses(data.get("bcc"), "bcc")
    reply_to = addresses(data.get("reply_to"), "reply_to")
    if not to and not cc and not bcc:
        raise ActionError("email.send: to: give at least one recipient")
    text, html = data.get("text"), data.get("html")
    if text is None and html is None:
        raise ActionError("email.send: give text, html or both")
    msg = EmailMessage(policy=SMTP)
    try:
        local, _, domain = sender.rpartition("@")
        msg["From"] = Address(display_name=sender_name or "", username=local, domain=domain)
        if to:
            msg["To"] = ", ".join(to)
        if cc:
            msg["Cc"] = ", ".join(cc)
        if reply_to:
            msg["Reply-To"] = ", ".join(reply_to)
        msg["Subject"] = str(data.get("subject") or "")
        msg["Date"] = email.utils.formatdate(usegmt=True)
        msg["Message-ID"] = message_id
    except ValueError as exc:
        raise ActionError(f"email.send: a header is invalid: {exc}") from None
    for name, value in (data.get("headers") or {}).items():
        where = f"headers.{name}"
        if name.lower() in RESERVED_HEADERS:
            raise ActionError(f"email.send: {where}: set by the action itself (use its field)")
        try:
            msg[name] = str(value)
        except ValueError as exc:
            raise ActionError(f"email.send: {where}: {exc}") from None
    if text is not None:
        msg.set_content(str(text))
        if html is not None:
            msg.add_alternative(str(html), subtype="html")
    else:
        msg.set_content(str(html), subtype="html")
    for i, attachment in enumerate(data.get("attachments") or []):
        _attach(msg, attachment, f"attachments[{i}]")
    envelope = [bare(a) for a in (*to, *cc, *bcc)]
    return msg, list(dict.fromkeys(envelope))


def _attach(msg: EmailMessage, attachment: dict[str, Any], where: str) -> None:
    filename = str(attachment.get("filename") or "")
    if not filename or "\r" in filename or "\n" in filename:
        raise ActionError(f"email.send: {where}.filename: give a file name (one line)")
    try:
        content = base64.b64decode(str(attachment.get("content_base64") or ""), validate=True)
    except (binascii.Error, ValueError):
        raise ActionError(f"email.send: {where}.content_base64: not valid base64") from None
    content_type = str(attachment.get("content_type") or "application/octet-stream")
    content_type = content_type.split(";", 1)[0].strip().lower()
    maintype, slash, subtype = content_type.partition("/")
    if not slash or not maintype or not subtype or " " in content_type:
        raise ActionError(f"email.send: {where}.content_type: {content_type!r} is not a MIME type")
    msg.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
