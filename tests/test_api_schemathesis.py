"""The API against its own OpenAPI document, with schemathesis: every operation, authenticated
with an owner's token, a bounded number of generated requests each; no server error, no
response that breaks the documented schema, status codes and content types.

The app runs in-process through schemathesis's ASGI transport (its own event loop thread,
where the app's start-up starts the hub: real SQLite, real engine). A first hub, in a
separate event loop, seeds the data folder: users, a token, flows, a connection, a failed
run. Path parameters that name things are pinned to the seeded ones (``workspace``,
``flow_id``, ``run_id``, ``name``, ``connector``) so that the requests reach the handlers
instead of stopping at a 404; everything else is generated.

Then the requests an attacker sends instead (see "hostile requests" below): for every
operation of ``tests/snapshots/openapi.json``, each family of hostile input enumerated, and a
derandomized Hypothesis mix of them; only 2xx/3xx and 4xx in the error shape are accepted.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import logging
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

from hub.app import create_app
from hub.runtime import Hub
from hub.settings import Settings
from tests import kit
from tests.api_kit import (
    PASSWORD,
    SECRET,
    ApiPlugin,
    add_user,
    error_shape_problem,
    flow_document,
    make_api,
)

MAX_EXAMPLES = 6


async def seed(folder: Path) -> dict[str, Any]:
    """Users, a token, two flows, a connection and a failed run, in a fresh data folder."""
    hub = Hub(Settings(data_dir=folder), plugins=[kit], entry_points=False)
    await hub.start(background=False)
    try:
        owner = await add_user(hub, "owner@example.com", "owner")
        await hub.set_connection("main", "test", {"token": SECRET, "region": "eu"})
        await hub.save_flow(flow_document("greet"), publish=True)
        failing = flow_document(
            "broken", steps=[{"id": "boom", "action": "test.boom", "input": {}}]
        )
        await hub.save_flow(failing, publish=True)
        run_id = await hub.start_run("broken", {"x": 1})
        await hub.wait_for_run(run_id, 10)
        return {"token": owner.token, "run_id": run_id}
    finally:
        await hub.stop(grace=1.0)


# The webhook route is documented and tested by hub/api/webhooks.py's own tests (its 404 and
# 413 answers are not in its OpenAPI entry yet); remove this once they are.
WEBHOOK_PREFIX = "/hooks/"


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, Any]]:
    """The app's OpenAPI document, loaded through the app itself, and the seeded values."""
    folder = tmp_path_factory.mktemp("schemathesis")
    seeded = asyncio.run(seed(folder))
    hub = Hub(Settings(data_dir=folder, sweep_interval=0.2), plugins=[kit], entry_points=False)
    app = create_app(hub, bootstrap=False)
    config = SchemathesisConfig.from_dict(
        {
            "max-stream-events": 20,
            "request-timeout": 20,
            # A schema-valid request may still be refused for what JSON Schema cannot say: a
            # flow document that does not validate (422), a cursor this API never gave (400),
            # an action that is not installed (422).
            "checks": {
                "positive_data_acceptance": {
                    "expected-statuses": ["2xx", "3xx", 400, 401, 403, 404, 409, 422, 429]
                }
            },
        }
    )
    loaded = schemathesis.openapi.from_asgi("/schema/openapi.json", app, config=config)
    return loaded, seeded


def test_every_operation_answers_within_its_documented_schema(
    api_schema: tuple[Any, dict[str, Any]],
) -> None:
    """Positive and negative generated requests for every operation; all failures listed."""
    loaded, seeded = api_schema
    pins = {
        "workspace": "default",
        "flow_id": "greet",
        "run_id": seeded["run_id"],
        "name": "main",
        "connector": "test",
    }
    headers = {"Authorization": f"Bearer {seeded['token']}"}
    failures: list[str] = []
    operations = 0
    for result in loaded.get_all_operations():
        operation = result.ok()
        if operation.path.startswith(WEBHOOK_PREFIX):
            continue
        operations += 1
        names = {p.name for p in operation.path_parameters}
        path_parameters = {k: v for k, v in pins.items() if k in names}
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(mode, path_parameters=path_parameters, headers=headers)

            @given(case=strategy)
            @settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
                phases=[Phase.explicit, Phase.generate],
            )
            def check(case: Any) -> None:
                case.call_and_validate()

            try:
                check()
            except Unsatisfiable:  # nothing to make invalid: every parameter is pinned
                continue
            except (Exception, BaseExceptionGroup) as exc:  # collect all, then report all
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    assert operations >= 40, f"only {operations} operations in the OpenAPI document"
    assert not failures, "\n\n".join(failures)


