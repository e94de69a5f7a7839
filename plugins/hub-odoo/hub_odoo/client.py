"""Calling Odoo's external API through the hub's guarded HTTP client, and mapping its errors.

Two protocols, chosen by the connection's ``protocol``:

- ``json2`` (Odoo 19 and later): ``POST {url}/json/2/{model}/{method}`` with
  ``Authorization: bearer <api key>`` (and ``X-Odoo-Database`` when a database is named); the
  body holds the method's arguments by name plus ``ids`` and ``context``; the answer is the
  method's return value, or a 4xx/5xx status with ``{name, message, arguments, debug}``.
- ``jsonrpc`` (older versions; removed in Odoo 22): ``POST {url}/jsonrpc`` calling
  ``object.execute_kw(db, uid, password, model, method, args, kwargs)``, where ``uid`` comes
  from ``common.authenticate(db, login, password, {})`` (cached); errors come back with HTTP
  200 and ``{"error": {"message", "data": {"name", "message", "debug"}}}``.

Errors keep Odoo's exception message and never its traceback (``debug``) or a secret.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Mapping
from typing import Any

import httpx

from hub import ActionError, parse_retry_after

DEFAULT_TIMEOUT = 60.0
MODEL_RE = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z0-9_]+)*$")
METHOD_RE = re.compile(r"^[a-z][a-z0-9_]*$")
UID_TTL = 3600.0
MESSAGE_CHARS = 500
# Parameters that JSON-RPC passes by position (their name changed across Odoo versions).
POSITIONAL = {"create": ("vals_list",)}
DENIED = "odoo.exceptions.AccessDenied"
NOT_RETRYABLE = {
    "odoo.exceptions.AccessError": "Odoo denied access",
    "odoo.exceptions.UserError": "Odoo refused the operation",
    "odoo.exceptions.ValidationError": "Odoo refused the values",
    "odoo.exceptions.MissingError": "the record does not exist (any more)",
    "odoo.exceptions.RedirectWarning": "Odoo refused the operation",
}
TRANSIENT = ("SerializationFailure", "OperationalError", "LockNotAvailable", "concurrent update")
_ids = itertools.count(1)


def odoo_failure(what: str, name: str, message: str, status: int | None = None) -> ActionError:
    """The :class:`ActionError` for an Odoo exception ``name`` with its ``message``."""
    message = " ".join(message.split())[:MESSAGE_CHARS]
    detail = f": {message}" if message else ""
    if name == DENIED or name.endswith("Unauthorized") or status == 401:
        return ActionError(
            f"{what}: Odoo refused the credentials{detail}. Check the connection's api_key"
            " (and username and database for JSON-RPC)"
        )
    if name in NOT_RETRYABLE:
        return ActionError(f"{what}: {NOT_RETRYABLE[name]}{detail}")
    if any(t in name or t in message for t in TRANSIENT):
        return ActionError(f"{what}: a transient database error in Odoo{detail}", retryable=True)
    if status is not None and status >= 500:
        return ActionError(f"{what}: Odoo answered HTTP {status} ({name}){detail}", retryable=True)
    shown = name.rsplit(".", 1)[-1] if name else "error"
    where = f"HTTP {status}, " if status else ""
    return ActionError(f"{what}: Odoo error ({where}{shown}){detail}")


def check_names(what: str, model: str, method: str) -> None:
    """Refuse model and method names Odoo could not have (they become URL path segments)."""
    if not MODEL_RE.match(model):
        raise ActionError(f"{what}: input.model {model!r} is not an Odoo model name (res.partner)")
    if not METHOD_RE.match(method):
        raise ActionError(f"{what}: {method!r} is not a public Odoo method name")


class OdooClient:
    """One connection's access to Odoo, over JSON-2 or JSON-RPC."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        connection: Mapping[str, Any],
        timeout: float | None = None,
        cache: Any = None,
    ) -> None:
        self.url = str(connection.get("url") or "").rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            raise ActionError("odoo: the connection's url must be the server's http(s) URL")
        self.protocol = str(connection.get("protocol") or "json2")
        if self.protocol not in ("json2", "jsonrpc"):
            raise ActionError(f"odoo: unknown protocol {self.protocol!r} (json2 or jsonrpc)")
        self.database = str(connection.get("database") or "")
        self.username = str(connection.get("username") or "")
        self._key = str(connection.get("api_key") or "")
        if not self._key:
            raise ActionError("odoo: the connection has no api_key")
        if self.protocol == "jsonrpc" and not (self.database and self.username):
            raise ActionError("odoo: JSON-RPC needs the connection's database and username")
        self._http = http
        self.timeout = timeout or DEFAULT_TIMEOUT
        self._cache = cache

    @classmethod
    def of(cls, ctx: Any) -> OdooClient:
        """The client for an action, option or trigger context."""
        if not ctx.connection:
            raise ActionError("odoo: this step needs an Odoo connection (field connection)")
        timeout = getattr(getattr(ctx, "settings", None), "http_timeout", None)
        return cls(
            ctx.http,
            ctx.connection,
            float(timeout) if timeout else None,
            getattr(ctx, "cache", None),
        )

    @property
    def identity(self) -> str:
        """A digest naming this connection's credentials (for cache keys; reveals nothing)."""
        parts = (self.protocol, self.url, self.database, self.username, self._key)
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]

    async def execute(
        self,
        model: str,
        method: str,
        *,
        ids: list[int] | None = None,
        params: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        what: str = "odoo",
    ) -> Any:
        """Call ``model.method`` with named ``params`` (on ``ids`` for record methods)."""
        check_names(what, model, method)
        params = dict(params or {})
        if context:
            params["context"] = dict(context)
        if self.protocol == "json2":
            body = {**params, **({"ids": ids} if ids is not None else {})}
            return await self._json2(model, method, body, what)
        args: list[Any] = [ids] if ids is not None else []
        args += [params.pop(name) for name in POSITIONAL.get(method, ()) if name in params]
        uid = await self.uid(what)
        call = [self.database, uid, self._key, model, method, args, params]
        try:
            return await self._jsonrpc("object", "execute_kw", call, what)
        except ActionError as exc:
            if "refused the credentials" in str(exc) and self._cache is not None:
                await self._cache.invalidate(self._uid_key)  # the key may have been revoked
            raise

    # -- JSON-2 --------------------------------------------------------------------------------

    async def _json2(self, model: str, method: str, body: dict[str, Any], what: str) -> Any:
        headers = {
            "Authorization": f"bearer {self._key}",
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "hub-odoo",
        }
        if self.database:
            headers["X-Odoo-Database"] = self.database
        response = await self._post(f"{self.url}/json/2/{model}/{method}", body, headers, what)
        if response.status_code == 200:
            return self._json(response, what)
        status = response.status_code
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            raise ActionError(
                f"{what}: Odoo is rate limiting requests (HTTP 429)",
                retryable=True,
                retry_after=retry_after,
            )
        try:
            error = response.json()
        except ValueError:
            error = response.text[:MESSAGE_CHARS]
        if isinstance(error, dict):
            name, message = str(error.get("name") or ""), str(error.get("message") or "")
        else:
            name, message = "", str(error)
        if status == 404 and not name.startswith("odoo."):
            message = f"no model {model!r} or method {method!r} on this server ({message})"
        raise odoo_failure(what, name, message, status)

    # -- JSON-RPC ------------------------------------------------------------------------------

    @property
    def _uid_key(self) -> str:
        return f"odoo:uid:{self.identity}"

    async def uid(self, what: str = "odoo") -> int:
        """The user id of the connection's login (JSON-RPC), authenticated once and cached."""

        async def authenticate() -> int:
            uid = await self._jsonrpc(
                "common",
                "authenticate",
                [self.database, self.username, self._key, {}],
                what,
            )
            if not isinstance(uid, int) or isinstance(uid, bool):
                raise ActionError(
                    f"{what}: Odoo refused the credentials (authenticate gave no user): check "
                    "the connection's database, username and api_key"
                )
            return uid

        if self._cache is None:
            return await authenticate()
        found: int = await self._cache.get_or_load(self._uid_key, authenticate, UID_TTL)
        return found

    async def _jsonrpc(self, service: str, method: str, args: list[Any], what: str) -> Any:
        body = {
            "jsonrpc": "2.0",
            "method": "call",
            "params": {"service": service, "method": method, "args": args},
            "id": next(_ids),
        }
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "hub-odoo"}
        response = await self._post(f"{self.url}/jsonrpc", body, headers, what)
        status = response.status_code
        if status == 429 or status >= 500:
            raise ActionError(
                f"{what}: Odoo answered HTTP {status}",
                retryable=True,
                retry_after=parse_retry_after(response.headers.get("retry-after")),
            )
        if status == 404:
            raise ActionError(f"{what}: {self.url} has no /jsonrpc endpoint (not an Odoo server?)")
        if status != 200:
            raise ActionError(f"{what}: Odoo answered HTTP {status}")
        answer = self._json(response, what)
        if not isinstance(answer, dict):
            raise ActionError(f"{what}: unexpected JSON-RPC answer")
        if "error" in answer:
            error = answer.get("error") or {}
            data = error.get("data") or {}
            name = str(data.get("name") or "")
            message = str(data.get("message") or error.get("message") or "")
            raise odoo_failure(what, name, message)
        return answer.get("result")

    # -- both ----------------------------------------------------------------------------------

    async def _post(
        self, url: str, body: Any, headers: dict[str, str], what: str
    ) -> httpx.Response:
        try:
            return await self._http.post(url, json=body, headers=headers, timeout=self.timeout)
        except ActionError:
            raise  # the SSRF guard's refusal
        except httpx.TimeoutException as exc:
            raise ActionError(f"{what}: Odoo did not answer in time", retryable=True) from exc
        except httpx.TransportError as exc:
            detail = type(exc).__name__ + (f": {exc}" if str(exc) else "")
            raise ActionError(f"{what}: cannot reach Odoo: {detail}", retryable=True) from exc

    @staticmethod
    def _json(response: httpx.Response, what: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise ActionError(
                f"{what}: Odoo answered HTTP {response.status_code} with a body that is not JSON"
            ) from None
