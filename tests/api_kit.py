"""Helpers of the API tests: an app on a started hub, users with roles, tokens, sessions.

The app runs in-process through httpx's ASGI transport, on the test's own event loop (the
hub's loop: Litestar's AsyncTestClient would run the app on another thread's loop); its
start-up and shut-down hooks are awaited directly (``app.lifespan()`` holds an anyio cancel
scope that pytest-asyncio's separate set-up and tear-down tasks cannot share). Nothing is
mocked: real SQLite, real argon2, the real engine.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
from litestar import Litestar

from hub import Action, ActionError, CachePolicy, Connector, hookimpl
from hub.app import create_app
from hub.db import accounts
from hub.runtime import Hub
from hub.security.accounts import hash_password
from tests import kit

SECRET = "s3cr3t-T0KEN-value-42"  # the kit connector's secret in these tests
PASSWORD = "correct horse battery staple"


@dataclasses.dataclass
class Caller:
    """A user with a role in a workspace and an API token there."""

    user_id: str
    email: str
    role: str
    workspace: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        """Bearer authentication."""
        return {"authorization": f"Bearer {self.token}"}


async def add_user(
    hub: Hub, email: str, role: str, workspace: str = "default", password: str = ""
) -> Caller:
    """Create a user (a password only when given: hashing is slow), a role and a token."""
    password_hash = hash_password(password) if password else ""

    def write(conn: Any) -> Caller:
        accounts.ensure_workspace(conn, workspace)
        user = accounts.user_by_email(conn, email) or accounts.create_user(
            conn, email, password_hash=password_hash
        )
        accounts.set_membership(conn, workspace, user["id"], role)
        token, _row = accounts.create_token(conn, workspace, user["id"], f"{role} token")
        return Caller(user["id"], user["email"], role, workspace, token)

    return await hub.db.write(write)


@dataclasses.dataclass
class Api:
    """The app, a client, and callers of every role in ``default`` (and ``other``)."""

    hub: Hub
    app: Litestar
    client: httpx.AsyncClient
    owner: Caller
    editor: Caller
    viewer: Caller
    stranger: Caller  # owner of workspace "other", not a member of "default"

    async def call(
        self, method: str, path: str, caller: Caller | None = None, **kwargs: Any
    ) -> httpx.Response:
        """A request with the caller's token (none without a caller)."""
        headers = dict(kwargs.pop("headers", {}) or {})
        if caller is not None:
            headers.update(caller.headers)
        return await self.client.request(method, path, headers=headers, **kwargs)


async def make_api(hub: Hub) -> AsyncIterator[Api]:
    """Yield an :class:`Api` on a started hub (the app does not start or stop the hub)."""
    app = create_app(hub, manage_hub=False, bootstrap=False)
    for hook in app.on_startup:
        await hook()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as client:
        owner = await add_user(hub, "owner@example.com", "owner")
        editor = await add_user(hub, "editor@example.com", "editor")
        viewer = await add_user(hub, "viewer@example.com", "viewer")
        stranger = await add_user(hub, "stranger@example.com", "owner", workspace="other")
        yield Api(hub, app, client, owner, editor, viewer, stranger)
    for hook in app.on_shutdown:
        await hook()


async def add_oauthy_connection(
    api: Api, oauth2: dict[str, Any], client_id: str, client_secret: str
) -> None:
    """Point the ``oauthy`` connector at a provider (``oauth2``: its ``authorize_url``,
    ``token_url``, ``scopes``) and have the editor create its connection ``crm`` with the
    client's id and secret."""
    api.hub.registry.connectors["oauthy"].oauth2 = oauth2
    created = await api.call(
        "POST",
        "/api/w/default/connections",
        api.editor,
        json={
            "name": "crm",
            "connector": "oauthy",
            "values": {"client_id": client_id, "client_secret": client_secret},
        },
    )
    assert created.status_code == 201, created.text


def flow_document(flow_id: str = "greet", **changes: Any) -> dict[str, Any]:
    """A small valid flow of the kit connector."""
    document: dict[str, Any] = {
        "id": flow_id,
        "name": "Greet",
        "trigger": {"type": "manual"},
        "steps": [{"id": "hello", "action": "test.echo", "input": {"name": "{{ trigger.name }}"}}],
    }
    document.update(changes)
    return document


# -- a plugin for the API tests: secrets of every type, options, a connection test, OAuth2 --

PIN = 73914286  # a numeric secret
NESTED = {"user": "svc-account", "key": "nested-s3cret-v4lue"}
OPTION_LOADS: list[dict[str, Any]] = []


