"""Calling the Slack Web API through the hub's guarded HTTP client, and mapping its errors.

Slack answers most failures with HTTP 200 and ``{"ok": false, "error": "<code>"}``; only rate
limiting (429 with ``Retry-After``) and outages (5xx) use the HTTP status. Every failure
becomes an :class:`hub.ActionError` that names the method and Slack's error code, never the
token.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

from hub import ActionError, parse_retry_after

DEFAULT_BASE_URL = "https://slack.com/api"
DEFAULT_TIMEOUT = 30.0

# The token was refused: another attempt with the same token cannot succeed.
AUTH_ERRORS = frozenset(
    {
        "not_authed",
        "invalid_auth",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "org_login_required",
        "ekm_access_denied",
        "two_factor_setup_required",
    }
)
# Transient trouble on Slack's side: another attempt may succeed.
RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
HINTS = {
    "channel_not_found": "the channel does not exist or the bot cannot see it",
    "not_in_channel": "invite the bot to the channel first (/invite @bot)",
    "is_archived": "the channel is archived",
    "msg_too_long": "the text is longer than Slack accepts",
    "no_text": "give text or blocks",
    "invalid_blocks": "the blocks do not follow Slack's Block Kit format",
    "message_not_found": "no message with that ts in that channel",
    "cant_update_message": "a bot can only update its own messages",
    "cant_delete_message": "a bot can only delete its own messages",
    "missing_scope": "the token lacks a scope the method needs",
    "invalid_cursor": "the pagination cursor is not valid",
}
ERROR_SNIPPET = 300


def slack_failure(method: str, body: Mapping[str, Any]) -> ActionError:
    """The :class:`ActionError` for a ``{"ok": false}`` answer of ``method``."""
    code = str(body.get("error") or "unknown_error")
    where = f"slack {method}"
    if code in AUTH_ERRORS:
        return ActionError(
            f"{where}: Slack refused the credentials ({code}): check the connection's bot_token"
        )
    if code == "missing_scope":
        needed = body.get("needed")
        extra = f" (needed: {needed})" if needed else ""
        return ActionError(f"{where}: the token lacks a scope the method needs{extra}")
    if code in RETRYABLE_ERRORS:
        return ActionError(f"{where}: Slack answered {code}", retryable=True)
    hint = HINTS.get(code)
    return ActionError(f"{where} failed: {code}" + (f" ({hint})" if hint else ""))


class SlackClient:
    """A thin Web API client over an httpx client (the hub's guarded ``ctx.http``)."""

    def __init__(
        self, http: httpx.AsyncClient, connection: Mapping[str, Any], timeout: float | None = None
    ) -> None:
        token = str(connection.get("bot_token") or "")
        if not token:
            raise ActionError("slack: the connection has no bot_token")
        self._http = http
        self._token = token
        self.base_url = str(connection.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
        self.timeout = timeout or DEFAULT_TIMEOUT

    @classmethod
    def of(cls, ctx: Any) -> SlackClient:
        """The client for an action or trigger context (its connection and HTTP client)."""
        if not ctx.connection:
            raise ActionError("slack: this step needs a Slack connection (step field connection)")
        settings = getattr(ctx, "settings", None)
        timeout = getattr(settings, "http_timeout", None)
        return cls(ctx.http, ctx.connection, float(timeout) if timeout else None)

    async def call(
        self, method: str, payload: Mapping[str, Any] | None = None, *, read: bool = False
    ) -> dict[str, Any]:
        """Call a Web API method; return its body when ``ok``, raise :class:`ActionError` if not.

        Write methods are POSTed as JSON (``charset=utf-8``, as Slack asks); ``read`` methods
        are GET requests with the arguments in the query string.
        """
        url = f"{self.base_url}/{method}"
        headers = {"Authorization": f"Bearer {self._token}"}
        args = {k: v for k, v in (payload or {}).items() if v is not None}
        try:
            if read:
                response = await self._http.get(
                    url, params=args, headers=headers, timeout=self.timeout
                )
            else:
                headers["Content-Type"] = "application/json; charset=utf-8"
                response = await self._http.post(
                    url,
                    content=json.dumps(args, ensure_ascii=False).encode(),
                    headers=headers,
                    timeout=self.timeout,
                )
        except ActionError:
            raise  # the SSRF guard's refusal
        except httpx.TimeoutException as exc:
            raise ActionError(f"slack {method} timed out", retryable=True) from exc
        except httpx.TransportError as exc:
            detail = type(exc).__name__ + (f": {exc}" if str(exc) else "")
            raise ActionError(f"slack {method} failed: {detail}", retryable=True) from exc
        return self._result(method, response)

    def _result(self, method: str, response: httpx.Response) -> dict[str, Any]:
        status = response.status_code
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            wait = f"; retry after {retry_after:g} s" if retry_after is not None else ""
            raise ActionError(
                f"slack {method}: rate limited (HTTP 429){wait}",
                retryable=True,
                retry_after=retry_after,
            )
        if status >= 500:
            raise ActionError(f"slack {method}: Slack answered HTTP {status}", retryable=True)
        if status in (401, 403):
            raise ActionError(
                f"slack {method}: Slack refused the credentials (HTTP {status}): "
                "check the connection's bot_token"
            )
        try:
            body = response.json()
        except ValueError:
            snippet = response.text[:ERROR_SNIPPET].strip()
            raise ActionError(
                f"slack {method}: HTTP {status} with a body that is not JSON: {snippet!r}"
            ) from None
        if not isinstance(body, dict):
            raise ActionError(f"slack {method}: unexpected answer (HTTP {status})")
        if status >= 400 or not body.get("ok"):
            raise slack_failure(method, body)
        return body