# -- hostile requests over every route ------------------------------------------------------
#
# Schemathesis above draws requests that a schema describes. The requests below are the ones
# an attacker sends instead, built for every operation of the OpenAPI snapshot
# (tests/snapshots/openapi.json): JSON nested 1,000 and 100,000 deep (in bodies and in
# fields; 20,000 in query parameters, as URLs are bounded), non-ASCII digits in every
# parameter, path segment and the headers that carry numbers, 64 KB headers and hundreds of
# them, forwarding headers from a trusted proxy, MB strings inside and beyond the body cap, a
# wrong type (and null) for every field, invalid UTF-8, duplicated keys, parameters and
# headers, bodies under the wrong content type, flow sources the readers cannot build, a
# browser session with hostile cookies and CSRF tokens, methods the route lacks. Each family is
# enumerated for every operation (so no route is left out by chance); a Hypothesis test then
# mixes the families at random (derandomized, a fixed number of examples). The only accepted
# answers are 2xx/3xx and 4xx in the documented error shape; every failure is collected and
# all are reported at the end.

SNAPSHOT = Path(__file__).parent / "snapshots" / "openapi.json"
# The families whose values reach a query (PostgreSQL refuses what SQLite stores); the others
# are refused before any, and run on SQLite only.
STORED_FAMILIES = {"types", "digits", "utf8", "duplicates", "documents", "session"}
REQUEST_DEADLINE = 30.0  # seconds: an answer slower than this is a failure too
HOSTILE_EXAMPLES = 400
KB = 1024
MB = 1024 * KB
API_BODY_CAP = Settings().max_request_bytes  # HUB_MAX_REQUEST_BYTES

# Digits that str.isdigit() accepts and int() does not (superscripts), or that int()
# accepts while they are not ASCII (Arabic-Indic, N'Ko, fullwidth, mathematical bold).
NON_ASCII_DIGITS = [
    "\u00b2",  # superscript two
    "\u00b9\u00b2\u00b3",  # superscripts one two three
    "\u0663",  # Arabic-Indic three
    "\u07c1",  # N'Ko one
    "\uff11\uff12",  # fullwidth one two
    "\U0001d7d7",  # mathematical bold nine
    "1\u00b2",
    "\u0661" + "\u0660" * 20,  # Arabic-Indic 10**20
]
# The same in header bytes: a header is latin-1, where only the superscripts are digits.
HEADER_DIGITS = [b"\xb2", b"\xb9\xb2\xb3", b"1\xb2", "\u0663".encode(), "\uff11\uff12".encode()]
# Headers whose values are numbers somewhere in an HTTP stack.
NUMERIC_HEADERS = [
    "content-length",
    "last-event-id",
    "x-slack-request-timestamp",
    "x-hubspot-request-timestamp",
    "retry-after",
    "max-forwards",
    "x-forwarded-port",
    "idempotency-key",
]
WRONG_VALUES: list[Any] = [
    None,
    "x",
    "",
    0,
    -1,
    1.5,
    True,
    [],
    {},
    [None],
    {"": None},
    "²",
    "1" * 5000,
    "a\x00b",  # PostgreSQL stores no NUL in text
]
# Wrong JSON literals that Python's json cannot produce from a value.
WRONG_LITERALS = [b"1" + b"0" * 400, b"-1" + b"0" * 400, b"1e999", b"-0", b"1E-400"]
WRONG_QUERY = ["null", "[]", "{}", "-1", "0", "1e999", "NaN", "Infinity", "9" * 5000, "", " "]
WRONG_QUERY += ["0x10", "1_000", "true", "\x00", "%00"]


# Flow documents as text (the ``source`` fields): values the YAML and JSON readers build
# with int(), float() and datetime(), and values whose repr() is refused.
HOSTILE_SOURCES = [
    "id: fuzzed\nx: " + "1" * 5000,
    "id: 0x" + "f" * 5000,
    "id: fuzzed\ntrigger: {type: manual}\nsteps: [{id: a, action: test.echo, input: 0b"
    + "1" * 20000
    + "}]",
    "id: fuzzed\nx: !!timestamp 2020-02-30",
    "id: fuzzed\nx: !!float abc",
    "id: fuzzed\nx: !!int abc",
    "id: fuzzed\nx: !!binary '***'",
    "id: fuzzed\nx: !!python/object/apply:os.system [ls]",
    "id: fuzzed\n? [a, b]\n: c",
    "id: fuzzed\nx: .nan\ny: -.inf",
    "id: fuzzed\nx: 1:2:3:4:5:6:7:8:9:" + "1:" * 2000 + "0",
    "id: fuzzed\nx: 2020-01-01T25:61:61Z",
    '{"id": ' + "1" * 5000 + "}",
    '{"id": "fuzzed", "x": 1e999, "y": -1e999}',
    "\ufeff\ufeff" + "id: fuzzed",
    "id: fuzzed\x00",
    "%YAML 9.9\n---\nid: fuzzed",
    "&a [*a]",
]
# Flow documents as JSON (the ``document`` field), raw, with numbers Python cannot print.
HOSTILE_DOCUMENTS = [
    b'{"id":' + b"1" * 5000 + b"}",
    b'{"id":"fuzzed","trigger":{"type":"manual"},"steps":[{"id":"a","action":"test.echo",'
    b'"input":' + b"9" * 5000 + b"}]}",
    b'{"id":"fuzzed","trigger":{"type":"manual"},"steps":[{"id":"a","action":"test.echo",'
    b'"timeout":' + b"9" * 400 + b"}]}",
]


