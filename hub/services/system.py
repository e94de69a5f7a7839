"""Operations on the hub as a whole, for whoever runs it: readiness, the metrics' database
gauges, the secret key (checked at start, rotated on request), the first owner.

They act in every workspace at once (the key) or in none (readiness), so they take the
hub's parts rather than a workspace service; what they change is audited where it belongs
to a workspace (the first owner's membership).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.fernet import InvalidToken

from hub.db import accounts, health
from hub.db import connections as connection_store
from hub.db import errors as db_errors
from hub.security.accounts import hash_password, new_password
from hub.security.files import private_dir
from hub.security.secrets import KEY_FILE, SecretKeyError
from hub.services import links
from hub.services.base import HubParts
from hub.services.errors import Unavailable

log = logging.getLogger("hub")
OWNER_EMAIL = "admin@localhost"
PASSWORD_FILE = "initial-owner.txt"
KEY_CHECK_SAMPLE = 500
REDIS_TIMEOUT = 2.0  # seconds: a Redis that does not answer in time is not ready


async def check_ready(hub: HubParts) -> dict[str, str]:
    """What answers: the database, and Redis when one is configured (queue mode).

    :class:`Unavailable` names the first part that does not answer.
    """
    try:
        await hub.db.read(health.ping)
    except Exception as exc:
        raise Unavailable(f"database unavailable: {type(exc).__name__}") from exc
    if hub.redis is None:
        return {"database": "ok"}
    try:
        async with asyncio.timeout(REDIS_TIMEOUT):
            await hub.redis.ping()
    except Exception as exc:
        raise Unavailable(f"redis unavailable: {type(exc).__name__}") from exc
    return {"database": "ok", "redis": "ok"}


async def metric_counts(hub: HubParts) -> dict[str, int]:
    """Steps ``queued`` and ``waiting`` and runs ``running`` (see
    :func:`hub.db.health.metric_counts`)."""
    return await hub.db.read(health.metric_counts)


def listen(hub: HubParts, listener: Callable[[dict[str, Any]], None]) -> None:
    """Call ``listener`` with every run and step event of this process's engine, for the
    life of the hub (for counters such as the metrics; a face following one run uses
    :meth:`hub.services.runs.RunsService.watch`)."""
    hub.engine.listeners.append(listener)


def _key_source(hub: HubParts) -> str:
    if hub.settings.secret_key:
        return "HUB_SECRET_KEY"
    return f"the key file {hub.settings.data_dir / KEY_FILE} (HUB_SECRET_KEY unset)"


async def verify_secret_key(hub: HubParts, sample: int = KEY_CHECK_SAMPLE) -> int:
    """Check that the configured key decrypts the stored secrets (the newest ``sample``
    connections); raise :class:`SecretKeyError` naming HUB_SECRET_KEY if not, so that a
    process started with a wrong key fails loudly instead of failing every step.

    Returns how many encrypted values were checked.
    """
    rows = await hub.db.read(lambda c: connection_store.encrypted_connections(c, limit=sample))
    checked = 0
    for row in rows:
        for token in (row["secrets"], row["oauth_tokens"]):
            if not token:
                continue
            try:
                hub.secrets.decrypt(token)
            except SecretKeyError as exc:
                raise SecretKeyError(
                    f"the stored secrets of connection {row['name']!r} in workspace "
                    f"{row['workspace_id']!r} cannot be decrypted with {_key_source(hub)}. "
                    "Start the hub with HUB_SECRET_KEY set to the key(s) they were encrypted "
                    "with, newest first, comma-separated (then `hub secrets rotate` to move "
                    "to a new key)."
                ) from exc
            checked += 1
    return checked


def _rotate_all(hub: HubParts, conn: Any) -> int:
    count = 0
    for row in connection_store.encrypted_connections(conn):
        try:
            secrets_token = hub.secrets.rotate(row["secrets"]) if row["secrets"] else ""
            oauth_token = hub.secrets.rotate(row["oauth_tokens"]) if row["oauth_tokens"] else ""
        except InvalidToken as exc:
            raise SecretKeyError(
                f"the stored secrets of connection {row['name']!r} in workspace "
                f"{row['workspace_id']!r} cannot be decrypted with any key of HUB_SECRET_KEY: "
                "list the old key after the new one (HUB_SECRET_KEY=NEW,OLD); nothing was changed"
            ) from exc
        connection_store.store_rotated(
            conn, row["workspace_id"], row["name"], secrets_token, oauth_token
        )
        count += 1
    return count


async def rotate_secrets(hub: HubParts) -> int:
    """Re-encrypt every connection's values with the newest key, in one transaction
    (all or nothing); return how many connections were re-encrypted."""
    return await hub.db.write(lambda c: _rotate_all(hub, c))


def write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only (mode 0600, also when it existed)."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


async def ensure_first_owner(hub: HubParts, *, base_url: str = "") -> dict[str, Any] | None:
    """On a hub without users, create ``admin@localhost`` as owner of the default workspace.

    Its random password is printed once on the console (stderr) and written to
    ``initial-owner.txt`` (mode 0600) in the data folder; the log says only where it is.
    The membership is audited with the actor ``hub``. Returns the new user, or None when
    users exist already.
    """
    if await hub.db.read(accounts.count_users):
        return None
    password = new_password()
    password_hash = await asyncio.to_thread(hash_password, password)
    try:
        user = await hub.db.write(
            lambda c: accounts.bootstrap_owner(c, hub.workspace, OWNER_EMAIL, password_hash)
        )
    except db_errors.IntegrityError:  # another process of this hub made it first
        return None
    if user is None:
        return None
    path = hub.settings.data_dir / PASSWORD_FILE
    where = base_url or links.base_url(hub.settings)
    text = (
        f"email: {OWNER_EMAIL}\n"
        f"password: {password}\n"
        f"workspace: {hub.workspace}\n"
        f"sign in: {where}/ with this email and password (or POST {where}/api/auth/login),\n"
        "then change the password (your profile page, or POST /api/me/password) and delete\n"
        "this file.\n"
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
