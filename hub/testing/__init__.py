"""Pytest helpers for plugin authors (loaded as a pytest plugin through ``pytest11``).

Installing the hub makes these fixtures available in every pytest session:

- ``hub_plugins``: the plugins a test hub loads. The default (None) means every installed
  plugin (entry points in the group ``hub``); a plugin's ``conftest.py`` overrides it to load
  only the plugin under test: ``return [my_package.plugin]``.
- ``hub_settings``: settings on a fresh data folder; loopback addresses are allowed through the
  SSRF guard (``HUB_ALLOW_HOSTS``) so that tests can reach local stand-in servers.
- ``hub_app``: a started :class:`hub.runtime.Hub` (SQLite, in-process executor).
- ``hub_db``: that hub's :class:`hub.db.database.Database`.
- ``hub_client``: an :class:`httpx.AsyncClient` over ASGI to the hub's HTTP app.

Helpers: :func:`run_action` runs one action against its schemas, as the engine would, without
a run; :func:`check_examples` checks that an action's declared examples validate;
:func:`run_poll` calls a poll trigger once; :func:`run_flow` runs a flow document in a hub;
:func:`check_flow_file` validates a flow file; :func:`started_hub` starts a hub outside the
fixtures; :func:`service_missing` skips a test whose service is not running here, except in
CI, where it fails; :func:`serve_asgi` serves a stand-in ASGI app on a free loopback port.
:mod:`hub.testing.subscribe` has helpers to test subscribe triggers in a child process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from hub.cache import Cache
from hub.connectors import Action, Registry, Trigger
from hub.context import StepContext
from hub.schemas import schema_errors
from hub.security.netguard import make_http_client
from hub.settings import Settings

if TYPE_CHECKING:
    import httpx

    from hub.db.database import Database
    from hub.runtime import Hub

try:  # pytest-asyncio marks async fixtures whatever its mode; without it, plain fixtures
    from pytest_asyncio import fixture as _async_fixture
except ImportError:  # pragma: no cover - the hub's test extra installs pytest-asyncio
    _async_fixture = pytest.fixture  # type: ignore[assignment]

LOOPBACK_HOSTS: tuple[str, ...] = ("127.0.0.1", "::1", "localhost")
"""What ``hub_settings`` lets through the SSRF guard: tests talk only to loopback."""


class ActionCheckError(AssertionError):
    """An action's input, output or example breaks its schema."""


class _NoServices:
    async def start_child_run(self, ctx: StepContext, flow_id: str, input: Any, wait: bool) -> Any:
        raise RuntimeError("start_flow is not available in run_action; test it in a flow run")


def in_ci() -> bool:
    """True when the environment variable ``CI`` is ``true`` (as on the CI machine)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def service_missing(reason: str) -> NoReturn:
    """Skip the calling test because a service it needs is missing; in CI, fail it instead.

    A test against a real server (a database, a broker) calls this when the server does not
    answer: a developer without the server sees a skip, CI (``CI=true``) sees a failure.
    """
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing service is a failure)", pytrace=False)
    pytest.skip(reason)


def make_context(
    *,
    settings: Settings | None = None,
    connection: dict[str, Any] | None = None,
    step_key: str = "test",
    attempt: int = 1,
    state: dict[str, Any] | None = None,
) -> StepContext:
    """A context like the engine's, for calling an action directly in a test.

    Close ``ctx.http`` when done (``await ctx.http.aclose()``); :func:`run_action` does.
    """
    settings = settings or Settings()
    return StepContext(
        run_id=uuid.uuid4().hex,
        flow_id="test",
        workspace_id="default",
        step_key=step_key,
        step_id=step_key,
        attempt=attempt,
        connection=connection,
        http=make_http_client(settings),
        cache=Cache(),
        log=logging.getLogger("hub.step"),
        state=state if state is not None else {},
        settings=settings,
        services=_NoServices(),
    )


async def run_action(
    action: Action,
    input: Any,
    *,
    connection: dict[str, Any] | None = None,
    settings: Settings | None = None,
    attempt: int = 1,
) -> Any:
    """Validate ``input``, call the action, validate and return its output.

    Raises :class:`ActionCheckError` when the input or the output breaks its schema; errors
    the action raises (such as :class:`hub.ActionError`) pass through unchanged.
    """
    errors = schema_errors(action.input_schema, input, "input")
    if errors:
        raise ActionCheckError("; ".join(errors))
    ctx = make_context(settings=settings, connection=connection, attempt=attempt)
    ctx.input = input
    try:
        output = await action.run(ctx, input)
    finally:
        await ctx.http.aclose()
    errors = schema_errors(action.output_schema, output, "output")
    if errors:
        raise ActionCheckError("; ".join(errors))
    return output


async def run_poll(
    trigger: Trigger,
    config: dict[str, Any] | None = None,
    cursor: Any = None,
    *,
    connection: dict[str, Any] | None = None,
    settings: Settings | None = None,
) -> tuple[list[Any], Any]:
    """Call a poll trigger once, as the hub's trigger runner would; return (events, cursor).

    The config is validated against the trigger's ``config_schema`` and every event against
    its ``output_schema`` (:class:`ActionCheckError` names the place otherwise).
    """
    if trigger.kind != "poll" or trigger.poll is None:
        raise ActionCheckError(f"trigger {trigger.name}: not a poll trigger ({trigger.kind})")
    config = {} if config is None else config
    errors = schema_errors(trigger.config_schema, config, "config")
    if errors:
        raise ActionCheckError("; ".join(errors))
    ctx = make_context(settings=settings, connection=connection, step_key="trigger")
    try:
        events, new_cursor = await trigger.poll(ctx, config, cursor)
    finally:
        await ctx.http.aclose()
    problems: list[str] = []
    for i, event in enumerate(events):
        problems += schema_errors(trigger.output_schema, event, f"events[{i}]")
    if problems:
        raise ActionCheckError(f"trigger {trigger.name}: " + "; ".join(problems))
    return list(events), new_cursor


def check_examples(action: Action) -> None:
    """Check that every declared example's input and output validate against the schemas."""
    for i, example in enumerate(action.examples):
        problems = schema_errors(action.input_schema, example.get("input"), f"examples[{i}].input")
        if "output" in example:
            problems += schema_errors(
                action.output_schema, example["output"], f"examples[{i}].output"
            )
        if problems:
            raise ActionCheckError(f"action {action.name}: " + "; ".join(problems))