def deep_array(depth: int) -> bytes:
    """``[[[...]]]`` nested ``depth`` deep, as JSON text."""
    return b"[" * depth + b"]" * depth


def deep_object(depth: int) -> bytes:
    """``{"a":{"a":...}}`` nested ``depth`` deep, as JSON text."""
    return b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)


PAST_CAP = b'{"x":"' + b"z" * (API_BODY_CAP + MB) + b'"}'
# URLs are bounded by every HTTP stack (httpx: 64 KB), so query values are smaller.
DEEP_QUERY = {"array1000": deep_array(1000), "array20000": deep_array(20_000)}
DEEP_TEXTS = {
    "array1000": deep_array(1000),
    "array100000": deep_array(100_000),
    "object1000": deep_object(1000),
    "object100000": deep_object(100_000),
}


def deep_in(field: str, deep: bytes) -> bytes:
    """A JSON object whose one field is ``deep`` (raw JSON text)."""
    return b'{"' + field.encode() + b'":' + deep + b"}"


@dataclasses.dataclass(frozen=True)
class Operation:
    """One operation of the snapshot, with what a hostile request needs to know of it."""

    method: str
    path: str
    path_params: dict[str, dict[str, Any]]
    query_params: dict[str, dict[str, Any]]
    body_schema: dict[str, Any] | None

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


@dataclasses.dataclass(frozen=True)
class Hostile:
    """One hostile request: which family it belongs to and what changes from the baseline."""

    family: str
    what: str
    path: dict[str, str] = dataclasses.field(default_factory=dict)
    query: bytes | None = None  # the raw query string, when the family sets it
    headers: tuple[tuple[bytes, bytes], ...] = ()
    drop_auth: bool = False
    body: bytes | None = None
    content_type: bytes | None = b"application/json"
    session: bool = False  # authenticate with the session cookie and CSRF token instead
    method: str | None = None  # another method than the operation's


def load_operations() -> tuple[list[Operation], dict[str, Any]]:
    """Every operation of the OpenAPI snapshot, and its component schemas."""
    document = json.loads(SNAPSHOT.read_text())
    components = document.get("components", {}).get("schemas", {})
    found: list[Operation] = []
    for path, entries in document["paths"].items():
        for method, entry in entries.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            params = entry.get("parameters", [])
            body = entry.get("requestBody", {}).get("content", {}).get("application/json")
            found.append(
                Operation(
                    method=method.upper(),
                    path=path,
                    path_params={
                        p["name"]: p.get("schema", {}) for p in params if p["in"] == "path"
                    },
                    query_params={
                        p["name"]: p.get("schema", {}) for p in params if p["in"] == "query"
                    },
                    body_schema=body.get("schema") if body else None,
                )
            )
    return found, components


def resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """A schema with its top-level ``$ref`` followed."""
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def minimal(schema: dict[str, Any], components: dict[str, Any]) -> Any:
    """A small instance of ``schema`` (the baseline a hostile request changes one part of)."""
    schema = resolve(schema, components)
    if "enum" in schema:
        return next((v for v in schema["enum"] if v is not None), None)
    if "default" in schema:
        return schema["default"]
    for key in ("oneOf", "anyOf"):
        if key in schema:
            options = [o for o in schema[key] if o.get("type") != "null"]
            return minimal(options[0], components) if options else None
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {k: minimal(props[k], components) for k in schema.get("required", props)}
    if kind == "array":
        return []
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1))
    if kind == "boolean":
        return False
    if kind == "string":
        return "x" * max(1, int(schema.get("minLength", 1)))
    return {}


# Baseline bodies that reach the handlers' work, not only their validation.
BASELINE_BODIES: dict[str, dict[str, Any]] = {
    "FlowSave": {"document": flow_document("fuzzed"), "message": "m", "publish": False},
    "FlowImport": {"source": "id: fuzzed\ntrigger: {type: manual}\nsteps: []\n"},
    "RunStart": {"flow_id": "greet", "input": {"name": "x"}},
    "StepTest": {"action": "test.echo", "input": {"name": "x"}, "timeout": 5},
    "OptionsQuery": {"connection": "main", "input": {}},
    "ConnectionCreate": {"connector": "test", "name": "fuzzed", "values": {"token": "t"}},
    "ConnectionUpdate": {"values": {"region": "eu"}, "unset": []},
    "LoginBody": {"email": "owner@example.com", "password": "not the password"},
    "PasswordChange": {"current": "not the password", "new": "a new long password"},
    "PublishBody": {"version": 1},
    "MemberPut": {"email": "fuzzed@example.com", "role": "viewer", "name": "F"},
    "TokenCreate": {"name": "fuzzed"},
    "WorkspaceCreate": {"id": "fuzzed", "name": "F"},
}


