"""A local stand-in for an Odoo server's external API (no Odoo server is reachable from here).

It implements, as a plain ASGI app served by uvicorn on 127.0.0.1, the documented requests and
answers of both protocols the connector speaks:

- JSON-2 (Odoo 19+): ``POST /json/2/<model>/<method>`` with ``Authorization: bearer <key>``,
  ``Content-Type: application/json``, optional ``X-Odoo-Database``; named arguments plus ``ids``
  and ``context`` in the body; the return value as the body, or a 4xx/5xx status with
  ``{name, message, arguments, context, debug}`` (401 ``Invalid apikey``, 403 AccessError, 404
  unknown model or MissingError, 422 bad arguments / UserError / ValidationError);
- JSON-RPC: ``POST /jsonrpc`` with ``common.authenticate`` (uid or false) and
  ``object.execute_kw(db, uid, password, model, method, args, kwargs)``, errors as
  ``{"error": {"code": 200, "message": "Odoo Server Error", "data": {name, message, debug}}}``.

Models: ``res.partner`` (name required), ``ir.model``. Methods: search_read (a domain
evaluator with '&', '|', '!'), create (vals_list), write, unlink, fields_get, context_get.
Like Odoo, it stores ``write_date`` with microseconds and serialises it to the second. Every
request is recorded; ``force`` queues canned answers (429, 5xx ...). The tracebacks it sends
in ``debug`` contain ``TRACEBACK-MARKER`` so tests can check they are never copied.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from hub.testing import StandIn, StandInRequest

API_KEY = "odoo-standin-api-key-6578616d706c65"
DATABASE = "standin"
LOGIN = "bot@example.com"
UID = 7
STAMP = "%Y-%m-%d %H:%M:%S"
SIGNATURES = {  # the stand-in's methods and their parameter names, in order
    "search_read": ("domain", "fields", "offset", "limit", "order"),
    "create": ("vals_list",),
    "write": ("vals",),
    "unlink": (),
    "fields_get": ("allfields", "attributes"),
    "context_get": (),
}
RECORD_METHODS = {"write", "unlink"}
PARTNER_FIELDS = {
    "id": {"string": "ID", "type": "integer", "required": False, "readonly": True},
    "name": {"string": "Name", "type": "char", "required": True, "readonly": False},
    "email": {"string": "Email", "type": "char", "required": False, "readonly": False},
    "is_company": {
        "string": "Is a Company",
        "type": "boolean",
        "required": False,
        "readonly": False,
    },
    "write_date": {
        "string": "Last Updated on",
        "type": "datetime",
        "required": False,
        "readonly": True,
    },
}


class OdooError(Exception):
    """An exception the stand-in's Odoo raises: its Python name, message and JSON-2 status."""

    def __init__(self, name: str, message: str, status: int) -> None:
        super().__init__(message)
        self.name, self.message, self.status = name, message, status


