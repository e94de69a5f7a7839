"""From an OpenAPI document to a connector: one action per operation, auth from the document.

Each operation becomes an action named after its ``operationId`` (snake_cased; without one,
``<method>_<path>``). Its input has one field per parameter (path, query, header, cookie) and
``body`` for the request body; its output is ``{status, headers, body}``, ``body`` following
the 2xx responses' schemas. The connection holds ``base_url`` (default: the document's first
server) and one or more fields per security scheme (see :func:`security_fields`). An
operation or path item with its own ``servers`` is called on the first of them
(:attr:`Operation.server`; the operation's before its path item's): an absolute URL as it is,
a relative one resolved against the connection's ``base_url``.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from hub_openapi.spec import Document, SchemaConverter, SpecError, snake_case

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
IDEMPOTENT_METHODS = SAFE_METHODS | {"PUT", "DELETE"}
IGNORED_HEADERS = frozenset({"accept", "content-type", "authorization"})
IDEMPOTENCY_HEADER = "idempotency-key"
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclasses.dataclass(frozen=True)
class Param:
    """One parameter: where it goes, its name there, and how its value is serialised."""

    key: str  # the field of the action's input
    name: str
    location: str  # path, query, header, cookie
    style: str
    explode: bool
    as_json: bool  # the parameter is described by `content` (a JSON-encoded value)


@dataclasses.dataclass(frozen=True)
class SchemeField:
    """A connection field that carries one part of a security scheme's credentials."""

    field: str
    role: str  # key, token, username, password, access_token, client_id, client_secret


@dataclasses.dataclass(frozen=True)
class Scheme:
    """A security scheme of the document and the connection fields that carry it."""

    name: str
    kind: str  # apiKey, http, oauth2, openIdConnect
    http_scheme: str  # bearer or basic for kind http
    location: str  # header, query, cookie for kind apiKey
    param_name: str  # the header, query or cookie name for kind apiKey
    token_url: str  # the client-credentials token URL for kind oauth2
    fields: tuple[SchemeField, ...]


@dataclasses.dataclass
class Operation:
    """Everything needed to call one operation."""

    action_name: str
    method: str
    path: str
    params: list[Param]
    body_key: str | None
    body_media: str  # json, form, text
    security: list[dict[str, list[str]]]
    idempotency_header: str | None
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    title: str
    description: str
    extensions: dict[str, Any]
    # The operation's or its path item's first server ('' for the document's, the
    # connection's base_url): an absolute http(s) URL, or a relative one.
    server: str = ""


def _first_server(servers: Any) -> str:
    """The first server's URL with its variables at their defaults ('' when there is none)."""
    if not isinstance(servers, list) or not servers or not isinstance(servers[0], dict):
        return ""
    url = str(servers[0].get("url") or "")
    variables = servers[0].get("variables") or {}
    for name, var in variables.items() if isinstance(variables, dict) else ():
        if isinstance(var, dict) and "default" in var:
            url = url.replace("{" + name + "}", str(var["default"]))
    return url.rstrip("/") or url  # "/" (the root, relative) stays


def default_base_url(doc: Document) -> str:
    """The document's first server's URL with its variables at their defaults ('' when there
    is none, or when it is not absolute)."""
    url = _first_server(doc.data.get("servers"))
    return url if re.match(r"^https?://", url) else ""


def operation_server(item: dict[str, Any], op: dict[str, Any]) -> str:
    """The first of the operation's ``servers``, else of its path item's ('' for neither)."""
    return _first_server(op.get("servers")) or _first_server(item.get("servers"))


def security_schemes(doc: Document) -> dict[str, Scheme]:
    """The document's security schemes with the connection fields that carry them."""
    raw = (doc.data.get("components") or {}).get("securitySchemes") or {}
    schemes: dict[str, Scheme] = {}
    for name, value in raw.items():
        where = f"components.securitySchemes.{name}"
        scheme = doc.deref(value, where)
        if not isinstance(scheme, dict):
            raise doc.error(where, "a security scheme must be a mapping")
        kind = str(scheme.get("type", ""))
        base = snake_case(name) or "auth"
        http_scheme = str(scheme.get("scheme", "")).lower()
        token_url = ""
        fields: tuple[SchemeField, ...]
        if kind == "apiKey":
            fields = (SchemeField(base, "key"),)
        elif kind == "http" and http_scheme == "basic":
            fields = (SchemeField(f"{base}_username", "username"),)
            fields += (SchemeField(f"{base}_password", "password"),)
        elif kind == "http" and http_scheme == "bearer":
            token = base if base.endswith("token") else f"{base}_token"
            fields = (SchemeField(token, "token"),)
        elif kind in ("oauth2", "openIdConnect"):
            fields = (SchemeField(f"{base}_access_token", "access_token"),)
            flows = scheme.get("flows") or {}
            client = flows.get("clientCredentials") if isinstance(flows, dict) else None
            if isinstance(client, dict) and client.get("tokenUrl"):
                token_url = str(client["tokenUrl"])
                fields += (SchemeField(f"{base}_client_id", "client_id"),)
                fields += (SchemeField(f"{base}_client_secret", "client_secret"),)
        else:  # http digest, mutualTLS ...: no field; operations needing only it fail clearly
            fields = ()
        schemes[name] = Scheme(
            name=name,
            kind=kind,
            http_scheme=http_scheme,
            location=str(scheme.get("in", "")),
            param_name=str(scheme.get("name", "")),
            token_url=token_url,
            fields=fields,
        )
    return schemes


