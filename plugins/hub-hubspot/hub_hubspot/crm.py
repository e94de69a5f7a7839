"""The CRM actions: search, get, create and update contacts, companies and deals; associate
two records (v4 associations); list pipelines and owners (also as dynamic options).

One set of actions is built per object type by :func:`object_actions`, so
``hubspot.search_contacts``, ``hubspot.get_company``, ``hubspot.create_deal`` ... share their
code and differ only in the CRM v3 object path.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from hub import Action, ActionError, CachePolicy, RateLimit
from hub_hubspot.client import HubSpotClient

OBJECT_TYPES = {"contacts": "contact", "companies": "company", "deals": "deal"}
OPERATORS = [
    "EQ",
    "NEQ",
    "LT",
    "LTE",
    "GT",
    "GTE",
    "BETWEEN",
    "IN",
    "NOT_IN",
    "HAS_PROPERTY",
    "NOT_HAS_PROPERTY",
    "CONTAINS_TOKEN",
    "NOT_CONTAINS_TOKEN",
]
MAX_FILTERS = 18  # in all groups together (HubSpot's limit; 5 groups, 6 filters per group)
GENERAL_LIMIT = RateLimit(requests=100, per_seconds=10.0)  # private apps, Free/Starter
SEARCH_LIMIT = RateLimit(requests=5, per_seconds=1.0)  # the search endpoints, per account
LOOKUP_CACHE = CachePolicy(ttl=300.0, stale_while_revalidate=60.0)
MAX_PAGES = 20

_VALUE = {"type": ["string", "number", "boolean"]}
FILTER: dict[str, Any] = {
    "type": "object",
    "properties": {
        "propertyName": {"type": "string", "minLength": 1, "description": "The property."},
        "operator": {"enum": OPERATORS, "description": "How the property is compared."},
        "value": {**_VALUE, "description": "The value compared with (most operators)."},
        "highValue": {**_VALUE, "description": "BETWEEN: the upper bound (value the lower)."},
        "values": {
            "type": "array",
            "items": _VALUE,
            "description": "IN, NOT_IN: the values.",
        },
    },
    "required": ["propertyName", "operator"],
    "additionalProperties": False,
}
RECORD: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "description": "The record id."},
        "properties": {"type": "object", "description": "Property values (as strings)."},
        "createdAt": {"type": "string", "description": "ISO 8601."},
        "updatedAt": {"type": "string", "description": "ISO 8601."},
        "archived": {"type": "boolean", "description": "In the recycle bin."},
        "associations": {"type": "object", "description": "Associated ids, when asked for."},
    },
    "required": ["id", "properties"],
}
PROPERTY_VALUES: dict[str, Any] = {
    "type": "object",
    "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
    "description": "Property values by internal name (email, firstname, dealname, amount ...).",
}
RECORD_ID = {"type": ["string", "integer"], "description": "The record id (or id_property value)."}
PROPERTY_NAMES = {
    "type": "array",
    "items": {"type": "string", "minLength": 1},
    "description": "Properties to return (default: HubSpot's default set).",
}
ID_PROPERTY = {
    "type": "string",
    "description": "A unique property that `id` holds instead of the record id (e.g. email).",
}


def _check_filters(name: str, data: dict[str, Any]) -> list[dict[str, Any]]:
    if "filters" in data and "filter_groups" in data:
        raise ActionError(f"hubspot.{name}: give input.filters or input.filter_groups, not both")
    groups = data.get("filter_groups")
    if groups is None:
        groups = [{"filters": data["filters"]}] if data.get("filters") else []
    total = sum(len(g["filters"]) for g in groups)
    if total > MAX_FILTERS:
        raise ActionError(
            f"hubspot.{name}: input.filter_groups holds {total} filters; HubSpot accepts at "
            f"most {MAX_FILTERS} in all groups together"
        )
    return [{"filters": list(g["filters"])} for g in groups]


def _convenience(data: dict[str, Any], singular: str) -> dict[str, Any]:
    """``properties`` plus the top-level shortcuts (owner_id; pipeline, dealstage for deals)."""
    values = dict(data.get("properties") or {})
    if data.get("owner_id") is not None:
        values["hubspot_owner_id"] = str(data["owner_id"])
    if singular == "deal":
        for key in ("pipeline", "dealstage"):
            if data.get(key) is not None:
                values[key] = str(data[key])
    return values


def object_actions(plural: str, options: dict[str, Any]) -> list[Action]:
    """search, get, create and update actions for one CRM object type."""
    singular = OBJECT_TYPES[plural]
    base = f"/crm/v3/objects/{plural}"

    async def search(ctx: Any, data: dict[str, Any]) -> dict[str, Any]:
        name = f"search_{plural}"
        body: dict[str, Any] = {
            "filterGroups": _check_filters(name, data),
            "limit": int(data.get("limit") or 10),
        }
        for key in ("query", "properties", "sorts", "after"):
            if data.get(key) is not None:
                body[key] = data[key]
        _, found = await HubSpotClient.of(ctx).request(
            "POST", f"{base}/search", f"hubspot.{name}", json=body
        )
        found = found or {}
        return {
            "total": int(found.get("total") or 0),
            "results": list(found.get("results") or []),
            "next_after": ((found.get("paging") or {}).get("next") or {}).get("after"),
        }

    async def get(ctx: Any, data: dict[str, Any]) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if data.get("properties"):
            params["properties"] = ",".join(data["properties"])
        if data.get("associations"):
            params["associations"] = ",".join(data["associations"])
        if data.get("id_property"):
            params["idProperty"] = data["id_property"]
        status, found = await HubSpotClient.of(ctx).request(
            "GET",
            f"{base}/{quote(str(data['id']), safe='')}",
            f"hubspot.get_{singular}",
            params=params,
            allow=(404,),
        )
        if status == 404:
            return {"found": False, "record": None}
        return {"found": True, "record": found}

    async def create(ctx: Any, data: dict[str, Any]) -> Any:
        values = _convenience(data, singular)
        if not values:
            raise ActionError(f"hubspot.create_{singular}: input.properties is empty")
        _, created = await HubSpotClient.of(ctx).request(
            "POST", base, f"hubspot.create_{singular}", json={"properties": values}
        )
        return created

    async def update(ctx: Any, data: dict[str, Any]) -> Any:
        values = _convenience(data, singular)
        if not values:
            raise ActionError(f"hubspot.update_{singular}: input.properties is empty")
        params = {"idProperty": data["id_property"]} if data.get("id_property") else None
        _, updated = await HubSpotClient.of(ctx).request(
            "PATCH",
            f"{base}/{quote(str(data['id']), safe='')}",
            f"hubspot.update_{singular}",
            params=params,
            json={"properties": values},
        )
        return updated

    extra: dict[str, Any] = {
        "owner_id": {"type": ["string", "integer"], "description": "hubspot_owner_id."}
    }
    if singular == "deal":
        extra["pipeline"] = {"type": "string", "description": "The pipeline id."}
        extra["dealstage"] = {"type": "string", "description": "The deal stage id."}
    writable = {k: v for k, v in options.items() if k in extra}
    search_input = {
        "type": "object",
        "properties": {
            "filters": {
                "type": "array",
                "items": FILTER,
                "maxItems": 6,
                "description": "Filters that must all match (one HubSpot filter group).",
            },
            "filter_groups": {
                "type": "array",
                "maxItems": 5,
                "items": {
                    "type": "object",
                    "properties": {
                        "filters": {
                            "type": "array",
                            "items": FILTER,
                            "minItems": 1,
                            "maxItems": 6,
                            "description": "Filters that must all match.",
                        }
                    },
                    "required": ["filters"],
                    "additionalProperties": False,
                },
                "description": "HubSpot's filterGroups: a record matches when all the filters "
                "of any one group match.",
            },
            "query": {"type": "string", "description": "Text searched in default properties."},
            "properties": PROPERTY_NAMES,
            "sorts": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "propertyName": {"type": "string", "description": "The property."},
                        "direction": {
                            "enum": ["ASCENDING", "DESCENDING"],
                            "description": "Default ASCENDING.",
                        },
                    },
                    "required": ["propertyName"],
                    "additionalProperties": False,
                },
                "description": "Sort order (HubSpot accepts one sort).",
            },
            "limit": {"type": "integer", "minimum": 1, "maximum": 200, "default": 10},
            "after": {"type": "string", "description": "The next_after of the previous page."},
        },
        "additionalProperties": False,
    }
    return [
        Action(
            name=f"search_{plural}",
            run=search,
            title=f"Search {plural}",
            description=f"Search {plural} with filters (CRM v3 search API); one page of "
            "results and the cursor of the next.",
            input_schema=search_input,
            output_schema={
                "type": "object",
                "properties": {
                    "total": {"type": "integer", "description": "How many records match."},
                    "results": {
                        "type": "array",
                        "items": RECORD,
                        "description": "This page of records.",
                    },
                    "next_after": {
                        "type": ["string", "null"],
                        "description": "The after of the next page (null: the last page).",
                    },
                },
                "required": ["total", "results", "next_after"],
            },
            needs_connection=True,
            idempotent=True,
            rate_limit=SEARCH_LIMIT,
            examples=[
                {
                    "input": {
                        "filters": [{"propertyName": "email", "operator": "EQ", "value": "a@b.c"}],
                        "properties": ["email", "firstname"],
                        "limit": 1,
                    }
                }
            ],
        ),
        Action(
            name=f"get_{singular}",
            run=get,
            title=f"Get a {singular}",
            description=f"Read one {singular} by id (or by a unique property with id_property); "
            "found is false when HubSpot has none.",
            input_schema={
                "type": "object",
                "properties": {
                    "id": RECORD_ID,
                    "id_property": ID_PROPERTY,
                    "properties": PROPERTY_NAMES,
                    "associations": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "Object types whose associated ids to return.",
                    },
                },
                "required": ["id"],
                "additionalProperties": False,
            },
            output_schema={
                "type": "object",
                "properties": {
                    "found": {"type": "boolean", "description": "HubSpot has the record."},
                    "record": {
                        "anyOf": [RECORD, {"type": "null"}],
                        "description": "The record, or null.",
                    },
                },
                "required": ["found", "record"],
            },
            needs_connection=True,
            idempotent=True,
            rate_limit=GENERAL_LIMIT,
            examples=[{"input": {"id": "a@b.c", "id_property": "email"}}],
        ),
        Action(
            name=f"create_{singular}",
            run=create,
            title=f"Create a {singular}",
            description=f"Create a {singular} with the given property values.",
            input_schema={
                "type": "object",
                "properties": {"properties": PROPERTY_VALUES, **extra},
                "additionalProperties": False,
            },
            output_schema=RECORD,
            needs_connection=True,
            rate_limit=GENERAL_LIMIT,
            options=writable,
            examples=[{"input": {"properties": _example_properties(singular)}}],
        ),
        Action(
            name=f"update_{singular}",
            run=update,
            title=f"Update a {singular}",
            description=f"Change property values of a {singular} (by id or id_property).",
            input_schema={
                "type": "object",
                "properties": {
                    "id": RECORD_ID,
                    "id_property": ID_PROPERTY,
                    "properties": PROPERTY_VALUES,
                    **extra,
                },
                "required": ["id"],
                "additionalProperties": False,
            },
            output_schema=RECORD,
            needs_connection=True,
            idempotent=True,
            rate_limit=GENERAL_LIMIT,
            options=writable,
            examples=[{"input": {"id": "123", "properties": _example_properties(singular)}}],
        ),
    ]


def _example_properties(singular: str) -> dict[str, Any]:
    return {
        "contact": {"email": "ada@example.com", "firstname": "Ada"},
        "company": {"name": "Example Ltd", "domain": "example.com"},
        "deal": {"dealname": "Example deal", "amount": "1000", "dealstage": "appointmentscheduled"},
    }[singular]


async def associate(ctx: Any, data: dict[str, Any]) -> dict[str, Any]:
    """Associate two records (v4): the default association, or a labelled one by type id."""
    src, dst = data["from_type"], data["to_type"]
    src_id = quote(str(data["from_id"]), safe="")
    dst_id = quote(str(data["to_id"]), safe="")
    client = HubSpotClient.of(ctx)
    type_id = data.get("association_type_id")
    if type_id is None:
        path = f"/crm/v4/objects/{src}/{src_id}/associations/default/{dst}/{dst_id}"
        await client.request("PUT", path, "hubspot.associate")
    else:
        path = f"/crm/v4/objects/{src}/{src_id}/associations/{dst}/{dst_id}"
        spec = {
            "associationCategory": data.get("association_category") or "HUBSPOT_DEFINED",
            "associationTypeId": int(type_id),
        }
        await client.request("PUT", path, "hubspot.associate", json=[spec])
    return {
        "from_type": src,
        "from_id": str(data["from_id"]),
        "to_type": dst,
        "to_id": str(data["to_id"]),
        "association_type_id": type_id,
    }


_TYPE = {"enum": sorted(OBJECT_TYPES), "description": "The object type."}
ASSOCIATE = Action(
    name="associate",
    run=associate,
    title="Associate two records",
    description="Link two records (v4 associations API): the default association between "
    "their types, or the labelled type association_type_id.",
    input_schema={
        "type": "object",
        "properties": {
            "from_type": _TYPE,
            "from_id": RECORD_ID,
            "to_type": _TYPE,
            "to_id": RECORD_ID,
            "association_type_id": {
                "type": "integer",
                "minimum": 1,
                "description": "A labelled association type (default: the default association).",
            },
            "association_category": {
                "enum": ["HUBSPOT_DEFINED", "USER_DEFINED", "INTEGRATOR_DEFINED"],
                "default": "HUBSPOT_DEFINED",
            },
        },
        "required": ["from_type", "from_id", "to_type", "to_id"],
        "additionalProperties": False,
    },
    output_schema={
        "type": "object",
        "properties": {
            "from_type": {"type": "string", "description": "As given."},
            "from_id": {"type": "string", "description": "As given."},
            "to_type": {"type": "string", "description": "As given."},
            "to_id": {"type": "string", "description": "As given."},
            "association_type_id": {
                "type": ["integer", "null"],
                "description": "The labelled type, or null for the default association.",
            },
        },
        "required": ["from_type", "from_id", "to_type", "to_id"],
    },
    needs_connection=True,
    idempotent=True,
    rate_limit=GENERAL_LIMIT,
    examples=[
        {"input": {"from_type": "deals", "from_id": "1", "to_type": "contacts", "to_id": "2"}}
    ],
)


async def fetch_pipelines(client: HubSpotClient, object_type: str) -> list[dict[str, Any]]:
    """The pipelines of an object type, with their stages, in display order."""
    _, body = await client.request(
        "GET", f"/crm/v3/pipelines/{object_type}", "hubspot.list_pipelines"
    )
    pipelines = sorted((body or {}).get("results") or [], key=lambda p: p.get("displayOrder", 0))
    return [
        {
            "id": str(p["id"]),
            "label": str(p.get("label") or p["id"]),
            "stages": [
                {"id": str(s["id"]), "label": str(s.get("label") or s["id"])}
                for s in sorted(p.get("stages") or [], key=lambda s: s.get("displayOrder", 0))
            ],
        }
        for p in pipelines
    ]


async def fetch_owners(client: HubSpotClient, email: str | None = None) -> list[dict[str, Any]]:
    """Every owner (following the paging cursor), or those with ``email``."""
    owners: list[dict[str, Any]] = []
    after = None
    for _ in range(MAX_PAGES):
        params: dict[str, Any] = {"limit": 100}
        if after:
            params["after"] = after
        if email:
            params["email"] = email
        _, body = await client.request(
            "GET", "/crm/v3/owners", "hubspot.list_owners", params=params
        )
        body = body or {}
        for o in body.get("results") or []:
            owners.append(
                {
                    "id": str(o["id"]),
                    "email": o.get("email"),
                    "firstName": o.get("firstName"),
                    "lastName": o.get("lastName"),
                    "userId": o.get("userId"),
                }
            )
        after = ((body.get("paging") or {}).get("next") or {}).get("after")
        if not after:
            return owners
    raise ActionError(f"hubspot.list_owners: more than {MAX_PAGES} pages of owners")


async def list_pipelines(ctx: Any, data: dict[str, Any]) -> dict[str, Any]:
    """Run ``hubspot.list_pipelines``."""
    client = HubSpotClient.of(ctx)
    return {"pipelines": await fetch_pipelines(client, data.get("object_type") or "deals")}


async def list_owners(ctx: Any, data: dict[str, Any]) -> dict[str, Any]:
    """Run ``hubspot.list_owners``."""
    return {"owners": await fetch_owners(HubSpotClient.of(ctx), data.get("email"))}


async def _cached(ctx: Any, client: HubSpotClient, what: str, load: Any) -> Any:
    cache = getattr(ctx, "cache", None)
    if cache is None:
        return await load()
    key = f"hubspot:{what}:{client.identity}"
    return await cache.get_or_load(key, load, LOOKUP_CACHE.ttl, LOOKUP_CACHE.stale_while_revalidate)


async def pipeline_options(ctx: Any) -> list[dict[str, Any]]:
    """Dynamic options for a deal's ``pipeline``."""
    client = HubSpotClient.of(ctx)
    found = await _cached(ctx, client, "pipelines", lambda: fetch_pipelines(client, "deals"))
    return [{"value": p["id"], "label": p["label"]} for p in found]


