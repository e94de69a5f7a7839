"""Helpers of the web UI's in-process tests: people signed in through the sign-in form.

Pages are fetched with httpx over the ASGI transport (no browser: the browser tests are in
``tests/browser/``). A form is posted with the CSRF token that the ``csrftoken`` cookie
carries, as the page's hidden ``_csrf_token`` field does; an htmx request sends it in
``X-CSRFToken`` with ``HX-Request: true``.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import httpx
from sqlalchemy import update

from hub.db import accounts
from hub.security.accounts import hash_password
from tests.api_kit import PASSWORD, Api, Caller

BASE = "http://testserver.local"


@functools.cache
def password_hash() -> str:
    """The argon2 hash of :data:`tests.api_kit.PASSWORD`, computed once per test process."""
    return hash_password(PASSWORD)


async def give_password(api: Api, caller: Caller) -> None:
    """Let ``caller`` sign in with :data:`tests.api_kit.PASSWORD`."""
    digest = password_hash()
    await api.hub.db.write(lambda c: accounts.set_password_hash(c, caller.user_id, digest))


def browser(api: Api) -> httpx.AsyncClient:
    """A client with its own cookie jar on the app (redirects not followed)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app), base_url=BASE)


def csrf_token(client: httpx.AsyncClient) -> str:
    """The CSRF token the client's cookie carries (what the page's forms send back)."""
    return str(client.cookies.get("csrftoken", ""))


async def signed_in(api: Api, caller: Caller) -> httpx.AsyncClient:
    """A browser signed in as ``caller`` through the sign-in form."""
    await give_password(api, caller)
    client = browser(api)
    form = await client.get("/login")
    assert form.status_code == 200, form.text
    answer = await client.post(
        "/login",
        data={"email": caller.email, "password": PASSWORD, "_csrf_token": csrf_token(client)},
    )
    assert answer.status_code == 303, answer.text
    return client


async def post_form(
    client: httpx.AsyncClient, path: str, data: dict[str, Any] | None = None, **kwargs: Any
) -> httpx.Response:
    """Submit a page's form (with its CSRF field)."""
    return await client.post(
        path, data={**(data or {}), "_csrf_token": csrf_token(client)}, **kwargs
    )


def htmx_headers(client: httpx.AsyncClient, current: str = "/") -> dict[str, str]:
    """The headers htmx sends from a page at ``current``."""
    return {
        "hx-request": "true",
        "hx-current-url": BASE + current,
        "x-csrftoken": csrf_token(client),
    }


FORM_CONTROL = re.compile(r"<(input|select|textarea|button)\b[^>]*>", re.IGNORECASE)


def write_controls(html: str) -> list[str]:
    """The controls of a page that change something: forms posting (other than signing
    out) and htmx attributes that send unsafe methods."""
    found = []
    for match in re.finditer(r"<form\b[^>]*>", html, re.IGNORECASE):
        tag = match.group(0)
        if re.search(r'method="post"', tag, re.IGNORECASE) and 'action="/logout"' not in tag:
            found.append(tag)
    found.extend(re.findall(r"<[^>]+\bhx-(?:post|put|patch|delete)=[^>]*>", html))
    return found


async def set_name(api: Api, caller: Caller, name: str) -> None:
    """Give ``caller``'s account the display name ``name`` (an XSS payload, say)."""
    stmt = update(accounts.users).where(accounts.users.c.id == caller.user_id).values(name=name)
    await api.hub.db.write(lambda c: c.execute(stmt))
