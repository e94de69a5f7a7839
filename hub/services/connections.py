"""Connections of a workspace: values checked against the connector's schema, secret
fields encrypted at rest and never handed back, every change audited in its transaction."""

from __future__ import annotations

import asyncio
from typing import Any

from hub.connectors import ActionError, Connector, run_connection_test
from hub.db import audit
from hub.db import connections as connection_store
from hub.db import errors as db_errors
from hub.db import flows as flow_store
from hub.schemas import schema_errors
from hub.security.secrets import Redactor, SecretKeyError, secret_fields, secret_values
from hub.services import oauth2
from hub.services.base import WorkspaceScope
from hub.services.errors import Conflict, Invalid, KeyMismatch, NotFound, issues_of

# OAuth2 connectors get their current access token among their secrets, so that an action
# reads it as ``ctx.connection["access_token"]`` and the engine redacts it like any secret.
OAUTH_SECRET_FIELDS = frozenset({"access_token"})
TEST_TIMEOUT = 30.0


def secret_names(connector: Connector) -> set[str]:
    """The fields of a connector's connections that are stored encrypted."""
    names = secret_fields(connector.connection_schema)
    if connector.oauth2:
        names |= OAUTH_SECRET_FIELDS
    return names


def connection_places(document: Any, name: str) -> list[str]:
    """Where a flow document names the connection ``name``: a step's ``connection``, the
    trigger's ``connection``, a webhook signature's or sender's ``secret_ref``."""
    if not isinstance(document, dict):
        return []
    places = []
    trigger = document.get("trigger")
    if isinstance(trigger, dict):
        if trigger.get("connection") == name:
            places.append("trigger.connection")
        config = trigger.get("config")
        for block in ("signature", "sender"):
            part = config.get(block) if isinstance(config, dict) else None
            if isinstance(part, dict) and part.get("secret_ref") == name:
                places.append(f"trigger.config.{block}.secret_ref")
    steps = document.get("steps")
    for index, step in enumerate(steps if isinstance(steps, list) else []):
        if isinstance(step, dict) and step.get("connection") == name:
            places.append(f"steps[{index}].connection")
    return places


