"""Where a webhook sender's delivery id is, and the presets of the common senders.

A webhook flow may name its sender's delivery id in ``trigger.config.dedup``: a header
(``{header: X-GitHub-Delivery}``), a field of the decoded body (``{field: id}``, a dotted
path; a list of paths takes the first one present) or an expression over the trigger data
(``{expression: "{{ trigger.headers['x-a'] ~ trigger.body.id }}"}``, rendered by the
services, which hold the expression sandbox). The key is stored with the run in its
transaction (:mod:`hub.db.webhook_keys`, ``dedup:`` rows): a second delivery with the same
key starts nothing and is answered with the first run.

``trigger.config.sender: {preset: github, secret_ref: ...}`` sets the signature scheme and
the dedup key of a common sender together (:data:`PRESETS`); an explicit ``signature`` or
``dedup`` beside it replaces the preset's.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from typing import Any

# A dedup key is stored as ``dedup:<key>`` in a column of 200 characters; a longer key, or
# one with characters outside printable ASCII, is stored as the SHA-256 of its UTF-8 text.
MAX_PLAIN_KEY = 190


class MissingKey(ValueError):
    """The request does not carry the dedup key its flow names; the message says where."""


@dataclasses.dataclass(frozen=True)
class DedupSpec:
    """Where a request's dedup key is: one of a header, body fields or an expression."""

    header: str | None = None
    fields: tuple[tuple[str, ...], ...] = ()
    expression: str | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> DedupSpec:
        """Parse ``trigger.config.dedup``; errors name the field (``ValueError``)."""
        where = "trigger.config.dedup"
        given = [name for name in ("header", "field", "expression") if raw.get(name)]
        if len(given) != 1:
            raise ValueError(f"{where}: exactly one of header, field or expression")
        header = raw.get("header")
        if header is not None:
            if not isinstance(header, str) or not header.strip():
                raise ValueError(f"{where}.header: a header name")
            return cls(header=header.strip().lower())
        field = raw.get("field")
        if field is not None:
            paths = [field] if isinstance(field, str) else field
            if not isinstance(paths, list) or not all(
                isinstance(p, str) and p and all(p.split(".")) for p in paths
            ):
                raise ValueError(f"{where}.field: a dotted path (or a list of them)")
            return cls(fields=tuple(tuple(p.split(".")) for p in paths))
        expression = raw.get("expression")
        if not isinstance(expression, str) or "{{" not in expression:
            raise ValueError(f"{where}.expression: a {{{{ ... }}}} expression")
        return cls(expression=expression)

    def describe(self) -> str:
        """Where the key is, for error messages (``the X-GitHub-Delivery header``)."""
        if self.header is not None:
            return f"the {self.header} header"
        if self.fields:
            names = " or ".join("body." + ".".join(path) for path in self.fields)
            return f"the field {names}"
        return "the dedup expression"


@dataclasses.dataclass(frozen=True)
class Preset:
    """A common sender: its signature block (without ``secret_ref``) and its dedup key."""

    signature: Mapping[str, Any]
    dedup: DedupSpec


PRESETS: dict[str, Preset] = {
    "github": Preset(
        {"scheme": "hmac", "header": "x-hub-signature-256", "prefix": "sha256="},
        DedupSpec(header="x-github-delivery"),
    ),
    "stripe": Preset(
        {"scheme": "stripe"},
        DedupSpec(fields=(("id",),)),
    ),
    "shopify": Preset(
        {"scheme": "hmac", "header": "x-shopify-hmac-sha256", "encoding": "base64"},
        DedupSpec(header="x-shopify-webhook-id"),
    ),
    "svix": Preset(
        {"scheme": "svix"},
        DedupSpec(header="svix-id"),
    ),
    "slack": Preset(
        {"scheme": "slack"},
        DedupSpec(fields=(("event_id",), ("trigger_id",), ("payload", "trigger_id"))),
    ),
}


def resolve(config: Mapping[str, Any]) -> tuple[dict[str, Any] | None, DedupSpec | None]:
    """The signature block and the dedup spec of a webhook trigger's config, with its
    ``sender`` preset applied (an explicit ``signature`` or ``dedup`` wins)."""
    signature = config.get("signature")
    dedup_raw = config.get("dedup")
    dedup = DedupSpec.parse(dedup_raw) if isinstance(dedup_raw, Mapping) else None
    sender = config.get("sender")
    if isinstance(sender, Mapping):
        name = sender.get("preset")
        preset = PRESETS.get(str(name))
        if preset is None:
            raise ValueError(f"trigger.config.sender.preset: must be one of {', '.join(PRESETS)}")
        if not isinstance(signature, Mapping):
            signature = {**preset.signature, "secret_ref": sender.get("secret_ref")}
            if sender.get("tolerance") is not None:
                signature["tolerance"] = sender["tolerance"]
        if dedup is None:
            dedup = preset.dedup
    return (dict(signature) if isinstance(signature, Mapping) else None), dedup


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str | int):
        text = str(value).strip()
        return text or None
    return None


def from_request(spec: DedupSpec, headers: Mapping[str, str], body: Any) -> str:
    """The dedup key of a request by a header or body field (not an expression); raises
    :class:`MissingKey` when the request does not carry it."""
    found: str | None = None
    if spec.header is not None:
        found = _text(headers.get(spec.header))
    else:
        for path in spec.fields:
            node = body
            for part in path:
                node = node.get(part) if isinstance(node, dict) else None
            found = _text(node)
            if found is not None:
                break
    if found is None:
        raise MissingKey(f"the request has no delivery id in {spec.describe()}")
    return found


def storable(key: str) -> str:
    """The key as stored: itself when short printable ASCII, else ``#`` and its SHA-256."""
    if len(key) <= MAX_PLAIN_KEY and key.isascii() and key.isprintable():
        return key
    return "#" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
