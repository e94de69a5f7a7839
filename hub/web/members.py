"""The Members and Audit log pages (owners only).

Members: every member with their role; add a person by e-mail with a role (a person with no
account gets one, with a one-time password shown once on the answer: the hub sends no
mail), change a role, remove. The service (:class:`~hub.services.members.MembersService`,
the same as ``PUT``/``DELETE /api/w/{ws}/members``) checks the owner role again, keeps the
last owner and audits each change; its refusals are shown on the page.

Audit log: the workspace's entries newest first, filtered in the URL (actor, action,
target, a time range in UTC), 50 a page, keyset-paginated on the entry id both ways.
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import PathParameter, QueryParameter
from litestar.response import Redirect, Template

from hub.api.deps import OWNER
from hub.api.models import MemberPut
from hub.services.errors import Conflict, NotFound
from hub.services.workspace import WorkspaceHub
from hub.web.form_checks import checked, utc_micros, utc_text
from hub.web.pages import FORM, WorkspacePage, notice_of, page, principal, query_link, ws_path

UserPath = Annotated[str, PathParameter(max_length=100)]
ROLES = [
    ("viewer", "Viewer: sees flows, runs and connections"),
    ("editor", "Editor: also changes flows and connections, runs flows"),
    ("owner", "Owner: also manages members and reads the audit log"),
]
NOTICES = {
    "added": "The member was added. They sign in with the password of their account.",
    "role": "The role was changed.",
    "unchanged": "That person is a member with that role already: nothing changed.",
    "removed": "The member was removed, and their API tokens in this workspace revoked.",
}
MEMBER_MESSAGES = {
    "email": "Enter an e-mail address (name@example.com).",
    "role": "Choose one of the roles listed.",
    "name": "A name has at most 200 characters.",
}
LAST_OWNER_HINT = "Make another member an owner first."
AUDIT_PAGE = 50
DETAILS_INLINE = 160  # details longer than this (as one line of JSON) start folded
#: The page of an audit entry's target, by the family of its action (``flow.publish``: flow).
TARGET_PAGES = {"flow": "flows", "run": "runs", "connection": "connections"}


def members_path(ws: WorkspaceHub) -> str:
    """The address of the Members page of ``ws``'s workspace."""
    return ws_path(ws.workspace, "/members")


async def members_page(
    request: Request[Any, Any, Any],
    ws: WorkspaceHub,
    *,
    status_code: int = 200,
    error: str = "",
    **context: Any,
) -> Template:
    """The Members page (with an error, or the add form's errors and values, when given)."""
    members = await ws.members()
    owners = sum(1 for m in members if m["role"] == "owner")
    return await page(
        request,
        "pages/members/index.html",
        section="members",
        title="Members",
        status_code=status_code,
        members=members,
        owners=owners,
        roles=ROLES,
        notice=notice_of(request, NOTICES),
        error=error,
        **{"add_errors": {}, "add_form": {}, **context},
    )


async def member_of(ws: WorkspaceHub, user_id: str) -> dict[str, Any]:
    """A member of the workspace by user id (:class:`NotFound` when not a member)."""
    for member in await ws.members():
        if member["id"] == user_id:
            return member
    raise NotFound(f"no member {user_id!r} in this workspace")


def refusal(exc: Conflict) -> str:
    """A refusal of the service as the page says it (what, then what to do)."""
    message = exc.message[:1].upper() + exc.message[1:]
    return f"{message}. {LAST_OWNER_HINT}" if "last owner" in message else f"{message}."


class MemberPages(WorkspacePage):
    """``/w/{workspace}/members``: members of a workspace and their roles (owners only)."""

    path = "/w/{workspace:str}/members"

    @get("/", name="web_members", opt=OWNER)
    async def index(
        self, request: Request[Any, Any, Any], ws: NamedDependency[WorkspaceHub]
    ) -> Template:
        """Every member with their role, the controls to change them, the add form."""
        return await members_page(request, ws)

    @post("/", name="web_members_add", opt=OWNER, status_code=200)
    async def add(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        data: Annotated[dict[str, str], FORM],
    ) -> Redirect | Template:
        """Add a person by e-mail with a role (or change the role of a member): a new
        account's one-time password is shown on the answer, once."""
        values = {k: data.get(k, "").strip() for k in ("email", "role", "name")}
        form, errors = checked(values, MemberPut, MEMBER_MESSAGES)
        if form is None:
            return await members_page(
                request, ws, status_code=422, add_errors=errors, add_form=values
            )
        before = {m["email"]: m["role"] for m in await ws.members()}
        try:
            user, password = await ws.put_member(form.email, form.role, form.name)
        except Conflict as exc:
            return await members_page(
                request, ws, status_code=409, error=refusal(exc), add_form=values
            )
        if password is not None:
            return await page(
                request,
                "pages/members/added.html",
                section="members",
                title="Member added",
                member=user,
                member_role=form.role,
                password=password,
            )
        previous = before.get(user["email"])
        notice = "added" if previous is None else "role" if previous != form.role else "unchanged"
        return Redirect(f"{members_path(ws)}?notice={notice}", status_code=303)

    @post("/{user_id:str}/role", name="web_members_role", opt=OWNER, status_code=303)
    async def change_role(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        user_id: UserPath,
        data: Annotated[dict[str, str], FORM],
    ) -> Redirect | Template:
        """Change a member's role (the last owner keeps theirs). An owner who makes
        themselves an editor or a viewer lands on the home page (this one is for owners)."""
        member = await member_of(ws, user_id)
        values = {"email": member["email"], "role": data.get("role", "")}
        form, _errors = checked(values, MemberPut, MEMBER_MESSAGES)
        if form is None:
            return await members_page(request, ws, status_code=422, error=MEMBER_MESSAGES["role"])
        try:
            await ws.put_member(form.email, form.role)
        except Conflict as exc:
            return await members_page(request, ws, status_code=409, error=refusal(exc))
        if user_id == principal(request).user_id and form.role != "owner":
            return Redirect(ws_path(ws.workspace, "/"), status_code=303)
        notice = "role" if member["role"] != form.role else "unchanged"
        return Redirect(f"{members_path(ws)}?notice={notice}", status_code=303)

    @post("/{user_id:str}/remove", name="web_members_remove", opt=OWNER, status_code=303)
    async def remove(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        user_id: UserPath,
    ) -> Redirect | Template:
        """Remove a member (their tokens here are revoked; the last owner stays)."""
        try:
            await ws.remove_member(user_id)
        except Conflict as exc:
            return await members_page(request, ws, status_code=409, error=refusal(exc))
        if user_id == principal(request).user_id:
            return Redirect("/", status_code=303)
        return Redirect(f"{members_path(ws)}?notice=removed", status_code=303)


