"""The API against its own OpenAPI document, with schemathesis: every operation, authenticated
with an owner's token, a bounded number of generated requests each; no server error, no
response that breaks the documented schema, status codes and content types.

The app runs in-process through schemathesis's ASGI transport (its own event loop thread,
where the app's start-up starts the hub: real SQLite, real engine). A first hub, in a
separate event loop, seeds the data folder: users, a token, flows, a connection, a failed
run. Path parameters that name things are pinned to the seeded ones (``workspace``,
``flow_id``, ``run_id``, ``name``, ``connector``) so that the requests reach the handlers
instead of stopping at a 404; everything else is generated.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

from hub.api.app import create_app
from hub.runtime import Hub
from hub.settings import Settings
from tests import kit
from tests.api_kit import SECRET, add_user, flow_document

MAX_EXAMPLES = 6


async def seed(folder: Path) -> dict[str, Any]:
    """Users, a token, two flows, a connection and a failed run, in a fresh data folder."""
    hub = Hub(Settings(data_dir=folder), plugins=[kit], entry_points=False)
    await hub.start(background=False)
    try:
        owner = await add_user(hub, "owner@example.com", "owner")
        await hub.set_connection("main", "test", {"token": SECRET, "region": "eu"})
        await hub.save_flow(flow_document("greet"), publish=True)
        failing = flow_document(
            "broken", steps=[{"id": "boom", "action": "test.boom", "input": {}}]
        )
        await hub.save_flow(failing, publish=True)
        run_id = await hub.start_run("broken", {"x": 1})
        await hub.wait_for_run(run_id, 10)
        return {"token": owner.token, "run_id": run_id}
    finally:
        await hub.stop(grace=1.0)


# The webhook route is documented and tested by hub/api/webhooks.py's own tests (its 404 and
# 413 answers are not in its OpenAPI entry yet); remove this once they are.
WEBHOOK_PREFIX = "/hooks/"


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, Any]]:
    """The app's OpenAPI document, loaded through the app itself, and the seeded values."""
    folder = tmp_path_factory.mktemp("schemathesis")
    seeded = asyncio.run(seed(folder))
    hub = Hub(Settings(data_dir=folder, sweep_interval=0.2), plugins=[kit], entry_points=False)
    app = create_app(hub, bootstrap=False)
    config = SchemathesisConfig.from_dict(
        {
            "max-stream-events": 20,
            "request-timeout": 20,
            # A schema-valid request may still be refused for what JSON Schema cannot say: a
            # flow document that does not validate (422), a cursor this API never gave (400),
            # an action that is not installed (422).
            "checks": {
                "positive_data_acceptance": {
                    "expected-statuses": ["2xx", "3xx", 400, 401, 403, 404, 409, 422, 429]
                }
            },
        }
    )
    loaded = schemathesis.openapi.from_asgi("/schema/openapi.json", app, config=config)
    return loaded, seeded


def test_every_operation_answers_within_its_documented_schema(
    api_schema: tuple[Any, dict[str, Any]],
) -> None:
    """Positive and negative generated requests for every operation; all failures listed."""
    loaded, seeded = api_schema
    pins = {
        "workspace": "default",
        "flow_id": "greet",
        "run_id": seeded["run_id"],
        "name": "main",
        "connector": "test",
    }
    headers = {"Authorization": f"Bearer {seeded['token']}"}
    failures: list[str] = []
    operations = 0
    for result in loaded.get_all_operations():
        operation = result.ok()
        if operation.path.startswith(WEBHOOK_PREFIX):
            continue
        operations += 1
        names = {p.name for p in operation.path_parameters}
        path_parameters = {k: v for k, v in pins.items() if k in names}
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(mode, path_parameters=path_parameters, headers=headers)

            @given(case=strategy)
            @settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
                phases=[Phase.explicit, Phase.generate],
            )
            def check(case: Any) -> None:
                case.call_and_validate()

            try:
                check()
            except Unsatisfiable:  # nothing to make invalid: every parameter is pinned
                continue
            except (Exception, BaseExceptionGroup) as exc:  # collect all, then report all
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    assert operations >= 40, f"only {operations} operations in the OpenAPI document"
    assert not failures, "\n\n".join(failures)
