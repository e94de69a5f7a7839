"""The limits an API token may carry, and where each is enforced.

A token without limits acts with its user's role in its workspace, until revoked (every
token made before limits existed is one). A token may carry, in any combination:

- an **expiry**: after it the token is refused with 401 (:mod:`hub.api.auth`);
- the scope ``read``: only safe methods (GET, HEAD, OPTIONS), on every route, workspace or not
  (:func:`refuse_unsafe_method`); in a workspace it acts as a viewer at most, so the
  services' role checks refuse changes too;
- the scope ``runs``: in a workspace, only listing, reading, following and starting runs
  (starting still needs the editor role); nothing else;
- one **flow**: in a workspace, only that flow's routes (``/flows/{flow_id}...``) and its
  runs (listing with ``?flow_id=`` that flow, starting it, reading a run of it).

A token with any limit cannot create tokens (a limited token must not mint an unlimited
one) nor change its user's password. Each refusal is a 403 that says which limit refused.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request
from litestar.connection import ASGIConnection

from hub.api.errors import ApiError

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
RUN_ROUTES = frozenset({"runs_list", "runs_get", "runs_events", "runs_start"})
RUN_ID_ROUTES = frozenset({"runs_get", "runs_events", "runs_cancel", "runs_retry", "runs_replay"})
LIMITED_REFUSED = frozenset({"tokens_create", "me_password"})


class _FlowOf(msgspec.Struct):
    flow_id: str = ""


def forbidden(message: str) -> ApiError:
    """A 403 that names the token's limit."""
    return ApiError(403, "forbidden", message)


def is_limited(principal: Any) -> bool:
    """True when the caller is a token with a scope, a flow or an expiry."""
    return principal.via == "token" and bool(
        principal.token_scope or principal.token_flow or principal.token_expires
    )


def refuse_unsafe_method(principal: Any, method: str, route_name: str | None) -> None:
    """The limits that hold on every route: a ``read`` token only reads; a limited token
    neither creates tokens nor changes a password."""
    if principal.via != "token":
        return
    if principal.token_scope == "read" and method.upper() not in SAFE_METHODS:
        raise forbidden("this API token is read-only: it can only read (GET, HEAD, OPTIONS)")
    if route_name in LIMITED_REFUSED and is_limited(principal):
        raise forbidden(
            "this API token has limits (a scope, a flow or an expiry): it cannot "
            "create tokens or change a password"
        )


def capped_role(principal: Any, role: str | None) -> str | None:
    """The role a token acts with in its workspace: a ``read`` token is a viewer at most."""
    if principal.via == "token" and principal.token_scope == "read" and role is not None:
        return "viewer"
    return role


async def _body_flow(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    if not isinstance(connection, Request):
        raise forbidden("this API token is limited to one flow")
    try:
        return msgspec.json.decode(await connection.body(), type=_FlowOf).flow_id
    except (msgspec.DecodeError, RecursionError):
        raise ApiError(400, "bad_request", "the body is not a valid run request") from None


async def check_workspace_route(
    connection: ASGIConnection[Any, Any, Any, Any],
    principal: Any,
    route_name: str | None,
    run_flow: Any,
) -> None:
    """The limits of a token on a workspace route; ``run_flow(run_id)`` gives a run's flow
    id (awaited only for a flow-limited token on a route of one run)."""
    if principal.via != "token":
        return
    if principal.token_scope == "runs" and route_name not in RUN_ROUTES:
        raise forbidden("this API token may only list, read and start runs")
    flow = principal.token_flow
    if not flow:
        return
    limited = f"this API token is limited to the flow {flow!r}"
    if "flow_id" in connection.path_params:
        if str(connection.path_params["flow_id"]) != flow:
            raise forbidden(limited)
    elif route_name == "runs_list":
        if connection.query_params.get("flow_id") != flow:
            raise forbidden(f"{limited}: list its runs with ?flow_id={flow}")
    elif route_name == "runs_start":
        if await _body_flow(connection) != flow:
            raise forbidden(limited)
    elif route_name in RUN_ID_ROUTES:
        if await run_flow(str(connection.path_params.get("run_id", ""))) != flow:
            raise forbidden(limited)
    else:
        raise forbidden(limited)
