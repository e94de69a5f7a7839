"""hub-openapi in a real hub: a flow runs operations of the pet store document.

The pet store is the local stand-in of ``conftest.py`` (127.0.0.1). The hub is the one of
``hub.testing`` (``hub_app``), loading hub-openapi only, with ``HUB_OPENAPI_SPECS`` naming a
folder that holds ``examples/petstore.yaml``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hub.testing import check_flow_file, run_flow

from hub_openapi import plugin

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "connectors" / "openapi-petstore.yaml"


def test_the_example_flow_validates(specs: Path) -> None:
    flow = check_flow_file(EXAMPLE, plugin)
    assert [step.action for step in flow.steps.values()] == [
        "petstore.create_pet",
        "petstore.get_pet_by_id",
        "petstore.list_pets",
    ]


async def test_the_example_flow_runs_against_the_api(
    hub_app: Any, petstore: Any, connection: dict[str, Any]
) -> None:
    await hub_app.set_connection("petstore-main", "petstore", connection)
    document = plugin_example()
    record = await run_flow(hub_app, document, {"name": "Nemo", "tag": "fish"})
    assert record["status"] == "succeeded", record["error"]
    assert record["output"] == {
        "pet": {"id": 3, "name": "Nemo", "tag": "fish"},
        "same_tag": ["Nemo"],
    }
    create = next(r for r in petstore.requests if r["method"] == "POST")
    assert create["headers"]["idempotency-key"].endswith(":create")  # the run's step key
    stored = json.dumps(record)
    assert connection["api_key"] not in stored  # the secret reaches no run record


async def test_a_not_found_pet_fails_the_run_with_the_services_message(
    hub_app: Any, petstore: Any, connection: dict[str, Any]
) -> None:
    await hub_app.set_connection("petstore-main", "petstore", connection)
    document = {
        "id": "read-pet",
        "trigger": {"type": "manual"},
        "steps": [
            {
                "id": "read",
                "action": "petstore.get_pet_by_id",
                "connection": "petstore-main",
                "input": {"petId": "{{ trigger.id }}"},
            }
        ],
    }
    record = await run_flow(hub_app, document, {"id": 42})
    assert record["status"] == "failed"
    assert "answered 404" in record["error"]["message"]
    assert "no pet 42" in record["error"]["message"]


def plugin_example() -> dict[str, Any]:
    import yaml

    document: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    return document