def baseline_body(operation: Operation, components: dict[str, Any]) -> dict[str, Any] | None:
    """The well-formed body a hostile variant starts from (None for a route without one)."""
    if operation.body_schema is None:
        return None
    name = operation.body_schema.get("$ref", "").rsplit("/", 1)[-1]
    if name in BASELINE_BODIES:
        return copy.deepcopy(BASELINE_BODIES[name])
    value = minimal(operation.body_schema, components)
    return value if isinstance(value, dict) else {}


def body_fields(operation: Operation, components: dict[str, Any]) -> list[str]:
    """The top-level properties of an operation's body."""
    if operation.body_schema is None:
        return []
    return sorted(resolve(operation.body_schema, components).get("properties", {}))


def encode(value: Any) -> bytes:
    return json.dumps(value).encode()


def with_field(body: dict[str, Any], field: str, raw: bytes) -> bytes:
    """``body`` as JSON text with ``field`` set to the raw JSON text ``raw``."""
    rest = {k: v for k, v in body.items() if k != field}
    inner = encode(rest)[1:-1]
    return b"{" + inner + (b"," if inner else b"") + encode(field) + b":" + raw + b"}"


def nulls(value: Any) -> Any:
    """Every leaf of ``value`` replaced by null."""
    if isinstance(value, dict):
        return {k: nulls(v) for k, v in value.items()}
    if isinstance(value, list):
        return [nulls(v) for v in value]
    return None


def numeric_looking(name: str, schema: dict[str, Any]) -> bool:
    text = json.dumps(schema)
    return (
        '"integer"' in text
        or '"number"' in text
        or "0-9" in text
        or "\\\\d" in text
        or (name in {"cursor", "version", "from", "to", "limit", "since", "until", "max_seconds"})
    )


