"""The built-in ``http`` connector: one action, ``http.request``.

It uses only the public plugin API (the hook marker, the connector types and the action
context), like any outside plugin. Requests go through ``ctx.http``, the hub's shared client,
which is behind the SSRF guard: loopback, private, link-local and metadata addresses are
refused after DNS resolution, at connect time, redirects included, unless
``HUB_ALLOW_HOSTS`` allows them.

Outcomes:

- 2xx, 3xx (when not followed) and 4xx other than 429 return normally, with the ``status`` in
  the output: a flow decides what a 404 or a 409 means (give the next step a ``when``, or
  fail with ``flow.fail``).
- 429 and 5xx raise a retryable error (the step's ``retry`` policy decides whether another
  attempt comes), honouring ``Retry-After`` (seconds or an HTTP date).
- Connection errors and timeouts raise a retryable error.
- A refused address, an invalid URL, too many redirects, a TLS certificate that does not
  verify, or a response larger than ``HUB_HTTP_MAX_RESPONSE_BYTES`` raise an error that is
  not retryable.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncGenerator
from typing import Any, cast

import httpx

from hub import Action, ActionError, Connector, hookimpl, parse_retry_after

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ERROR_SNIPPET_BYTES = 1024
CALLER_EXTENSION = "hub_caller"  # read by the guarded transport to name the caller

_SCALAR = {"type": ["string", "number", "boolean", "null"]}

INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "method": {
            "type": "string",
            "enum": list(METHODS),
            "default": "GET",
            "description": "The HTTP method.",
        },
        "url": {
            "type": "string",
            "format": "uri",
            "description": "An http:// or https:// URL.",
        },
        "headers": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "Request headers.",
        },
        "query": {
            "type": "object",
            "additionalProperties": {"anyOf": [_SCALAR, {"type": "array", "items": _SCALAR}]},
            "description": "Query parameters, added to those already in the URL.",
        },
        "json": {"description": "A body sent as JSON (Content-Type: application/json unless set)."},
        "body": {"type": "string", "description": "A body sent as text (UTF-8)."},
        "timeout": {
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "Seconds the whole request may take; default HUB_HTTP_TIMEOUT.",
        },
    },
    "required": ["url"],
    "additionalProperties": False,
    "not": {"required": ["json", "body"]},
}

OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "status": {"type": "integer", "description": "The HTTP status code."},
        "headers": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "Response headers, names in lower case, repeated ones joined by ', '.",
        },
        "json": {"description": "The parsed body when the response is JSON, else null."},
        "text": {"type": "string", "description": "The body as text."},
    },
    "required": ["status", "headers", "json", "text"],
}

DESCRIPTION = """Send an HTTP request and return {status, headers, json, text}.

Responses with a 4xx status other than 429 are returned normally: check `status` in the flow.
429 and 5xx responses, connection errors and timeouts fail the step with a retryable error
(429 and 503 honour Retry-After). Unsafe methods (POST, PUT, PATCH, DELETE) carry an
`Idempotency-Key` header, stable across retries of the step, unless you set one. Loopback,
private, link-local and cloud metadata addresses are refused unless HUB_ALLOW_HOSTS allows
them. Responses larger than HUB_HTTP_MAX_RESPONSE_BYTES are refused."""


def _display(url: httpx.URL) -> str:
    """The URL without user info, query or fragment (those may carry secrets)."""
    return str(url.copy_with(query=None, fragment=None, userinfo=b""))


def _chunks(response: httpx.Response) -> AsyncGenerator[bytes, None]:
    """The decoded body chunks, typed as the async generator they are (so it can be closed)."""
    return cast(AsyncGenerator[bytes, None], response.aiter_bytes())


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


async def _read_limited(response: httpx.Response, limit: int, what: str) -> bytes:
    """Read the (decoded) body, refusing it as soon as it exceeds ``limit`` bytes."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ActionError(
            f"{what}: the response declares {int(declared)} bytes, more than the "
            f"{limit} allowed (HUB_HTTP_MAX_RESPONSE_BYTES)"
        )
    data = bytearray()
    async with contextlib.aclosing(_chunks(response)) as chunks:
        async for chunk in chunks:
            data += chunk
            if len(data) > limit:
                raise ActionError(
                    f"{what}: the response is larger than the {limit} bytes allowed "
                    "(HUB_HTTP_MAX_RESPONSE_BYTES); stopped reading"
                )
    return bytes(data)


async def _read_snippet(response: httpx.Response) -> str:
    """The first bytes of an error response's body, for the error message."""
    data = bytearray()
    with contextlib.suppress(httpx.HTTPError):
        async with contextlib.aclosing(_chunks(response)) as chunks:
            async for chunk in chunks:
                data += chunk
                if len(data) >= ERROR_SNIPPET_BYTES:
                    break
    text = bytes(data[:ERROR_SNIPPET_BYTES]).decode("utf-8", errors="replace").strip()
    return text


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _decode_text(content: bytes, charset: str | None) -> str:
    try:
        return content.decode(charset or "utf-8", errors="replace")
    except LookupError:  # an unknown charset name
        return content.decode("utf-8", errors="replace")


