"""The web UI's route handlers, mounted by :func:`hub.app.create_app` beside the API.

One Router holds every page: it keeps them out of the OpenAPI document, answers their
errors as HTML (:mod:`hub.web.errors`), and sets the security headers of every page (a
strict content security policy: no inline script or style, nothing from another origin).
Static files are served from ``ui/static/`` under ``/static/``.
"""

from __future__ import annotations

from typing import Any

from litestar import Router
from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router

from hub.web.builder.catalog import CatalogPages
from hub.web.builder.command_pages import CommandPages
from hub.web.builder.expressions import ExpressionPages
from hub.web.builder.flow_panel import FlowPanelPages
from hub.web.builder.page import BuilderPages, NewFlowPages
from hub.web.builder.step_panel import StepPanelPages
from hub.web.builder.trigger_panel import TriggerPanelPages
from hub.web.builder.tryit import TryPages
from hub.web.builder.yaml_tab import YamlPages
from hub.web.connections import ConnectionPages
from hub.web.connectors import ConnectorPages
from hub.web.errors import PAGE_EXCEPTION_HANDLERS
from hub.web.flows import FlowPages
from hub.web.headers import CONTENT_SECURITY_POLICY, SECURITY_HEADERS
from hub.web.home import HomePages
from hub.web.members import AuditPages, MemberPages
from hub.web.profile import ProfilePages
from hub.web.runs import RunPages
from hub.web.session import SessionPages
from hub.web.templates import STATIC_ROOT

__all__ = ["CONTENT_SECURITY_POLICY", "PAGE_CONTROLLERS", "web_handlers"]

PAGE_CONTROLLERS: list[Any] = [
    SessionPages,
    HomePages,
    FlowPages,
    NewFlowPages,
    BuilderPages,
    CommandPages,
    ExpressionPages,
    CatalogPages,
    TriggerPanelPages,
    FlowPanelPages,
    TryPages,
    StepPanelPages,
    YamlPages,
    RunPages,
    ConnectionPages,
    ConnectorPages,
    MemberPages,
    AuditPages,
    ProfilePages,
]


def web_handlers() -> list[Any]:
    """The pages (one Router) and the static files."""
    pages = Router(
        path="/",
        route_handlers=PAGE_CONTROLLERS,
        include_in_schema=False,
        response_headers=SECURITY_HEADERS,
        exception_handlers=PAGE_EXCEPTION_HANDLERS,
    )
    static = create_static_files_router(
        path="/static",
        directories=[STATIC_ROOT],
        name="static",
        opt={"exclude_from_auth": True},
        include_in_schema=False,
        cache_control=CacheControlHeader(max_age=3600, public=True),
    )
    return [pages, static]
