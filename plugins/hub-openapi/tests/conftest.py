"""Fixtures of hub-openapi's tests: a local pet store API and the specs that describe it.

The stand-in is a Litestar app served by uvicorn on 127.0.0.1. It implements what
``examples/petstore.yaml`` (hand-written, OpenAPI 3.0) documents, and Litestar generates its
own OpenAPI 3.1 document for it: the tests turn both documents into connectors and call the
same server through them. It checks credentials the way the document says (an API key header,
a bearer token, HTTP basic, a key in the query, OAuth2 client credentials), and a test can make
its next answer fail with any status (``fail_next``).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import msgspec
import pytest
from hub.testing import serve_asgi
from litestar import Litestar, Request, delete, get, post
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.params import Parameter
from litestar.response import Response

from hub_openapi import plugin

SPEC = Path(__file__).resolve().parent.parent / "examples" / "petstore.yaml"
API_KEY = "pet-key-123"
BEARER = "admin-token-456"
BASIC = ("ada", "lovelace-789")
QUERY_KEY = "query-key-000"
CLIENT = ("orders-app", "client-secret-321")
ISSUED_TOKEN = "issued-token-654"


class Category(msgspec.Struct, omit_defaults=True):
    name: str
    subcategories: list[Category] = []


class Pet(msgspec.Struct, omit_defaults=True):
    """A pet."""

    name: str
    id: int = 0
    tag: str | None = None
    weight: float | None = None
    category: Category | None = None


class Stats(msgspec.Struct):
    pets: int
    via: str


@dataclass
class PetStore:
    """What the stand-in holds and what it saw."""

    pets: dict[int, Pet] = field(default_factory=dict)
    keys: dict[str, int] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_next: tuple[int, dict[str, str]] | None = None
    token_requests: int = 0
    url: str = ""

    def reset(self) -> None:
        self.pets = {1: Pet(name="Rex", id=1, tag="dog"), 2: Pet(name="Tom", id=2, tag="cat")}
        self.requests.clear()
        self.keys.clear()
        self.fail_next = None
        self.token_requests = 0


STORE = PetStore()


def seen(request: Request[Any, Any, Any], *, key: str | None = "header") -> None:
    """Record the request, answer a requested failure, and check the API key header."""
    STORE.requests.append(
        {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "headers": {k.lower(): v for k, v in request.headers.items()},
        }
    )
    if STORE.fail_next is not None:
        status, headers = STORE.fail_next
        STORE.fail_next = None
        raise HTTPException(
            status_code=status, detail="failure requested by the test", headers=headers
        )
    if key == "header" and request.headers.get("x-api-key") != API_KEY:
        raise HTTPException(status_code=401, detail="invalid API key")


@get("/pets", operation_id="listPets")
async def list_pets(
    request: Request[Any, Any, Any], limit: int = 20, tag: list[str] | None = None
) -> list[Pet]:
    seen(request)
    pets = [p for p in sorted(STORE.pets.values(), key=lambda p: p.id) if not tag or p.tag in tag]
    return pets[:limit]


@post("/pets", operation_id="createPet")
async def create_pet(
    request: Request[Any, Any, Any],
    data: Pet,
    idempotency_key: Annotated[str | None, Parameter(header="Idempotency-Key")] = None,
) -> Pet:
    seen(request)
    if idempotency_key in STORE.keys:  # a retried request with the same key creates one pet
        return STORE.pets[STORE.keys[idempotency_key]]
    pet = msgspec.structs.replace(data, id=max(STORE.pets, default=0) + 1)
    STORE.pets[pet.id] = pet
    if idempotency_key:
        STORE.keys[idempotency_key] = pet.id
    return pet


@get("/pets/{pet_id:int}", operation_id="getPetById")
async def get_pet(request: Request[Any, Any, Any], pet_id: int) -> Pet:
    seen(request)
    if pet_id not in STORE.pets:
        raise HTTPException(status_code=404, detail=f"no pet {pet_id}")
    return STORE.pets[pet_id]


@delete("/pets/{pet_id:int}", operation_id="deletePet")
async def delete_pet(request: Request[Any, Any, Any], pet_id: int) -> None:
    seen(request)
    if STORE.pets.pop(pet_id, None) is None:
        raise HTTPException(status_code=404, detail=f"no pet {pet_id}")


@get("/stats/admin", operation_id="adminStats", security=[{"bearerAuth": []}])
async def admin_stats(request: Request[Any, Any, Any]) -> Stats:
    seen(request, key=None)
    if request.headers.get("authorization") != f"Bearer {BEARER}":
        raise HTTPException(status_code=401, detail="bad bearer token")
    return Stats(pets=len(STORE.pets), via="bearer")


@get("/stats/legacy", operation_id="legacyStats", security=[{"basicAuth": []}])
async def legacy_stats(request: Request[Any, Any, Any]) -> Stats:
    seen(request, key=None)
    expected = "Basic " + base64.b64encode(":".join(BASIC).encode()).decode()
    if request.headers.get("authorization") != expected:
        raise HTTPException(status_code=401, detail="bad user or password")
    return Stats(pets=len(STORE.pets), via="basic")


@get("/stats/search", operation_id="searchStats", security=[{"queryKey": []}])
async def search_stats(request: Request[Any, Any, Any]) -> Stats:
    seen(request, key=None)
    if request.query_params.get("api_key") != QUERY_KEY:
        raise HTTPException(status_code=401, detail="bad query key")
    return Stats(pets=len(STORE.pets), via="query")


@post("/oauth/token", operation_id="issueToken", security=[], include_in_schema=False)
async def issue_token(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    STORE.token_requests += 1
    form = await request.form()
    expected = "Basic " + base64.b64encode(":".join(CLIENT).encode()).decode()
    if (
        request.headers.get("authorization") != expected
        or form.get("grant_type") != "client_credentials"
    ):
        return Response({"error": "invalid_client"}, status_code=401)
    return Response(
        {
            "access_token": ISSUED_TOKEN,
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": form.get("scope"),
        }
    )


@get("/orders", operation_id="listOrders", security=[{"oauth": ["orders:read"]}])
async def list_orders(request: Request[Any, Any, Any]) -> list[dict[str, int]]:
    seen(request, key=None)
    if request.headers.get("authorization") != f"Bearer {ISSUED_TOKEN}":
        raise HTTPException(status_code=401, detail="bad access token")
    return [{"id": 1, "pet": 1}]


@get("/health", operation_id="health", security=[], media_type="text/plain")
async def health(request: Request[Any, Any, Any]) -> str:
    seen(request, key=None)
    return "ok"


def make_app() -> Litestar:
    """The stand-in app, with the security schemes in its generated OpenAPI 3.1 document."""
    schemes = {
        "apiKey": SecurityScheme(type="apiKey", name="X-API-Key", security_scheme_in="header"),
        "bearerAuth": SecurityScheme(type="http", scheme="bearer"),
        "basicAuth": SecurityScheme(type="http", scheme="basic"),
        "queryKey": SecurityScheme(type="apiKey", name="api_key", security_scheme_in="query"),
    }
    config = OpenAPIConfig(
        title="Petstore (generated)",
        version="1.0.0",
        components=Components(security_schemes=schemes),
        security=[{"apiKey": []}],
    )
    return Litestar(
        [
            list_pets,
            create_pet,
            get_pet,
            delete_pet,
            admin_stats,
            legacy_stats,
            search_stats,
            issue_token,
            list_orders,
            health,
        ],
        openapi_config=config,
        debug=False,
    )


APP = make_app()


@pytest.fixture(scope="session")
def _server() -> Iterator[str]:
    with serve_asgi(APP) as url:
        yield url


@pytest.fixture
def standin_app() -> Litestar:
    """The stand-in Litestar app (its ``openapi_schema`` is the generated 3.1 document)."""
    return APP


@pytest.fixture
def petstore(_server: str) -> PetStore:
    """The running stand-in, reset: pets 1 (Rex, dog) and 2 (Tom, cat)."""
    STORE.reset()
    STORE.url = _server
    return STORE


@pytest.fixture
def connection(petstore: PetStore) -> dict[str, Any]:
    """A connection to the stand-in with the API key (enough for the pet operations)."""
    return {"base_url": petstore.url, "api_key": API_KEY}


@pytest.fixture
def specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``HUB_OPENAPI_SPECS`` naming a folder holding the hand-written pet store document."""
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "petstore.yaml").write_text(SPEC.read_text())
    monkeypatch.setenv(plugin.ENV_VAR, str(folder))
    return folder


@pytest.fixture
def hub_plugins(specs: Path) -> list[Any]:
    """``hub_app`` loads hub-openapi only, with the pet store document."""
    return [plugin]