async def request(ctx: Any, data: dict[str, Any]) -> dict[str, Any]:
    """Run ``http.request``: see the module docstring for the outcomes.

    Over 80 lines on purpose: it reads as the request's life in order (check the input,
    send through the guarded client, map each transport error and status to its outcome),
    and each step is a few lines that a helper would only hide.
    """
    method = str(data.get("method") or "GET").upper()
    if method not in METHODS:
        raise ActionError(f"http.request: unsupported method {method!r}")
    if "json" in data and "body" in data:
        raise ActionError("http.request: give either json or body, not both")
    try:
        url = httpx.URL(str(data["url"]))
    except (httpx.InvalidURL, KeyError) as exc:
        raise ActionError(f"http.request: invalid url: {exc}") from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise ActionError(f"http.request: the url must be an http:// or https:// URL: {url}")
    if data.get("query"):
        url = url.copy_merge_params(data["query"])  # httpx's params= would replace the query
    shown = f"{method} {_display(url)}"
    what = f"http.request {shown}"

    headers = {str(k): str(v) for k, v in (data.get("headers") or {}).items()}
    lower = {k.lower() for k in headers}
    content: bytes | None = None
    if "json" in data:
        content = json.dumps(data["json"], ensure_ascii=False, separators=(",", ":")).encode()
        if "content-type" not in lower:
            headers["Content-Type"] = "application/json"
    elif data.get("body") is not None:
        content = str(data["body"]).encode("utf-8")
    if method not in SAFE_METHODS and "idempotency-key" not in lower and ctx.idempotency_key:
        headers["Idempotency-Key"] = str(ctx.idempotency_key)

    timeout = float(data.get("timeout") or ctx.settings.http_timeout)
    limit = int(ctx.settings.http_max_response_bytes)
    try:
        async with (
            asyncio.timeout(timeout),
            ctx.http.stream(
                method,
                url,
                headers=headers,
                content=content,
                timeout=httpx.Timeout(timeout),
                extensions={CALLER_EXTENSION: "http.request"},
            ) as response,
        ):
            status = response.status_code
            if status == 429 or status >= 500:
                snippet = await _read_snippet(response)
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                detail = f": {snippet}" if snippet else ""
                ctx.log.warning("http.request %s -> %s", shown, status)
                raise ActionError(
                    f"{what} answered {status} {response.reason_phrase}{detail}",
                    retryable=True,
                    retry_after=retry_after,
                )
            body = b"" if method == "HEAD" else await _read_limited(response, limit, what)
            out_headers = dict(response.headers.items())
            charset = response.charset_encoding
            content_type = response.headers.get("content-type", "")
    except ActionError:
        raise
    except (TimeoutError, httpx.TimeoutException) as exc:
        raise ActionError(f"{what} timed out after {timeout:g} s", retryable=True) from exc
    except httpx.TooManyRedirects as exc:
        raise ActionError(f"{what}: too many redirects") from exc
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise ActionError(f"{what}: {exc}") from exc
    except httpx.DecodingError as exc:
        raise ActionError(f"{what}: the response body cannot be decoded: {exc}") from exc
    except httpx.TransportError as exc:  # connect, read, write, protocol errors
        detail = str(exc) or type(exc).__name__
        # A certificate that does not verify will not verify on the next attempt either.
        retryable = not _caused_by(exc, ssl.SSLCertVerificationError)
        raise ActionError(f"{what} failed: {detail}", retryable=retryable) from exc

    ctx.log.info("http.request %s -> %s (%d bytes)", shown, status, len(body))
    text = _decode_text(body, charset)
    parsed: Any = None
    if body and _is_json(content_type):
        try:
            parsed = json.loads(body)
        except ValueError:
            ctx.log.warning("http.request %s: the JSON response does not parse", shown)
    return {"status": status, "headers": out_headers, "json": parsed, "text": text}


REQUEST = Action(
    name="request",
    run=request,
    title="HTTP request",
    description=DESCRIPTION,
    input_schema=INPUT_SCHEMA,
    output_schema=OUTPUT_SCHEMA,
    examples=[
        {"method": "GET", "url": "https://api.example.com/items", "query": {"page": 1}},
        {"method": "POST", "url": "https://api.example.com/items", "json": {"name": "x"}},
    ],
)


@hookimpl
def hub_connectors() -> list[Connector]:
    """The ``http`` connector."""
    return [
        Connector(
            name="http",
            title="HTTP",
            version="1",
            description="Call any HTTP API (behind the hub's SSRF guard).",
            actions=[REQUEST],
        )
    ]
