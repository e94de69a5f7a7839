"""Authentication: API tokens, browser sessions, CSRF, secure cookies, and the login routes.

- **API tokens** (``Authorization: Bearer hub_...``) are looked up by their SHA-256; a token
  acts in its own workspace with its user's role there, narrowed by its own limits (an
  expiry: 401 after it; a scope and a flow: see :mod:`hub.api.deps`).
- **Browser sessions** live on the server (the ``sessions`` table, see
  :mod:`hub.services.accounts`); the ``hub_session`` cookie carries only the session's
  random secret, inside Litestar's client-side session cookie (AES-GCM, so signed and
  encrypted, with an authenticated expiry) keyed by a secret derived with HKDF from the
  newest secrets-at-rest key (``HUB_SECRET_KEY``, or the key file in the data folder), so
  every process of a hub accepts the same cookies. Logging out revokes the session on the
  server (a copied cookie stops working); sessions end after ``HUB_SESSION_IDLE_MINUTES``
  unused and ``HUB_SESSION_MAX_HOURS`` after the login; changing the password ends the
  user's other sessions; each login starts a new session (ending the one the browser had).
- **Logins and password changes** are throttled per account and per client address
  (:mod:`hub.api.throttle`, the address from :mod:`hub.api.proxy`) before any hashing, and
  argon2 runs in the app's :class:`~hub.security.accounts.HashGate`: at most
  ``HUB_MAX_CONCURRENT_HASHES`` at once, in a thread, more answered 429 at once.
- **CSRF**: unsafe requests that do not carry a bearer token must send the ``csrftoken``
  cookie's value back in the ``X-CSRFToken`` header (Litestar's double-submit check, HMAC
  signed); bearer-token calls and webhooks are exempt (a browser never adds that header on
  its own, and webhooks carry no cookie-based authority).
- **Cookies**: ``hub_session`` (HttpOnly, SameSite=Lax) and ``csrftoken`` (SameSite=Strict,
  readable by the page's script) are marked ``Secure`` by :class:`SecureCookies` whenever
  the request came over HTTPS (:func:`hub.api.proxy.is_https`) or ``HUB_PUBLIC_URL`` is an
  https:// address.
"""

from __future__ import annotations

import dataclasses
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
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from litestar.utils.scope.state import ScopeState

from hub.api.deps import PRINCIPAL_DEPENDENCIES, SECURITY, Principal, hub_of
from hub.api.errors import ApiError, error_responses
from hub.api.models import CsrfToken, LoginBody, Me, PasswordChange, UserInfo, WorkspaceInfo
from hub.api.proxy import client_key, is_https
from hub.api.scopes import refuse_unsafe_method
from hub.api.throttle import LoginThrottle, RedisLoginThrottle, Throttled
from hub.security.accounts import TOKEN_PREFIX, HashesBusy, HashGate, normalize_email
from hub.security.secrets import KEY_FILE
from hub.services import accounts
from hub.services.errors import Invalid
from hub.settings import Settings

SESSION_COOKIE = "hub_session"
CSRF_COOKIE = "csrftoken"
CSRF_HEADER = "x-csrftoken"
SESSION_KEY = "sid"  # the one value in the session cookie: the session's secret
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
    """The cookie that carries the session's secret (HttpOnly, SameSite=Lax; ``Secure``
    with an https:// public address, and per request by :class:`SecureCookies`)."""
    return CookieBackendConfig(
        secret=derived_secret(settings, "hub session cookie"),
        key=SESSION_COOKIE,
        max_age=max(60, int(settings.session_max_hours * 3600)),
        httponly=True,
        secure=settings.public_https,
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
        cookie_secure=settings.public_https,
        exclude=["^/hooks/"],
    )


class SecureCookies:
    """Marks the session and CSRF cookies ``Secure`` on responses to HTTPS requests.

    Litestar's cookie settings are fixed per app; whether a request came over HTTPS is
    known per request (a trusted proxy's ``X-Forwarded-Proto``), so the ``Set-Cookie``
    headers are amended on their way out.
    """

    NAMES = (SESSION_COOKIE.encode(), CSRF_COOKIE.encode())

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; amend the cookies of an HTTPS request's response."""
        if scope["type"] != ScopeType.HTTP or not is_https(scope, self.settings):
            await self.app(scope, receive, send)
            return

        async def send_secure(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (name, self._secure(value) if name.lower() == b"set-cookie" else value)
                    for name, value in message.get("headers", ())
                ]
            await send(message)

        await self.app(scope, receive, send_secure)

    def _secure(self, value: bytes) -> bytes:
        if not value.startswith(self.NAMES):
            return value
        attributes = [part.strip().lower() for part in value.split(b";")[1:]]
        return value if b"secure" in attributes else value + b"; Secure"


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
        if found["expired"]:
            raise ApiError(401, "unauthorized", "the API token has expired")
        return Principal(
            user_id=found["user_id"],
            email=found["email"],
            name=found["name"],
            via="token",
            token_id=found["token_id"],
            token_workspace=found["workspace_id"],
            token_role=found["role"],
            token_scope=found["scope"],
            token_flow=found["flow_id"],
            token_expires=found["expires_at"],
        )
    secret = session_secret(connection.scope)
    if secret is None:
        return None
    user = await accounts.session_user(hub, secret)
    if user is None:
        return None
    return Principal(
        user_id=user["id"],
        email=user["email"],
        name=user["name"],
        via="session",
        session_id=user["session_id"],
    )


