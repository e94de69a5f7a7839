"""Pytest helpers for plugin authors (loaded as a pytest plugin through ``pytest11``).

Fixtures: ``hub_settings`` (a fresh data folder), ``hub_app`` (a started hub on it). Helpers:
:func:`run_action` runs one action against its schemas, as the engine would, without a run;
:func:`check_examples` checks that an action's declared examples validate.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hub.cache import Cache
from hub.connectors import Action, Registry
from hub.context import StepContext
from hub.netguard import make_http_client
from hub.schemas import schema_errors
from hub.settings import Settings


class ActionCheckError(AssertionError):
    """An action's input, output or example breaks its schema."""


class _NoServices:
    async def start_child_run(self, ctx: StepContext, flow_id: str, input: Any, wait: bool) -> Any:
        raise RuntimeError("start_flow is not available in run_action; test it in a flow run")


def make_context(
    *,
    settings: Settings | None = None,
    connection: dict[str, Any] | None = None,
    step_key: str = "test",
    attempt: int = 1,
    state: dict[str, Any] | None = None,
) -> StepContext:
    """A context like the engine's, for calling an action directly in a test."""
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
) -> Any:
    """Validate ``input``, call the action, validate and return its output."""
    errors = schema_errors(action.input_schema, input, "input")
    if errors:
        raise ActionCheckError("; ".join(errors))
    ctx = make_context(settings=settings, connection=connection)
    ctx.input = input
    try:
        output = await action.run(ctx, input)
    finally:
        await ctx.http.aclose()
    errors = schema_errors(action.output_schema, output, "output")
    if errors:
        raise ActionCheckError("; ".join(errors))
    return output


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


@pytest.fixture
def hub_settings(tmp_path: Path) -> Settings:
    """Settings on a fresh data folder."""
    return Settings(data_dir=tmp_path, sweep_interval=0.2)


@pytest.fixture
async def hub_app(hub_settings: Settings) -> AsyncIterator[Any]:
    """A started hub (SQLite, in-process) with every installed plugin."""
    from hub.runtime import Hub

    instance = Hub(hub_settings)
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop(grace=1.0)