class ConnectionsService(WorkspaceScope):
    """Create, change, read, test and delete connections."""

    def connector(self, name: str) -> Connector:
        """An installed connector that takes connections, or :class:`Invalid`."""
        connector = self.hub.registry.connectors.get(name)
        if connector is None:
            raise Invalid(
                f"no connector {name!r} is installed",
                [{"location": "connector", "message": "unknown connector"}],
            )
        if connector.connection_schema is None and not connector.oauth2:
            raise Invalid(
                f"connector {name!r} takes no connection (it has no connection schema)",
                [{"location": "connector", "message": "takes no connection"}],
            )
        return connector

    async def list_connections(self) -> list[dict[str, Any]]:
        """Every connection of the workspace (secrets still encrypted)."""
        ws = self.workspace
        return await self.hub.db.read(lambda c: connection_store.list_connections(c, ws))

    async def get_connection(self, name: str) -> dict[str, Any]:
        """A stored connection (secrets still encrypted), or :class:`NotFound`."""
        ws = self.workspace
        row = await self.hub.db.read(lambda c: connection_store.get_connection(c, ws, name))
        if row is None:
            raise NotFound(f"no connection {name!r}")
        return row

    def _split(self, connector: Connector, values: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Validate values; return (encrypted secrets, plain settings)."""
        checked = values
        if connector.oauth2:  # the stored access token is the hub's, not the schema's
            declared = (connector.connection_schema or {}).get("properties") or {}
            checked = {
                k: v for k, v in values.items() if k in declared or k not in OAUTH_SECRET_FIELDS
            }
        errors = schema_errors(connector.connection_schema, checked, "values")
        names = secret_names(connector)
        if errors:
            # jsonschema's messages quote the value: never echo a secret back.
            redactor = Redactor(secret_values({k: v for k, v in values.items() if k in names}))
            issues = [
                {"location": i["location"], "message": redactor.text(i["message"])}
                for i in issues_of(errors)
            ]
            raise Invalid("the connection values are invalid", issues)
        secrets = {k: v for k, v in values.items() if k in names}
        plain = {k: v for k, v in values.items() if k not in names}
        token = self.hub.secrets.encrypt(secrets) if secrets else ""
        return token, plain

    async def create_connection(
        self, name: str, connector_name: str, values: dict[str, Any]
    ) -> None:
        """Create a connection; secret fields are encrypted; :class:`Conflict` when the
        name is taken."""
        self.require("editor")
        connector = self.connector(connector_name)
        token, plain = self._split(connector, values)
        ws, actor = self.workspace, self.actor

        def write(conn: Any) -> None:
            try:
                connection_store.create_connection(conn, ws, name, connector_name, token, plain)
            except db_errors.Conflict as exc:
                raise Conflict(str(exc)) from exc
            details = {"connector": connector_name, "fields": sorted(values)}
            audit.record(conn, ws, actor, "connection.create", name, details)

        await self.hub.db.write(write)

    async def put_connection(self, name: str, connector_name: str, values: dict[str, Any]) -> None:
        """Create a connection, or replace every value of an existing one (its connector
        too): audited as ``connection.create`` or as ``connection.update`` (the fields
        given as changed, the stored ones not given as unset)."""
        self.require("editor")
        connector = self.connector(connector_name)
        token, plain = self._split(connector, values)
        ws, actor = self.workspace, self.actor
        old = await self.hub.db.read(lambda c: connection_store.get_connection(c, ws, name))
        stored = set(old["settings"] or {}) | set(self.decrypt(old["secrets"])) if old else set()

        def write(conn: Any) -> None:
            created = connection_store.put_connection(conn, ws, name, connector_name, token, plain)
            if created:
                details = {"connector": connector_name, "fields": sorted(values)}
                audit.record(conn, ws, actor, "connection.create", name, details)
            else:
                details = {"changed": sorted(values), "unset": sorted(stored - set(values))}
                audit.record(conn, ws, actor, "connection.update", name, details)

        await self.hub.db.write(write)

    def decrypt(self, token: str) -> dict[str, Any]:
        """Decrypt stored values; a key that does not fit is :class:`KeyMismatch`."""
        if not token:
            return {}
        try:
            values = self.hub.secrets.decrypt(token)
        except SecretKeyError as exc:
            raise KeyMismatch(str(exc)) from exc
        return values if isinstance(values, dict) else {}

    async def update_connection(self, name: str, values: dict[str, Any], unset: list[str]) -> None:
        """Change some values (others kept, secrets included) and remove ``unset`` fields."""
        self.require("editor")
        row = await self.get_connection(name)
        connector = self.connector(row["connector"])
        merged = {**row["settings"], **self.decrypt(row["secrets"]), **values}
        for field in unset:
            merged.pop(field, None)
        token, plain = self._split(connector, merged)
        ws, actor = self.workspace, self.actor

        def write(conn: Any) -> bool:
            changed = connection_store.update_connection(
                conn, ws, name, secrets_token=token, settings=plain
            )
            if changed:
                details = {"changed": sorted(values), "unset": sorted(unset)}
                audit.record(conn, ws, actor, "connection.update", name, details)
            return changed

        if not await self.hub.db.write(write):
            raise NotFound(f"no connection {name!r}")

    async def flows_using_connection(self, name: str) -> list[dict[str, Any]]:
        """The flows whose current document (the published version, else the latest) or
        latest draft names the connection, by id: each ``{"id", "name", "enabled",
        "version", "places"}`` (see :func:`connection_places`)."""
        ws = self.workspace

        def read(conn: Any) -> list[dict[str, Any]]:
            found = []
            for flow in flow_store.list_flows(conn, ws):
                versions = dict.fromkeys(
                    v for v in (flow["published_version"], flow["latest_version"]) if v
                )
                for version in versions:
                    document = flow_store.version_document(conn, ws, flow["id"], version)
                    places = connection_places(document, name)
                    if places:
                        found.append(
                            {
                                "id": flow["id"],
                                "name": flow["name"],
                                "enabled": bool(flow["enabled"]),
                                "version": version,
                                "places": places,
                            }
                        )
                        break
            return found

        return await self.hub.db.read(read)

    async def delete_connection(self, name: str) -> None:
        """Delete a connection, or :class:`NotFound`."""
        self.require("editor")
        ws, actor = self.workspace, self.actor

        def write(conn: Any) -> bool:
            deleted = connection_store.delete_connection(conn, ws, name)
            if deleted:
                audit.record(conn, ws, actor, "connection.delete", name)
            return deleted

        if not await self.hub.db.write(write):
            raise NotFound(f"no connection {name!r}")

    async def connection_values(self, name: str) -> tuple[dict[str, Any], Redactor]:
        """A connection's decrypted values and a redactor for them, or :class:`NotFound`."""
        try:
            return await self.hub.engine.connection_values(self.workspace, name)
        except LookupError as exc:
            raise NotFound(str(exc)) from exc
        except SecretKeyError as exc:
            raise KeyMismatch(str(exc)) from exc

    async def test_connection(self, name: str) -> tuple[bool, str]:
        """Run the connector's connection test (refreshing an expiring OAuth2 token first);
        return (ok, message). A success is audited; :class:`Invalid` when the connector
        has no test."""
        self.require("editor")
        row = await self.get_connection(name)
        connector = self.connector(row["connector"])
        if connector.test_connection is None:
            raise Invalid(
                f"connector {connector.name!r} has no connection test",
                [{"location": "connector", "message": "no test_connection"}],
            )
        if row["oauth_tokens"]:
            try:
                await oauth2.refresh_connection(self.hub, self.workspace, name)
            except oauth2.OAuthError as exc:
                return False, str(exc)
        values, redactor = await self.connection_values(name)
        try:
            async with asyncio.timeout(TEST_TIMEOUT):
                await run_connection_test(connector, values, self.hub.http)
        except TimeoutError:
            return False, f"no answer within {TEST_TIMEOUT:g}s"
        except ActionError as exc:
            return False, redactor.text(str(exc))
        except Exception as exc:
            return False, redactor.text(f"{type(exc).__name__}: {exc}")
        await self.audit("connection.test", name, {"ok": True})
        return True, "the service accepted the connection"

    async def refresh_oauth2(self, name: str) -> None:
        """Refresh the connection's OAuth2 access token now (:class:`UpstreamFailed` when
        the service refuses); audited."""
        self.require("editor")
        await oauth2.refresh_now(self.hub, self.workspace, name)
        await self.audit("connection.oauth2_refresh", name)

    async def authorize_url(self, name: str, redirect_uri: str, return_to: str | None) -> str:
        """The provider's authorization URL for an OAuth2 connection (PKCE, sealed state)."""
        self.require("editor")
        row = await self.get_connection(name)
        block = oauth2.oauth_block(self.connector(row["connector"]))
        values, _redactor = await self.connection_values(name)
        return oauth2.authorize_url(
            self.hub,
            workspace=self.workspace,
            name=name,
            user_id=self.user_id,
            block=block,
            values=values,
            redirect_uri=redirect_uri,
            return_to=oauth2.safe_return_to(return_to),
        )
