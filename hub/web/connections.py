"""The Connections pages: the list, create and edit through the form generated from the
connector's connection schema (:mod:`hub.web.forms`), the connection's page, its test,
"Connect" for OAuth2 connectors, and delete after listing the flows that use it.

Secrets never reach the browser: the form's secret fields are password inputs never filled
in (left empty on edit they keep the stored value), the pages show which secrets are stored,
never their values, and every message about a value is redacted. The changes go through the
same :class:`~hub.services.workspace.WorkspaceHub` as the API (``create_connection``,
``update_connection``, ``test_connection``, ``authorize_url``, ``delete_connection``), so
roles, validation and the audit log are the API's.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import PathParameter, QueryParameter
from litestar.response import Redirect, Template

from hub.api.connections import connection_info
from hub.api.deps import EDITOR
from hub.api.models import Name
from hub.connectors import Connector
from hub.security.secrets import secret_values
from hub.services import links
from hub.services.connections import OAUTH_SECRET_FIELDS, secret_names
from hub.services.errors import Conflict, Invalid
from hub.services.workspace import WorkspaceHub
from hub.web.forms import (
    MISSING,
    FormLimits,
    Path,
    Submission,
    apply_op,
    parse_form,
    render_form,
    resolve,
    validation_errors,
    value_at,
)
from hub.web.navigation import is_htmx
from hub.web.pages import WorkspacePage, after_post, page, ws_path

NamePath = Annotated[str, PathParameter(max_length=100)]
NOTICES = {
    "created": "The connection was created. Test it to check that the service accepts it.",
    "updated": "The connection was saved.",
    "connected": "The service authorized the connection.",
    "refreshed": "The access token was refreshed.",
}
NAME_RULE = "a letter or digit first, then letters, digits, '_', '.' or '-' (at most 100)"
NAME_HELP = f"Flows refer to the connection by this name: {NAME_RULE}. It cannot be changed."


def base_of(ws: WorkspaceHub) -> str:
    """The address of the workspace's Connections pages."""
    return ws_path(ws.workspace, "/connections")


def connection_path(ws: WorkspaceHub, name: str) -> str:
    """The address of a connection's page."""
    return f"{base_of(ws)}/{quote(name, safe='')}"


def form_schema(connector: Connector) -> dict[str, Any] | None:
    """The schema the connection's form is generated from (None: the connector takes no
    values, an OAuth2 connector configured by the hub alone)."""
    return connector.connection_schema or None


def public(row: dict[str, Any]) -> dict[str, Any]:
    """A stored connection without its encrypted secrets and OAuth2 tokens: what a page's
    template may see (it shows their names from :func:`connection_info`, never values)."""
    return {k: v for k, v in row.items() if k not in {"secrets", "oauth_tokens"}}


def limits_of(ws: WorkspaceHub) -> FormLimits:
    """The form bounds of the hub's settings."""
    return FormLimits.of(ws.hub.settings)


def known_fields(schema: dict[str, Any] | None, stored: dict[str, Any]) -> set[str]:
    """The stored fields the form shows (a field it does not know is kept on save)."""
    if schema is None:
        return set()
    resolved = resolve(schema, schema)
    if isinstance(resolved.get("additionalProperties"), dict):
        return set(stored)
    return set(resolved.get("properties") or {})


def keep_nested_secrets(value: dict[str, Any], kept: set[Path], stored: dict[str, Any]) -> None:
    """Fill the secrets inside objects left empty on edit with their stored value (the
    service keeps top-level fields itself)."""
    for path in sorted((p for p in kept if len(p) > 1), key=len):
        old = value_at(stored, path)
        parent = value_at(value, path[:-1])
        if old is not MISSING and isinstance(parent, dict) and isinstance(path[-1], str):
            parent[path[-1]] = old


async def form_pairs(request: Request[Any, Any, Any]) -> list[tuple[str, str]]:
    """The submitted form's name-value pairs, in order (without the CSRF token)."""
    data = await request.form()
    return [(k, str(v)) for k, v in data.multi_items() if k != "_csrf_token"]


