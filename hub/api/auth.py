"""Authentication: API tokens, browser sessions, CSRF, and the login routes.

- **API tokens** (``Authorization: Bearer hub_...``) are looked up by their SHA-256; a token
  acts in its own workspace with its user's role there.
- **Browser sessions** are Litestar's client-side session cookie (``hub_session``: AES-GCM,
  so signed and encrypted, with an authenticated expiry), keyed by a secret derived with
  HKDF from the newest secrets-at-rest key (``HUB_SECRET_KEY``, or the key file in the data
  folder), so every process of a hub accepts the same cookies. The session holds the user id
  and a fingerprint of their password hash: changing the password ends the other sessions.
- **CSRF**: unsafe requests that do not carry a bearer token must send the ``csrftoken``
  cookie's value back in the ``X-CSRFToken`` header (Litestar's double-submit check, HMAC
  signed); bearer-token calls and webhooks are exempt (a browser never adds that header on
  its own, and webhooks carry no cookie-based authority).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from litestar import Controller, Request, get, post
from litestar.config.csrf import CSRFConfig
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.enums import ScopeType
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.middleware.csrf import CSRFMiddleware
from litestar.middleware.session.client_side import CookieBackendConfig
from litestar.params import JSONBody
from litestar.types import Receive, Scope, Send
from litestar.utils.scope.state import ScopeState

from hub.api.deps import PRINCIPAL_DEPENDENCIES, SECURITY, Principal, hub_of
from hub.api.errors import ApiError, error_responses
from hub.api.models import CsrfToken, LoginBody, Me, PasswordChange, UserInfo, WorkspaceInfo
from hub.security.accounts import TOKEN_PREFIX, normalize_email
from hub.security.secrets import KEY_FILE
from hub.services import accounts
from hub.settings import Settings

SESSION_COOKIE = "hub_session"
CSRF_COOKIE = "csrftoken"
CSRF_HEADER = "x-csrftoken"
SESSION_DAYS = 7
PUBLIC_PATHS = ["^/schema"]  # the OpenAPI pages; other public routes say exclude_from_auth


def _key_material(settings: Settings) -> bytes:
    keys = [k for k in settings.secret_key if k]
    if not keys:
        path = settings.data_dir / KEY_FILE
        keys = [k for k in path.read_text().split() if k] if path.exists() else []
    if not keys:
        raise RuntimeError("no secret key: set HUB_SECRET_KEY or let the hub create its key file")
    return keys[0].encode()


def derived_secret(settings: Settings, purpose: str, length: int = 32) -> bytes:
    """A secret for ``purpose`` derived (HKDF-SHA256) from the newest secrets-at-rest key."""
    return HKDF(
        algorithm=hashes.SHA256(), length=length, salt=b"hub", info=purpose.encode()
    ).derive(_key_material(settings))


def session_config(settings: Settings) -> CookieBackendConfig:
    """Signed, encrypted session cookies (HttpOnly, SameSite=Lax)."""
    return CookieBackendConfig(
        secret=derived_secret(settings, "hub session cookie"),
        key=SESSION_COOKIE,
        max_age=SESSION_DAYS * 86400,
        httponly=True,
        samesite="lax",
        exclude=["^/hooks/", "^/healthz$", "^/readyz$", "^/metrics$"],
    )


def csrf_config(settings: Settings) -> CSRFConfig:
    """Litestar's CSRF check; webhooks are excluded by path."""
    return CSRFConfig(
        secret=derived_secret(settings, "hub csrf").hex(),
        cookie_name=CSRF_COOKIE,
        header_name=CSRF_HEADER,
        cookie_samesite="strict",
        exclude=["^/hooks/"],
    )


