"""The Profile page: who you are, your password, and your API tokens in this workspace.

Every member (viewers too) manages their own password and tokens here, as the API lets them
(``POST /api/me/password``, ``/api/w/{ws}/tokens``). The password change is the API's own
(:func:`hub.api.auth.password_change`: throttled, argon2 in the hash gate, every other
session of the person ended, this one kept). A new token is shown once, on the answer to
the form that created it (never in a URL, never again: the hub keeps only its hash).
Forms are checked with the API's request models (:mod:`hub.web.form_checks`).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated, Any

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException
from litestar.params import PathParameter
from litestar.response import Redirect, Template

from hub.api.auth import password_change
from hub.api.deps import hub_of
from hub.api.models import PasswordChange, TokenCreate
from hub.services.errors import Invalid, NotFound
from hub.services.links import link
from hub.services.workspace import WorkspaceHub
from hub.web.form_checks import checked
from hub.web.pages import FORM, WorkspacePage, notice_of, page, principal, ws_path

TokenPath = Annotated[str, PathParameter(max_length=100)]
NOTICES = {
    "password": "Your password was changed. Your other sessions were signed out; this one "
    "continues.",
    "revoked": "The token was revoked: it no longer works.",
}
#: The token form's scopes: (value, label); "full" is no scope (the person's role).
SCOPES = [("full", "Full"), ("read", "Read only"), ("runs", "Runs")]
#: The token form's lifetimes: (value: days, label); "" never expires.
EXPIRIES = [
    ("", "Never (until revoked)"),
    ("1", "1 day"),
    ("7", "7 days"),
    ("30", "30 days"),
    ("90", "90 days"),
    ("365", "1 year"),
]
PASSWORD_MESSAGES = {
    "current": "Enter your current password.",
    "new": "The new password needs at least 12 characters (at most 1,024).",
}
TOKEN_MESSAGES = {
    "name": "Give the token a name (at most 200 characters) to recognise it by.",
    "scope": "Choose one of the scopes listed.",
    "flow_id": "A flow id is lower-case letters, digits, '-' and '_' (or leave it empty).",
    "expires": "Choose one of the lifetimes listed.",
}


def profile_path(ws: WorkspaceHub) -> str:
    """The address of the profile page in ``ws``'s workspace."""
    return ws_path(ws.workspace, "/profile")


async def profile_page(
    request: Request[Any, Any, Any],
    ws: WorkspaceHub,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> Template:
    """The profile page (with a form's errors and values when given in ``context``)."""
    tokens = await ws.tokens(mine=True)
    return await page(
        request,
        "pages/profile/index.html",
        section="profile",
        title="Your profile",
        status_code=status_code,
        headers=headers,
        tokens=tokens,
        now_us=time.time_ns() // 1000,
        scopes=SCOPES,
        expiries=EXPIRIES,
        notice=notice_of(request, NOTICES),
        **{"password_errors": {}, "token_errors": {}, "token_form": {}, **context},
    )


def token_limits(
    data: dict[str, str],
) -> tuple[dict[str, Any], dict[str, str]]:
    """The token form's values for :class:`~hub.api.models.TokenCreate`, or its errors."""
    scope = data.get("scope", "full")
    days = data.get("expires", "")
    if days not in {value for value, _label in EXPIRIES}:
        return {}, {"expires": TOKEN_MESSAGES["expires"]}
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=int(days)) if days else None
    values = {
        "name": data.get("name", "").strip(),
        "scope": None if scope == "full" else scope,
        "flow_id": data.get("flow_id", "").strip() or None,
        "expires_at": expires,
    }
    return values, {}


class ProfilePages(WorkspacePage):
    """``/w/{workspace}/profile``: the person's account, password and API tokens here."""

    path = "/w/{workspace:str}/profile"

    @get("/", name="web_profile")
    async def index(
        self, request: Request[Any, Any, Any], ws: NamedDependency[WorkspaceHub]
    ) -> Template:
        """Your name and e-mail, the password form, your tokens and the form for a new one."""
        return await profile_page(request, ws)

    @post("/password", name="web_profile_password", status_code=303)
    async def change_password(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        data: Annotated[dict[str, str], FORM],
    ) -> Redirect | Template:
        """Change your password (current, new, confirm): the API's throttled check; your
        other sessions end, this one goes on."""
        form, errors = checked(
            {"current": data.get("current", ""), "new": data.get("new", "")},
            PasswordChange,
            PASSWORD_MESSAGES,
        )
        if form is not None and not form.current:
            errors = {"current": PASSWORD_MESSAGES["current"]}
        if form is not None and not errors and data.get("confirm", "") != form.new:
            errors = {"confirm": "The two new passwords differ: type the same one twice."}
        headers: dict[str, str] | None = None
        status = 422
        if form is not None and not errors:
            try:
                await password_change(request, principal(request), form.current, form.new)
            except Invalid:
                errors = {"current": "That is not your current password."}
            except HTTPException as exc:  # 429: throttled, or every argon2 slot busy
                status, headers = exc.status_code, exc.headers
                errors = {"": f"{exc.detail}."}
            else:
                return Redirect(f"{profile_path(ws)}?notice=password", status_code=303)
        return await profile_page(
            request, ws, status_code=status, headers=headers, password_errors=errors
        )

    @post("/tokens", name="web_profile_token_create", status_code=200)
    async def create_token(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        data: Annotated[dict[str, str], FORM],
    ) -> Template:
        """Create a token: the answer shows it this once, with a copy button."""
        values, errors = token_limits(data)
        form: TokenCreate | None = None
        if not errors:
            form, errors = checked(values, TokenCreate, TOKEN_MESSAGES)
        if form is not None and form.flow_id is not None:
            try:
                await ws.get_flow(form.flow_id)
            except NotFound:
                errors = {"flow_id": f"There is no flow {form.flow_id!r} in this workspace."}
        if form is None or errors:
            return await profile_page(
                request, ws, status_code=422, token_errors=errors, token_form=data
            )
        expires = None if form.expires_at is None else int(form.expires_at.timestamp() * 1e6)
        token, row = await ws.create_token(
            form.name, expires_at=expires, scope=form.scope, flow_id=form.flow_id
        )
        settings = hub_of(request).settings
        return await page(
            request,
            "pages/profile/token_created.html",
            section="profile",
            title="New API token",
            token=token,
            row=row,
            me_url=link(settings, "/api/me", str(request.base_url)),
        )

    @post("/tokens/{token_id:str}/revoke", name="web_profile_token_revoke", status_code=303)
    async def revoke_token(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        token_id: TokenPath,
    ) -> Redirect:
        """Revoke one of your tokens (404 when it is not yours or is gone)."""
        await ws.delete_token(token_id, mine=True)
        return Redirect(f"{profile_path(ws)}?notice=revoked", status_code=303)