def check_flow_file(path: str | Path, *plugins: Any) -> Any:
    """Validate a flow file against the built-in plugins plus ``plugins``.

    Connections are not checked (a test has none stored); everything else is: the schema,
    the graph, expressions, actions and literal inputs. Returns the loaded flow.
    """
    from hub.expressions import Expressions
    from hub.flows import load_flow, parse_document
    from hub.plugins import build_registry, make_plugin_manager

    registry = build_registry(make_plugin_manager(Settings(), plugins, entry_points=False))
    text = Path(path).read_text()
    return load_flow(parse_document(text, str(path)), expressions=Expressions(), registry=registry)


def registry_of(*plugins: Any) -> Registry:
    """A registry built from the given plugin modules (or objects) only."""
    from hub.plugins import build_registry, make_plugin_manager

    settings = Settings(load_plugins=())
    return build_registry(make_plugin_manager(settings, plugins, entry_points=False))


async def run_flow(
    hub: Hub, document: dict[str, Any], input: Any = None, *, timeout: float = 10.0
) -> dict[str, Any]:
    """Save and publish ``document`` in ``hub``, run it, and return the finished run record.

    The record holds ``status``, ``output``, ``error`` and ``steps`` (every step attempt).
    """
    saved = await hub.save_flow(document, publish=True, author="hub.testing")
    run_id = await hub.start_run(saved.flow_id, input)
    await hub.wait_for_run(run_id, timeout)
    return await hub.get_run(run_id)


@pytest.fixture
def hub_plugins() -> list[Any] | None:
    """The plugins of ``hub_app``: None (the default) loads every installed plugin.

    Override it in a plugin's ``conftest.py`` to test that plugin alone::

        @pytest.fixture
        def hub_plugins():
            return [my_package.plugin]

    The built-in plugins (``data``, ``flow``, ``http``, the core triggers) always load.
    """
    return None


@pytest.fixture
def hub_settings(tmp_path: Path) -> Settings:
    """Settings on a fresh data folder; loopback hosts pass the SSRF guard."""
    return Settings(data_dir=tmp_path, sweep_interval=0.2, allow_hosts=LOOPBACK_HOSTS)


@contextlib.asynccontextmanager
async def started_hub(settings: Settings, plugins: list[Any] | None = None) -> AsyncIterator[Hub]:
    """A started hub on ``settings``, stopped on exit (what ``hub_app`` yields).

    ``plugins`` None loads every installed plugin (entry points, as selected by the
    settings); a list loads the built-ins and those plugins only.
    """
    from hub.runtime import Hub

    if plugins is None:
        instance = Hub(settings)
    else:
        instance = Hub(settings, plugins=plugins, entry_points=False)
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop(grace=1.0)


@contextlib.contextmanager
def serve_asgi(app: Any, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve an ASGI app with uvicorn on ``host`` (a free port) in a thread; yield its base URL.

    For local stand-ins of SaaS APIs: ``with serve_asgi(app) as url: ...`` gives
    ``http://127.0.0.1:PORT``; the server stops when the block ends. Raises RuntimeError when
    the server does not start within 10 seconds.
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the stand-in server did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@_async_fixture
async def hub_app(hub_settings: Settings, hub_plugins: list[Any] | None) -> AsyncIterator[Hub]:
    """A started hub (SQLite, in-process executor) with ``hub_plugins`` loaded."""
    async with started_hub(hub_settings, hub_plugins) as instance:
        yield instance


@pytest.fixture
def hub_db(hub_app: Hub) -> Database:
    """The database of ``hub_app`` (run storage functions with ``await hub_db.read(fn)``)."""
    return hub_app.db


@_async_fixture
async def hub_client(hub_app: Hub) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client over ASGI to the Litestar app of ``hub_app`` (no socket, no server)."""
    import httpx

    from hub.api.app import create_app

    app = create_app(hub_app, manage_hub=False)
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
        yield client