def session_secret(scope: Scope) -> str | None:
    """The session secret the request's cookie carries, if any."""
    session = scope.get("session")
    if not isinstance(session, dict):
        return None
    secret = session.get(SESSION_KEY)
    return secret if isinstance(secret, str) and secret else None


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
        handler = connection.scope.get("route_handler")
        method = str(connection.scope.get("method", "GET"))
        refuse_unsafe_method(principal, method, getattr(handler, "name", None))  # 403
        return AuthenticationResult(user=principal, auth=principal.via)


@dataclasses.dataclass
class LoginGuards:
    """What an app keeps to protect passwords: the throttle (in Redis when the hub has
    it) and the argon2 gate."""

    throttle: LoginThrottle | RedisLoginThrottle
    gate: HashGate


def login_guards(connection: ASGIConnection[Any, Any, Any, Any]) -> LoginGuards:
    """The app's :class:`LoginGuards`, made from its hub's settings on first use."""
    state = connection.app.state
    guards = state.get("login_guards")
    if not isinstance(guards, LoginGuards):
        hub = hub_of(connection)
        local = LoginThrottle.from_settings(hub.settings)
        throttle: LoginThrottle | RedisLoginThrottle = local
        if hub.redis is not None:
            throttle = RedisLoginThrottle(hub.redis, local)
        guards = LoginGuards(throttle, HashGate(hub.settings.max_concurrent_hashes))
        state["login_guards"] = guards
    return guards


def throttled(exc: Throttled) -> ApiError:
    """The 429 of a throttled password check."""
    error = ApiError(429, "rate_limited", str(exc))
    error.headers = {"retry-after": str(exc.retry_after)}
    return error


def busy(exc: HashesBusy) -> ApiError:
    """The 429 of a password check refused because every argon2 slot is taken."""
    error = ApiError(
        429,
        "rate_limited",
        f"the server is checking as many passwords as it allows ({exc}); try again in a moment",
    )
    error.headers = {"retry-after": "1"}
    return error


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


async def password_login(
    connection: ASGIConnection[Any, Any, Any, Any], email: str, password: str
) -> dict[str, Any]:
    """The user whose e-mail and password these are: throttled per account and client
    address (429 with ``Retry-After``), 429 at once when every argon2 slot is busy, 401 for
    a wrong pair. The one password check of the API's and the web UI's sign-in."""
    hub = hub_of(connection)
    guards = login_guards(connection)
    key = "email:" + normalize_email(email)
    address = client_key(connection.scope, hub.settings)
    try:
        await guards.throttle.check(key, address)
        user = await accounts.login(hub, normalize_email(email), password, guards.gate)
    except Throttled as exc:
        raise throttled(exc) from None
    except HashesBusy as exc:
        raise busy(exc) from None
    if user is None:
        await guards.throttle.failed(key, address)
        raise ApiError(401, "unauthorized", "wrong email or password")
    await guards.throttle.succeeded(key)
    return user


async def password_change(
    connection: ASGIConnection[Any, Any, Any, Any], principal: Principal, current: str, new: str
) -> None:
    """Change the caller's password after checking ``current``, ending every other
    session of the user (all of them for a token's caller): throttled per account and
    client address like :func:`password_login` (429 with ``Retry-After``), 429 at once when
    every argon2 slot is busy, :class:`~hub.services.errors.Invalid` for a wrong current
    password (counted as a failure). The one password change of the API and the web UI."""
    hub = hub_of(connection)
    guards = login_guards(connection)
    account = "user:" + principal.user_id
    address = client_key(connection.scope, hub.settings)
    try:
        await guards.throttle.check(account, address)
        await accounts.change_password(
            hub, principal.user_id, current, new, guards.gate, keep_session=principal.session_id
        )
    except Throttled as exc:
        raise throttled(exc) from None
    except HashesBusy as exc:
        raise busy(exc) from None
    except Invalid:
        await guards.throttle.failed(account, address)
        raise
    await guards.throttle.succeeded(account)


async def start_browser_session(request: Request[Any, Any, Any], user_id: str) -> None:
    """Start a new server-side session for ``user_id`` and set its cookie, ending the
    session the browser had (a login never continues another session)."""
    hub = hub_of(request)
    previous = session_secret(request.scope)
    if previous is not None:
        await accounts.end_session(hub, previous)
    secret = await accounts.start_session(hub, user_id)
    request.set_session({SESSION_KEY: secret})


async def end_browser_session(request: Request[Any, Any, Any]) -> None:
    """Revoke the browser's session on the server and clear its cookie."""
    secret = session_secret(request.scope)
    if secret is not None:
        await accounts.end_session(hub_of(request), secret)
    request.clear_session()


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
        """Start a browser session (sets the ``hub_session`` cookie).

        Throttled per account and per client address (429 with ``Retry-After``), and 429
        at once when the server is checking as many passwords as it allows.
        """
        hub = hub_of(request)
        user = await password_login(request, data.email, data.password)
        await start_browser_session(request, user["id"])
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
        """End the browser session: revoked on the server (a copy of the cookie stops
        working too), and the cookie cleared."""
        await end_browser_session(request)


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
        responses=error_responses(400, 401, 403, 422, 429),
    )
    async def change_password(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        data: JSONBody[PasswordChange],
    ) -> None:
        """Change one's password: ends every other browser session of the user (all of
        them when called with a token). Wrong current passwords are throttled like logins
        (429 with ``Retry-After``)."""
        await password_change(request, principal, data.current, data.new)