async def stage_options(ctx: Any) -> list[dict[str, Any]]:
    """Dynamic options for a deal's ``dealstage`` (labelled ``pipeline / stage``)."""
    client = HubSpotClient.of(ctx)
    found = await _cached(ctx, client, "pipelines", lambda: fetch_pipelines(client, "deals"))
    return [
        {"value": s["id"], "label": f"{p['label']} / {s['label']}"}
        for p in found
        for s in p["stages"]
    ]


async def owner_options(ctx: Any) -> list[dict[str, Any]]:
    """Dynamic options for ``owner_id``: ``First Last <email>``."""
    client = HubSpotClient.of(ctx)
    found = await _cached(ctx, client, "owners", lambda: fetch_owners(client))
    options = []
    for o in found:
        name = " ".join(x for x in (o.get("firstName"), o.get("lastName")) if x)
        label = f"{name} <{o['email']}>" if name and o.get("email") else name or o.get("email")
        options.append({"value": o["id"], "label": label or o["id"]})
    return options


LOOKUPS = [
    Action(
        name="list_pipelines",
        run=list_pipelines,
        title="List pipelines",
        description="The pipelines of deals (or tickets) with their stages, in display order.",
        input_schema={
            "type": "object",
            "properties": {"object_type": {"enum": ["deals", "tickets"], "default": "deals"}},
            "additionalProperties": False,
        },
        output_schema={
            "type": "object",
            "properties": {
                "pipelines": {
                    "type": "array",
                    "items": {"type": "object"},
                    "description": "[{id, label, stages: [{id, label}]}], in display order.",
                }
            },
            "required": ["pipelines"],
        },
        needs_connection=True,
        idempotent=True,
        cache=LOOKUP_CACHE,
        rate_limit=GENERAL_LIMIT,
        examples=[{"input": {"object_type": "deals"}}],
    ),
    Action(
        name="list_owners",
        run=list_owners,
        title="List owners",
        description="The account's owners (users who can own records); filter by email.",
        input_schema={
            "type": "object",
            "properties": {"email": {"type": "string", "description": "Only this owner."}},
            "additionalProperties": False,
        },
        output_schema={
            "type": "object",
            "properties": {
                "owners": {
                    "type": "array",
                    "items": {"type": "object"},
                    "description": "[{id, email, firstName, lastName, userId}].",
                }
            },
            "required": ["owners"],
        },
        needs_connection=True,
        idempotent=True,
        cache=LOOKUP_CACHE,
        rate_limit=GENERAL_LIMIT,
        examples=[{"input": {"email": "owner@example.com"}}],
    ),
]


def crm_actions() -> list[Action]:
    """Every CRM action of the connector."""
    options = {"owner_id": owner_options, "pipeline": pipeline_options, "dealstage": stage_options}
    actions: list[Action] = []
    for plural in OBJECT_TYPES:
        actions += object_actions(plural, options)
    return [*actions, ASSOCIATE, *LOOKUPS]
