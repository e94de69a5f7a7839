"""Calling one operation through the hub's HTTP client, with auth and error mapping.

Outcomes: a 2xx response is returned as ``{status, headers, body}``. Every other status
fails the step: 401 and 403 ("the credentials were refused") and other 4xx are not retried;
408, 429 and 5xx are retryable, honouring ``Retry-After``; so are timeouts and connection
errors. Error messages name the action, the method and the path template, never the query
string or headers (they may carry credentials).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import re
import time
import urllib.parse
from collections.abc import AsyncGenerator
from typing import Any, cast

import httpx
from hub import ActionError, parse_retry_after

from hub_openapi.operations import SAFE_METHODS, Operation, Param, Scheme

SNIPPET_BYTES = 500
RETRYABLE_STATUSES = frozenset({408, 429})
_TOKENS: dict[str, tuple[str, float]] = {}  # client-credentials tokens: key -> (token, expiry)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def query_pairs(param: Param, value: Any) -> list[tuple[str, str]]:
    """Serialise a query parameter (styles form, spaceDelimited, pipeDelimited, deepObject)."""
    if param.as_json:
        return [(param.name, json.dumps(value, separators=(",", ":")))]
    if isinstance(value, list):
        if param.explode and param.style == "form":
            return [(param.name, _scalar(v)) for v in value]
        sep = {"spaceDelimited": " ", "pipeDelimited": "|"}.get(param.style, ",")
        return [(param.name, sep.join(_scalar(v) for v in value))]
    if isinstance(value, dict):
        if param.style == "deepObject":
            return [(f"{param.name}[{k}]", _scalar(v)) for k, v in value.items()]
        if param.explode:
            return [(str(k), _scalar(v)) for k, v in value.items()]
        return [(param.name, ",".join(f"{k},{_scalar(v)}" for k, v in value.items()))]
    return [(param.name, _scalar(value))]


def _simple(value: Any, as_json: bool = False) -> str:
    """Serialise a path or header value (style simple)."""
    if as_json:
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, list):
        return ",".join(_scalar(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k},{_scalar(v)}" for k, v in value.items())
    return _scalar(value)


def _fields(scheme: Scheme, connection: dict[str, Any]) -> dict[str, str] | None:
    """The scheme's credentials from the connection by role, or None when incomplete."""
    values = {f.role: connection.get(f.field) for f in scheme.fields}
    if scheme.kind == "apiKey" and values.get("key"):
        return {"key": str(values["key"])}
    if scheme.kind == "http" and scheme.http_scheme == "bearer" and values.get("token"):
        return {"token": str(values["token"])}
    if scheme.kind == "http" and scheme.http_scheme == "basic" and values.get("username"):
        return {"username": str(values["username"]), "password": str(values.get("password") or "")}
    if scheme.kind in ("oauth2", "openIdConnect"):
        if values.get("access_token"):
            return {"access_token": str(values["access_token"])}
        if scheme.token_url and values.get("client_id") and values.get("client_secret"):
            return {
                "client_id": str(values["client_id"]),
                "client_secret": str(values["client_secret"]),
            }
    return None


