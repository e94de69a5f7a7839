"""A local stand-in for the HubSpot API (api.hubapi.com cannot be reached from the tests).

It implements the documented requests and answers of the endpoints the connector uses, as a
plain ASGI app served by uvicorn on 127.0.0.1: CRM v3 objects (create, read, update, search
with filterGroups), v4 associations (default and labelled), pipelines, owners (paged) and the
OAuth2 token endpoint (refresh_token grant). It checks what HubSpot checks that matters here:
the bearer token (401 INVALID_AUTHENTICATION / EXPIRED_AUTHENTICATION), JSON bodies and
required properties (400 VALIDATION_ERROR), the search limits (5 groups, 6 filters per group,
18 in all, limit <= 200), unique contact emails (409 CONFLICT) and unknown records (404). It
records every request; ``force`` queues canned answers (429, 5xx ...).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hub.testing import StandIn, StandInRequest

TOKEN = "pat-na1-standin-11111111-2222-3333-4444-555555555555"
CLIENT_ID = "standin-client-id"
CLIENT_SECRET = "standin-client-secret-6789"
REFRESH_TOKEN = "standin-refresh-token-abcdef"
KEY_PROPS = {"contacts": "email", "companies": "domain", "deals": None}


def error(status: int, message: str, category: str, **extra: Any) -> tuple[int, Any]:
    """HubSpot's error body."""
    body = {"status": "error", "message": message, "correlationId": "c0ffee", "category": category}
    return status, {**body, **extra}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class HubSpotStandIn(StandIn):
    """The ASGI app: one HubSpot account with a few records, pipelines and owners."""

    content_type = "application/json;charset=utf-8"

    def reset(self) -> None:
        """Forget requests, records, issued tokens and canned answers."""
        super().reset()
        self.valid_tokens = {TOKEN}
        self.expired_tokens: set[str] = set()
        self.issued = 0
        self.next_id = 100
        self.records: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in KEY_PROPS}
        self.associations: list[tuple[str, str, str, str, int]] = []
        self.owners = [
            {
                "id": str(1000 + i),
                "email": f"owner{i}@example.com",
                "firstName": f"Owner{i}",
                "lastName": "Example",
                "userId": 5000 + i,
                "archived": False,
            }
            for i in range(120)
        ]

    def calls(self, method: str, prefix: str) -> list[StandInRequest]:
        """The requests with this method whose path starts with ``prefix``."""
        return [r for r in self.requests if r.method == method and r.path.startswith(prefix)]

    def add(self, object_type: str, properties: dict[str, Any]) -> str:
        """Store a record directly (test setup); return its id."""
        self.next_id += 1
        rid = str(self.next_id)
        stamp = _now()
        props = {k: str(v) for k, v in properties.items()}
        props.update(hs_object_id=rid, createdate=stamp, lastmodifieddate=stamp)
        self.records[object_type][rid] = {
            "id": rid,
            "properties": props,
            "createdAt": stamp,
            "updatedAt": stamp,
            "archived": False,
        }
        return rid

    # -- the API ---------------------------------------------------------------------------

    def answer(self, seen: StandInRequest) -> tuple[int, Any]:
        """HubSpot's answer to one request."""
        if seen.path == "/oauth/v1/token" and seen.method == "POST":
            return self.token(seen.form)
        auth = seen.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else ""
        if token in self.expired_tokens:
            return error(
                401,
                "The OAuth token used to make this call expired 1 minute(s) ago.",
                "EXPIRED_AUTHENTICATION",
            )
        if token not in self.valid_tokens:
            return error(
                401,
                "Authentication credentials not found. This API supports OAuth 2.0 "
                "authentication and you can find more details at "
                "https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                "INVALID_AUTHENTICATION",
            )
        body: Any = None
        if seen.method in ("POST", "PATCH", "PUT") and seen.body:
            if not seen.headers.get("content-type", "").startswith("application/json"):
                return error(415, "Unsupported Media Type", "VALIDATION_ERROR")
            try:
                body = seen.json
            except ValueError:
                return error(400, "Invalid input JSON", "VALIDATION_ERROR")
        parts = seen.path.strip("/").split("/")
        if parts[:2] == ["crm", "v3"] and len(parts) >= 4 and parts[2] == "objects":
            return self.objects(seen, parts[3], parts[4:], body)
        if parts[:3] == ["crm", "v4", "objects"] and len(parts) >= 7:
            return self.associate(seen.method, parts[3:], body)
        if parts[:3] == ["crm", "v3", "pipelines"] and len(parts) == 4:
            return self.pipelines(parts[3])
        if parts == ["crm", "v3", "owners"] and seen.method == "GET":
            return self.list_owners(seen.query)
        return error(404, f"Unknown path {seen.path}", "OBJECT_NOT_FOUND")

    def token(self, form: dict[str, str]) -> tuple[int, Any]:
        if form.get("grant_type") != "refresh_token":
            return 400, {"status": "BAD_GRANT_TYPE", "message": "grant_type not supported"}
        if form.get("client_id") != CLIENT_ID:
            return 400, {"status": "BAD_CLIENT_ID", "message": "missing or unknown client_id"}
        if form.get("client_secret") != CLIENT_SECRET:
            return 400, {"status": "BAD_CLIENT_SECRET", "message": "missing or invalid secret"}
        if form.get("refresh_token") != REFRESH_TOKEN:
            return 400, {"status": "BAD_REFRESH_TOKEN", "message": "missing or unknown token"}
        self.issued += 1
        fresh = f"standin-access-token-{self.issued:04d}"
        self.valid_tokens.add(fresh)
        return 200, {
            "token_type": "bearer",
            "refresh_token": REFRESH_TOKEN,
            "access_token": fresh,
            "expires_in": 1800,
        }

    def _find(self, object_type: str, ref: str, id_property: str | None) -> dict[str, Any] | None:
        store = self.records[object_type]
        if not id_property or id_property == "hs_object_id":
            return store.get(ref)
        for record in store.values():
            if record["properties"].get(id_property) == ref:
                return record
        return None

    def objects(
        self, seen: StandInRequest, object_type: str, rest: list[str], body: Any
    ) -> tuple[int, Any]:
        if object_type not in self.records:
            return error(
                400, f"Unable to infer object type from: {object_type}", "VALIDATION_ERROR"
            )
        if rest == ["search"] and seen.method == "POST":
            return self.search(object_type, body or {})
        if not rest and seen.method == "GET":
            found = list(self.records[object_type].values())[: int(seen.query.get("limit", 10))]
            return 200, {"results": found}
        if not rest and seen.method == "POST":
            return self.create(object_type, body)
        if len(rest) == 1 and seen.method in ("GET", "PATCH"):
            record = self._find(object_type, rest[0], seen.query.get("idProperty"))
            if record is None:
                return error(
                    404, "Object not found.  objectId are usually numeric.", "OBJECT_NOT_FOUND"
                )
            if seen.method == "PATCH":
                props = (body or {}).get("properties")
                if not isinstance(props, dict):
                    return error(400, "properties is required", "VALIDATION_ERROR")
                record["properties"].update({k: str(v) for k, v in props.items()})
                record["updatedAt"] = record["properties"]["lastmodifieddate"] = _now()
                return 200, record
            wanted = seen.query.get("properties")
            if wanted:
                props = {k: record["properties"].get(k) for k in wanted.split(",")}
                return 200, {**record, "properties": props}
            return 200, record
        return error(405, "Method not allowed", "VALIDATION_ERROR")

    def create(self, object_type: str, body: Any) -> tuple[int, Any]:
        props = (body or {}).get("properties")
        if not isinstance(props, dict) or not props:
            return error(400, "Error creating object: properties are required", "VALIDATION_ERROR")
        if object_type == "deals":
            missing = [k for k in ("dealname", "dealstage") if not props.get(k)]
            if missing:
                return error(400, f"Missing required properties: {missing}", "VALIDATION_ERROR")
        key = KEY_PROPS[object_type]
        if key == "email" and props.get(key):
            existing = self._find(object_type, str(props[key]), key)
            if existing is not None:
                return error(
                    409, f"Contact already exists. Existing ID: {existing['id']}", "CONFLICT"
                )
        rid = self.add(object_type, props)
        return 201, self.records[object_type][rid]

    def search(self, object_type: str, body: dict[str, Any]) -> tuple[int, Any]:
        groups = body.get("filterGroups") or []
        if len(groups) > 5 or any(len(g.get("filters", [])) > 6 for g in groups):
            return error(400, "Too many filter groups or filters", "VALIDATION_ERROR")
        if sum(len(g.get("filters", [])) for g in groups) > 18:
            return error(400, "Too many filters (max 18)", "VALIDATION_ERROR")
        limit = int(body.get("limit", 10))
        if limit > 200:
            return error(400, "limit must be <= 200", "VALIDATION_ERROR")
        matches = [
            r
            for r in self.records[object_type].values()
            if not groups or any(all(_match(r, f) for f in g["filters"]) for g in groups)
        ]
        if body.get("query"):
            q = str(body["query"]).lower()
            matches = [
                r for r in matches if any(q in str(v).lower() for v in r["properties"].values())
            ]
        start = int(body.get("after") or 0)
        page = matches[start : start + limit]
        wanted = body.get("properties")
        if wanted:
            page = [{**r, "properties": {k: r["properties"].get(k) for k in wanted}} for r in page]
        answer: dict[str, Any] = {"total": len(matches), "results": page}
        if start + limit < len(matches):
            answer["paging"] = {"next": {"after": str(start + limit)}}
        return 200, answer

    def associate(self, method: str, parts: list[str], body: Any) -> tuple[int, Any]:
        if method != "PUT":
            return error(405, "Method not allowed", "VALIDATION_ERROR")
        default = parts[3] == "default"
        if default and len(parts) == 6:
            src, src_id, _, _, dst, dst_id = parts
            specs = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 0}]
        elif not default and len(parts) == 5:
            src, src_id, _, dst, dst_id = parts
            if (
                not isinstance(body, list)
                or not body
                or not all(
                    isinstance(s, dict)
                    and s.get("associationCategory")
                    and s.get("associationTypeId")
                    for s in body
                )
            ):
                return error(400, "A list of association types is required", "VALIDATION_ERROR")
            specs = body
        else:
            return error(404, "Unknown path", "OBJECT_NOT_FOUND")
        for kind, rid in ((src, src_id), (dst, dst_id)):
            if kind not in self.records or rid not in self.records[kind]:
                return error(400, f"{kind} {rid} does not exist", "VALIDATION_ERROR")
        for spec in specs:
            self.associations.append((src, src_id, dst, dst_id, int(spec["associationTypeId"])))
        if default:
            return 200, {
                "status": "COMPLETE",
                "results": [
                    {"from": {"id": src_id}, "to": {"id": dst_id}, "associationSpec": specs[0]}
                ],
            }
        return 200, {"fromObjectId": src_id, "toObjectId": dst_id, "labels": []}

    def pipelines(self, object_type: str) -> tuple[int, Any]:
        if object_type != "deals":
            return 200, {"results": []}
        stages = [("appointmentscheduled", "Appointment Scheduled"), ("closedwon", "Closed Won")]
        return 200, {
            "results": [
                {
                    "id": "renewals",
                    "label": "Renewals",
                    "displayOrder": 1,
                    "stages": [{"id": "renewal-due", "label": "Due", "displayOrder": 0}],
                },
                {
                    "id": "default",
                    "label": "Sales Pipeline",
                    "displayOrder": 0,
                    "stages": [
                        {"id": sid, "label": label, "displayOrder": i}
                        for i, (sid, label) in enumerate(stages)
                    ],
                },
            ]
        }

    def list_owners(self, query: dict[str, str]) -> tuple[int, Any]:
        owners = self.owners
        if query.get("email"):
            owners = [o for o in owners if o["email"] == query["email"]]
        limit = min(int(query.get("limit", 100)), 500)
        start = int(query.get("after") or 0)
        answer: dict[str, Any] = {"results": owners[start : start + limit]}
        if start + limit < len(owners):
            answer["paging"] = {"next": {"after": str(start + limit)}}
        return 200, answer


def _match(record: dict[str, Any], f: dict[str, Any]) -> bool:
    value = record["properties"].get(f["propertyName"])
    op, wanted = f["operator"], f.get("value")
    if op == "HAS_PROPERTY":
        return value not in (None, "")
    if op == "NOT_HAS_PROPERTY":
        return value in (None, "")
    if op == "EQ":
        return str(value).lower() == str(wanted).lower()
    if op == "NEQ":
        return str(value).lower() != str(wanted).lower()
    if op == "IN":
        return str(value).lower() in {str(v).lower() for v in f.get("values", [])}
    if op == "CONTAINS_TOKEN":
        return str(wanted).lower().strip("*") in str(value or "").lower()
    if op in ("GT", "GTE", "LT", "LTE"):
        try:
            a, b = float(value), float(wanted)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False
        return {"GT": a > b, "GTE": a >= b, "LT": a < b, "LTE": a <= b}[op]
    return False
