"""Encryption of connection secrets at rest, and redaction everywhere else.

Secrets are encrypted with Fernet (``MultiFernet`` so keys can rotate: the newest key
encrypts, every listed key decrypts). The key comes from ``HUB_SECRET_KEY`` (comma-separated,
newest first) or from a key file created with mode 0600 in the data folder on first start.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import msgspec
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from hub.security.files import private_dir

REDACTED = "[redacted]"
KEY_FILE = "secret.key"
MIN_SECRET_LENGTH = 4


class SecretKeyError(RuntimeError):
    """The secret key is missing, malformed, or does not decrypt the stored secrets."""


def load_keys(keys: Iterable[str], data_dir: Path) -> MultiFernet:
    """The keys from the settings, or the key file in the data folder (created if missing)."""
    key_list = [k for k in keys if k]
    if not key_list:
        path = data_dir / KEY_FILE
        if not path.exists():
            _create_key_file(path)
        key_list = [k for k in path.read_text().split() if k]
    try:
        return MultiFernet([Fernet(k.encode()) for k in key_list])
    except (ValueError, TypeError) as exc:
        raise SecretKeyError(
            "HUB_SECRET_KEY: each key must be 32 url-safe base64-encoded bytes "
            "(make one with `hub secrets new-key`)"
        ) from exc


def _create_key_file(path: Path) -> None:
    """Create the key file whole or not at all: processes starting together on a new data
    folder (``hub serve`` and workers) must all read the one key, never an empty file.

    The key is written to a file of this process's own, then linked to the key file's
    name, which fails if another process's link came first (its key is the one).
    """
    private_dir(path.parent)
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(Fernet.generate_key())
            fh.flush()
            os.fsync(fh.fileno())
        os.link(draft, path)
    except FileExistsError:
        pass  # another process created it first
    finally:
        draft.unlink(missing_ok=True)


class SecretBox:
    """Encrypts and decrypts JSON-compatible secret values."""

    def __init__(self, fernet: MultiFernet) -> None:
        self._fernet = fernet

    def encrypt(self, value: Any) -> str:
        """Encrypt a JSON-compatible value to a token string."""
        return self._fernet.encrypt(msgspec.json.encode(value)).decode()

    def decrypt(self, token: str) -> Any:
        """Decrypt a token; a wrong key raises :class:`SecretKeyError`."""
        try:
            return msgspec.json.decode(self._fernet.decrypt(token.encode()))
        except InvalidToken as exc:
            raise SecretKeyError(
                "stored secrets cannot be decrypted with the configured HUB_SECRET_KEY"
            ) from exc

    def rotate(self, token: str) -> str:
        """Re-encrypt a token with the newest key."""
        return self._fernet.rotate(token.encode()).decode()


def secret_fields(schema: Mapping[str, Any] | None) -> set[str]:
    """Names of the top-level properties of a connection schema that are secrets."""
    if not schema:
        return set()
    props = schema.get("properties", {}) or {}
    return {
        name
        for name, sub in props.items()
        if isinstance(sub, dict) and (sub.get("writeOnly") or sub.get("format") == "password")
    }


def secret_values(value: Any) -> set[str]:
    """Every string form of a secret value worth hiding (nested values, numbers, base64)."""
    found: set[str] = set()

    def walk(v: Any) -> None:
        if isinstance(v, Mapping):
            for item in v.values():
                walk(item)
        elif isinstance(v, list | tuple):
            for item in v:
                walk(item)
        elif isinstance(v, bool) or v is None:
            return
        else:
            text = str(v)
            if len(text) >= MIN_SECRET_LENGTH:
                found.add(text)
                raw = text.encode()
                found.add(base64.b64encode(raw).decode().rstrip("="))
                found.add(base64.urlsafe_b64encode(raw).decode().rstrip("="))

    walk(value)
    return found


class Redactor:
    """Replaces known secret values in text and nested data with ``[redacted]``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def text(self, value: str) -> str:
        """Redact secret values inside a string."""
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value

    def data(self, value: Any) -> Any:
        """Redact secret values anywhere in nested JSON-compatible data."""
        if not self._secrets:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {k: self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        if isinstance(value, int | float) and not isinstance(value, bool):
            return REDACTED if str(value) in self._secrets else value
        return value


#: A redactor with no secrets (steps without a connection): immutable, so shared.
NO_SECRETS = Redactor()
