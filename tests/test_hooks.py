"""Every hook of :mod:`hub.hookspecs` has a test of its own, named ``test_hook_<hook name>``.

:func:`test_plugin_hooks_have_tests` reads the hook specifications and fails when a hook has no
such test anywhere in the suite (as datasette's tests do), so a new hook comes with its test.
Each test here checks one hook's contract as its docstring in hub/hookspecs.py states it.
"""

from __future__ import annotations

import ast
import asyncio
import sys
import types
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
from litestar import get

from hub import Action, Connector, hookimpl
from hub import hookspecs as hookspecs_module
from hub.app import create_app
from hub.cli import main
from hub.runtime import Hub
from hub.settings import Settings
from tests import kit
from tests.conftest import make_hub, run_flow

ROOT = Path(__file__).resolve().parent.parent


def plugin(**hooks: Any) -> types.SimpleNamespace:
    """A plugin object from hook functions."""
    return types.SimpleNamespace(**{name: hookimpl(fn) for name, fn in hooks.items()})


def hook_names() -> list[str]:
    """The names of the hooks the hub specifies."""
    return sorted(
        name
        for name, value in vars(hookspecs_module).items()
        if name.startswith("hub_") and hasattr(value, "hub_spec")
    )


def suite_test_names() -> set[str]:
    """The names of every test function in tests/ and in the plugins' tests."""
    paths = [*ROOT.glob("tests/**/*.py"), *ROOT.glob("plugins/*/tests/**/*.py")]
    names: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                names.add(node.name)
    return names


def test_plugin_hooks_have_tests() -> None:
    hooks = hook_names()
    assert "hub_connectors" in hooks and len(hooks) >= 10
    present = suite_test_names()
    missing = [hook for hook in hooks if f"test_hook_{hook}" not in present]
    assert not missing, f"hooks without a test_hook_<name> test: {', '.join(missing)}"


