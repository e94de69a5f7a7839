"""What every page shares: who is signed in, the workspace, the menu, the render call, and
the small helpers of the pages' handlers (a workspace's address, a same-page query link, the
``?notice=`` message, the redirect after a change, the form body's type).

Page handlers live under ``/w/{workspace}/...`` and are guarded by :func:`signed_in` (a
browser session, else a redirect to the sign-in page) and then by the API's
:func:`~hub.api.deps.workspace_guard` (membership, the route's role from its ``opt``): the
same checks, roles and :class:`~hub.services.workspace.WorkspaceHub` as the API, so a
viewer's forged write answers 403 here as it does there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

from litestar import Controller, Request, Response
from litestar.connection import ASGIConnection
from litestar.enums import RequestEncodingType
from litestar.handlers import BaseRouteHandler
from litestar.params import Body
from litestar.response import Redirect, Template

from hub.api.auth import resolve_principal
from hub.api.deps import WORKSPACE_DEPENDENCIES, Principal, hub_of, workspace_guard
from hub.services import accounts
from hub.web.errors import PAGE_EXCEPTION_HANDLERS
from hub.web.headers import SECURITY_HEADERS
from hub.web.navigation import SignInRequired, is_htmx, safe_next

ROLE_RANK = {"viewer": 0, "editor": 1, "owner": 2}
#: A handler's ``data`` posted by a plain HTML form.
FORM = Body(media_type=RequestEncodingType.URL_ENCODED)


@dataclasses.dataclass(frozen=True)
class MenuItem:
    """One entry of the menu."""

    label: str
    href: str
    key: str = ""  # the ``section`` of the pages it leads to (marks it current)


async def signed_in(
    connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler
) -> None:
    """Guard: the request comes from a signed-in browser session (an API token is not a
    session: pages are for people)."""
    if connection.headers.get("authorization") is not None:
        raise SignInRequired()
    principal = await resolve_principal(connection)
    if principal is None:
        raise SignInRequired()
    connection.scope["user"] = principal


def ws_path(workspace: str, tail: str = "") -> str:
    """The address of a workspace's page: ``/w/{workspace}`` then ``tail`` (``/flows``)."""
    return f"/w/{quote(workspace, safe='')}{tail}"


def query_link(values: Mapping[str, Any]) -> str:
    """A link to the same page with the query ``values`` (empty ones left out): ``?...``."""
    return "?" + urlencode({k: v for k, v in values.items() if v})


def notice_of(request: Request[Any, Any, Any], notices: Mapping[str, str]) -> str:
    """The message of the page's ``?notice=`` key (set by the redirect after a change), or
    "" (only a known key shows anything: the text itself never comes from the URL)."""
    return notices.get(str(request.query_params.get("notice", "")), "")


def after_post(request: Request[Any, Any, Any], target: str) -> Response[Any]:
    """After a change: to ``target`` (303, or ``HX-Redirect`` for htmx)."""
    if is_htmx(request):
        return Response(b"", status_code=200, headers={"HX-Redirect": target})
    return Redirect(target, status_code=303)


def can(role: str, needed: str) -> bool:
    """Whether ``role`` is at least ``needed``."""
    return ROLE_RANK.get(role, -1) >= ROLE_RANK[needed]


async def menu_of(request: Request[Any, Any, Any], workspace: str, role: str) -> list[MenuItem]:
    """The menu of a workspace's pages for ``role``, then the plugins' entries."""
    base = ws_path(workspace)
    items = [
        MenuItem("Home", f"{base}/", "home"),
        MenuItem("Flows", f"{base}/flows", "flows"),
        MenuItem("Runs", f"{base}/runs", "runs"),
        MenuItem("Connections", f"{base}/connections", "connections"),
        MenuItem("Connectors", f"{base}/connectors", "connectors"),
    ]
    if can(role, "owner"):
        items.append(MenuItem("Members", f"{base}/members", "members"))
        items.append(MenuItem("Audit log", f"{base}/audit", "audit"))
    hub = hub_of(request)
    for entries in hub.pm.hook.hub_menu_items(workspace=workspace, role=role):
        for entry in entries or []:
            label, href = str(entry.get("label", "")), str(entry.get("href", ""))
            if label and safe_next(href) == href:  # a path of this site only
                items.append(MenuItem(label, href, str(entry.get("key", ""))))
    return items


def principal(request: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """The signed-in person (set by :func:`signed_in`)."""
    user = request.scope.get("user")
    if not isinstance(user, Principal):
        raise SignInRequired()
    return user


async def page(
    request: Request[Any, Any, Any],
    template: str,
    *,
    section: str = "",
    title: str = "",
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> Template:
    """Render a page (or, for an htmx request to a fragment template, the fragment) with
    what every page needs: the person, their workspaces, the current one and their role
    there, the menu (with ``section`` marked), and the CSRF token (``csrf_token``)."""
    person = principal(request)
    workspace = str(request.state.get("workspace") or request.path_params.get("workspace", ""))
    role = str(request.state.get("role") or "")
    hub = hub_of(request)
    workspaces = await accounts.workspaces_of(hub, person.user_id)
    if not workspace and workspaces:
        workspace = workspaces[0]["id"]
        role = workspaces[0]["role"]
    menu = await menu_of(request, workspace, role) if workspace else []
    return Template(
        template_name=template,
        context={
            "me": person,
            "workspace": workspace,
            "workspaces": workspaces,
            "role": role,
            "can_edit": can(role, "editor") if role else False,
            "is_owner": can(role, "owner") if role else False,
            "menu": menu,
            "section": section,
            "title": title,
            "ws_base": ws_path(workspace),
            **context,
        },
        status_code=status_code,
        headers=headers,
    )


class WorkspacePage(Controller):
    """The base of every workspace's pages: ``/w/{workspace}/...``, signed in, a member
    (404 otherwise), the role a handler's ``opt`` asks for (403), and ``ws``: the
    :class:`~hub.services.workspace.WorkspaceHub` acting as the person; the pages' security
    headers and HTML errors, also for a plugin's pages that subclass it."""

    include_in_schema = False
    opt = {"exclude_from_auth": True}  # signed_in authenticates pages
    guards = [signed_in, workspace_guard]
    dependencies = WORKSPACE_DEPENDENCIES
    # Set here, not only on the hub's Router, so that a plugin's pages (hub_routes) get them.
    response_headers = SECURITY_HEADERS
    exception_handlers = PAGE_EXCEPTION_HANDLERS
