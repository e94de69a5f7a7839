"""The JSON Schemas in schemas/ are contracts: what the hub produces must validate."""

from __future__ import annotations

from jsonschema import Draft202012Validator

from hub.plugins import build_registry, make_plugin_manager
from hub.runtime import Hub
from hub.schemas import load_schema
from hub.settings import Settings
from tests import kit
from tests.conftest import run_flow


def test_the_shipped_schemas_are_valid_json_schema() -> None:
    for name in ("flow.schema.json", "connector.schema.json", "run.schema.json"):
        Draft202012Validator.check_schema(load_schema(name))


def test_every_connector_manifest_validates() -> None:
    registry = build_registry(make_plugin_manager(Settings(), [kit], entry_points=False))
    validator = Draft202012Validator(load_schema("connector.schema.json"))
    for connector in registry.connectors.values():
        errors = [e.message for e in validator.iter_errors(connector.describe())]
        assert errors == [], f"{connector.name}: {errors}"


async def test_a_run_record_validates(hub: Hub) -> None:
    run = await run_flow(
        hub,
        {
            "id": "f",
            "steps": [
                {
                    "id": "a",
                    "action": "data.set",
                    "for_each": "{{ [1, 2] }}",
                    "input": {"value": 1},
                },
                {"id": "b", "action": "test.boom", "on_error": "continue"},
            ],
        },
    )
    errors = [
        e.message for e in Draft202012Validator(load_schema("run.schema.json")).iter_errors(run)
    ]
    assert errors == []
