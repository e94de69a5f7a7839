"""What the API checks and prepares when it starts: the secret key, and the first owner."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any

from cryptography.fernet import InvalidToken
from sqlalchemy.exc import IntegrityError

from hub.db import accounts, queries, store
from hub.runtime import Hub
from hub.security.secrets import SecretKeyError

log = logging.getLogger("hub")
OWNER_EMAIL = "admin@localhost"
PASSWORD_FILE = "initial-owner.txt"
KEY_CHECK_SAMPLE = 500


async def verify_secret_key(hub: Hub, sample: int = KEY_CHECK_SAMPLE) -> int:
    """Check that the configured key decrypts the stored secrets (see Hub.verify_secret_key)."""
    return await hub.verify_secret_key(sample)


def write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only (mode 0600, also when it existed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


async def ensure_first_owner(hub: Hub, *, base_url: str = "") -> dict[str, Any] | None:
    """On a hub without users, create ``admin@localhost`` as owner of the default workspace.

    Its random password is printed once on the console (stderr) and written to
    ``initial-owner.txt`` (mode 0600) in the data folder; the log says only where it is.
    Returns the new user, or None when users exist already.
    """
    if await hub.db.read(accounts.count_users):
        return None
    password = accounts.new_password()
    password_hash = await asyncio.to_thread(accounts.hash_password, password)
    try:
        user = await hub.db.write(
            lambda c: accounts.bootstrap_owner(c, hub.workspace, OWNER_EMAIL, password_hash)
        )
    except IntegrityError:  # another process of this hub made it first
        return None
    if user is None:
        return None
    path = hub.settings.data_dir / PASSWORD_FILE
    where = base_url or f"http://{hub.settings.host}:{hub.settings.port}"
    text = (
        f"email: {OWNER_EMAIL}\n"
        f"password: {password}\n"
        f"workspace: {hub.workspace}\n"
        f"log in: POST {where}/api/auth/login with this email and password (or the UI),\n"
        "then change the password (POST /api/me/password) and delete this file.\n"
        f"API token: hub tokens create --email {OWNER_EMAIL} --name cli\n"
    )
    write_private(path, text)
    banner = "=" * 72
    sys.stderr.write(
        f"\n{banner}\nThe hub had no users: an owner was created (shown once).\n"
        f"  {text.replace(chr(10), chr(10) + '  ').rstrip()}\n"
        f"  (also in {path}, mode 0600)\n{banner}\n\n"
    )
    sys.stderr.flush()
    log.warning(
        "created the first owner %s of workspace %s; the password is in %s",
        OWNER_EMAIL,
        hub.workspace,
        path,
    )
    return user


def _rotate_all(hub: Hub, conn: Any) -> int:
    count = 0
    for row in store.encrypted_connections(conn):
        try:
            secrets_token = hub.secrets.rotate(row["secrets"]) if row["secrets"] else ""
            oauth_token = hub.secrets.rotate(row["oauth_tokens"]) if row["oauth_tokens"] else ""
        except InvalidToken as exc:
            raise SecretKeyError(
                f"the stored secrets of connection {row['name']!r} in workspace "
                f"{row['workspace_id']!r} cannot be decrypted with any key of HUB_SECRET_KEY: "
                "list the old key after the new one (HUB_SECRET_KEY=NEW,OLD); nothing was changed"
            ) from exc
        queries.store_rotated(conn, row["workspace_id"], row["name"], secrets_token, oauth_token)
        count += 1
    return count


async def rotate_secrets(hub: Hub) -> int:
    """Re-encrypt every connection's values with the newest key, in one transaction
    (all or nothing); return how many connections were re-encrypted."""
    return await hub.db.write(lambda c: _rotate_all(hub, c))
