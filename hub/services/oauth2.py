"""OAuth2 authorization-code flow with PKCE, and token refresh, for connectors that declare it.

A connector declares an ``oauth2`` block::

    oauth2={
        "authorize_url": "https://example.com/oauth/authorize",
        "token_url": "https://example.com/oauth/token",
        "scopes": ["contacts.read"],          # optional
        "extra_params": {"access_type": "offline"},  # optional, added to the authorize URL
        "token_auth": "body",                  # or "basic": how client credentials are sent
    }

and its connections hold ``client_id`` and ``client_secret`` (a secret field). The hub keeps
the token set encrypted in the connection's ``oauth_tokens`` and the current access token
among its encrypted secrets, so actions read ``ctx.connection["access_token"]`` and the
engine redacts it like any secret.

The ``state`` parameter is a Fernet token (encrypted and authenticated with the hub's key):
it carries the workspace, connection, user, PKCE code verifier, redirect URI and an expiry,
so no server-side storage is needed and the verifier never leaves the hub in clear. The
callback only completes for the same user who started the flow (OAuth login-CSRF).

The API's routes reach these functions through the connections service
(:mod:`hub.services.connections`) and :func:`complete_authorization`; :func:`refresher`
runs for the life of a serving hub (:meth:`hub.runtime.Hub.start_triggers`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import secrets
import time
import urllib.parse
from typing import Any

import httpx

from hub.connectors import Connector
from hub.db import accounts
from hub.db import audit as audit_log
from hub.db import connections as connection_store
from hub.security.accounts import at_least
from hub.security.secrets import Redactor, SecretKeyError, secret_values
from hub.services.base import HubParts
from hub.services.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Invalid,
    KeyMismatch,
    NotFound,
    ServiceError,
    UpstreamFailed,
)

log = logging.getLogger("hub.oauth2")
STATE_SECONDS = 600
REFRESH_MARGIN = 300.0  # refresh an access token this many seconds before it expires
REFRESH_EVERY = 60.0


class OAuthError(Exception):
    """The OAuth2 server refused or failed (the message is redacted)."""


def oauth_block(connector: Connector) -> dict[str, Any]:
    """The connector's oauth2 block, or :class:`Invalid` when it declares none (or an
    unusable one)."""
    block = connector.oauth2 or {}
    if not block.get("authorize_url") or not block.get("token_url"):
        raise Invalid(
            f"connector {connector.name!r} does not declare OAuth2 "
            "(an oauth2 block with authorize_url and token_url)",
            [{"location": "connector", "message": "no oauth2 block"}],
        )
    return block


def pkce_pair() -> tuple[str, str]:
    """A PKCE code verifier (86 characters) and its S256 challenge (RFC 7636)."""
    verifier = secrets.token_urlsafe(64)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    challenge = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    return verifier, challenge


def safe_return_to(value: str | None) -> str | None:
    """A return address inside this hub (a path), never another site."""
    if not value:
        return None
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        raise BadRequest(
            "return_to must be a path on this hub",
            [{"key": "return_to", "source": "query"}],
        )
    return value


def authorize_url(
    hub: HubParts,
    *,
    workspace: str,
    name: str,
    user_id: str,
    block: dict[str, Any],
    values: dict[str, Any],
    redirect_uri: str,
    return_to: str | None = None,
) -> str:
    """The provider's authorization URL for a connection, with PKCE and a sealed state."""
    client_id = values.get("client_id")
    if not client_id:
        raise Invalid(
            "the connection has no client_id",
            [{"location": "values.client_id", "message": "required for OAuth2"}],
        )
    verifier, challenge = pkce_pair()
    state = hub.secrets.encrypt(
        {
            "w": workspace,
            "c": name,
            "u": user_id,
            "v": verifier,
            "r": redirect_uri,
            "t": return_to,
            "exp": time.time() + STATE_SECONDS,
        }
    )
    params: dict[str, str] = {
        "response_type": "code",
        "client_id": str(client_id),
        "redirect_uri": redirect_uri,
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    scopes = block.get("scopes") or []
    if scopes:
        params["scope"] = " ".join(str(s) for s in scopes)
    params.update({str(k): str(v) for k, v in (block.get("extra_params") or {}).items()})
    base = str(block["authorize_url"])
    return base + ("&" if "?" in base else "?") + urllib.parse.urlencode(params)


def open_state(hub: HubParts, state: str) -> dict[str, Any]:
    """The content of a state the hub made, or :class:`BadRequest` (forged, altered or
    expired)."""
    try:
        payload = hub.secrets.decrypt(state)
    except (SecretKeyError, ValueError, TypeError) as exc:
        raise BadRequest("the OAuth2 state is not one this hub made") from exc
    if not isinstance(payload, dict) or float(payload.get("exp", 0)) < time.time():
        raise BadRequest("the OAuth2 state has expired; authorize again")
    return payload


async def token_request(
    http: httpx.AsyncClient, block: dict[str, Any], values: dict[str, Any], form: dict[str, str]
) -> dict[str, Any]:
    """POST to the token endpoint; return ``{access_token, refresh_token, expires_at, ...}``."""
    client_id = str(values.get("client_id") or "")
    client_secret = values.get("client_secret")
    redactor = Redactor(secret_values({"s": client_secret, **form}))
    auth: httpx.BasicAuth | None = None
    body = dict(form)
    if block.get("token_auth") == "basic":
        auth = httpx.BasicAuth(client_id, str(client_secret or ""))
    else:
        body["client_id"] = client_id
        if client_secret:
            body["client_secret"] = str(client_secret)
    try:
        response = await http.post(
            str(block["token_url"]),
            data=body,
            auth=auth,  # type: ignore[arg-type]
            headers={"accept": "application/json"},
            timeout=30.0,
            # A token endpoint answers, it does not redirect: following one would send the
            # form (code, verifier, client secret) to wherever the redirect points.
            follow_redirects=False,
        )
    except httpx.HTTPError as exc:
        raise OAuthError(redactor.text(f"the OAuth2 token endpoint failed: {exc}")) from exc
    try:
        answer = response.json()
    except ValueError:
        answer = dict(urllib.parse.parse_qsl(response.text))
    if not isinstance(answer, dict):
        answer = {}
    redactor = Redactor(
        secret_values({"s": client_secret, **form})
        | secret_values({k: answer.get(k) for k in ("access_token", "refresh_token")})
    )
    if response.status_code != 200 or not answer.get("access_token"):
        error = answer.get("error") or f"HTTP {response.status_code}"
        description = answer.get("error_description") or ""
        message = f"the OAuth2 server refused: {error} {description}".strip()
        raise OAuthError(redactor.text(message))
    expires_in = answer.get("expires_in")
    try:
        expires_at = time.time() + float(expires_in) if expires_in is not None else None
    except (TypeError, ValueError):
        expires_at = None
    return {
        "access_token": str(answer["access_token"]),
        "refresh_token": answer.get("refresh_token"),
        "token_type": answer.get("token_type") or "Bearer",
        "scope": answer.get("scope"),
        "expires_at": expires_at,
    }


def tokens_of(hub: HubParts, row: dict[str, Any]) -> dict[str, Any] | None:
    """A connection's decrypted OAuth2 token set, or None when it has none."""
    if not row.get("oauth_tokens"):
        return None
    tokens = hub.secrets.decrypt(row["oauth_tokens"])
    return tokens if isinstance(tokens, dict) else None


async def store_tokens(
    hub: HubParts,
    workspace: str,
    name: str,
    tokens: dict[str, Any],
    *,
    expect: str | None = None,
    audit: tuple[str, str] | None = None,
) -> bool:
    """Store a token set (and the access token among the secrets) in one transaction.

    With ``expect`` (the stored ``oauth_tokens`` read before a refresh) it is a
    compare-and-set: False when another process stored newer tokens meanwhile. ``audit`` is
    (actor, action) to record with it.
    """

    def write(conn: Any) -> bool:
        row = connection_store.get_connection(conn, workspace, name)
        if row is None:
            raise NotFound(f"no connection {name!r}")
        current = hub.secrets.decrypt(row["secrets"]) if row["secrets"] else {}
        current["access_token"] = tokens["access_token"]
        changed = connection_store.update_connection(
            conn,
            workspace,
            name,
            secrets_token=hub.secrets.encrypt(current),
            settings=row["settings"],
            oauth_tokens=hub.secrets.encrypt(tokens),
            expect_oauth=expect,
        )
        if changed and audit is not None:
            details = {"scope": tokens.get("scope"), "refresh": bool(tokens.get("refresh_token"))}
            audit_log.record(conn, workspace, audit[0], audit[1], name, details)
        return changed

    return await hub.db.write(write)


async def complete_authorization(
    hub: HubParts, *, user_id: str, actor: str, code: str, state: str
) -> tuple[str, str, str | None]:
    """Exchange the code (with the PKCE verifier) and store the tokens.

    Returns (workspace, connection name, return_to). Only the user who started the flow,
    still an editor of the workspace, can complete it.
    """
    payload = open_state(hub, state)
    workspace, name = str(payload["w"]), str(payload["c"])
    if payload.get("u") != user_id:
        raise Forbidden("this authorization was started by another user")
    role = await hub.db.read(lambda c: accounts.role_of(c, workspace, user_id))
    if not at_least(role, "editor"):
        raise NotFound(f"no workspace {workspace!r}")
    row = await hub.db.read(lambda c: connection_store.get_connection(c, workspace, name))
    connector = hub.registry.connectors.get(row["connector"]) if row else None
    if row is None or connector is None:
        raise NotFound(f"no connection {name!r}")
    block = oauth_block(connector)
    values = await _values(hub, workspace, name)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": str(payload["r"]),
        "code_verifier": str(payload["v"]),
    }
    try:
        tokens = await token_request(hub.http, block, values, form)
    except OAuthError as exc:
        raise UpstreamFailed(str(exc)) from exc
    await store_tokens(hub, workspace, name, tokens, audit=(actor, "connection.oauth2"))
    return workspace, name, payload.get("t")