async def _client_credentials_token(
    ctx: Any, scheme: Scheme, creds: dict[str, str], scopes: list[str], base_url: str, where: str
) -> str:
    """An OAuth2 access token from the token URL (client credentials), kept until it expires."""
    token_url = urllib.parse.urljoin(base_url + "/", scheme.token_url)
    material = "\0".join([token_url, creds["client_id"], creds["client_secret"], *sorted(scopes)])
    key = hashlib.sha256(material.encode()).hexdigest()
    cached = _TOKENS.get(key)
    if cached and cached[1] > time.monotonic():
        return cached[0]
    form = {"grant_type": "client_credentials"}
    if scopes:
        form["scope"] = " ".join(scopes)
    basic = base64.b64encode(f"{creds['client_id']}:{creds['client_secret']}".encode()).decode()
    try:
        response = await ctx.http.post(
            token_url,
            data=form,
            headers={"Authorization": f"Basic {basic}", "Accept": "application/json"},
        )
    except ActionError:
        raise
    except httpx.HTTPError as exc:
        raise ActionError(
            f"{where}: the OAuth2 token request failed: {type(exc).__name__}", retryable=True
        ) from exc
    if response.status_code in (400, 401, 403):
        raise ActionError(
            f"{where}: the OAuth2 client credentials were refused ({response.status_code})"
        )
    if response.status_code >= 400:
        retryable = response.status_code in RETRYABLE_STATUSES or response.status_code >= 500
        raise ActionError(
            f"{where}: the OAuth2 token request answered {response.status_code}",
            retryable=retryable,
        )
    try:
        payload = response.json()
        token = str(payload["access_token"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ActionError(f"{where}: the OAuth2 token response has no access_token") from exc
    lifetime = float(payload.get("expires_in") or 300)
    _TOKENS[key] = (token, time.monotonic() + max(0.0, lifetime - 30))
    return token


async def apply_auth(
    ctx: Any,
    op: Operation,
    schemes: dict[str, Scheme],
    connection: dict[str, Any],
    request: dict[str, Any],
    base_url: str,
    where: str,
) -> None:
    """Add the credentials of the first security requirement the connection can meet."""
    if not op.security:
        return
    for requirement in op.security:
        if not requirement:
            return  # {} among the requirements: anonymous access is allowed
        chosen = []
        for name, scopes in requirement.items():
            scheme = schemes.get(name)
            creds = _fields(scheme, connection) if scheme else None
            if scheme is None or creds is None:
                break
            chosen.append((scheme, creds, list(scopes or [])))
        else:
            for scheme, creds, scopes in chosen:
                await _apply_one(ctx, scheme, creds, scopes, request, base_url, where)
            return
    needed = []
    for name in op.security[0]:
        scheme = schemes.get(name)
        needed += [f.field for f in scheme.fields] if scheme else [f"(unknown scheme {name})"]
    raise ActionError(
        f"{where}: the connection has no credentials for this operation: set "
        + ", ".join(needed or ["a supported security scheme"])
    )


async def _apply_one(
    ctx: Any,
    scheme: Scheme,
    creds: dict[str, str],
    scopes: list[str],
    request: dict[str, Any],
    base_url: str,
    where: str,
) -> None:
    if scheme.kind == "apiKey":
        target = {"header": "headers", "query": "params", "cookie": "cookies"}[scheme.location]
        if target == "params":
            request["params"].append((scheme.param_name, creds["key"]))
            request["credential_params"].append(scheme.param_name)
        else:
            request[target][scheme.param_name] = creds["key"]
    elif "username" in creds:
        raw = f"{creds['username']}:{creds['password']}".encode()
        request["headers"]["Authorization"] = "Basic " + base64.b64encode(raw).decode()
    elif "client_id" in creds:
        token = await _client_credentials_token(ctx, scheme, creds, scopes, base_url, where)
        request["headers"]["Authorization"] = f"Bearer {token}"
    else:
        request["headers"]["Authorization"] = (
            f"Bearer {creds.get('token') or creds['access_token']}"
        )


def _chunks(response: httpx.Response) -> AsyncGenerator[bytes, None]:
    return cast(AsyncGenerator[bytes, None], response.aiter_bytes())


async def _read(response: httpx.Response, limit: int, where: str) -> bytes:
    data = bytearray()
    async with contextlib.aclosing(_chunks(response)) as chunks:
        async for chunk in chunks:
            data += chunk
            if len(data) > limit:
                raise ActionError(f"{where}: the response is larger than {limit} bytes allowed")
    return bytes(data)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def server_url(server: str, base_url: str) -> str:
    """Where an operation is called: its own absolute server, its relative one resolved
    against ``base_url`` (``/v2`` from the host's root, ``v2`` below the base path), or
    ``base_url`` when it has none."""
    base = base_url.rstrip("/")
    if not server:
        return base
    if re.match(r"^https?://", server):
        return server
    if not base:
        return ""
    return urllib.parse.urljoin(base + "/", server).rstrip("/")


async def call(
    ctx: Any,
    connector: str,
    op: Operation,
    schemes: dict[str, Scheme],
    default_base: str,
    data: Any,
) -> dict[str, Any]:
    """Call ``op`` with the validated input ``data``; return ``{status, headers, body}``."""
    where = f"{connector}.{op.action_name} ({op.method} {op.path})"
    connection = dict(ctx.connection or {})
    base_url = server_url(op.server, str(connection.get("base_url") or default_base))
    if not base_url:
        raise ActionError(f"{where}: the connection has no base_url and the document no server")
    data = dict(data or {})
    path = op.path
    request: dict[str, Any] = {
        "params": [],
        "headers": {"Accept": "application/json"},
        "cookies": {},
        "credential_params": [],
    }
    for param in op.params:
        if param.key not in data:
            continue
        value = data[param.key]
        if param.location == "path":
            path = path.replace(
                "{" + param.name + "}", urllib.parse.quote(_simple(value, param.as_json), safe="")
            )
        elif param.location == "query":
            request["params"].extend(query_pairs(param, value))
        elif param.location == "header":
            request["headers"][param.name] = _simple(value, param.as_json)
        else:
            request["cookies"][param.name] = _simple(value, param.as_json)
    # The hub's key is stable across the attempts of one step: the service dedupes retries.
    key_header = op.idempotency_header
    missing_key = bool(key_header) and key_header not in request["headers"]
    if missing_key and op.method not in SAFE_METHODS and ctx.idempotency_key:
        request["headers"][key_header] = str(ctx.idempotency_key)
    await apply_auth(ctx, op, schemes, connection, request, base_url, where)
    content: bytes | None = None
    if op.body_key and op.body_key in data:
        body = data[op.body_key]
        if op.body_media == "json":
            content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
            request["headers"]["Content-Type"] = "application/json"
        elif op.body_media == "form":
            content = urllib.parse.urlencode(
                [(k, _simple(v)) for k, v in (body or {}).items()]
            ).encode()
            request["headers"]["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            content = str(body).encode()
            request["headers"]["Content-Type"] = "text/plain; charset=utf-8"
    if request["cookies"]:
        request["headers"]["Cookie"] = "; ".join(f"{k}={v}" for k, v in request["cookies"].items())
    settings = getattr(ctx, "settings", None)
    timeout = float(getattr(settings, "http_timeout", 30.0))
    limit = int(getattr(settings, "http_max_response_bytes", 10_000_000))
    try:
        async with (
            asyncio.timeout(timeout),
            ctx.http.stream(
                op.method,
                base_url + path,
                params=request["params"] or None,
                headers=request["headers"],
                content=content,
                timeout=httpx.Timeout(timeout),
                # A redirect to another origin drops these from its URL (the hub's client).
                extensions={"hub_credential_params": request["credential_params"]},
            ) as response,
        ):
            raw = await _read(response, limit, where)
            status = response.status_code
            headers = {k.lower(): v for k, v in response.headers.items()}
            reason = response.reason_phrase
    except ActionError:
        raise
    except (TimeoutError, httpx.TimeoutException) as exc:
        raise ActionError(f"{where} timed out after {timeout:g} s", retryable=True) from exc
    except httpx.HTTPError as exc:
        raise ActionError(f"{where} failed: {type(exc).__name__}", retryable=True) from exc
    text = raw.decode("utf-8", errors="replace")
    if status >= 300:
        snippet = text[:SNIPPET_BYTES].strip()
        detail = f": {snippet}" if snippet else ""
        if status in (401, 403):
            raise ActionError(f"{where}: the credentials were refused ({status} {reason}){detail}")
        retry_after = parse_retry_after(headers.get("retry-after"))
        retryable = status in RETRYABLE_STATUSES or status >= 500
        raise ActionError(
            f"{where} answered {status} {reason}{detail}",
            retryable=retryable,
            retry_after=retry_after if retryable else None,
        )
    parsed: Any = None
    if raw and _is_json(headers.get("content-type", "")):
        try:
            parsed = json.loads(raw)
        except ValueError as exc:
            raise ActionError(f"{where}: the response claims JSON but does not parse") from exc
    elif raw:
        parsed = text
    ctx.log.info("%s -> %s (%d bytes)", where, status, len(raw))
    return {"status": status, "headers": headers, "body": parsed}