class OdooStandIn(StandIn):
    """The ASGI app: one database with partners."""

    def reset(self) -> None:
        """Forget requests, records and canned answers; the clock is the real one again."""
        super().reset()
        self.clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC).replace(tzinfo=None)
        self.partners: dict[int, dict[str, Any]] = {}
        self.next_id = 1
        self.models = [
            {"id": 1, "model": "res.partner", "name": "Contact", "transient": False},
            {"id": 2, "model": "sale.order", "name": "Sales Order", "transient": False},
            {
                "id": 3,
                "model": "base.language.install",
                "name": "Install Language",
                "transient": True,
            },
        ]

    def add(self, name: str, at: dt.datetime | None = None, **values: Any) -> int:
        """Store a partner directly (test setup), written at ``at``; return its id."""
        rid = self.next_id
        self.next_id += 1
        self.partners[rid] = {"id": rid, "name": name, "email": False, "is_company": False}
        self.partners[rid].update(values, write_date=at or self.clock())
        return rid

    def answer(self, seen: StandInRequest) -> tuple[int, Any]:
        """Odoo's answer to one request: JSON-RPC, JSON-2, or not found."""
        if seen.path == "/jsonrpc" and seen.method == "POST":
            return 200, self.jsonrpc(seen)
        if seen.path.startswith("/json/2/") and seen.method == "POST":
            return self.json2(seen)
        return 404, {"name": "werkzeug.exceptions.NotFound", "message": "Not Found"}

    # -- the protocols -------------------------------------------------------------------------

    def json2(self, seen: StandInRequest) -> tuple[int, Any]:
        """A JSON-2 call."""
        try:
            scheme, _, key = seen.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or key != API_KEY:
                raise OdooError("werkzeug.exceptions.Unauthorized", "Invalid apikey", 401)
            database = seen.headers.get("x-odoo-database")
            if database is not None and database != DATABASE:
                raise OdooError("werkzeug.exceptions.NotFound", "Database not found", 404)
            if not seen.headers.get("content-type", "").startswith("application/json"):
                raise OdooError(
                    "werkzeug.exceptions.UnsupportedMediaType", "Unsupported Media Type", 415
                )
            _, _, _, model, method = seen.path.split("/", 4)
            body = seen.json
            if not isinstance(body, dict):
                raise OdooError("werkzeug.exceptions.BadRequest", "a JSON object is required", 400)
            ids = body.pop("ids", None)
            body.pop("context", None)
            return 200, self.call(model, method, ids, body)
        except OdooError as exc:
            return exc.status, {
                "name": exc.name,
                "message": exc.message,
                "arguments": [exc.message],
                "context": {},
                "debug": f"Traceback (most recent call last):\n  TRACEBACK-MARKER\n{exc.name}",
            }

    def jsonrpc(self, seen: StandInRequest) -> dict[str, Any]:
        """A JSON-RPC call (always HTTP 200)."""
        request = seen.json
        params = request.get("params") or {}
        service, method, args = params.get("service"), params.get("method"), params.get("args")
        try:
            result = self._rpc(service, method, list(args or []))
        except OdooError as exc:
            return {
                "jsonrpc": "2.0",
                "id": request.get("id"),
                "error": {
                    "code": 200,
                    "message": "Odoo Server Error",
                    "data": {
                        "name": exc.name,
                        "debug": "Traceback (most recent call last):\n  TRACEBACK-MARKER\n",
                        "message": exc.message,
                        "arguments": [exc.message],
                        "context": {},
                    },
                },
            }
        return {"jsonrpc": "2.0", "id": request.get("id"), "result": result}

    def _rpc(self, service: str, method: str, args: list[Any]) -> Any:
        if service == "common" and method in ("authenticate", "login"):
            db, login, password = args[:3]
            ok = db == DATABASE and login == LOGIN and password == API_KEY
            return UID if ok else False
        if service == "object" and method == "execute_kw":
            db, uid, password, model, name = args[:5]
            call_args = args[5] if len(args) > 5 else []
            kwargs = dict(args[6]) if len(args) > 6 else {}
            if db != DATABASE:
                raise OdooError("psycopg2.OperationalError", f'database "{db}" does not exist', 500)
            if uid != UID or password != API_KEY:
                raise OdooError("odoo.exceptions.AccessDenied", "Access Denied", 401)
            kwargs.pop("context", None)
            ids = None
            if name in RECORD_METHODS:
                if not call_args:
                    raise OdooError("builtins.TypeError", f"{name}() missing the record ids", 422)
                ids, call_args = call_args[0], call_args[1:]
            names = SIGNATURES.get(name, ())
            if len(call_args) > len(names):
                raise OdooError("builtins.TypeError", f"{name}() takes too many arguments", 422)
            for pname, value in zip(names, call_args, strict=False):
                if pname in kwargs:
                    raise OdooError("builtins.TypeError", f"got multiple values for {pname}", 422)
                kwargs[pname] = value
            return self.call(model, name, ids, kwargs)
        raise OdooError("builtins.KeyError", f"{service}.{method}", 500)

    # -- the models --------------------------------------------------------------------------------

    def call(self, model: str, method: str, ids: Any, kwargs: dict[str, Any]) -> Any:
        """Run ``model.method`` as Odoo would, with named arguments."""
        if model not in ("res.partner", "ir.model", "res.users"):
            raise OdooError("werkzeug.exceptions.NotFound", f"model {model!r} not found", 404)
        if method not in SIGNATURES:
            raise OdooError("werkzeug.exceptions.NotFound", f"no method {method!r}", 404)
        unknown = set(kwargs) - set(SIGNATURES[method])
        if unknown:
            raise OdooError(
                "builtins.TypeError",
                f"{method}() got an unexpected keyword argument '{sorted(unknown)[0]}'",
                422,
            )
        if method == "context_get":
            return {"lang": "en_US", "tz": "Europe/Brussels", "uid": UID}
        if model == "ir.model":
            if method != "search_read":
                raise OdooError(
                    "odoo.exceptions.AccessError", "You are not allowed to do that", 403
                )
            return self.search_read(self.models, kwargs)
        if model == "res.users":
            raise OdooError("odoo.exceptions.AccessError", "You are not allowed to do that", 403)
        if method == "search_read":
            return self.search_read(list(self.partners.values()), kwargs)
        if method == "fields_get":
            wanted = kwargs.get("attributes")
            return {
                name: {k: v for k, v in spec.items() if not wanted or k in wanted}
                for name, spec in PARTNER_FIELDS.items()
            }
        if method == "create":
            vals_list = kwargs.get("vals_list")
            if not isinstance(vals_list, list):
                raise OdooError("builtins.TypeError", "create() missing vals_list", 422)
            for vals in vals_list:
                if not vals.get("name"):
                    raise OdooError(
                        "odoo.exceptions.ValidationError",
                        "The operation cannot be completed: Create/update: a mandatory field "
                        "is not set. Model: Contact (res.partner), Field: Name (name)",
                        422,
                    )
            return [self.add(**vals) for vals in vals_list]
        records = []
        for rid in ids or []:
            if rid not in self.partners:
                raise OdooError(
                    "odoo.exceptions.MissingError",
                    "Record does not exist or has been deleted. (Record: res.partner"
                    f"({rid},), User: {UID})",
                    404,
                )
            records.append(self.partners[rid])
        if method == "write":
            vals = kwargs.get("vals") or {}
            unknown = set(vals) - set(PARTNER_FIELDS)
            if unknown:
                raise OdooError("builtins.ValueError", f"Invalid field {sorted(unknown)[0]!r}", 422)
            for record in records:
                record.update(vals, write_date=self.clock())
            return True
        for record in records:  # unlink
            del self.partners[record["id"]]
        return True

    def search_read(self, rows: list[dict[str, Any]], kwargs: dict[str, Any]) -> list[Any]:
        domain = kwargs.get("domain") or []
        found = [r for r in rows if evaluate(domain, r)]
        for part in reversed([p.strip() for p in (kwargs.get("order") or "id").split(",")]):
            field, _, direction = part.partition(" ")
            found.sort(key=lambda r: r.get(field) or 0, reverse=direction.lower() == "desc")
        offset = int(kwargs.get("offset") or 0)
        limit = kwargs.get("limit")
        found = found[offset : offset + int(limit)] if limit else found[offset:]
        fields = kwargs.get("fields")
        return [
            {k: _serialise(v) for k, v in r.items() if not fields or k in fields or k == "id"}
            for r in found
        ]