async def refresh_connection(
    hub: HubParts, workspace: str, name: str, *, force: bool = False, margin: float = REFRESH_MARGIN
) -> bool:
    """Refresh a connection's access token when it expires within ``margin`` seconds
    (or always, with ``force``); True when new tokens were stored."""
    row = await hub.db.read(lambda c: connection_store.get_connection(c, workspace, name))
    if row is None:
        raise NotFound(f"no connection {name!r}")
    tokens = tokens_of(hub, row)
    if tokens is None:
        raise Conflict(f"connection {name!r} is not authorized yet")
    expires_at = tokens.get("expires_at")
    if not force and (expires_at is None or float(expires_at) > time.time() + margin):
        return False
    if not tokens.get("refresh_token"):
        raise OAuthError(f"connection {name!r} has no refresh token: authorize it again")
    connector = hub.registry.connectors.get(row["connector"])
    if connector is None:
        raise OAuthError(f"connector {row['connector']!r} is not installed")
    block = oauth_block(connector)
    values = await _values(hub, workspace, name)
    form = {"grant_type": "refresh_token", "refresh_token": str(tokens["refresh_token"])}
    fresh = await token_request(hub.http, block, values, form)
    fresh["refresh_token"] = fresh.get("refresh_token") or tokens["refresh_token"]
    return await store_tokens(hub, workspace, name, fresh, expect=row["oauth_tokens"])


