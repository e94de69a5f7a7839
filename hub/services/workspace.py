"""The hub as one workspace sees it: every query and change passes that workspace.

A :class:`WorkspaceHub` is built per request by :func:`hub.api.deps.provide_ws` once the
guard has checked membership and role. It is the one layer between the handlers and the
hub's storage and engine functions, so no handler can forget the workspace, and changes to
flows, connections and members are written to the audit log in the same transaction.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hub.api.errors import ApiError
from hub.connectors import Connector
from hub.db import accounts, queries, store
from hub.engine import RunNotFound, run_ops
from hub.engine.run_ops import RunStateError
from hub.flows import Flow, FlowError, load_flow
from hub.runtime import Hub
from hub.schemas import schema_errors
from hub.security.secrets import Redactor, SecretKeyError, secret_fields, secret_values

# OAuth2 connectors get their current access token among their secrets, so that an action
# reads it as ``ctx.connection["access_token"]`` and the engine redacts it like any secret.
OAUTH_SECRET_FIELDS = frozenset({"access_token"})
# The cache key prefix under which hub/api/webhooks.py keeps a flow's enabled state.
WEBHOOK_ENABLED_KEY = "webhook-enabled"


def not_found(message: str) -> ApiError:
    """A 404 in the error shape."""
    return ApiError(404, "not_found", message)


def invalid(message: str, issues: list[dict[str, str]]) -> ApiError:
    """A 422 listing every issue with its location."""
    return ApiError(422, "invalid", message, issues)


def flow_invalid(exc: FlowError) -> ApiError:
    """A 422 from a flow's validation errors."""
    issues = [{"location": i.location, "message": i.message} for i in exc.issues]
    return invalid(f"the flow is invalid ({len(issues)} issue(s))", issues)


def schema_issues(errors: list[str]) -> list[dict[str, str]]:
    """``location: message`` strings (from :func:`hub.schemas.schema_errors`) as issues."""
    issues = []
    for text in errors:
        location, _, message = text.partition(": ")
        issues.append({"location": location, "message": message})
    return issues


def secret_names(connector: Connector) -> set[str]:
    """The fields of a connector's connections that are stored encrypted."""
    names = secret_fields(connector.connection_schema)
    if connector.oauth2:
        names |= OAUTH_SECRET_FIELDS
    return names