async def reveal(ctx: Any, data: Any) -> Any:
    """Tries every way to leak the connection's secrets: output, logs, error."""
    conn = ctx.connection
    ctx.log.warning("api_key=%s pin=%s nested=%s", conn["api_key"], conn["pin"], conn["nested"])
    if isinstance(data, dict) and data.get("fail"):
        raise ActionError(f"refused key {conn['api_key']} (pin {conn['pin']})")
    if isinstance(data, dict) and data.get("crash"):
        raise RuntimeError(f"crashed holding {conn['api_key']}")
    return {
        "key": conn["api_key"],
        "pin": conn["pin"],
        "nested": conn["nested"],
        "b64": base64.b64encode(conn["api_key"].encode()).decode(),
        "sentence": f"the key is {conn['api_key']}!",
        "access_token": conn.get("access_token"),
    }


async def whoami(ctx: Any, data: Any) -> Any:
    """Calls the service's ``/me`` with the connection's OAuth2 access token."""
    response = await ctx.http.get(
        data["url"], headers={"authorization": f"Bearer {ctx.connection['access_token']}"}
    )
    if response.status_code != 200:
        raise ActionError(f"the service refused: {response.status_code}")
    return response.json()


async def list_pipelines(ctx: Any) -> list[dict[str, Any]]:
    """Dynamic options: counts its calls (to prove the cache)."""
    OPTION_LOADS.append(dict(ctx.input or {}))
    return [{"value": "p1", "label": f"Pipeline of {ctx.connection['region']}"}]


async def check_vault(values: dict[str, Any]) -> None:
    """A connection test that refuses a region and quotes the key (which must be redacted)."""
    if values.get("region") == "bad":
        raise ActionError(f"the service refused api key {values['api_key']}")


VAULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "api_key": {"type": "string", "format": "password"},
        "pin": {"type": "integer", "writeOnly": True},
        "nested": {"type": "object", "writeOnly": True},
        "region": {"type": "string", "enum": ["eu", "us", "bad"]},
    },
    "required": ["api_key", "region"],
}

OAUTH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "client_id": {"type": "string"},
        "client_secret": {"type": "string", "writeOnly": True},
    },
    "required": ["client_id", "client_secret"],
}


class ApiPlugin:
    """Registered with ``plugins=[kit, ApiPlugin()]``."""

    @hookimpl
    def hub_connectors(self) -> list[Connector]:
        """The vault connector (secrets of every type) and an OAuth2 connector."""
        return [
            Connector(
                name="vault",
                icon="<svg xmlns='http://www.w3.org/2000/svg'/>",
                connection_schema=VAULT_SCHEMA,
                test_connection=check_vault,
                actions=[
                    Action(name="reveal", run=reveal, needs_connection=True),
                    Action(
                        name="lookup",
                        run=reveal,
                        needs_connection=True,
                        cache=CachePolicy(ttl=60),
                        options={"pipeline": list_pipelines},
                    ),
                ],
            ),
            Connector(
                name="oauthy",
                connection_schema=OAUTH_SCHEMA,
                oauth2={"authorize_url": "http://127.0.0.1:9/authorize", "token_url": "x"},
                actions=[Action(name="whoami", run=whoami, needs_connection=True)],
            ),
        ]


async def started_api(settings: Any) -> AsyncIterator[Api]:
    """A started hub (kit and the API plugin) with its app: the body of the ``api`` fixtures."""
    hub = Hub(settings, plugins=[kit, ApiPlugin()], entry_points=False)
    await hub.start(migrate=False)
    try:
        async for api in make_api(hub):
            yield api
    finally:
        await hub.stop(grace=1.0)


def error_shape_problem(response: httpx.Response) -> str | None:
    """What breaks the documented error shape (``{"error": {code, message, details}}``,
    JSON) in an error answer; None when it fits."""
    if not response.headers.get("content-type", "").startswith("application/json"):
        return f"content-type {response.headers.get('content-type')!r}"
    try:
        payload = response.json()
    except ValueError:
        return f"a body that is not JSON: {response.text[:200]!r}"
    error = payload.get("error") if isinstance(payload, dict) else None
    if (
        not isinstance(error, dict)
        or set(payload) != {"error"}
        or set(error) != {"code", "message", "details"}
        or not isinstance(error["code"], str)
        or not error["code"]
        or not isinstance(error["message"], str)
    ):
        return f"outside the error shape: {response.text[:300]}"
    return None