async def refresh_now(hub: HubParts, workspace: str, name: str) -> None:
    """Refresh a connection's access token whatever its expiry (:class:`UpstreamFailed`
    when the OAuth2 server refuses, :class:`KeyMismatch` when the key does not fit)."""
    try:
        await refresh_connection(hub, workspace, name, force=True)
    except OAuthError as exc:
        raise UpstreamFailed(str(exc)) from exc
    except SecretKeyError as exc:
        raise KeyMismatch(str(exc)) from exc


async def _values(hub: HubParts, workspace: str, name: str) -> dict[str, Any]:
    """A connection's decrypted values (:class:`NotFound` when it is gone)."""
    try:
        values, _redactor = await hub.engine.connection_values(workspace, name)
    except LookupError as exc:
        raise NotFound(str(exc)) from exc
    return values


async def refresh_due(hub: HubParts) -> int:
    """Refresh every access token that expires soon, in every workspace; return how many."""
    rows = await hub.db.read(lambda c: connection_store.encrypted_connections(c))
    refreshed = 0
    for row in rows:
        if not row["oauth_tokens"]:
            continue
        try:
            if await refresh_connection(hub, row["workspace_id"], row["name"]):
                refreshed += 1
        except (OAuthError, ServiceError, SecretKeyError) as exc:
            log.warning(
                "refreshing the OAuth2 token of %s/%s failed: %s",
                row["workspace_id"],
                row["name"],
                exc,
            )
    return refreshed


async def refresher(hub: HubParts, every: float = REFRESH_EVERY) -> None:
    """Refresh tokens that expire soon, every ``every`` seconds, for the life of the hub."""
    while True:
        await asyncio.sleep(every)
        try:
            await refresh_due(hub)
        except Exception:
            log.exception("the OAuth2 refresher failed; retrying at the next interval")
