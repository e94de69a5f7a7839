"""Form bodies of webhooks as data: ``application/x-www-form-urlencoded`` and
``multipart/form-data``.

- A urlencoded body becomes an object: each field once is a string, a field given several
  times a list of its values in order (``a=1&a=2`` -> ``{"a": ["1", "2"]}``).
- A field named ``payload`` whose text is a JSON object or array is decoded (Slack's
  interactivity and GitHub's form content type wrap their JSON that way), within the same
  shape limits as a JSON body.
- A multipart body's text fields become an object the same way; a part with a file name
  is refused (415): the hub keeps no uploaded files until big payloads exist.

The signature is checked over the raw bytes before any of this runs. Bounds: the body is
already within the webhook's cap, and at most :data:`MAX_FIELDS` fields or parts are kept
(413). A part whose own type is ``multipart/*`` or ``message/*`` is refused (415) before the
body is parsed: the email parser would recurse into it, one Python frame per level.
"""

from __future__ import annotations

import email.message
import email.parser
import email.policy
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from hub.api.errors import ApiError

URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
MAX_FIELDS = 10_000
WRAPPED = "payload"
# Media types whose parts the email parser parses in turn, one Python frame per level.
RECURSIVE_TYPES = frozenset({"multipart", "message"})


def _headers(data: bytes) -> email.message.Message:
    """The headers of a message or part, its body kept as text and never parsed."""
    return email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(data, headersonly=True)


def _parts(raw: bytes, boundary: str) -> list[bytes]:
    """The top-level parts of a multipart body as the email parser delimits them (a line
    that is the delimiter, optionally closing, with trailing blanks), each with its headers;
    nothing after the closing delimiter. Refuses (413) more than :data:`MAX_FIELDS` parts."""
    delimiter = re.compile(
        rb"(?:\A|(?<=[\r\n]))--"
        + re.escape(boundary.encode("utf-8", "surrogateescape"))
        + rb"(--)?[ \t]*(?:\r\n|\r|\n|\Z)"
    )
    parts: list[bytes] = []
    start: int | None = None
    for found in delimiter.finditer(raw):
        if start is not None:
            parts.append(raw[start : found.start()])
            if len(parts) > MAX_FIELDS:
                raise ApiError(
                    413, "too_many_fields", f"the form has more than {MAX_FIELDS} fields"
                )
        if found.group(1):
            return parts
        start = found.end()
    if start is not None:
        parts.append(raw[start:])
    return parts


def _refuse_nested(raw: bytes, boundary: str) -> None:
    """415 when a top-level part's own Content-Type is ``multipart/*`` or ``message/*``, as the
    email parser reads that header (RFC 2231 parameters, folded lines, any case): the parser
    would recurse into such a part, one level per nesting. A field's value (a whole e-mail an
    inbound-mail service forwards) is text and is not looked at."""
    for part in _parts(raw, boundary):
        if _headers(part).get_content_maintype() in RECURSIVE_TYPES:
            raise ApiError(
                415,
                "unsupported_media_type",
                "a part is itself multipart or a message: webhooks take flat forms",
            )


def _collect(pairs: Iterable[tuple[str, str]], decode_json: Callable[[bytes], Any]) -> Any:
    values: dict[str, list[str]] = {}
    for count, (name, value) in enumerate(pairs, 1):
        if count > MAX_FIELDS:
            raise ApiError(413, "too_many_fields", f"the form has more than {MAX_FIELDS} fields")
        values.setdefault(name, []).append(value)
    found: dict[str, Any] = {name: got[0] if len(got) == 1 else got for name, got in values.items()}
    wrapped = found.get(WRAPPED)
    if isinstance(wrapped, str) and wrapped.lstrip()[:1] in ("{", "["):
        found[WRAPPED] = decode_json(wrapped.encode())
    return found


def parse_urlencoded(raw: bytes, decode_json: Callable[[bytes], Any]) -> Any:
    """A urlencoded body as an object (repeated fields as lists, ``payload`` JSON decoded);
    415 when it is not UTF-8."""
    try:
        text = raw.decode()
    except UnicodeDecodeError as exc:
        raise ApiError(415, "unsupported_media_type", "the form is not UTF-8 text") from exc
    try:
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except UnicodeDecodeError as exc:
        raise ApiError(
            415, "unsupported_media_type", "a form field is not UTF-8 once unquoted"
        ) from exc
    except ValueError as exc:
        raise ApiError(
            413, "too_many_fields", f"the form has more than {MAX_FIELDS} fields"
        ) from exc
    return _collect(pairs, decode_json)


def parse_multipart(raw: bytes, content_type: str, decode_json: Callable[[bytes], Any]) -> Any:
    """A multipart body's text fields as an object; a file part is refused with 415, a body
    that is not multipart with 400."""
    # A part that is itself multipart (the email parser recurses per level: 1,000 levels in
    # 120 kB were a RecursionError after a second of CPU) is refused before the body is parsed,
    # whatever way its Content-Type writes the type and its parameters.
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    boundary = _headers(head).get_boundary()
    if not boundary:
        raise ApiError(400, "invalid_form", "the multipart content type names no boundary")
    _refuse_nested(raw, boundary)
    try:
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
    except RecursionError:  # a backstop: the check above leaves no part that recurses
        raise ApiError(400, "invalid_form", "the multipart parts are nested too deep") from None
    if not message.is_multipart() or message.defects:
        raise ApiError(400, "invalid_form", "the body is not a multipart/form-data document")
    pairs: list[tuple[str, str]] = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            raise ApiError(400, "invalid_form", "a multipart part has no field name")
        if part.get_filename() is not None:
            raise ApiError(
                415,
                "unsupported_media_type",
                f"the form field {name[:100]!r} is a file: webhooks take no files",
            )
        data = part.get_payload(decode=True)
        value = data if isinstance(data, bytes) else b""
        try:
            pairs.append((name, value.decode()))
        except UnicodeDecodeError as exc:
            raise ApiError(
                415, "unsupported_media_type", f"the form field {name[:100]!r} is not UTF-8"
            ) from exc
    return _collect(pairs, decode_json)