def time_filters(
    filters: dict[str, str],
) -> tuple[dict[str, int | None], dict[str, str], dict[str, str]]:
    """The ``since`` and ``until`` filters (stripped) as epoch microseconds; the filters
    as the form shows them (times as a ``datetime-local`` input holds them, in UTC); the errors."""
    times: dict[str, int | None] = {}
    shown, errors = dict(filters), {}
    for key in ("since", "until"):
        try:
            moment = utc_micros(filters[key], end=key == "until")
            if moment is not None:
                shown[key] = utc_text(moment)
        except (ValueError, OverflowError):
            moment = None
            errors[key] = "Not a time: use YYYY-MM-DD HH:MM (UTC), or pick one."
        times[key] = moment
    return times, shown, errors


def details_text(details: Any) -> str:
    """An entry's details as one line of JSON ("" for none), escaped where it is shown."""
    if details is None:
        return ""
    return json.dumps(details, ensure_ascii=False, default=str)


class AuditPages(WorkspacePage):
    """``/w/{workspace}/audit``: the audit log (owners only)."""

    path = "/w/{workspace:str}/audit"

    @get("/", name="web_audit", opt=OWNER)
    async def index(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        actor: Annotated[str, QueryParameter(max_length=200)] = "",
        action: Annotated[str, QueryParameter(max_length=100)] = "",
        target: Annotated[str, QueryParameter(max_length=300)] = "",
        since: Annotated[str, QueryParameter(max_length=40)] = "",
        until: Annotated[str, QueryParameter(max_length=40)] = "",
        before: Annotated[str, QueryParameter(pattern=r"^[0-9]{0,18}$")] = "",
        after: Annotated[str, QueryParameter(pattern=r"^[0-9]{0,18}$")] = "",
    ) -> Template:
        """Entries newest first, with the filters in the URL; ``before`` pages to older
        entries, ``after`` back to newer ones."""
        filters = {
            "actor": actor.strip(),
            "action": action.strip(),
            "target": target.strip(),
            "since": since.strip(),
            "until": until.strip(),
        }
        times, shown, errors = time_filters(filters)
        rows = await ws.audit_page(
            before_id=int(before) if before else None,
            after_id=int(after) if after and not before else None,
            actor=filters["actor"] or None,
            action=filters["action"] or None,
            target=filters["target"] or None,
            since=times["since"],
            until=times["until"],
            limit=AUDIT_PAGE + 1,
        )
        paging_back = bool(after) and not before
        more = len(rows) > AUDIT_PAGE
        if paging_back:  # the extra entry is the newest one: there are newer still
            rows = rows[1:] if more else rows
            newer, older = more, bool(rows)
        else:
            rows = rows[:AUDIT_PAGE]
            newer, older = bool(before) and bool(rows), more
        query = {k: v for k, v in filters.items() if v}

        def link(**cursor: Any) -> str:
            return query_link({**query, **cursor})

        base = ws_path(ws.workspace)
        for row in rows:
            row["details_text"] = details_text(row["details"])
            area = TARGET_PAGES.get(str(row["action"]).split(".", 1)[0])
            row["target_href"] = f"{base}/{area}/{quote(row['target'], safe='')}" if area else ""
        return await page(
            request,
            "pages/audit/index.html",
            section="audit",
            title="Audit log",
            status_code=400 if errors else 200,
            entries=rows,
            filters=shown,
            filtered=bool(query),
            errors=errors,
            newer_href=link(after=rows[0]["id"]) if newer else "",
            older_href=link(before=rows[-1]["id"]) if older else "",
            first_href=link() if (before or after) else "",
            details_inline=DETAILS_INLINE,
            filter_href=link,
        )