class ConnectionPages(WorkspacePage):
    """The workspace's connections."""

    path = "/w/{workspace:str}/connections"

    @get("/", name="web_connections")
    async def index(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        deleted: Annotated[str | None, QueryParameter(max_length=100)] = None,
    ) -> Template:
        """Every connection: its connector, when it was made and changed, OAuth2 state."""
        rows = await ws.list_connections()
        items = [(public(row), connection_info(ws, row)) for row in rows]
        return await page(
            request,
            "pages/connections/index.html",
            section="connections",
            title="Connections",
            items=items,
            base=base_of(ws),
            deleted=deleted,
            connectors=ws.hub.registry.connectors,
        )

    @get("/new", name="web_connection_new", opt=EDITOR)
    async def new(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        connector: Annotated[str | None, QueryParameter(max_length=100)] = None,
    ) -> Template:
        """Choose a connector, then fill in the connection's form."""
        if not connector:
            choices = [
                c
                for c in sorted(ws.hub.registry.connectors.values(), key=lambda c: c.name)
                if c.connection_schema is not None or c.oauth2
            ]
            return await page(
                request,
                "pages/connections/choose.html",
                section="connections",
                title="New connection",
                choices=choices,
                base=base_of(ws),
            )
        chosen = ws.connector(connector)
        return await self.edit_form(request, ws, chosen, creating=True, value=MISSING)

    @post("/new", name="web_connection_create", opt=EDITOR)
    async def create(
        self, request: Request[Any, Any, Any], ws: NamedDependency[WorkspaceHub]
    ) -> Response[Any]:
        """Create the connection (or draw the form again with a row more or less)."""
        pairs = await form_pairs(request)
        fields = dict(pairs)
        connector = ws.connector(fields.get("connector", "")[:100])
        name = fields.get("name", "")[:200]
        schema = form_schema(connector)
        submission = None if schema is None else parse_form(schema, pairs, limits=limits_of(ws))
        if submission is not None and submission.op:
            return await self.redraw(request, ws, connector, submission, creating=True, name=name)
        value = submission.value if submission is not None else {}
        errors = dict(submission.errors) if submission is not None else {}
        if schema is not None and submission is not None and not errors:
            errors = validation_errors(schema, value, secrets=submission.secret_texts())
        name_error = ""
        try:
            msgspec.convert(name, Name)
        except msgspec.ValidationError:
            name_error = f"Enter a name: {NAME_RULE}."
        if not errors and not name_error:
            try:
                await ws.create_connection(name, connector.name, value)
            except Conflict:
                name_error = f"A connection named {name!r} exists already: choose another name."
            except Invalid as exc:
                errors = {(): [i["message"] for i in exc.details or []] or [exc.message]}
            else:
                return after_post(request, connection_path(ws, name) + "?notice=created")
        tree = submission.tree if submission is not None else MISSING
        return await self.edit_form(
            request, ws, connector, creating=True, value=tree, errors=errors,
            name=name, name_error=name_error, status_code=422, retype=True,
        )  # fmt: skip

    @get("/{name:str}", name="web_connection")
    async def show(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        name: NamePath,
        notice: Annotated[str | None, QueryParameter(max_length=20)] = None,
    ) -> Template:
        """A connection: its settings, which secrets are stored, its OAuth2 state, and
        what can be done with it."""
        return await self.connection_page(request, ws, name, notice=NOTICES.get(notice or ""))

    async def connection_page(
        self,
        request: Request[Any, Any, Any],
        ws: WorkspaceHub,
        name: str,
        *,
        notice: str | None = None,
        result: tuple[bool, str] | None = None,
    ) -> Template:
        """A connection's page, with a change's ``notice`` or a test's ``result`` (passed,
        what the service said)."""
        row = await ws.get_connection(name)
        connector = ws.hub.registry.connectors.get(row["connector"])
        info = connection_info(ws, row)
        return await page(
            request,
            "pages/connections/show.html",
            section="connections",
            title=f"Connection {name}",
            row=public(row),
            info=info,
            # An access token typed into its values (such as HubSpot's private app token):
            # the connection needs no OAuth2 authorization, so it is not shown as pending.
            own_token=info.oauth2 is not None
            and not OAUTH_SECRET_FIELDS.isdisjoint(info.secrets_set),
            connector=connector,
            notice=notice,
            result=result,
            here=connection_path(ws, name),
            base=base_of(ws),
        )

    @get("/{name:str}/edit", name="web_connection_edit", opt=EDITOR)
    async def edit(
        self, request: Request[Any, Any, Any], ws: NamedDependency[WorkspaceHub], name: NamePath
    ) -> Template:
        """The connection's form, filled with its settings (never its secrets)."""
        row = await ws.get_connection(name)
        connector = ws.connector(row["connector"])
        names = secret_names(connector)
        value = {k: v for k, v in (row["settings"] or {}).items() if k not in names}
        return await self.edit_form(request, ws, connector, creating=False, value=value, row=row)

    @post("/{name:str}/edit", name="web_connection_update", opt=EDITOR)
    async def update(
        self, request: Request[Any, Any, Any], ws: NamedDependency[WorkspaceHub], name: NamePath
    ) -> Response[Any]:
        """Save the connection: secrets left empty are kept, fields emptied are unset."""
        row = await ws.get_connection(name)
        connector = ws.connector(row["connector"])
        schema = form_schema(connector)
        if schema is None:
            return after_post(request, connection_path(ws, name))
        pairs = await form_pairs(request)
        submission = parse_form(schema, pairs, limits=limits_of(ws))
        if submission.op:
            return await self.redraw(request, ws, connector, submission, creating=False, row=row)
        secrets = ws.decrypt(row["secrets"])
        stored = {**(row["settings"] or {}), **secrets}
        value = submission.value
        keep_nested_secrets(value, submission.kept, stored)
        # A stored secret not given again is kept unless its "remove" box was ticked
        # (whatever its widget: a write-only enum is a select that cannot show it).
        cleared = {p[0] for p in submission.cleared if len(p) == 1}
        names = secret_names(connector)
        kept = {k for k in stored if k in names and k not in value and k not in cleared}
        merged = {**value, **{k: stored[k] for k in kept}}
        errors = dict(submission.errors)
        if not errors:
            hidden = secret_values(secrets) | submission.secret_texts()
            errors = validation_errors(schema, merged, secrets=hidden)
        if not errors:
            known = known_fields(schema, stored)
            unset = sorted(k for k in stored if k in known and k not in value and k not in kept)
            try:
                await ws.update_connection(name, value, unset)
            except Invalid as exc:
                errors = {(): [i["message"] for i in exc.details or []] or [exc.message]}
            else:
                return after_post(request, connection_path(ws, name) + "?notice=updated")
        return await self.edit_form(
            request, ws, connector, creating=False, value=submission.tree, errors=errors,
            row=row, status_code=422, retype=True,
        )  # fmt: skip

    async def redraw(
        self,
        request: Request[Any, Any, Any],
        ws: WorkspaceHub,
        connector: Connector,
        submission: Submission,
        *,
        creating: bool,
        name: str = "",
        row: dict[str, Any] | None = None,
    ) -> Template:
        """The form again after Add, Remove or another alternative (nothing saved)."""
        tree, focus = apply_op(form_schema(connector), submission)
        return await self.edit_form(
            request, ws, connector, creating=creating, value=tree, name=name, row=row,
            focus=focus, errors=submission.errors,
        )  # fmt: skip

    async def edit_form(
        self,
        request: Request[Any, Any, Any],
        ws: WorkspaceHub,
        connector: Connector,
        *,
        creating: bool,
        value: Any,
        errors: dict[Path, list[str]] | None = None,
        name: str = "",
        name_error: str = "",
        row: dict[str, Any] | None = None,
        focus: Path | None = None,
        status_code: int = 200,
        retype: bool = False,
    ) -> Template:
        """The create or edit page (for htmx: the form alone)."""
        schema = form_schema(connector)
        stored: set[Path] = set()
        if row is not None:
            names = secret_names(connector)
            stored = {(k,) for k in ws.decrypt(row["secrets"]) if k in names}
            name = row["name"]
        action = f"{base_of(ws)}/new" if creating else f"{connection_path(ws, name)}/edit"
        form = None
        if schema is not None:
            form = render_form(
                schema, value, action=action, errors=errors, stored=stored,
                limits=limits_of(ws), fresh=creating and value is MISSING, focus=focus,
            )  # fmt: skip
        has_secrets = bool(schema and secret_names(connector))
        template = (
            "partials/connections/form.html" if is_htmx(request) else "pages/connections/form.html"
        )
        return await page(
            request,
            template,
            section="connections",
            title=f"New {connector.title or connector.name} connection"
            if creating
            else f"Edit connection {name}",
            status_code=status_code,
            form=form,
            connector=connector,
            creating=creating,
            name=name,
            name_error=name_error,
            name_help=NAME_HELP,
            action=action,
            cancel=base_of(ws) if creating else connection_path(ws, name),
            retype=retype and has_secrets,
            base=base_of(ws),
        )

    @post("/{name:str}/test", name="web_connection_test", opt=EDITOR)
    async def test(
        self, request: Request[Any, Any, Any], ws: NamedDependency[WorkspaceHub], name: NamePath
    ) -> Template:
        """Run the connector's connection test and show what it said (redacted by the
        service)."""
        try:
            result = await ws.test_connection(name)
        except Invalid as exc:
            result = (False, exc.message)
        if is_htmx(request):
            return await page(request, "partials/connections/test_result.html", result=result)
        return await self.connection_page(request, ws, name, result=result)

    @get("/{name:str}/connect", name="web_connection_connect", opt=EDITOR)
    async def connect(
        self, request: Request[Any, Any, Any], ws: NamedDependency[WorkspaceHub], name: NamePath
    ) -> Redirect:
        """Send the browser to the service to authorize the connection (OAuth2); the hub's
        callback brings it back to the connection's page. A link, not a form: the content
        security policy's ``form-action 'self'`` would stop a form redirected to the
        service."""
        callback = links.oauth2_redirect_uri(ws.hub.settings, str(request.base_url))
        back = connection_path(ws, name) + "?notice=connected"
        return Redirect(await ws.authorize_url(name, callback, back), status_code=303)

    @post("/{name:str}/refresh", name="web_connection_refresh", opt=EDITOR)
    async def refresh(
        self, request: Request[Any, Any, Any], ws: NamedDependency[WorkspaceHub], name: NamePath
    ) -> Response[Any]:
        """Refresh the OAuth2 access token now (the service's refusal: an error page)."""
        await ws.refresh_oauth2(name)
        return after_post(request, connection_path(ws, name) + "?notice=refreshed")

    @get("/{name:str}/delete", name="web_connection_delete_confirm", opt=EDITOR)
    async def confirm_delete(
        self, request: Request[Any, Any, Any], ws: NamedDependency[WorkspaceHub], name: NamePath
    ) -> Template:
        """Ask before deleting, listing the flows that use the connection."""
        row = await ws.get_connection(name)
        flows = await ws.flows_using_connection(name)
        return await page(
            request,
            "pages/connections/delete.html",
            section="connections",
            title=f"Delete connection {name}",
            row=public(row),
            flows=flows,
            here=connection_path(ws, name),
            flows_base=ws_path(ws.workspace, "/flows"),
        )

    @post("/{name:str}/delete", name="web_connection_delete", opt=EDITOR)
    async def delete(
        self, request: Request[Any, Any, Any], ws: NamedDependency[WorkspaceHub], name: NamePath
    ) -> Response[Any]:
        """Delete the connection."""
        await ws.delete_connection(name)
        return after_post(request, f"{base_of(ws)}?deleted={quote(name, safe='')}")
