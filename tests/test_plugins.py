"""Plugins: discovery, selection, validation at registration, and the public plugin API."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import msgspec
import pytest

from hub import Action, Connector, action, hookimpl
from hub.connectors import RegistrationError
from hub.plugins import build_registry, make_plugin_manager
from hub.settings import Settings
from hub.testing import ActionCheckError, check_examples, registry_of, run_action
from tests.conftest import make_hub, run_flow


def plugin(**hooks: Any) -> types.SimpleNamespace:
    """A plugin object from hook functions."""
    return types.SimpleNamespace(**{name: hookimpl(fn) for name, fn in hooks.items()})


def connectors_plugin(*connectors: Connector) -> types.SimpleNamespace:
    def hub_connectors() -> list[Connector]:
        return list(connectors)

    return plugin(hub_connectors=hub_connectors)


async def noop(ctx: Any, data: Any) -> Any:
    return data


def test_built_in_plugins_are_registered_like_external_ones() -> None:
    registry = build_registry(make_plugin_manager(Settings(), entry_points=False))
    assert registry.owners == {"data": "data", "flow": "flow", "http": "http", "core": "triggers"}
    assert {"data.set", "flow.noop", "flow.fail", "flow.delay", "flow.call", "http.request"} <= set(
        registry.actions
    )
    assert {"manual", "webhook", "schedule"} <= set(registry.triggers)


def test_invalid_json_schema_is_refused_naming_the_plugin_connector_and_action() -> None:
    bad = connectors_plugin(
        Connector(
            name="crm", actions=[Action(name="find", run=noop, input_schema={"type": "nonsense"})]
        )
    )
    pm = make_plugin_manager(Settings(), [bad], entry_points=False)
    with pytest.raises(RegistrationError) as err:
        build_registry(pm)
    message = str(err.value)
    assert "plugin" in message and "connector 'crm'" in message and "action 'find'" in message
    assert "input_schema" in message and "nonsense" in message


def test_a_connector_name_taken_by_another_plugin_is_refused() -> None:
    dup = connectors_plugin(Connector(name="http", actions=[Action(name="get", run=noop)]))
    pm = make_plugin_manager(Settings(), [dup], entry_points=False)
    with pytest.raises(RegistrationError, match="already registered by plugin 'http'"):
        build_registry(pm)


def test_an_action_needing_a_connection_needs_a_connection_schema() -> None:
    bad = connectors_plugin(
        Connector(name="svc", actions=[Action(name="a", run=noop, needs_connection=True)])
    )
    with pytest.raises(RegistrationError, match="needs a connection"):
        build_registry(make_plugin_manager(Settings(), [bad], entry_points=False))


def test_unknown_hook_names_fail_loudly() -> None:
    def hub_not_a_hook() -> None:
        return None

    with pytest.raises(RegistrationError, match="hub_not_a_hook"):
        make_plugin_manager(Settings(), [plugin(hub_not_a_hook=hub_not_a_hook)], entry_points=False)


def test_load_and_disable_settings_select_plugins() -> None:
    only = build_registry(make_plugin_manager(Settings(load_plugins=("data",)), entry_points=False))
    assert set(only.connectors) == {"data"}
    without = build_registry(
        make_plugin_manager(Settings(disable_plugins=("http",)), entry_points=False)
    )
    assert "http.request" not in without.actions and "data.set" in without.actions


def test_settings_read_plugin_lists_from_the_environment() -> None:
    settings = Settings.from_env({"HUB_LOAD_PLUGINS": "data, flow", "HUB_DISABLE_PLUGINS": "http"})
    assert settings.load_plugins == ("data", "flow")
    assert settings.disable_plugins == ("http",)


def test_entry_points_in_the_hub_group_are_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "acme_plugin.py").write_text(
        "from hub import Action, Connector, hookimpl\n"
        "async def ping(ctx, data):\n    return {'pong': True}\n"
        "@hookimpl\n"
        "def hub_connectors():\n"
        "    ping_action = Action(name='ping', run=ping)\n"
        "    return [Connector(name='acme', version='1.2', actions=[ping_action])]\n"
    )
    dist = tmp_path / "acme_plugin-1.2.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-plugin\nVersion: 1.2\n")
    (dist / "entry_points.txt").write_text("[hub]\nacme = acme_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    # Only this entry point (other installed plugins are not this test's business).
    registry = build_registry(make_plugin_manager(Settings(load_plugins=("acme",))))
    assert registry.owners["acme"] == "acme"
    assert "acme.ping" in registry.actions
    skipped = build_registry(
        make_plugin_manager(Settings(load_plugins=("acme", "data"), disable_plugins=("acme",)))
    )
    assert "acme" not in skipped.connectors
    sys.modules.pop("acme_plugin", None)


def test_plugin_modules_named_in_the_settings_are_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "team_hooks.py").write_text(
        "from hub import hookimpl\n"
        "@hookimpl\n"
        "def hub_template_filters():\n    return {'shout': lambda s: str(s).upper() + '!'}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    pm = make_plugin_manager(Settings(plugin_modules=("team_hooks",)), entry_points=False)
    assert pm.get_plugin("team_hooks") is not None
    with pytest.raises(RegistrationError, match="cannot be imported"):
        make_plugin_manager(Settings(plugin_modules=("no_such_module_xyz",)), entry_points=False)
    sys.modules.pop("team_hooks", None)


class Lead(msgspec.Struct):
    email: str
    score: int = 0


class Scored(msgspec.Struct):
    email: str
    grade: str


@action(
    title="Grade a lead",
    examples=[
        {"input": {"email": "a@b.c", "score": 80}, "output": {"email": "a@b.c", "grade": "A"}}
    ],
)
async def grade(ctx: Any, lead: Lead) -> Scored:
    """Grade a lead by its score."""
    return Scored(email=lead.email, grade="A" if lead.score >= 70 else "B")


def test_typed_actions_get_schemas_derived_from_msgspec_types() -> None:
    assert grade.name == "grade"
    assert grade.input_schema["$ref"].endswith("Lead")
    lead = grade.input_schema["$defs"]["Lead"]
    assert lead["required"] == ["email"]
    assert lead["properties"]["score"]["type"] == "integer"
    assert grade.description == "Grade a lead by its score."
    check_examples(grade)


async def test_typed_action_runs_against_its_schemas() -> None:
    assert await run_action(grade, {"email": "x@y.z", "score": 90}) == {
        "email": "x@y.z",
        "grade": "A",
    }
    with pytest.raises(ActionCheckError, match="input: 'email' is a required property"):
        await run_action(grade, {"score": 1})


def test_an_example_that_breaks_the_schema_is_reported() -> None:
    broken = Action(
        name="x",
        run=noop,
        input_schema={"type": "object", "required": ["a"]},
        examples=[{"input": {}}],
    )
    with pytest.raises(ActionCheckError, match=r"examples\[0\].input: 'a' is a required property"):
        check_examples(broken)


async def test_typed_action_runs_in_a_flow(settings: Settings) -> None:
    typed = connectors_plugin(Connector(name="leads", actions=[grade]))
    hub = make_hub(settings, plugins=[typed])
    await hub.start(migrate=False)
    try:
        run = await run_flow(
            hub,
            {
                "id": "f",
                "steps": [
                    {
                        "id": "g",
                        "action": "leads.grade",
                        "input": {"email": "{{ trigger.e }}", "score": 75},
                    }
                ],
            },
            {"e": "q@r.s"},
        )
        assert run["output"] == {"email": "q@r.s", "grade": "A"}
    finally:
        await hub.stop()


def test_registry_of_builds_a_registry_from_given_plugins_only() -> None:
    registry = registry_of(
        connectors_plugin(Connector(name="solo", actions=[Action(name="a", run=noop)]))
    )
    assert set(registry.connectors) == {"solo"}


def test_settings_below_their_bound_are_refused_with_the_variable_named() -> None:
    from hub.settings import SettingsError

    for var, value in (
        ("HUB_DATABASE_POOL_SIZE", "0"),
        ("HUB_QUEUE_IDLE_POLL", "-1"),
        ("HUB_GC_THRESHOLD", "-5"),
    ):
        with pytest.raises(SettingsError, match=f"{var}: .* too small"):
            Settings.from_env({var: value})
    assert Settings.from_env({"HUB_DATABASE_POOL_SIZE": "3"}).database_pool_size == 3
    assert Settings.from_env({"HUB_GC_THRESHOLD": "0"}).gc_threshold == 0