def hostile_variants(operation: Operation, components: dict[str, Any]) -> list[Hostile]:
    """Every hostile variant of one operation, family by family (deterministic)."""
    out: list[Hostile] = []
    body = baseline_body(operation, components)
    fields = body_fields(operation, components)
    params = list(operation.path_params) + list(operation.query_params)

    def query(**values: str) -> bytes:
        return urlencode(values).encode()

    # Deep nesting: whole bodies, each field, each query parameter (and an unknown one).
    for name, deep in DEEP_TEXTS.items():
        if body is not None:
            out.append(Hostile("deep", f"body {name}", body=deep))
            for field in fields:
                out.append(
                    Hostile("deep", f"body.{field} {name}", body=with_field(body, field, deep))
                )
    for name, deep in DEEP_QUERY.items():
        for param in [*operation.query_params, "q_unknown"]:
            text = param.encode() + b"=" + deep
            out.append(Hostile("deep", f"?{param} {name}", query=text))
    # Non-ASCII digits: every path and query parameter, the headers that carry numbers.
    for digits in NON_ASCII_DIGITS:
        for param in params:
            if param in operation.path_params:
                out.append(Hostile("digits", f"/{param}={digits!r}", path={param: digits}))
            elif numeric_looking(param, operation.query_params[param]) or digits == "²":
                out.append(
                    Hostile("digits", f"?{param}={digits!r}", query=query(**{param: digits}))
                )
        for field in fields:
            out.append(
                Hostile(
                    "digits",
                    f"body.{field}={digits!r}",
                    body=with_field(body or {}, field, encode(digits)),
                )
            )
    # The numeric headers all at once (a request names the one that failed only by its
    # traceback), then Content-Length alone, which the body reader parses.
    for raw_digits in HEADER_DIGITS:
        numeric = tuple((h.encode(), raw_digits) for h in NUMERIC_HEADERS if h != "content-length")
        out.append(
            Hostile(
                "digits",
                f"numeric headers: {raw_digits!r}",
                headers=numeric,
                body=encode(body) if body is not None else None,
            )
        )
        if body is not None:
            out.append(
                Hostile(
                    "digits",
                    f"content-length: {raw_digits!r}",
                    headers=((b"content-length", raw_digits),),
                    body=encode(body),
                )
            )
    # Huge headers and many of them.
    big = b"a" * (64 * KB)
    for header in ("authorization", "cookie", "x-csrftoken", "content-type", "accept", "x-other"):
        value = b"Bearer hub_" + big if header == "authorization" else big
        if header == "cookie":
            value = b"hub_session=" + big + b"; csrftoken=" + big
        out.append(Hostile("headers", f"{header}: 64 KB", headers=((header.encode(), value),)))
    for forwarded in (
        b"\xb2.\xb2.\xb2.\xb2",
        "\u0663.1.1.1".encode(),
        b"[::1",
        b"1.2.3.4:\xff",
        b"," * 1000,
    ):
        headers = (
            (b"x-forwarded-for", forwarded),
            (b"x-forwarded-proto", forwarded),
            (b"x-forwarded-host", forwarded),
            (b"forwarded", b"for=" + forwarded),
        )
        out.append(Hostile("headers", f"forwarded {forwarded[:12]!r}", headers=headers))
    many = tuple((f"x-h{i}".encode(), b"v" * 200) for i in range(500))
    out.append(Hostile("headers", "500 headers", headers=many))
    out.append(
        Hostile("headers", "no auth, 64 KB cookie", drop_auth=True, headers=((b"cookie", big),))
    )
    out.append(
        Hostile(
            "headers",
            "unknown token",
            drop_auth=True,
            headers=((b"authorization", b"Bearer hub_" + b"x" * 40),),
        )
    )
    # A browser session with hostile cookies and CSRF tokens (not on the routes that would
    # end the session the other cases use).
    if operation.path not in ("/api/auth/logout", "/api/me/password"):
        nasty = (b"\xff\xb2", b"t" * 64 * KB, b"", b"\xb2")
        out.append(Hostile("session", "valid session and token", session=True))
        out.append(Hostile("session", "no token", session=True, headers=((b"x-csrftoken", b""),)))
        for value in nasty:
            out.append(
                Hostile(
                    "session",
                    f"token {value[:8]!r}",
                    session=True,
                    headers=((b"x-csrftoken", value),),
                )
            )
            cookie = b"hub_session=" + value + b"; csrftoken=" + value
            headers = ((b"cookie", cookie), (b"x-csrftoken", value))
            out.append(Hostile("session", f"cookies {value[:8]!r}", session=True, headers=headers))
        out.append(
            Hostile(
                "session",
                "two session cookies",
                session=True,
                headers=((b"cookie", b"hub_session=a; hub_session=b"),),
            )
        )
    # Huge strings: every string field at 1 MB, the body past the cap.
    if body is not None:
        for field in fields:
            out.append(
                Hostile(
                    "huge",
                    f"body.{field} 1 MB string",
                    body=with_field(body, field, encode("y" * MB)),
                )
            )
        out.append(Hostile("huge", "body past the cap", body=PAST_CAP))
    for param in operation.query_params:
        out.append(Hostile("huge", f"?{param} 60 KB", query=query(**{param: "q" * 60 * KB})))
    for param in operation.path_params:
        out.append(Hostile("huge", f"/{param} 32 KB", path={param: "p" * 32 * KB}))
    # Wrong types: each field, the whole body, each parameter.
    if body is not None:
        for field in fields:
            for value in WRONG_VALUES:
                out.append(
                    Hostile(
                        "types",
                        f"body.{field}={value!r:.30}",
                        body=with_field(body, field, encode(value)),
                    )
                )
            for literal in WRONG_LITERALS:
                out.append(
                    Hostile(
                        "types",
                        f"body.{field}={literal[:12]!r}",
                        body=with_field(body, field, literal),
                    )
                )
        for value in WRONG_VALUES:
            out.append(Hostile("types", f"body={value!r:.30}", body=encode(value)))
        for literal in WRONG_LITERALS:
            out.append(Hostile("types", f"body={literal[:12]!r}", body=literal))
        out.append(Hostile("types", "every leaf null", body=encode(nulls(body))))
    for param in params:
        for text in WRONG_QUERY:
            if param in operation.path_params:
                if text.strip() and "/" not in text:
                    out.append(Hostile("types", f"/{param}={text!r:.30}", path={param: text}))
            else:
                out.append(Hostile("types", f"?{param}={text!r:.30}", query=query(**{param: text})))
    # Invalid UTF-8: bodies, query strings, path segments, headers.
    invalid = [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"]
    for raw in invalid:
        if body is not None:
            out.append(Hostile("utf8", f"body {raw!r}", body=b'{"x":"' + raw + b'"}'))
            for field in fields:
                out.append(
                    Hostile(
                        "utf8",
                        f"body.{field} {raw!r}",
                        body=with_field(body, field, b'"' + raw + b'"'),
                    )
                )
        escaped = "".join(f"%{b:02X}" for b in raw)
        for param in operation.query_params:
            out.append(Hostile("utf8", f"?{param} {raw!r}", query=f"{param}={escaped}".encode()))
        for param in operation.path_params:
            out.append(Hostile("utf8", f"/{param} {raw!r}", path={param: "\x00RAW" + escaped}))
        out.append(
            Hostile("utf8", f"header {raw!r}", headers=((b"x-csrftoken", raw), (b"accept", raw)))
        )
        out.append(
            Hostile(
                "utf8", f"authorization {raw!r}", headers=((b"authorization", b"Bearer " + raw),)
            )
        )
    # Duplicated keys, parameters and headers.
    if body is not None:
        for field in fields:
            good = encode(body.get(field))
            for first, second in ((b"{}", good), (good, b"[[[]]]")):
                text = encode(body)[:-1] + (b"," if body else b"") + encode(field) + b":" + first
                text += b"," + encode(field) + b":" + second + b"}"
                if not body:
                    text = b"{" + text[1:]
                out.append(Hostile("duplicates", f"body.{field} twice", body=text))
    for param in operation.query_params:
        out.append(
            Hostile(
                "duplicates", f"?{param} twice", query=f"{param}=1&{param}=[]&{param}=".encode()
            )
        )
    out.append(
        Hostile(
            "duplicates",
            "two content-types",
            headers=((b"content-type", b"text/plain"), (b"content-type", b"application/json")),
            body=encode(body) if body is not None else None,
        )
    )
    # Flow documents the readers cannot build, or whose values cannot be printed.
    if body is not None and "source" in fields:
        for index, source in enumerate(HOSTILE_SOURCES):
            rest = {k: v for k, v in body.items() if k != "document"}
            text = with_field(rest, "source", encode(source))
            out.append(Hostile("documents", f"source #{index} {source[:30]!r}", body=text))
    if body is not None and "document" in fields:
        for index, raw in enumerate(HOSTILE_DOCUMENTS):
            text = with_field(body, "document", raw)
            out.append(Hostile("documents", f"document #{index} {raw[:30]!r}", body=text))
    # Methods the operation does not have, standard or not.
    for method in ("OPTIONS", "TRACE", "BREW", "get"):
        out.append(Hostile("methods", method, method=method))
    # Bodies under the wrong content type.
    if body is not None:
        for content_type in (
            None,
            b"text/plain",
            b"application/x-www-form-urlencoded",
            b"multipart/form-data; boundary=x",
            b"application/json; charset=latin-1",
            b"application/xml",
            b"\xff/\xfe",
        ):
            out.append(
                Hostile(
                    "content-type",
                    f"{content_type!r}",
                    body=encode(body),
                    content_type=content_type,
                )
            )
        out.append(Hostile("content-type", "empty body", body=b""))
        out.append(
            Hostile(
                "content-type",
                "form body",
                body=b"a=1&a=2",
                content_type=b"application/x-www-form-urlencoded",
            )
        )
    return out


@dataclasses.dataclass
class HostileApi:
    """The app on a started hub, run on a loop of its own (the tests here are synchronous)."""

    runner: asyncio.Runner
    client: httpx.AsyncClient
    operations: list[Operation]
    components: dict[str, Any]
    pins: dict[str, str]
    token: str
    session_cookie: bytes
    csrf_token: bytes
    backend: str = "sqlite"
    errors: list[str] = dataclasses.field(default_factory=list)
    statuses: dict[str, set[int]] = dataclasses.field(default_factory=dict)

    def logged_errors(self) -> str:
        """The unexpected errors the app logged since the last call (the cause of a 500)."""
        found = "".join(f"\n    logged: {e}" for e in self.errors[:3])
        self.errors.clear()
        return found

    def url(self, operation: Operation, hostile: Hostile) -> str:
        path = operation.path
        for name in operation.path_params:
            value = hostile.path.get(name, self.pins.get(name, "x"))
            raw = value[4:] if value.startswith("\x00RAW") else quote(value, safe="")
            path = path.replace("{" + name + "}", raw)
        if hostile.query is not None:
            path += "?" + hostile.query.decode("latin-1")
        return path

    def send(self, operation: Operation, hostile: Hostile) -> str | None:
        """Send one hostile request; the failure, described, or None when it was answered well."""
        headers: list[tuple[bytes, bytes]] = []
        names = {k for k, _ in hostile.headers}
        if hostile.session:
            if b"cookie" not in names:
                headers.append((b"cookie", self.session_cookie))
            if b"x-csrftoken" not in names:
                headers.append((b"x-csrftoken", self.csrf_token))
        elif not hostile.drop_auth and b"authorization" not in names:
            headers.append((b"authorization", f"Bearer {self.token}".encode()))
        body = hostile.body
        if body is None and operation.body_schema is not None and hostile.family != "utf8":
            body = encode(baseline_body(operation, self.components))
        typed = any(k == b"content-type" for k, _ in hostile.headers)
        if body is not None and hostile.content_type is not None and not typed:
            headers.append((b"content-type", hostile.content_type))
        headers.extend(hostile.headers)
        url = self.url(operation, hostile)
        where = f"{operation.label} [{hostile.family}: {hostile.what}]"

        async def call() -> httpx.Response:
            self.client.cookies.clear()  # only the cookies the case sends
            method = hostile.method or operation.method
            return await self.client.request(method, url, headers=headers, content=body)

        try:
            response = self.runner.run(asyncio.wait_for(call(), REQUEST_DEADLINE))
        except TimeoutError:
            return f"{where}: no answer within {REQUEST_DEADLINE:g} s"
        self.statuses.setdefault(hostile.family, set()).add(response.status_code)
        return answer_problem(where, response)


def answer_problem(where: str, response: httpx.Response) -> str | None:
    """What is wrong with an answer: a 5xx, or a 4xx outside the documented error shape."""
    status = response.status_code
    if status >= 500:
        return f"{where}: {status} {response.text[:300]}"
    if status < 400:
        return None
    problem = error_shape_problem(response)
    return None if problem is None else f"{where}: {status} {problem}"


class ErrorCatcher(logging.Handler):
    """Keeps the exception of every error record (what made the app answer 500)."""

    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.ERROR)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            frames = traceback.extract_tb(exc.__traceback__)
            where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
            self.into.append(f"{type(exc).__name__}: {str(exc)[:200]}{where}")


