"""The API app: one Litestar app per hub, with the plugins' routes mounted.

:func:`hub.app.create_app` adds the web UI's pages (:mod:`hub.web`) to it.

Middleware, outermost first: ``Secure`` on the session and CSRF cookies of HTTPS requests,
the session cookie (loaded and saved), authentication (every
route needs an API token or a session unless it says ``exclude_from_auth=True``: health,
webhooks, login, the OpenAPI pages), then the CSRF check for cookie-authenticated unsafe
requests, then the JSON depth of the request body (:mod:`hub.api.bodies`, before any
handler decodes it; bodies are capped at ``HUB_MAX_REQUEST_BYTES``). Plugins' routes
(``hub_routes``) are authenticated too unless they opt out.
The OpenAPI 3.1 document is at ``/schema/openapi.json``, an interactive page at ``/schema``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from litestar import Litestar
from litestar.config.compression import CompressionConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.handlers import HTTPRouteHandler
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme, Tag
from litestar.template import TemplateConfig

from hub import __version__
from hub.api.accounts import MembersController, TokensController, WorkspacesController
from hub.api.audit import AuditController
from hub.api.auth import (
    PUBLIC_PATHS,
    AuthController,
    CSRFUnlessBearer,
    HubAuthMiddleware,
    MeController,
    SecureCookies,
    csrf_config,
    session_config,
)
from hub.api.bodies import BodyDepthMiddleware
from hub.api.connections import ConnectionsController, OAuth2Controller
from hub.api.connectors import ConnectorsController
from hub.api.errors import (
    flow_error_handler,
    http_exception_handler,
    internal_error_handler,
    service_error_handler,
)
from hub.api.flows import FlowsController
from hub.api.health import HealthController
from hub.api.inputs import NulCharacterMiddleware
from hub.api.metrics import metrics_endpoint, metrics_of
from hub.api.reference_pages import ScalarPage, SwaggerPage
from hub.api.runs import RunsController
from hub.api.steps import StepTestsController
from hub.api.trials import TrialsController
from hub.api.webhooks import webhook
from hub.flows import FlowError
from hub.runtime import Hub, settle_gc
from hub.services import system
from hub.services.errors import ServiceError

API_CONTROLLERS: list[Any] = [
    AuthController,
    MeController,
    WorkspacesController,
    MembersController,
    TokensController,
    FlowsController,
    RunsController,
    StepTestsController,
    TrialsController,
    ConnectorsController,
    ConnectionsController,
    OAuth2Controller,
    AuditController,
]


def openapi_config() -> OpenAPIConfig:
    """OpenAPI 3.1 at /schema/openapi.json; Scalar at /schema, Swagger UI at /schema/swagger."""
    return OpenAPIConfig(
        title="Integration hub",
        version=__version__,
        description=(
            "Flows, runs, connections and accounts of the integration hub. Authenticate with "
            "`Authorization: Bearer hub_...` (an API token) or a session cookie from "
            "`POST /api/auth/login` (then send the `csrftoken` cookie back as `X-CSRFToken` "
            "on unsafe requests). Errors: `{error: {code, message, details}}`."
        ),
        path="/schema",
        render_plugins=[ScalarPage(path="/"), SwaggerPage(path="/swagger")],
        components=Components(
            security_schemes={
                "bearer": SecurityScheme(
                    type="http", scheme="bearer", bearer_format="hub_ token", description="API"
                ),
                "session": SecurityScheme(
                    type="apiKey",
                    name="hub_session",
                    security_scheme_in="cookie",
                    description="Browser session from POST /api/auth/login",
                ),
            }
        ),
        tags=[
            Tag(name="auth", description="Log in, sessions, CSRF, who am I"),
            Tag(name="flows", description="Flow documents and their versions"),
            Tag(name="runs", description="Runs, their steps, live events, step tests"),
            Tag(name="connections", description="Credentials, write-only secrets, OAuth2"),
        ],
    )


def per_method_operation_ids(handler: Any) -> Any:
    """A copy of a multi-method route whose one ``operation_id`` gets a per-method suffix.

    OpenAPI needs an id per operation (``webhook`` -> ``webhook_post``, ``webhook_get`` ...);
    other handlers are returned as they are.
    """
    if not isinstance(handler, HTTPRouteHandler) or len(handler.http_methods) < 2:
        return handler
    base = handler.operation_id
    if not isinstance(base, str):
        return handler
    fixed = copy.copy(handler)
    fixed.operation_id = lambda _handler, method, _path: f"{base}_{method.lower()}"
    return fixed


def build_app(
    hub: Hub,
    *,
    manage_hub: bool = True,
    bootstrap: bool = True,
    pages: Sequence[Any] = (),
    compression: CompressionConfig | None = None,
    template_config: TemplateConfig[Any] | None = None,
    exception_handlers: dict[Any, Any] | None = None,
) -> Litestar:
    """Build the app for ``hub``; with ``manage_hub`` the app starts and stops the hub.

    ``pages`` are more route handlers (the web UI's, from :func:`hub.app.create_app`), with
    the ``template_config`` they render with, the ``compression`` of responses, and
    ``exception_handlers`` that take over from the API's (pages for unknown addresses).
    On start the app checks that the secret key decrypts the stored secrets (failing loudly,
    naming HUB_SECRET_KEY) and, with ``bootstrap``, creates the first owner of an empty hub.
    """
    handlers: list[Any] = [HealthController, metrics_endpoint, webhook, *API_CONTROLLERS]
    handlers.extend(pages)
    metrics_of(hub)  # its engine listener counts runs and steps from the start
    for extra in hub.pm.hook.hub_routes():
        handlers.extend(extra or [])
    handlers = [per_method_operation_ids(h) for h in handlers]

    async def on_startup() -> None:
        if manage_hub:
            await hub.start()
            hub.start_triggers()
        await system.verify_secret_key(hub)
        if bootstrap:
            await system.ensure_first_owner(hub)
        if manage_hub:
            settle_gc(hub.settings)  # the webhook p99 (bench/webhooks.py), steps' CPU

    async def on_shutdown() -> None:
        if manage_hub:
            await hub.stop()

    async def provide_hub() -> Hub:
        return hub

    settings = hub.settings
    return Litestar(
        route_handlers=handlers,
        dependencies={"hub": Provide(provide_hub, use_cache=True)},
        state=State({"hub": hub}),
        middleware=[
            NulCharacterMiddleware(),
            DefineMiddleware(SecureCookies, settings=settings),
            session_config(settings).middleware,
            DefineMiddleware(HubAuthMiddleware, exclude=PUBLIC_PATHS),
            DefineMiddleware(CSRFUnlessBearer, config=csrf_config(settings)),
            BodyDepthMiddleware(settings.max_json_depth),
        ],
        request_max_body_size=settings.max_request_bytes,
        exception_handlers={
            HTTPException: http_exception_handler,
            ServiceError: service_error_handler,
            FlowError: flow_error_handler,
            Exception: internal_error_handler,
            **(exception_handlers or {}),
        },
        on_startup=[on_startup],
        on_shutdown=[on_shutdown],
        openapi_config=openapi_config(),
        compression_config=compression,
        template_config=template_config,
        debug=False,
    )