def _serialise(value: Any) -> Any:
    return value.strftime(STAMP) if isinstance(value, dt.datetime) else value


def _leaf(term: list[Any], record: dict[str, Any]) -> bool:
    field, op, wanted = term
    if field not in record:
        raise OdooError("builtins.ValueError", f"Invalid field {field!r} in leaf {term!r}", 422)
    value = record[field]
    if isinstance(value, dt.datetime) and isinstance(wanted, str):
        wanted = dt.datetime.strptime(wanted[:19], STAMP)
    if op == "=":
        return bool(value == wanted)
    if op == "!=":
        return bool(value != wanted)
    if op in ("in", "not in"):
        return (value in wanted) == (op == "in")
    if op in ("ilike", "=ilike"):
        text, pattern = str(value or "").lower(), str(wanted).lower()
        return text == pattern if op == "=ilike" else pattern in text
    if value is False or value is None:
        return False
    return {">": value > wanted, ">=": value >= wanted, "<": value < wanted, "<=": value <= wanted}[
        op
    ]


def evaluate(domain: list[Any], record: dict[str, Any]) -> bool:
    """Odoo's domain semantics: prefix '&', '|', '!'; terms side by side are ANDed."""
    stack: list[bool] = []
    for term in reversed(domain):
        if term == "!":
            stack.append(not stack.pop())
        elif term in ("&", "|"):
            a, b = stack.pop(), stack.pop()
            stack.append((a and b) if term == "&" else (a or b))
        else:
            stack.append(_leaf(term, record))
    return all(stack)


def connection_for(protocol: str, url: str) -> dict[str, Any]:
    """A connection to the stand-in over ``protocol`` with credentials it accepts."""
    if protocol == "json2":
        return {"url": url, "protocol": "json2", "api_key": API_KEY}
    return {
        "url": url,
        "protocol": "jsonrpc",
        "database": DATABASE,
        "username": LOGIN,
        "api_key": API_KEY,
    }