async def until(condition: Callable[[], bool], timeout: float = 30) -> None:
    """Wait for ``condition`` to hold (observers run beside the run, not before its end)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def one_step_flow(action: str = "data.set", value: Any = "{{ trigger }}") -> dict[str, Any]:
    return {"id": "f", "steps": [{"id": "a", "action": action, "input": {"value": value}}]}


async def test_hook_hub_connectors(settings: Settings) -> None:
    async def shout(ctx: Any, data: dict[str, Any]) -> dict[str, Any]:
        return {"value": str(data["value"]).upper()}

    def hub_connectors() -> list[Connector]:
        return [Connector(name="loud", actions=[Action(name="shout", run=shout)])]

    hub = make_hub(settings, plugins=[plugin(hub_connectors=hub_connectors)])
    await hub.start(migrate=False)
    try:
        assert "loud.shout" in hub.registry.actions
        run = await run_flow(hub, one_step_flow("loud.shout"), "hi")
        assert run["status"] == "succeeded"
        assert run["output"] == {"value": "HI"}
    finally:
        await hub.stop()


async def test_hook_hub_template_filters(settings: Settings) -> None:
    extra = plugin(hub_template_filters=lambda: {"shout": lambda s: str(s).upper() + "!"})
    hub = make_hub(settings, plugins=[extra])
    await hub.start(migrate=False)
    try:
        run = await run_flow(hub, one_step_flow(value="{{ trigger | shout }}"), "hi")
        assert run["output"] == "HI!"
    finally:
        await hub.stop()


async def test_hook_hub_template_globals(settings: Settings) -> None:
    extra = plugin(hub_template_globals=lambda: {"company": "ACME", "twice": lambda s: f"{s}{s}"})
    hub = make_hub(settings, plugins=[extra])
    await hub.start(migrate=False)
    try:
        run = await run_flow(hub, one_step_flow(value="{{ company }} {{ twice(trigger) }}"), "x")
        assert run["output"] == "ACME xx"
    finally:
        await hub.stop()


async def test_hook_hub_before_step(settings: Settings) -> None:
    seen: list[tuple[str, Any]] = []

    async def hub_before_step(ctx: Any) -> None:
        seen.append((ctx.step_key, ctx.input))

    hub = make_hub(settings, plugins=[kit, plugin(hub_before_step=hub_before_step)])
    await hub.start(migrate=False)
    try:
        run = await run_flow(hub, one_step_flow(value="{{ trigger }}!"), "hi")
        assert run["status"] == "succeeded"
        # called once per step, with its input already rendered
        assert seen == [("a", {"value": "hi!"})]
    finally:
        await hub.stop()


async def test_hook_hub_after_step(settings: Settings) -> None:
    results: list[tuple[str, dict[str, Any]]] = []

    def hub_after_step(ctx: Any, result: dict[str, Any]) -> None:
        results.append((ctx.step_key, result))

    hub = make_hub(settings, plugins=[kit, plugin(hub_after_step=hub_after_step)])
    await hub.start(migrate=False)
    try:
        run = await run_flow(hub, one_step_flow(), "hi")
        assert run["status"] == "succeeded"
        await until(lambda: bool(results))  # the last step's call may follow the run's end
        assert results == [("a", {"status": "done", "output": "hi", "error": None})]
    finally:
        await hub.stop()


async def test_after_step_is_told_of_failed_retrying_and_waiting_attempts(
    settings: Settings,
) -> None:
    """Not only done attempts: a retried failure, a final failure and a durable wait are
    each reported with their status and error."""
    results: list[tuple[str, str, Any]] = []

    def hub_after_step(ctx: Any, result: dict[str, Any]) -> None:
        error = result["error"]
        results.append((ctx.step_key, result["status"], error and error["message"]))

    hub = make_hub(settings, plugins=[kit, plugin(hub_after_step=hub_after_step)])
    await hub.start(migrate=False)
    try:
        failing = one_step_flow("flow.fail", None)
        failing["steps"][0]["input"] = {"message": "no"}
        run = await run_flow(hub, failing)
        assert run["status"] == "failed"
        await until(lambda: bool(results))
        assert results == [("a", "failed", "no")]

        results.clear()
        waiting = one_step_flow("flow.delay", None)
        waiting["id"] = "waits"
        waiting["steps"][0]["input"] = {"seconds": 0.2}
        run = await run_flow(hub, waiting)
        assert run["status"] == "succeeded"
        await until(lambda: len(results) == 2)
        assert [status for _, status, _ in results] == ["waiting", "done"]

        results.clear()
        retried = one_step_flow("test.flaky", None)
        retried["id"] = "retried"
        retried["steps"][0]["input"] = {"succeed_on": 2}
        retried["steps"][0]["retry"] = {"max_attempts": 2, "initial": "10ms"}
        run = await run_flow(hub, retried)
        assert run["status"] == "succeeded"
        await until(lambda: len(results) == 2)
        assert [status for _, status, _ in results] == ["retrying", "done"]
    finally:
        await hub.stop()


async def test_hook_hub_run_finished(settings: Settings) -> None:
    finished: list[dict[str, Any]] = []

    async def hub_run_finished(run: dict[str, Any]) -> None:
        finished.append(run)

    hub = make_hub(settings, plugins=[kit, plugin(hub_run_finished=hub_run_finished)])
    await hub.start(migrate=False)
    try:
        run = await run_flow(hub, one_step_flow(), {"n": 1})
        await until(lambda: bool(finished))  # called after the run's waiters are answered
        assert [(r["id"], r["flow_id"], r["status"]) for r in finished] == [
            (run["id"], "f", "succeeded")
        ]
        assert finished[0]["output"] == {"n": 1}
    finally:
        await hub.stop()


async def test_hook_hub_routes(settings: Settings) -> None:
    @get("/plugin/open", exclude_from_auth=True, sync_to_thread=False)
    def open_route() -> dict[str, str]:
        return {"hello": "world"}

    @get("/plugin/closed", sync_to_thread=False)
    def closed_route() -> dict[str, str]:
        return {"secret": "yes"}

    hub = make_hub(settings, plugins=[plugin(hub_routes=lambda: [open_route, closed_route])])
    await hub.start(migrate=False)
    try:
        app = create_app(hub, manage_hub=False, bootstrap=False)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test.local") as client:
            opened = await client.get("/plugin/open")
            assert (opened.status_code, opened.json()) == (200, {"hello": "world"})
            # a plugin's route is authenticated unless it opts out
            assert (await client.get("/plugin/closed")).status_code == 401
    finally:
        await hub.stop()


def test_hook_hub_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    module = f"clihooks_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(
        "import click\nfrom hub import hookimpl\n\n\n@hookimpl\ndef hub_cli(cli):\n"
        "    @cli.command()\n    @click.argument('name')\n    def greet(name):\n"
        "        click.echo(f'hello {name}')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HUB_PLUGIN_MODULES", module)
    monkeypatch.setenv("HUB_LOAD_PLUGINS", module)  # this plugin alone, not what is installed
    monkeypatch.setattr(sys, "argv", ["hub", "greet", "you"])
    from hub.cli import cli

    try:
        with pytest.raises(SystemExit) as exited:
            main()
        assert exited.value.code == 0
        assert capsys.readouterr().out == "hello you\n"
        assert isinstance(cli.commands["greet"], click.Command)
    finally:
        cli.commands.pop("greet", None)  # the group is module-level: leave it as found


def test_hook_hub_startup(settings: Settings) -> None:
    calls: list[str] = []

    async def hub_startup(hub: Hub) -> None:
        # the database and the executor are ready when it is called
        assert await hub.list_flows() == []
        calls.append(f"start:{hub.workspace}")

    async def go() -> None:
        hub = make_hub(settings, plugins=[plugin(hub_startup=hub_startup)])
        await hub.start(migrate=False)
        assert calls == ["start:default"]
        await hub.stop()

    asyncio.run(go())
    assert calls == ["start:default"]


def test_hook_hub_shutdown(settings: Settings) -> None:
    calls: list[str] = []

    def hub_shutdown(hub: Hub) -> None:
        calls.append(f"stop:{hub.workspace}")

    async def failing_shutdown(hub: Hub) -> None:
        raise RuntimeError("a broken observer is logged, not raised")

    async def go() -> None:
        hub = make_hub(
            settings,
            plugins=[plugin(hub_shutdown=hub_shutdown), plugin(hub_shutdown=failing_shutdown)],
        )
        await hub.start(migrate=False)
        assert calls == []
        await hub.stop()

    asyncio.run(go())
    assert calls == ["stop:default"]