def connection_schema(doc: Document, schemes: dict[str, Scheme]) -> dict[str, Any]:
    """The connection schema: ``base_url`` and every scheme's fields (secrets write-only)."""
    base = default_base_url(doc)
    base_url: dict[str, Any] = {
        "type": "string",
        "format": "uri",
        "description": "The API's base URL (the server of the OpenAPI document by default).",
    }
    if base:
        base_url["default"] = base
    props: dict[str, Any] = {"base_url": base_url}
    described = {
        "key": "API key for the security scheme {s} (sent in the {loc} {name!r}).",
        "token": "Bearer token for the security scheme {s}.",
        "username": "User name for the security scheme {s} (HTTP basic).",
        "password": "Password for the security scheme {s} (HTTP basic).",
        "access_token": "OAuth2 access token for the security scheme {s}.",
        "client_id": "OAuth2 client id for {s} (client credentials, instead of a token).",
        "client_secret": "OAuth2 client secret for {s} (client credentials).",
    }
    for scheme in schemes.values():
        for f in scheme.fields:
            text = described[f.role].format(
                s=scheme.name, loc=scheme.location, name=scheme.param_name
            )
            prop: dict[str, Any] = {"type": "string", "description": text}
            if f.role not in ("username", "client_id"):
                prop["writeOnly"] = True
            props[f.field] = prop
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if not base:
        schema["required"] = ["base_url"]
    return schema


def _operation_name(op: dict[str, Any], method: str, path: str) -> str:
    name = snake_case(str(op.get("operationId") or ""))
    if not name:
        name = snake_case(f"{method}_{path.replace('{', '').replace('}', '')}")
    if not name or not name[0].isalpha():
        name = f"op_{name}"
    return name


def _media(content: Any) -> tuple[str, Any] | None:
    """The JSON, form or text media type of a ``content`` map, in that order of preference."""
    if not isinstance(content, dict):
        return None
    for media, value in content.items():
        base = media.split(";")[0].strip().lower()
        if base == "application/json" or base.endswith("+json") or base == "*/*":
            return "json", value
    for media, value in content.items():
        if media.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
            return "form", value
    for media, value in content.items():
        if media.lower().startswith("text/"):
            return "text", value
    return None


def _param_schema(param: dict[str, Any], conv: SchemaConverter, where: str) -> tuple[Any, bool]:
    if "schema" in param:
        return conv.convert(param["schema"], f"{where}.schema"), False
    found = _media(param.get("content"))
    if found and isinstance(found[1], dict) and "schema" in found[1]:
        return conv.convert(found[1]["schema"], f"{where}.content"), True
    return {}, False


def _output_body_schema(doc: Document, op: dict[str, Any], where: str, conv: Any) -> Any:
    responses = doc.deref(op.get("responses") or {}, f"{where}.responses")
    options: list[Any] = []
    for code, raw in sorted(responses.items(), key=lambda kv: str(kv[0])):
        if not re.match(r"^2(\d\d|XX)$", str(code)):
            continue
        rwhere = f"{where}.responses.{code}"
        response = doc.deref(raw, rwhere)
        found = _media(response.get("content") if isinstance(response, dict) else None)
        if not response or not isinstance(response, dict) or not response.get("content"):
            options.append({"type": "null"})
        elif found is None:
            options.append({"type": "string"})  # a binary or other body, returned as text
        elif found[0] == "json":
            media = found[1] if isinstance(found[1], dict) else {}
            options.append(
                conv.convert(media["schema"], f"{rwhere}.schema") if "schema" in media else {}
            )
        else:
            options.append({"type": "string"})
    unique: list[Any] = []
    for option in options:
        if option not in unique:
            unique.append(option)
    if not unique or {} in unique:
        return {}
    return unique[0] if len(unique) == 1 else {"anyOf": unique}


