"""Signing in and out, and the address ``/`` (the first workspace's home page)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.exceptions import HTTPException
from litestar.params import QueryParameter
from litestar.response import Redirect, Template

from hub.api.auth import (
    end_browser_session,
    password_login,
    resolve_principal,
    start_browser_session,
)
from hub.api.deps import hub_of
from hub.services import accounts
from hub.web.form_checks import form_text
from hub.web.navigation import safe_next
from hub.web.pages import FORM, principal, signed_in, ws_path


def sign_in_page(
    *,
    next_url: str,
    email: str = "",
    error: str = "",
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Template:
    """The sign-in form (with what went wrong, if anything)."""
    return Template(
        template_name="pages/login.html",
        context={"next_url": safe_next(next_url), "email": email, "error": error, "me": None},
        status_code=status_code,
        headers=headers,
    )


class SessionPages(Controller):
    """``/login``, ``/logout`` and ``/``."""

    path = "/"
    include_in_schema = False

    @get("/login", exclude_from_auth=True, name="web_login_form")
    async def login_form(
        self,
        request: Request[Any, Any, Any],
        next: Annotated[str, QueryParameter(max_length=2000)] = "/",
    ) -> Response[Any]:
        """The sign-in form; a signed-in person goes straight on."""
        if await resolve_principal(request) is not None:
            return Redirect(safe_next(next), status_code=303)
        return sign_in_page(next_url=next)

    @post("/login", exclude_from_auth=True, name="web_login", status_code=303)
    async def login(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[dict[str, str], FORM],
    ) -> Response[Any]:
        """Check the password, start a session, and go back to the page asked for."""
        email = form_text(data, "email", 320)
        password = form_text(data, "password", 1024)
        next_url = safe_next(data.get("next"))
        if not email or not password:
            return sign_in_page(
                next_url=next_url,
                email=email,
                error="Enter your e-mail address and your password.",
                status_code=400,
            )
        try:
            user = await password_login(request, email, password)
        except HTTPException as exc:
            message = str(exc.detail)
            if exc.status_code == 401:
                message = "Wrong e-mail address or password."
            return sign_in_page(
                next_url=next_url,
                email=email,
                error=message,
                status_code=exc.status_code,
                headers=exc.headers,
            )
        await start_browser_session(request, user["id"])
        return Redirect(next_url, status_code=303)

    @post("/logout", exclude_from_auth=True, name="web_logout", status_code=303)
    async def logout(self, request: Request[Any, Any, Any]) -> Response[Any]:
        """End the session (on the server too) and show the sign-in page."""
        await end_browser_session(request)
        return Redirect("/login", status_code=303)

    @get("/", exclude_from_auth=True, guards=[signed_in], name="web_root")
    async def root(self, request: Request[Any, Any, Any]) -> Response[Any]:
        """The home page of the person's first workspace."""
        rows = await accounts.workspaces_of(hub_of(request), principal(request).user_id)
        if not rows:
            return Template(
                template_name="errors/error.html",
                context={
                    "status": 403,
                    "heading": "No workspace yet",
                    "issues": [],
                    "message": "You are not a member of any workspace.",
                    "hint": "Ask an owner of a workspace to add you.",
                    "me": None,
                },
                status_code=403,
            )
        return Redirect(ws_path(rows[0]["id"], "/"), status_code=303)