async def browser_session(client: httpx.AsyncClient, hub: Hub) -> tuple[bytes, bytes]:
    """An owner logged in like the UI: the Cookie header and the CSRF token to send."""
    await add_user(hub, "browser@example.com", "owner", password=PASSWORD)
    token = (await client.get("/api/auth/csrf")).json()["token"]
    response = await client.post(
        "/api/auth/login",
        json={"email": "browser@example.com", "password": PASSWORD},
        headers={"x-csrftoken": token},
    )
    assert response.status_code == 200, response.text
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    client.cookies.clear()
    return cookie.encode(), token.encode()


async def seed_hostile(hub: Hub) -> dict[str, str]:
    """The things the hostile requests' path parameters name."""
    await hub.set_connection("main", "test", {"token": SECRET, "region": "eu"})
    await hub.set_connection("spare", "test", {"token": SECRET, "region": "eu"})
    await hub.save_flow(flow_document("greet"), publish=True)
    hooked = flow_document("hooked", trigger={"type": "webhook"})
    await hub.save_flow(hooked, publish=True)
    broken = flow_document("broken", steps=[{"id": "boom", "action": "test.boom", "input": {}}])
    await hub.save_flow(broken, publish=True)
    run_id = await hub.start_run("broken", {"x": 1})
    await hub.wait_for_run(run_id, 10)
    return {"run_id": run_id}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def hostile_api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HostileApi]:
    """A started hub (SQLite, then PostgreSQL, which refuses what SQLite stores: NUL
    characters) with the in-process executor, and its app, on a private event loop."""
    folder = tmp_path_factory.mktemp("hostile")
    # The test client's address is a trusted proxy: the forwarding headers are read.
    settings = Settings(data_dir=folder, trusted_proxies=("127.0.0.1",))
    backend = str(request.param)
    if backend == "postgres":
        server = request.getfixturevalue("postgres")
        name = f"hostile_{uuid.uuid4().hex[:12]}"
        settings = settings.replace(database_url=server.create_database(name, "hub_template"))
    runner = asyncio.Runner()
    hub = Hub(settings, plugins=[kit, ApiPlugin()], entry_points=False)
    runner.run(hub.start())
    apis = make_api(hub)
    api = runner.run(anext(apis))
    seeded = runner.run(seed_hostile(hub))
    operations, components = load_operations()
    pins = {
        "workspace": "default",
        "flow_id": "greet",
        "run_id": seeded["run_id"],
        "name": "main",
        "connector": "test",
        "action": "echo",
        "field": "name",
        "version": "1",
        "token_id": "no-such-token",
        "user_id": "no-such-user",
    }
    cookie, csrf = runner.run(browser_session(api.client, hub))
    hostile = HostileApi(
        runner, api.client, operations, components, pins, api.owner.token, cookie, csrf, backend
    )
    catcher = ErrorCatcher(hostile.errors)
    logging.getLogger("hub").addHandler(catcher)
    try:
        yield hostile
    finally:
        logging.getLogger("hub").removeHandler(catcher)
        runner.run(anext(apis, None))
        runner.run(hub.stop(grace=1.0))
        runner.close()


