"""Calling the HubSpot API through the hub's guarded HTTP client, and mapping its errors.

Both kinds of connection send ``Authorization: Bearer <token>``: a private app's access token,
or an OAuth2 access token. An OAuth2 connection that also holds ``refresh_token``,
``client_id`` and ``client_secret`` gets a fresh access token from HubSpot's token endpoint
when it has none or HubSpot refuses the one it has (401); the fresh token lives in this
process's memory only (never in the cache's Redis tier, never in a log or an error).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from typing import Any

import httpx

from hub import ActionError, parse_retry_after

DEFAULT_BASE_URL = "https://api.hubapi.com"
TOKEN_PATH = "/oauth/v1/token"
DEFAULT_TIMEOUT = 30.0
SECONDLY_WINDOW = 10.0  # HubSpot's burst limit is per rolling 10 seconds
DETAIL_CHARS = 300

# Refreshed OAuth2 access tokens: sha256(base_url, client_id, refresh_token) -> (token, expiry).
_FRESH_TOKENS: dict[str, tuple[str, float]] = {}


def _detail(response: httpx.Response) -> tuple[str, dict[str, Any]]:
    """HubSpot's error message (shortened) and its error body (``{}`` if not JSON)."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:DETAIL_CHARS].strip(), {}
    if not isinstance(body, dict):
        return str(body)[:DETAIL_CHARS], {}
    message = str(body.get("message") or body.get("category") or "")[:DETAIL_CHARS]
    return message, body


def failure(what: str, response: httpx.Response) -> ActionError:
    """The :class:`ActionError` for a HubSpot error answer (4xx or 5xx) to ``what``."""
    status = response.status_code
    message, body = _detail(response)
    detail = f": {message}" if message else ""
    if status == 401:
        return ActionError(
            f"{what}: HubSpot refused the credentials (HTTP 401){detail}. "
            "Check the connection's access token"
        )
    if status == 403:
        return ActionError(f"{what}: HubSpot denied access (HTTP 403, missing scope?){detail}")
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        policy = str(body.get("policyName") or "")
        if retry_after is None and "SECONDLY" in policy:
            retry_after = SECONDLY_WINDOW
        return ActionError(
            f"{what}: HubSpot rate limit reached (HTTP 429{', ' + policy if policy else ''})",
            retryable=True,
            retry_after=retry_after,
        )
    if status >= 500:
        return ActionError(f"{what}: HubSpot answered HTTP {status}{detail}", retryable=True)
    return ActionError(f"{what}: HubSpot answered HTTP {status}{detail}")


class HubSpotClient:
    """A thin HubSpot API client over an httpx client (the hub's guarded ``ctx.http``)."""

    def __init__(
        self, http: httpx.AsyncClient, connection: Mapping[str, Any], timeout: float | None = None
    ) -> None:
        self._http = http
        self._conn = dict(connection)
        self.base_url = str(connection.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
        self.timeout = timeout or DEFAULT_TIMEOUT
        self.can_refresh = connection.get("auth") == "oauth2" and all(
            connection.get(k) for k in ("refresh_token", "client_id", "client_secret")
        )
        if not connection.get("access_token") and not self.can_refresh:
            raise ActionError(
                "hubspot: the connection has no access_token (nor refresh_token, client_id "
                "and client_secret for OAuth2)"
            )

    @classmethod
    def of(cls, ctx: Any) -> HubSpotClient:
        """The client for an action or trigger context (its connection and HTTP client)."""
        if not ctx.connection:
            raise ActionError("hubspot: this step needs a HubSpot connection (field connection)")
        timeout = getattr(getattr(ctx, "settings", None), "http_timeout", None)
        return cls(ctx.http, ctx.connection, float(timeout) if timeout else None)

    @property
    def identity(self) -> str:
        """A digest naming this connection's credentials (for cache keys; reveals nothing)."""
        parts = (self.base_url, self._conn.get("access_token"), self._conn.get("refresh_token"))
        return hashlib.sha256("\0".join(str(p) for p in parts).encode()).hexdigest()[:32]

    def _refresh_key(self) -> str:
        parts = (self.base_url, self._conn.get("client_id"), self._conn.get("refresh_token"))
        return hashlib.sha256("\0".join(str(p) for p in parts).encode()).hexdigest()

    async def _token(self, force_refresh: bool = False) -> str:
        if self.can_refresh:
            fresh = _FRESH_TOKENS.get(self._refresh_key())
            if not force_refresh and fresh and fresh[1] > time.time():
                return fresh[0]
            if force_refresh or not self._conn.get("access_token"):
                return await self._refresh()
        return str(self._conn.get("access_token") or "")

    async def _refresh(self) -> str:
        what = "hubspot OAuth2 token refresh"
        form = {
            "grant_type": "refresh_token",
            "client_id": str(self._conn["client_id"]),
            "client_secret": str(self._conn["client_secret"]),
            "refresh_token": str(self._conn["refresh_token"]),
        }
        response = await self._send("POST", self.base_url + TOKEN_PATH, what, data=form)
        if response.status_code in (400, 401):
            message, _ = _detail(response)
            raise ActionError(
                f"{what}: HubSpot refused the credentials (HTTP {response.status_code})"
                + (f": {message}" if message else "")
                + ". Reconnect the HubSpot account"
            )
        if response.status_code >= 300:
            raise failure(what, response)
        body = response.json()
        token = str(body.get("access_token") or "")
        if not token:
            raise ActionError(f"{what}: HubSpot's answer has no access_token")
        lifetime = float(body.get("expires_in") or 1800)
        _FRESH_TOKENS[self._refresh_key()] = (token, time.time() + max(0.0, lifetime - 60))
        return token

    async def _send(
        self, method: str, url: str, what: str, *, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        try:
            return await self._http.request(
                method, url, headers=headers, timeout=self.timeout, **kwargs
            )
        except ActionError:
            raise  # the SSRF guard's refusal
        except httpx.TimeoutException as exc:
            raise ActionError(f"{what} timed out", retryable=True) from exc
        except httpx.TransportError as exc:
            detail = type(exc).__name__ + (f": {exc}" if str(exc) else "")
            raise ActionError(f"{what} failed: {detail}", retryable=True) from exc

    async def request(
        self,
        method: str,
        path: str,
        what: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        allow: tuple[int, ...] = (),
    ) -> tuple[int, Any]:
        """Send one API request; return ``(status, parsed body)`` for 2xx and ``allow`` statuses.

        Any other status raises :class:`ActionError` (see :func:`failure`). A 401 on an OAuth2
        connection that can refresh its token is retried once with a fresh token.
        """
        url = self.base_url + path
        kwargs: dict[str, Any] = {"params": dict(params) if params else None}
        if json is not None:
            kwargs["json"] = json
        response = await self._send(method, url, what, token=await self._token(), **kwargs)
        if response.status_code == 401 and self.can_refresh:
            fresh = await self._token(force_refresh=True)
            response = await self._send(method, url, what, token=fresh, **kwargs)
        status = response.status_code
        if status >= 300 and status not in allow:
            raise failure(what, response)
        if not response.content:
            return status, None
        try:
            return status, response.json()
        except ValueError:
            if status >= 300:
                return status, None
            raise ActionError(
                f"{what}: HubSpot answered HTTP {status} with a non-JSON body"
            ) from None