def _merged_parameters(
    doc: Document, path: str, where: str, item: dict[str, Any], op: dict[str, Any]
) -> dict[tuple[str, str], dict[str, Any]]:
    """The path item's parameters overridden by the operation's, by (in, name)."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for prefix, raws in ((f"paths.{path}", item.get("parameters")), (where, op.get("parameters"))):
        for i, raw in enumerate(raws or []):
            pwhere = f"{prefix}.parameters[{i}]"
            param = doc.deref(raw, pwhere)
            if not isinstance(param, dict) or "name" not in param or "in" not in param:
                raise doc.error(pwhere, "a parameter needs 'name' and 'in'")
            merged[(str(param["in"]), str(param["name"]))] = {**param, "_where": pwhere}
    return merged


def _input_parameters(
    merged: dict[tuple[str, str], dict[str, Any]], conv: SchemaConverter
) -> tuple[dict[str, Any], list[str], list[Param], str | None]:
    """Input properties, required fields, :class:`Param` list and idempotency header name."""
    props: dict[str, Any] = {}
    required: list[str] = []
    params: list[Param] = []
    idempotency_header: str | None = None
    for (location, pname), param in merged.items():
        if location == "header" and pname.lower() in IGNORED_HEADERS:
            continue
        key = pname
        if sum(1 for (_l, n) in merged if n == pname) > 1:
            key = f"{location}_{pname}"
        schema, as_json = _param_schema(param, conv, param["_where"])
        if isinstance(schema, dict) and param.get("description"):
            schema = {**schema, "description": str(param["description"])}
        props[key] = schema
        is_idempotency = location == "header" and pname.lower() == IDEMPOTENCY_HEADER
        if is_idempotency:
            idempotency_header = pname
        if (location == "path" or param.get("required")) and not is_idempotency:
            required.append(key)
        style = str(param.get("style") or ("form" if location in ("query", "cookie") else "simple"))
        explode = bool(param.get("explode", style == "form"))
        params.append(Param(key, pname, location, style, explode, as_json))
    return props, required, params, idempotency_header


def build_operation(
    doc: Document, path: str, method: str, item: dict[str, Any], op: dict[str, Any]
) -> Operation | str:
    """The :class:`Operation` of ``method path``, or a reason why it cannot be an action."""
    where = f"paths.{path}.{method}"
    name = _operation_name(op, method, path)
    conv_in = SchemaConverter(doc, "request")
    merged = _merged_parameters(doc, path, where, item, op)
    props, required, params, idempotency_header = _input_parameters(merged, conv_in)
    names_used = {n for (_loc, n) in merged}
    body_key: str | None = None
    body_media = "json"
    if "requestBody" in op:
        bwhere = f"{where}.requestBody"
        body = doc.deref(op["requestBody"], bwhere)
        found = _media(body.get("content") if isinstance(body, dict) else None)
        if found is None:
            kinds = ", ".join(sorted((body or {}).get("content") or {})) or "no content"
            return f"{method.upper()} {path}: request body of an unsupported type ({kinds})"
        body_media, media = found
        body_key = "request_body" if "body" in names_used else "body"
        schema = (
            conv_in.convert(media.get("schema", {}), f"{bwhere}.schema")
            if isinstance(media, dict)
            else {}
        )
        if body_media == "text":
            schema = {"type": "string"}
        description = body.get("description") if isinstance(body, dict) else None
        props[body_key] = (
            {**schema, "description": str(description)}
            if description and isinstance(schema, dict)
            else schema
        )
        if isinstance(body, dict) and body.get("required"):
            required.append(body_key)
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": props,
        "additionalProperties": False,
    }
    if required:
        input_schema["required"] = required
    conv_out = SchemaConverter(doc, "response")
    body_schema = _output_body_schema(doc, op, where, conv_out)
    output_schema = conv_out.finish(
        {
            "type": "object",
            "properties": {
                "status": {"type": "integer", "description": "The HTTP status (2xx)."},
                "headers": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "description": "Response headers, names in lower case.",
                },
                "body": {**body_schema, "description": "The response body (JSON when JSON)."}
                if isinstance(body_schema, dict)
                else body_schema,
            },
            "required": ["status", "headers", "body"],
        }
    )
    security = op.get("security", doc.data.get("security")) or []
    summary = str(op.get("summary") or "").strip()
    description = str(op.get("description") or "").strip()
    text = description  # the summary is the title
    text = (text + "\n\n" if text else "") + f"`{method.upper()} {path}`"
    if op.get("deprecated"):
        text += " (deprecated)"
    return Operation(
        action_name=name,
        method=method.upper(),
        path=path,
        params=params,
        body_key=body_key,
        body_media=body_media,
        security=[s for s in security if isinstance(s, dict)],
        idempotency_header=idempotency_header,
        input_schema=conv_in.finish(input_schema),
        output_schema=output_schema,
        title=summary[:80] or name.replace("_", " ").capitalize(),
        description=text,
        extensions={k: v for k, v in op.items() if k.startswith("x-hub-")},
        server=operation_server(item, op),
    )


def operations(doc: Document) -> tuple[list[Operation], list[str]]:
    """Every operation of the document as an :class:`Operation`, and the ones left out (why)."""
    found: list[Operation] = []
    skipped: list[str] = []
    taken: dict[str, int] = {}
    for path, raw_item in (doc.data.get("paths") or {}).items():
        item = doc.deref(raw_item, f"paths.{path}")
        if not isinstance(item, dict):
            raise doc.error(f"paths.{path}", "a path item must be a mapping")
        for method in METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            built = build_operation(doc, str(path), method, item, op)
            if isinstance(built, str):
                skipped.append(built)
                continue
            count = taken.get(built.action_name, 0) + 1
            taken[built.action_name] = count
            if count > 1:
                built.action_name = f"{built.action_name}_{count}"
            if not NAME_RE.match(built.action_name):
                raise SpecError(f"{doc.source}: paths.{path}.{method}: no usable action name")
            found.append(built)
    return found, skipped