class WorkspaceHub:
    """The hub bound to one workspace, acting for one caller (named in the audit log)."""

    def __init__(
        self, hub: Hub, workspace: str, *, actor: str, user_id: str = "", role: str = "viewer"
    ) -> None:
        self.hub = hub
        self.workspace = workspace
        self.actor = actor
        self.user_id = user_id
        self.role = role

    async def audit(self, action: str, target: str, details: Any = None) -> None:
        """Record an action that has no transaction of its own (a run cancelled, a test)."""
        await self.hub.db.write(
            lambda c: accounts.record(c, self.workspace, self.actor, action, target, details)
        )

    # -- flows ------------------------------------------------------------------------------

    async def validate(self, document: dict[str, Any]) -> Flow:
        """Validate against the installed actions and this workspace's connections."""
        ws = self.workspace
        names = await self.hub.db.read(lambda c: store.connection_names(c, ws))
        return load_flow(
            document,
            expressions=self.hub.expressions,
            registry=self.hub.registry,
            connections=names,
        )

    async def list_flows(
        self, q: str | None, enabled: bool | None, after: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """Flows matching the search, by id."""
        return await self.hub.db.read(
            lambda c: queries.search_flows(
                c, self.workspace, q=q, enabled=enabled, after=after, limit=limit
            )
        )

    async def get_flow(self, flow_id: str) -> dict[str, Any]:
        """A flow's row, or 404."""
        flow = await self.hub.db.read(lambda c: store.get_flow(c, self.workspace, flow_id))
        if flow is None:
            raise not_found(f"no flow {flow_id!r}")
        return flow

    async def save_flow(
        self,
        document: dict[str, Any],
        *,
        source: str = "",
        message: str = "",
        publish: bool = False,
        must_exist: bool | None = None,
    ) -> store.SavedVersion:
        """Validate and save a new version (``must_exist``: True update, False create)."""
        try:
            await self.validate(document)
        except FlowError as exc:
            raise flow_invalid(exc) from exc
        flow_id = document["id"]
        ws, actor = self.workspace, self.actor

        def write(conn: Any) -> store.SavedVersion:
            exists = store.get_flow(conn, ws, flow_id) is not None
            if must_exist is False and exists:
                raise ApiError(409, "conflict", f"a flow {flow_id!r} exists already")
            if must_exist and not exists:
                raise not_found(f"no flow {flow_id!r}")
            saved = store.save_version(
                conn, ws, document, source=source, author=actor, message=message, publish=publish
            )
            if saved.created or saved.published:
                details = {"version": saved.version, "published": saved.published}
                action = "flow.create" if not exists else "flow.save"
                accounts.record(conn, ws, actor, action, flow_id, details)
            return saved

        saved = await self.hub.db.write(write)
        if saved.published:
            await self.hub.engine.published_changed(ws, flow_id, saved.version)
        return saved

    async def versions(self, flow_id: str) -> list[dict[str, Any]]:
        """Every version of a flow, newest first (404 for no flow)."""
        await self.get_flow(flow_id)
        return await self.hub.db.read(lambda c: queries.list_versions(c, self.workspace, flow_id))

    async def version(self, flow_id: str, version: int) -> dict[str, Any]:
        """One version with its document and source, or 404."""
        row = await self.hub.db.read(
            lambda c: queries.get_version(c, self.workspace, flow_id, version)
        )
        if row is None:
            raise not_found(f"flow {flow_id!r} has no version {version}")
        return row

    async def publish(
        self, flow_id: str, version: int, action: str = "flow.publish"
    ) -> tuple[int, int | None]:
        """Publish a version (a roll back publishes an older one); return (new, previous)."""
        ws, actor = self.workspace, self.actor

        def write(conn: Any) -> tuple[int, int | None]:
            flow = store.get_flow(conn, ws, flow_id)
            if flow is None:
                raise not_found(f"no flow {flow_id!r}")
            try:
                store.publish_version(conn, ws, flow_id, version)
            except LookupError as exc:
                raise not_found(str(exc)) from exc
            previous = flow["published_version"]
            details = {"version": version, "previous": previous}
            accounts.record(conn, ws, actor, action, flow_id, details)
            return version, previous

        published = await self.hub.db.write(write)
        await self.hub.engine.published_changed(ws, flow_id, version)
        return published

    async def set_enabled(self, flow_id: str, enabled: bool) -> dict[str, Any]:
        """Turn a flow's triggers on or off; return the flow."""
        ws, actor = self.workspace, self.actor

        def write(conn: Any) -> dict[str, Any] | None:
            if not queries.set_flow_enabled(conn, ws, flow_id, enabled):
                return None
            action = "flow.enable" if enabled else "flow.disable"
            accounts.record(conn, ws, actor, action, flow_id)
            return store.get_flow(conn, ws, flow_id)

        flow = await self.hub.db.write(write)
        if flow is None:
            raise not_found(f"no flow {flow_id!r}")
        # Webhooks keep the enabled state in the layered cache for a moment: drop it in
        # every process so that disabling takes effect at once.
        await self.hub.cache.invalidate(f"{WEBHOOK_ENABLED_KEY}:{ws}:{flow_id}")
        return flow

    # -- runs -------------------------------------------------------------------------------

    async def start_run(self, flow_id: str, input: Any, version: int | None) -> str:
        """Start a manual run (the published version unless ``version``)."""
        flow = await self.get_flow(flow_id)
        if version is None and flow["published_version"] is None:
            raise ApiError(409, "not_published", f"flow {flow_id!r} has no published version")
        try:
            return await self.hub.engine.start_run(
                self.workspace, flow_id, input, version=version, trigger_type="manual"
            )
        except RunNotFound as exc:
            raise not_found(str(exc)) from exc

    async def runs_page(self, **filters: Any) -> list[dict[str, Any]]:
        """Runs matching the filters, newest first (see :func:`queries.runs_page`)."""
        return await self.hub.db.read(lambda c: queries.runs_page(c, self.workspace, **filters))

    async def get_run(self, run_id: str, *, with_steps: bool = True) -> dict[str, Any]:
        """A run record (with its step attempts), or 404."""
        record = await self.hub.db.read(lambda c: store.run_record(c, run_id, self.workspace))
        if record is None:
            raise not_found(f"no run {run_id!r}")
        if with_steps:
            record["steps"] = await self.hub.db.read(lambda c: store.run_steps(c, run_id))
        return record

    async def cancel_run(self, run_id: str) -> bool:
        """Cancel a run and its child runs; False when it had already finished."""
        await self.get_run(run_id, with_steps=False)
        cancelled = await self.hub.engine.cancel_run(run_id, f"cancelled by {self.actor}")
        if cancelled:
            await self.audit("run.cancel", run_id)
        return cancelled

    async def retry_run(self, run_id: str) -> list[str]:
        """Retry a failed run from its failed step(s)."""
        try:
            keys = await run_ops.retry_run(self.hub.engine, self.workspace, run_id)
        except RunNotFound as exc:
            raise not_found(str(exc)) from exc
        except RunStateError as exc:
            raise ApiError(409, "conflict", str(exc)) from exc
        await self.audit("run.retry", run_id, {"steps": keys})
        return keys

    async def replay_run(self, run_id: str) -> str:
        """A new run with the same trigger data and flow version."""
        try:
            new_id = await run_ops.replay_run(self.hub.engine, self.workspace, run_id)
        except RunNotFound as exc:
            raise not_found(str(exc)) from exc
        await self.audit("run.replay", run_id, {"run_id": new_id})
        return new_id

    # -- connections ------------------------------------------------------------------------

    def connector(self, name: str) -> Connector:
        """An installed connector that takes connections, or 422."""
        connector = self.hub.registry.connectors.get(name)
        if connector is None:
            raise invalid(
                f"no connector {name!r} is installed",
                [{"location": "connector", "message": "unknown connector"}],
            )
        if connector.connection_schema is None and not connector.oauth2:
            raise invalid(
                f"connector {name!r} takes no connection (it has no connection schema)",
                [{"location": "connector", "message": "takes no connection"}],
            )
        return connector

    async def list_connections(self) -> list[dict[str, Any]]:
        """Every connection of the workspace (secrets still encrypted)."""
        return await self.hub.db.read(lambda c: queries.list_connections(c, self.workspace))

    async def get_connection(self, name: str) -> dict[str, Any]:
        """A stored connection (secrets still encrypted), or 404."""
        row = await self.hub.db.read(lambda c: store.get_connection(c, self.workspace, name))
        if row is None:
            raise not_found(f"no connection {name!r}")
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
                for i in schema_issues(errors)
            ]
            raise invalid("the connection values are invalid", issues)
        secrets = {k: v for k, v in values.items() if k in names}
        plain = {k: v for k, v in values.items() if k not in names}
        token = self.hub.secrets.encrypt(secrets) if secrets else ""
        return token, plain

    async def create_connection(
        self, name: str, connector_name: str, values: dict[str, Any]
    ) -> None:
        """Create a connection; secret fields are encrypted; 409 when the name is taken."""
        connector = self.connector(connector_name)
        token, plain = self._split(connector, values)
        ws, actor = self.workspace, self.actor

        def write(conn: Any) -> None:
            try:
                queries.create_connection(conn, ws, name, connector_name, token, plain)
            except accounts.Conflict as exc:
                raise ApiError(409, "conflict", str(exc)) from exc
            details = {"connector": connector_name, "fields": sorted(values)}
            accounts.record(conn, ws, actor, "connection.create", name, details)

        await self.hub.db.write(write)

    def decrypt(self, token: str) -> dict[str, Any]:
        """Decrypt stored values; a key that does not fit is a 500 naming HUB_SECRET_KEY."""
        if not token:
            return {}
        try:
            values = self.hub.secrets.decrypt(token)
        except SecretKeyError as exc:
            raise ApiError(500, "secret_key", str(exc)) from exc
        return values if isinstance(values, dict) else {}

    async def update_connection(self, name: str, values: dict[str, Any], unset: list[str]) -> None:
        """Change some values (others kept, secrets included) and remove ``unset`` fields."""
        row = await self.get_connection(name)
        connector = self.connector(row["connector"])
        merged = {**row["settings"], **self.decrypt(row["secrets"]), **values}
        for field in unset:
            merged.pop(field, None)
        token, plain = self._split(connector, merged)
        ws, actor = self.workspace, self.actor

        def write(conn: Any) -> bool:
            changed = queries.update_connection(conn, ws, name, secrets_token=token, settings=plain)
            if changed:
                details = {"changed": sorted(values), "unset": sorted(unset)}
                accounts.record(conn, ws, actor, "connection.update", name, details)
            return changed

        if not await self.hub.db.write(write):
            raise not_found(f"no connection {name!r}")

    async def delete_connection(self, name: str) -> None:
        """Delete a connection, or 404."""
        ws, actor = self.workspace, self.actor

        def write(conn: Any) -> bool:
            deleted = queries.delete_connection(conn, ws, name)
            if deleted:
                accounts.record(conn, ws, actor, "connection.delete", name)
            return deleted

        if not await self.hub.db.write(write):
            raise not_found(f"no connection {name!r}")

    async def connection_values(self, name: str) -> tuple[dict[str, Any], Redactor]:
        """A connection's decrypted values and a redactor for them, or 404."""
        try:
            return await self.hub.engine.connection_values(self.workspace, name)
        except LookupError as exc:
            raise not_found(str(exc)) from exc
        except SecretKeyError as exc:
            raise ApiError(500, "secret_key", str(exc)) from exc

    # -- members, tokens, the audit log ------------------------------------------------------

    async def members(self) -> list[dict[str, Any]]:
        """Every member with their role."""
        return await self.hub.db.read(lambda c: accounts.members(c, self.workspace))

    async def put_member(
        self, email: str, role: str, name: str = ""
    ) -> tuple[dict[str, Any], str | None]:
        """Add a member (creating the account) or change a role; return the user and, for a
        new account, its random password. The last owner cannot be demoted (409)."""
        ws, actor = self.workspace, self.actor
        existing = await self.hub.db.read(lambda c: accounts.user_by_email(c, email))
        password = password_hash = ""
        if existing is None:  # hashing is slow: only for a new account
            password = accounts.new_password()
            password_hash = await asyncio.to_thread(accounts.hash_password, password)

        def write(conn: Any) -> tuple[dict[str, Any], bool]:
            user = accounts.user_by_email(conn, email)
            created = user is None
            if user is None:
                if not password_hash:
                    raise ApiError(409, "conflict", "the account changed meanwhile; try again")
                try:
                    user = accounts.create_user(conn, email, name=name, password_hash=password_hash)
                except accounts.Conflict as exc:
                    raise ApiError(409, "conflict", str(exc)) from exc
            previous = accounts.role_of(conn, ws, user["id"])
            if previous == "owner" and role != "owner" and accounts.count_owners(conn, ws) <= 1:
                raise ApiError(409, "conflict", "the last owner of a workspace cannot be demoted")
            accounts.set_membership(conn, ws, user["id"], role)
            if previous != role:
                action = "member.add" if previous is None else "member.role"
                details = {"role": role, "previous": previous}
                accounts.record(conn, ws, actor, action, user["email"], details)
            return user, created

        user, created = await self.hub.db.write(write)
        return user, password if created else None

    async def remove_member(self, user_id: str) -> None:
        """Remove a member and revoke their tokens here (404; 409 for the last owner)."""
        ws, actor = self.workspace, self.actor

        def write(conn: Any) -> None:
            role = accounts.role_of(conn, ws, user_id)
            if role is None:
                raise not_found(f"no member {user_id!r}")
            if role == "owner" and accounts.count_owners(conn, ws) <= 1:
                raise ApiError(409, "conflict", "the last owner of a workspace cannot be removed")
            user = accounts.get_user(conn, user_id)
            accounts.remove_membership(conn, ws, user_id)
            target = user["email"] if user else user_id
            accounts.record(conn, ws, actor, "member.remove", target, {"role": role})

        await self.hub.db.write(write)

    async def tokens(self) -> list[dict[str, Any]]:
        """The caller's API tokens here (an owner: everyone's), never the tokens."""
        only = None if self.role == "owner" else self.user_id
        return await self.hub.db.read(lambda c: accounts.list_tokens(c, self.workspace, only))

    async def create_token(self, name: str) -> tuple[str, dict[str, Any]]:
        """A new token for the caller here: (the token, shown once; its row)."""
        ws, actor, user_id = self.workspace, self.actor, self.user_id

        def write(conn: Any) -> tuple[str, dict[str, Any]]:
            token, row = accounts.create_token(conn, ws, user_id, name)
            accounts.record(conn, ws, actor, "token.create", name)
            return token, row

        return await self.hub.db.write(write)

    async def delete_token(self, token_id: str) -> None:
        """Revoke one of the caller's tokens (an owner: anyone's), or 404."""
        ws, actor = self.workspace, self.actor
        only = None if self.role == "owner" else self.user_id

        def write(conn: Any) -> bool:
            deleted = accounts.delete_token(conn, ws, token_id, only)
            if deleted:
                accounts.record(conn, ws, actor, "token.delete", token_id)
            return deleted

        if not await self.hub.db.write(write):
            raise not_found(f"no token {token_id!r}")

    async def audit_page(
        self, *, before_id: int | None, action: str | None, target: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """Audit entries, newest first."""
        return await self.hub.db.read(
            lambda c: accounts.list_audit(
                c, self.workspace, before_id=before_id, action=action, target=target, limit=limit
            )
        )
