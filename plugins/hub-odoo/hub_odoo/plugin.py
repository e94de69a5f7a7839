"""The ``odoo`` connector: search_read, create, write and unlink on any model.

Every request goes through ``ctx.http`` (the hub's shared client behind the SSRF guard) to the
connection's Odoo server, over JSON-2 (Odoo 19+) or JSON-RPC (older versions).
"""

from __future__ import annotations

from typing import Any

import httpx

from hub import Action, ActionError, Connector, hookimpl
from hub_odoo.client import MODEL_RE, OdooClient
from hub_odoo.poll import CHANGES_TRIGGER

OPTIONS_TTL = 300.0

MODEL = {
    "type": "string",
    "pattern": MODEL_RE.pattern,
    "description": "The model's technical name (res.partner, sale.order ...).",
}
DOMAIN = {
    "type": "array",
    "items": {
        "anyOf": [
            {"enum": ["&", "|", "!"]},
            {
                "type": "array",
                "minItems": 3,
                "maxItems": 3,
                "prefixItems": [{"type": ["string", "integer"]}, {"type": "string"}, {}],
            },
        ]
    },
    "default": [],
    "description": "An Odoo domain: [field, operator, value] terms, and '&', '|', '!' in "
    "prefix notation (terms side by side are ANDed).",
}
IDS = {
    "type": "array",
    "items": {"type": "integer", "minimum": 1},
    "minItems": 1,
    "description": "Record ids.",
}
VALUES = {"type": "object", "description": "Field values by field name."}
ONE_OR_MORE_IDS = {
    "anyOf": [{"type": "integer", "minimum": 1}, IDS],
    "description": "A record id, or a list of ids.",
}
CONTEXT = {"type": "object", "description": 'Odoo context, e.g. {"lang": "fr_FR"}.'}


def _ids(value: Any) -> list[int]:
    return [int(value)] if isinstance(value, int) else [int(v) for v in value]


async def search_read(ctx: Any, data: dict[str, Any]) -> dict[str, Any]:
    """Run ``odoo.search_read``."""
    params: dict[str, Any] = {"domain": data.get("domain") or []}
    for key in ("fields", "limit", "offset", "order"):
        if data.get(key) is not None:
            params[key] = data[key]
    found = await OdooClient.of(ctx).execute(
        data["model"],
        "search_read",
        params=params,
        context=data.get("context"),
        what="odoo.search_read",
    )
    if not isinstance(found, list):
        raise ActionError("odoo.search_read: Odoo did not answer a list of records")
    return {"records": found, "count": len(found)}


async def create(ctx: Any, data: dict[str, Any]) -> dict[str, Any]:
    """Run ``odoo.create``."""
    values = data["values"]
    vals_list = [values] if isinstance(values, dict) else list(values)
    created = await OdooClient.of(ctx).execute(
        data["model"],
        "create",
        params={"vals_list": vals_list},
        context=data.get("context"),
        what="odoo.create",
    )
    ids = _ids(created) if isinstance(created, int | list) else []
    if len(ids) != len(vals_list):
        raise ActionError(f"odoo.create: Odoo answered {created!r}, not {len(vals_list)} id(s)")
    return {"id": ids[0], "ids": ids}


async def write(ctx: Any, data: dict[str, Any]) -> dict[str, Any]:
    """Run ``odoo.write``."""
    ids = _ids(data["ids"])
    if not data["values"]:
        raise ActionError("odoo.write: input.values is empty")
    done = await OdooClient.of(ctx).execute(
        data["model"],
        "write",
        ids=ids,
        params={"vals": data["values"]},
        context=data.get("context"),
        what="odoo.write",
    )
    return {"ok": bool(done), "ids": ids}


async def unlink(ctx: Any, data: dict[str, Any]) -> dict[str, Any]:
    """Run ``odoo.unlink``."""
    ids = _ids(data["ids"])
    done = await OdooClient.of(ctx).execute(
        data["model"], "unlink", ids=ids, context=data.get("context"), what="odoo.unlink"
    )
    return {"ok": bool(done), "ids": ids}


async def _cached(ctx: Any, key: str, load: Any) -> Any:
    cache = getattr(ctx, "cache", None)
    if cache is None:
        return await load()
    return await cache.get_or_load(key, load, OPTIONS_TTL)