def pinned_for(operation: Operation, pins: dict[str, str]) -> dict[str, str]:
    """Pins that keep a destructive operation away from the seeded things others use."""
    changed = dict(pins)
    if operation.path.startswith(WEBHOOK_PREFIX):
        changed["flow_id"] = "hooked"
    if operation.method == "DELETE" and "{name}" in operation.path:
        changed["name"] = "spare"
    return changed


def test_hostile_requests_to_every_route_answer_4xx_in_the_error_shape(
    hostile_api: HostileApi,
) -> None:
    """Every family of hostile request, for every operation: no 5xx, no answer outside the
    error shape, no answer slower than the deadline."""
    api = hostile_api
    failures: dict[tuple[str, str], list[str]] = {}
    sent = 0
    families: set[str] = set()
    base_pins = api.pins
    for operation in api.operations:
        api.pins = pinned_for(operation, base_pins)
        for hostile in hostile_variants(operation, api.components):
            if api.backend == "postgres" and hostile.family not in STORED_FAMILIES:
                continue  # refused before any query: the SQLite run covers it
            families.add(hostile.family)
            sent += 1
            problem = api.send(operation, hostile)
            if problem is not None:
                key = (operation.label, hostile.family, problem.split("]: ", 1)[-1][:3])
                failures.setdefault(key, []).append(problem + api.logged_errors())
    api.pins = base_pins
    assert len(api.operations) >= 50, f"only {len(api.operations)} operations in the snapshot"
    expected = {"deep", "digits", "headers", "huge", "types", "utf8", "duplicates", "session"}
    assert families >= (expected & STORED_FAMILIES if api.backend == "postgres" else expected)
    # The cases reach the handlers: a valid session (and the bearer token) get answers.
    assert 200 in api.statuses["session"] and 200 in api.statuses["types"], api.statuses
    report = [f"{len(v)} x {v[0]}" for v in failures.values()]
    assert not failures, f"{len(report)} kinds of failure in {sent} requests:\n" + "\n".join(report)


