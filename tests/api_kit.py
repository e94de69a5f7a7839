"""Helpers of the API tests: an app on a started hub, users with roles, tokens, sessions.

The app runs in-process (Litestar's AsyncTestClient: real ASGI, the same event loop as the
hub); nothing is mocked: real SQLite, real argon2, real engine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
from litestar import Litestar
from litestar.testing import AsyncTestClient

from hub import accounts
from hub.api.app import create_app
from hub.db import store
from hub.runtime import Hub

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
    password_hash = accounts.hash_password(password) if password else ""

    def write(conn: Any) -> Caller:
        store.ensure_workspace(conn, workspace)
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
    client: AsyncTestClient[Litestar]
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
    async with AsyncTestClient(app, base_url="http://testserver.local") as client:
        owner = await add_user(hub, "owner@example.com", "owner")
        editor = await add_user(hub, "editor@example.com", "editor")
        viewer = await add_user(hub, "viewer@example.com", "viewer")
        stranger = await add_user(hub, "stranger@example.com", "owner", workspace="other")
        yield Api(hub, app, client, owner, editor, viewer, stranger)


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