async def model_options(ctx: Any) -> list[dict[str, Any]]:
    """Dynamic options for ``model``: the installed, non-transient models (ir.model)."""
    client = OdooClient.of(ctx)

    async def load() -> list[dict[str, Any]]:
        found = await client.execute(
            "ir.model",
            "search_read",
            params={
                "domain": [["transient", "=", False]],
                "fields": ["model", "name"],
                "order": "model asc",
            },
            what="odoo model options",
        )
        return [{"value": m["model"], "label": f"{m['name']} ({m['model']})"} for m in found]

    result: list[dict[str, Any]] = await _cached(ctx, f"odoo:models:{client.identity}", load)
    return result


async def field_options(ctx: Any) -> list[dict[str, Any]]:
    """Dynamic options for ``fields``: the fields of the model named in the step's input.

    Reads ``ctx.input["model"]`` (the input being edited); no model, no options.
    """
    model = ((getattr(ctx, "input", None) or {}).get("model") or "").strip()
    if not model:
        return []
    client = OdooClient.of(ctx)

    async def load() -> list[dict[str, Any]]:
        found = await client.execute(
            model,
            "fields_get",
            params={"attributes": ["string", "type", "required", "readonly"]},
            what="odoo field options",
        )
        return [
            {"value": name, "label": f"{spec.get('string') or name} ({name}, {spec.get('type')})"}
            for name, spec in sorted(found.items())
        ]

    result: list[dict[str, Any]] = await _cached(
        ctx, f"odoo:fields:{client.identity}:{model}", load
    )
    return result


def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    props = {"model": MODEL, **properties, "context": CONTEXT}
    return {
        "type": "object",
        "properties": props,
        "required": ["model", *required],
        "additionalProperties": False,
    }


OK_IDS = {
    "type": "object",
    "properties": {
        "ok": {"type": "boolean", "description": "What Odoo answered (true)."},
        "ids": {"type": "array", "items": {"type": "integer"}, "description": "The records."},
    },
    "required": ["ok", "ids"],
}
MODEL_OPTIONS = {"model": model_options}
ACTIONS = [
    Action(
        name="search_read",
        run=search_read,
        title="Search and read records",
        description="Records of a model matching a domain, with the chosen fields.",
        input_schema=_schema(
            {
                "domain": DOMAIN,
                "fields": {
                    "type": "array",
                    "items": {"type": "string", "minLength": 1},
                    "description": "Fields to read (default: all).",
                },
                "limit": {"type": "integer", "minimum": 1, "description": "At most this many."},
                "offset": {"type": "integer", "minimum": 0, "description": "Skip this many."},
                "order": {
                    "type": "string",
                    "pattern": r"^[a-z_][a-z0-9_.]*( (asc|desc|ASC|DESC))?"
                    r"(, *[a-z_][a-z0-9_.]*( (asc|desc|ASC|DESC))?)*$",
                    "description": "e.g. 'write_date desc, id desc'.",
                },
            },
            [],
        ),
        output_schema={
            "type": "object",
            "properties": {
                "records": {
                    "type": "array",
                    "items": {"type": "object"},
                    "description": "The records (id and the fields read; many2one values are "
                    "[id, name]).",
                },
                "count": {"type": "integer", "description": "How many records were read."},
            },
            "required": ["records", "count"],
        },
        needs_connection=True,
        idempotent=True,
        options={**MODEL_OPTIONS, "fields": field_options},
        examples=[
            {
                "input": {
                    "model": "res.partner",
                    "domain": [["email", "=ilike", "ada@example.com"]],
                    "fields": ["name", "email"],
                    "limit": 1,
                }
            }
        ],
    ),
    Action(
        name="create",
        run=create,
        title="Create records",
        description="Create one record (values: an object) or several (a list of objects).",
        input_schema=_schema(
            {
                "values": {
                    "anyOf": [VALUES, {"type": "array", "items": VALUES, "minItems": 1}],
                    "description": "Field values of one record, or a list for several.",
                }
            },
            ["values"],
        ),
        output_schema={
            "type": "object",
            "properties": {
                "id": {"type": "integer", "description": "The (first) new record's id."},
                "ids": {
                    "type": "array",
                    "items": {"type": "integer"},
                    "description": "The new records' ids, in order.",
                },
            },
            "required": ["id", "ids"],
        },
        needs_connection=True,
        options=MODEL_OPTIONS,
        examples=[{"input": {"model": "res.partner", "values": {"name": "Ada", "email": "a@b.c"}}}],
    ),
    Action(
        name="write",
        run=write,
        title="Update records",
        description="Write the same values on the given records.",
        input_schema=_schema(
            {"ids": ONE_OR_MORE_IDS, "values": VALUES},
            ["ids", "values"],
        ),
        output_schema=OK_IDS,
        needs_connection=True,
        idempotent=True,
        options=MODEL_OPTIONS,
        examples=[{"input": {"model": "res.partner", "ids": [7], "values": {"phone": "+1555"}}}],
    ),
    Action(
        name="unlink",
        run=unlink,
        title="Delete records",
        description="Delete the given records.",
        input_schema=_schema({"ids": ONE_OR_MORE_IDS}, ["ids"]),
        output_schema=OK_IDS,
        needs_connection=True,
        options=MODEL_OPTIONS,
        examples=[{"input": {"model": "res.partner", "ids": [7]}}],
    ),
]

CONNECTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "url": {
            "type": "string",
            "format": "uri",
            "pattern": "^https?://",
            "description": "The Odoo server, e.g. https://mycompany.odoo.com.",
        },
        "protocol": {
            "enum": ["json2", "jsonrpc"],
            "default": "json2",
            "description": "json2 (Odoo 19 and later, API key as bearer token) or jsonrpc "
            "(older versions: database, username and password or API key).",
        },
        "database": {
            "type": "string",
            "description": "The database name: required for jsonrpc; for json2 only when the "
            "server hosts several (sent as X-Odoo-Database).",
        },
        "username": {"type": "string", "description": "jsonrpc: the user's login."},
        "api_key": {
            "type": "string",
            "writeOnly": True,
            "description": "An API key (Preferences > Account Security), or for jsonrpc the "
            "user's password.",
        },
    },
    "required": ["url", "api_key"],
    "additionalProperties": False,
    "if": {"properties": {"protocol": {"const": "jsonrpc"}}, "required": ["protocol"]},
    "then": {"required": ["database", "username"]},
}

NOTES = """\
- **Protocols.** `json2` calls `POST /json/2/<model>/<method>` with `Authorization: bearer
  <api key>` (Odoo 19+); `jsonrpc` calls `/jsonrpc` `object.execute_kw` with the user id from
  `common.authenticate` (cached an hour). JSON-RPC is deprecated since Odoo 19 and scheduled
  for removal in Odoo 22. API keys expire (at most three months): rotate them.
- **Errors.** `AccessDenied` / HTTP 401: Odoo refused the credentials (not retried).
  `AccessError`, `UserError`, `ValidationError`, `MissingError` carry Odoo's message and are
  not retried; serialization failures, 429 (after `Retry-After`), 5xx and connection errors are
  retried. Odoo's traceback (`debug`) is never copied into an error.
- **Transactions.** Each call is its own transaction in Odoo; a flow of several steps is not
  atomic.
- **Idempotency.** Odoo takes no idempotency key: a create retried after a timeout may create
  a duplicate. write and search_read are idempotent.
- **Rate limits.** Odoo documents none for the external API; the hub applies none.
- **Poll trigger `odoo.changes`.** Cursor = last `write_date` and `id` (ties broken by id,
  and `write_date`'s one-second resolution handled), domain from `config.domain`. A record
  changed by a transaction that commits late, after the poll has moved past its start time,
  can be missed.
- **Dynamic options.** `model` lists non-transient models (`ir.model`); `fields` lists the
  fields (`fields_get`) of the model in the step's input. Both are cached five minutes.
"""


async def test_connection(connection: dict[str, Any], http: httpx.AsyncClient | None = None) -> Any:
    """Check the credentials: ``res.users/context_get`` (JSON-2) or ``authenticate`` (RPC).

    Pass the hub's guarded client as ``http``; without it a plain client is used.
    """

    async def check(client: OdooClient) -> Any:
        if client.protocol == "jsonrpc":
            return {"uid": await client.uid("odoo connection test")}
        found = await client.execute("res.users", "context_get", what="odoo connection test")
        return {"context": found}

    if http is not None:
        return await check(OdooClient(http, connection))
    async with httpx.AsyncClient() as own:
        return await check(OdooClient(own, connection))


@hookimpl
def hub_connectors() -> list[Connector]:
    """The ``odoo`` connector."""
    return [
        Connector(
            name="odoo",
            title="Odoo",
            version="1",
            icon="odoo",
            description="Odoo ERP: search, read, create, update and delete records of any "
            "model; react to created or changed records.",
            connection_schema=CONNECTION_SCHEMA,
            actions=ACTIONS,
            triggers=[CHANGES_TRIGGER],
            test_connection=test_connection,
            notes=NOTES,
        )
    ]