JSON_LEAVES = (
    st.sampled_from([*WRONG_VALUES, *NON_ASCII_DIGITS])
    | st.integers()
    | st.floats()
    | st.text(max_size=30)
    | st.booleans()
    | st.none()
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=25,
)
PARAM_VALUES = st.sampled_from([*WRONG_QUERY, *NON_ASCII_DIGITS]) | st.text(min_size=1, max_size=40)
HEADER_VALUES = st.sampled_from(
    [*HEADER_DIGITS, b"\xff\xfe", b"", b" ", b"9" * 5000, b"-1", b"1e999"]
)
MIX_HEADERS = [*NUMERIC_HEADERS, "authorization", "cookie", "x-csrftoken", "content-type", "accept"]


@st.composite
def hostile_mixes(draw: st.DrawFn, api: HostileApi) -> tuple[Operation, Hostile]:
    """An operation and a request mixing the families: fields replaced by generated JSON,
    generated parameters and path segments, headers with hostile values."""
    operation = draw(st.sampled_from(api.operations))
    body: bytes | None = None
    baseline = baseline_body(operation, api.components)
    if baseline is not None:
        if draw(st.booleans()):
            changed = dict(baseline)
            for field in draw(
                st.sets(st.sampled_from(body_fields(operation, api.components) or ["x"]))
            ):
                changed[field] = draw(JSON_VALUES)
            body = json.dumps(changed).encode()
        else:
            body = json.dumps(draw(JSON_VALUES)).encode()
    path = {name: draw(PARAM_VALUES) for name in operation.path_params if draw(st.booleans())}
    query = {name: draw(PARAM_VALUES) for name in operation.query_params if draw(st.booleans())}
    headers = tuple(
        (name.encode(), draw(HEADER_VALUES))
        for name in draw(st.sets(st.sampled_from(MIX_HEADERS), max_size=3))
    )
    hostile = Hostile(
        "mix",
        f"path={path!r:.80} query={query!r:.80} headers={headers!r:.80} body={body!r:.120}",
        path=path,
        query=urlencode(query).encode() if query else None,
        headers=headers,
        body=body,
    )
    return operation, hostile


def test_generated_mixes_of_hostile_parts_answer_4xx_in_the_error_shape(
    hostile_api: HostileApi,
) -> None:
    """Hypothesis mixes the families over random operations (derandomized: the same requests
    on every run); every failure is listed."""
    api = hostile_api
    failures: list[str] = []
    base_pins = api.pins

    @given(mix=hostile_mixes(api))
    @settings(
        max_examples=HOSTILE_EXAMPLES,
        derandomize=True,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        phases=[Phase.explicit, Phase.generate],
    )
    def check(mix: tuple[Operation, Hostile]) -> None:
        operation, hostile = mix
        api.pins = pinned_for(operation, base_pins)
        sent.append(operation.label)
        problem = api.send(operation, hostile)
        if problem is not None:
            failures.append(problem + api.logged_errors())

    sent: list[str] = []
    try:
        check()
    finally:
        api.pins = base_pins
    assert len(sent) >= HOSTILE_EXAMPLES // 2, f"only {len(sent)} requests generated"
    assert not failures, f"{len(failures)} of {HOSTILE_EXAMPLES}:\n" + "\n".join(failures[:30])
