"""hub-openapi: every OpenAPI 3.0 / 3.1 document in ``HUB_OPENAPI_SPECS`` becomes a connector.

``HUB_OPENAPI_SPECS`` names folders (or files), separated by commas or the path separator;
each ``*.yaml``, ``*.yml`` or ``*.json`` file in them is one connector, named by the
document's ``x-hub-name`` (top level or in ``info``) or else by its file name (snake_cased).
Documents are read when the hub builds its registry (and again only when a file changes); a
document that cannot be used stops the hub with a message naming the file and the place.

Optional extensions a document may carry: ``x-hub-rate-limit: {requests, per_seconds}``
(top level or per operation), ``x-hub-cache: {ttl, stale_while_revalidate}`` and
``x-hub-timeout: seconds`` (per operation), ``x-hub-test-operation: operationId`` (top level:
the operation the connection test calls).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from hub import Action, CachePolicy, Connector, RateLimit, hookimpl

from hub_openapi import client
from hub_openapi.operations import (
    Operation,
    Scheme,
    connection_schema,
    default_base_url,
    operations,
    security_schemes,
)
from hub_openapi.spec import Document, SpecError, load_document, snake_case

ENV_VAR = "HUB_OPENAPI_SPECS"
SUFFIXES = (".yaml", ".yml", ".json")
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_LOADED: dict[tuple[str, int, int], Connector] = {}


def spec_files(value: str | None = None) -> list[Path]:
    """The document files named by ``HUB_OPENAPI_SPECS`` (or ``value``), in a stable order."""
    raw = os.environ.get(ENV_VAR, "") if value is None else value
    files: list[Path] = []
    for entry in re.split(rf"[,{re.escape(os.pathsep)}]", raw):
        entry = entry.strip()
        if not entry:
            continue
        path = Path(entry).expanduser()
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.is_file() and p.suffix in SUFFIXES)
        elif path.is_file():
            files.append(path)
        else:
            raise SpecError(f"{ENV_VAR}: {entry}: no such file or folder")
    return files


def _policy(value: Any, kind: type, where: str) -> Any:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SpecError(f"{where}: must be a mapping")
    try:
        return kind(**value)
    except TypeError as exc:
        raise SpecError(f"{where}: {exc}") from exc


def make_run(
    connector: str, op: Operation, schemes: dict[str, Scheme], base: str
) -> Callable[[Any, Any], Awaitable[Any]]:
    """The ``run(ctx, input)`` of one operation's action."""

    async def run(ctx: Any, data: Any) -> Any:
        return await client.call(ctx, connector, op, schemes, base, data)

    run.__qualname__ = f"{connector}.{op.action_name}"
    return run


class _TestContext:
    """The little of an action context that a connection test needs."""

    idempotency_key = None
    settings = None
    log = logging.getLogger("hub.openapi")

    def __init__(self, connection: dict[str, Any], http: httpx.AsyncClient) -> None:
        self.connection = connection
        self.http = http


def make_test_connection(
    name: str, test_op: Operation | None, schemes: dict[str, Scheme], base: str
) -> Callable[..., Awaitable[None]] | None:
    """A connection test calling ``test_op`` (raises ActionError when refused)."""
    if test_op is None:
        return None

    async def test_connection(
        connection: dict[str, Any], http: httpx.AsyncClient | None = None
    ) -> None:
        if http is not None:  # the hub's client, behind its SSRF guard
            await client.call(_TestContext(connection, http), name, test_op, schemes, base, {})
            return
        async with httpx.AsyncClient(timeout=15) as own:
            await client.call(_TestContext(connection, own), name, test_op, schemes, base, {})

    return test_connection


def build_connector(path: Path) -> Connector:
    """The connector of one OpenAPI document file."""
    data = load_document(path)
    doc = Document(data, str(path))
    raw_info = data.get("info")
    info: dict[str, Any] = raw_info if isinstance(raw_info, dict) else {}
    name = str(data.get("x-hub-name") or info.get("x-hub-name") or snake_case(path.stem))
    if not NAME_RE.match(name):
        raise SpecError(f"{path}: connector name {name!r} must match {NAME_RE.pattern}")
    schemes = security_schemes(doc)
    ops, skipped = operations(doc)
    base = default_base_url(doc)
    default_rate = _policy(data.get("x-hub-rate-limit"), RateLimit, f"{path}: x-hub-rate-limit")
    actions: list[Action] = []
    for op in ops:
        where = f"{path}: {op.method} {op.path}"
        rate = _policy(
            op.extensions.get("x-hub-rate-limit"), RateLimit, f"{where}: x-hub-rate-limit"
        )
        cache = _policy(op.extensions.get("x-hub-cache"), CachePolicy, f"{where}: x-hub-cache")
        if cache is not None and op.method != "GET":
            raise SpecError(f"{where}: x-hub-cache is allowed on GET operations only")
        timeout = op.extensions.get("x-hub-timeout")
        own_server = op.server.startswith(("http://", "https://"))
        needs = bool(op.security and {} not in op.security) or not (base or own_server)
        actions.append(
            Action(
                name=op.action_name,
                run=make_run(name, op, schemes, base),
                title=op.title,
                description=op.description,
                input_schema=op.input_schema,
                output_schema=op.output_schema,
                needs_connection=needs,
                idempotent=op.method in ("GET", "HEAD", "OPTIONS", "PUT", "DELETE"),
                cache=cache,
                rate_limit=rate or default_rate,
                timeout=float(timeout) if timeout is not None else None,
            )
        )
    wanted = data.get("x-hub-test-operation")
    by_id = {str(o.action_name): o for o in ops}
    test_op = by_id.get(snake_case(str(wanted))) if wanted else None
    if wanted and test_op is None:
        raise SpecError(f"{path}: x-hub-test-operation: no operation {wanted!r}")
    if test_op is None:
        test_op = next(
            (o for o in ops if o.method == "GET" and not o.input_schema.get("required")), None
        )
    notes = [
        f"Generated at run time by hub-openapi from `{path.name}` (OpenAPI {data['openapi']})."
    ]
    if base:
        notes.append(f"Default base URL: `{base}`.")
    if skipped:
        notes.append("Operations left out: " + "; ".join(skipped) + ".")
    description = str(info.get("summary") or info.get("description") or "").strip()
    return Connector(
        name=name,
        title=str(info.get("title") or name),
        version=str(info.get("version") or "0"),
        description=description.split("\n\n", 1)[0],
        connection_schema=connection_schema(doc, schemes),
        actions=actions,
        test_connection=make_test_connection(name, test_op, schemes, base),
        notes="\n\n".join(notes),
    )


def load_connectors(files: list[Path]) -> list[Connector]:
    """The connectors of ``files`` (reusing those whose file did not change)."""
    connectors: list[Connector] = []
    sources: dict[str, Path] = {}
    for path in files:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
        connector = _LOADED.get(key)
        if connector is None:
            connector = build_connector(path)
            _LOADED[key] = connector
        if connector.name in sources:
            raise SpecError(
                f"{ENV_VAR}: {sources[connector.name]} and {path} both define the connector "
                f"{connector.name!r} (give one an x-hub-name)"
            )
        sources[connector.name] = path
        connectors.append(connector)
    return connectors


@hookimpl
def hub_connectors() -> list[Connector]:
    """One connector per OpenAPI document in ``HUB_OPENAPI_SPECS`` (none when it is unset)."""
    return load_connectors(spec_files())


__all__ = ["build_connector", "hub_connectors", "load_connectors", "spec_files"]
