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
already within the webhook's cap, and at most :data:`MAX_FIELDS` fields are kept (413).
"""

from __future__ import annotations

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
# A part's Content-Type naming a multipart type (header names are case-insensitive; the
# value may follow folded whitespace).
PART_MULTIPART = re.compile(rb"(?i)content-type[ \t]*:\s*multipart/")
BOUNDARY = re.compile(r'(?i)boundary="?([^";]+)')


def _nested_part(raw: bytes, content_type: str) -> bool:
    """True when a top-level part's own headers declare a multipart type (a field's value,
    such as a whole e-mail an inbound-mail service forwards, is not looked at)."""
    found = BOUNDARY.search(content_type)
    if found is None:
        return False
    delimiter = b"--" + found.group(1).strip().encode("latin-1")
    return any(
        PART_MULTIPART.search(part.split(b"\r\n\r\n", 1)[0]) for part in raw.split(delimiter)[1:]
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
    # 120 kB were a RecursionError after a second of CPU) is refused before parsing.
    if _nested_part(raw, content_type):
        raise ApiError(
            415, "unsupported_media_type", "a part is itself multipart: webhooks take flat forms"
        )
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    try:
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
    except RecursionError:  # nesting the pattern above did not see (a folded header)
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