def bearer_of(scope: Scope) -> str | None:
    """The value of an ``Authorization`` header, if the request has one."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            return value.decode("latin-1")
    return None


class CSRFUnlessBearer(CSRFMiddleware):
    """Litestar's CSRF middleware, skipped for requests that carry an Authorization header.

    A browser never adds that header to a cross-site request by itself, and such a request
    is authenticated by its token alone: a session cookie riding along is ignored.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the CSRF token unless the request authenticates with a header."""
        if scope["type"] == ScopeType.HTTP and bearer_of(scope) is not None:
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


async def resolve_principal(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    """The caller from a bearer token, else from the session cookie; None when neither.

    A malformed or unknown token is a 401 even when a session is present.
    """
    hub = hub_of(connection)
    header = connection.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token.startswith(TOKEN_PREFIX):
            raise ApiError(401, "unauthorized", "the Authorization header must be 'Bearer hub_...'")
        found = await accounts.token_principal(hub, token)
        if found is None:
            raise ApiError(401, "unauthorized", "the API token is unknown or was revoked")
        return Principal(
            user_id=found["user_id"],
            email=found["email"],
            name=found["name"],
            via="token",
            token_id=found["token_id"],
            token_workspace=found["workspace_id"],
            token_role=found["role"],
        )
    session = connection.scope.get("session")
    if not isinstance(session, dict) or "uid" not in session:
        return None
    user = await accounts.session_user(hub, str(session["uid"]), session.get("pw"))
    if user is None:
        return None
    return Principal(user_id=user["id"], email=user["email"], name=user["name"], via="session")


class HubAuthMiddleware(AbstractAuthenticationMiddleware):
    """Every route needs a token or a session unless it says ``exclude_from_auth=True``."""

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        """Resolve the caller or answer 401."""
        principal = await resolve_principal(connection)
        if principal is None:
            raise ApiError(
                401,
                "unauthorized",
                "authentication required: an API token (Authorization: Bearer hub_...) "
                "or a session (POST /api/auth/login)",
            )
        return AuthenticationResult(user=principal, auth=principal.via)


class LoginThrottle:
    """At most ``attempts`` failed logins per email per ``window`` seconds (per process)."""

    def __init__(self, attempts: int = 10, window: float = 300.0) -> None:
        self.attempts = attempts
        self.window = window
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        failures = self._failures.setdefault(key, deque())
        cutoff = time.monotonic() - self.window
        while failures and failures[0] < cutoff:
            failures.popleft()
        return failures

    def check(self, key: str) -> None:
        """429 when the email has failed too often lately."""
        if len(self._recent(key)) >= self.attempts:
            error = ApiError(429, "rate_limited", "too many failed logins; try again later")
            error.headers = {"retry-after": str(int(self.window))}
            raise error

    def failed(self, key: str) -> None:
        """Count a failed attempt."""
        self._recent(key).append(time.monotonic())
        if len(self._failures) > 10_000:  # bound memory against made-up emails
            self._failures.pop(next(iter(self._failures)))

    def succeeded(self, key: str) -> None:
        """Forget the failures of an email after a good login."""
        self._failures.pop(key, None)


THROTTLE = LoginThrottle()


async def me_of(hub: Any, principal: NamedDependency[Principal]) -> Me:
    """The caller's user and workspaces (a token sees only its own workspace)."""
    rows = await accounts.workspaces_of(hub, principal.user_id)
    if principal.via == "token":
        rows = [r for r in rows if r["id"] == principal.token_workspace]
    return Me(
        user=UserInfo(id=principal.user_id, email=principal.email, name=principal.name),
        via="token" if principal.via == "token" else "session",
        workspaces=[WorkspaceInfo(id=r["id"], name=r["name"], role=r["role"]) for r in rows],
        token_workspace=principal.token_workspace,
    )


class AuthController(Controller):
    """Log in and out with a password; the CSRF token; who am I."""

    path = "/api/auth"
    tags = ["auth"]

    @get(
        "/csrf",
        name="auth_csrf",
        operation_id="auth_csrf",
        exclude_from_auth=True,
        security=[],
        responses=error_responses(400),
    )
    async def csrf(self, request: Request[Any, Any, Any]) -> CsrfToken:
        """The CSRF token (also set as the ``csrftoken`` cookie) for cookie-based calls."""
        token = ScopeState.from_scope(request.scope).csrf_token
        return CsrfToken(token=token if isinstance(token, str) else "")

    @post(
        "/login",
        name="auth_login",
        operation_id="auth_login",
        exclude_from_auth=True,
        security=[],
        status_code=200,
        responses=error_responses(400, 401, 403, 429),
    )
    async def login(self, request: Request[Any, Any, Any], data: JSONBody[LoginBody]) -> Me:
        """Start a browser session (sets the ``hub_session`` cookie)."""
        hub = hub_of(request)
        key = normalize_email(data.email)
        THROTTLE.check(key)
        user = await accounts.login(hub, key, data.password)
        if user is None:
            THROTTLE.failed(key)
            raise ApiError(401, "unauthorized", "wrong email or password")
        THROTTLE.succeeded(key)
        fingerprint = accounts.password_fingerprint(user["password_hash"])
        request.set_session({"uid": user["id"], "pw": fingerprint})
        principal = Principal(user["id"], user["email"], user["name"], "session")
        return await me_of(hub, principal)

    @post(
        "/logout",
        name="auth_logout",
        operation_id="auth_logout",
        status_code=204,
        security=SECURITY,
        responses=error_responses(401, 403),
    )
    async def logout(self, request: Request[Any, Any, Any]) -> None:
        """End the browser session (clears the cookie)."""
        request.clear_session()


class MeController(Controller):
    """The caller's own account."""

    path = "/api/me"
    tags = ["auth"]
    security = SECURITY
    dependencies = PRINCIPAL_DEPENDENCIES

    @get("/", name="me", operation_id="me", responses=error_responses(401))
    async def me(
        self, request: Request[Any, Any, Any], principal: NamedDependency[Principal]
    ) -> Me:
        """Who is calling, how, and their workspaces with roles."""
        return await me_of(hub_of(request), principal)

    @post(
        "/password",
        name="me_password",
        operation_id="me_password",
        status_code=204,
        responses=error_responses(400, 401, 403, 422),
    )
    async def change_password(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        data: JSONBody[PasswordChange],
    ) -> None:
        """Change one's password (ends every other browser session of the user)."""
        hub = hub_of(request)
        new_hash = await accounts.change_password(hub, principal.user_id, data.current, data.new)
        if principal.via == "session":
            fingerprint = accounts.password_fingerprint(new_hash)
            request.set_session({"uid": principal.user_id, "pw": fingerprint})
