"""Calling an action outside a run (hub/services/actions.py, through the API): a step
test's failures, each with its kind and what the answer keeps, and a field's options when
the action's listing fails."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from hub.settings import Settings
from tests import api_kit
from tests.api_kit import PIN, SECRET, Api, started_api

STEP_TESTS = "/api/w/default/step-tests"


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    api_kit.OPTION_LOADS.clear()
    async for value in started_api(settings):
        yield value


async def step_test(api: Api, **body: Any) -> dict[str, Any]:
    response = await api.call("POST", STEP_TESTS, api.editor, json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_an_input_that_breaks_the_schema_is_answered_with_its_issues(api: Api) -> None:
    result = await step_test(api, action="test.sleep", input={"seconds": "soon", "x": 1})
    assert result["ok"] is False
    assert result["input"] == {"seconds": "soon", "x": 1}  # rendered, kept
    assert result["output"] is None
    assert result["error"]["kind"] == "input"
    assert result["error"]["issues"] == 1
    assert result["error"]["message"].startswith("input.seconds: ")


async def test_a_failed_rendering_is_an_expression_error_with_no_input(api: Api) -> None:
    result = await step_test(api, action="test.echo", input={"n": "{{ trigger.count + 1 }}"})
    assert result["ok"] is False
    assert result["input"] is None
    assert result["error"]["kind"] == "expression"


async def test_a_slow_action_times_out_with_the_step_tests_message(api: Api) -> None:
    result = await step_test(api, action="test.sleep", input={"seconds": 5}, timeout=0.1)
    assert result["ok"] is False
    assert result["input"] == {"seconds": 5}
    assert result["error"] == {"kind": "timeout", "message": "the action timed out after 0.1s"}


async def test_an_output_that_breaks_the_schema_is_answered_with_the_output(api: Api) -> None:
    result = await step_test(api, action="test.bad_output", input={})
    assert result["ok"] is False
    assert result["output"] == {"count": "not a number"}
    assert result["error"]["kind"] == "output"
    assert result["error"]["message"].startswith("output.count: ")
    assert "issues" not in result["error"]


async def test_an_action_that_suspends_is_not_waited_for(api: Api) -> None:
    result = await step_test(api, action="flow.delay", input={"seconds": 3600})
    assert result["ok"] is False
    assert result["error"]["kind"] == "suspend"


class _Failing(list[dict[str, Any]]):
    """Stands in for api_kit.OPTION_LOADS: the options listing fails quoting a secret."""

    def append(self, item: dict[str, Any]) -> None:
        raise RuntimeError(f"the service refused key {SECRET} (pin {PIN})")


async def test_options_whose_listing_fails_answer_502_redacted(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = await api.call(
        "POST",
        "/api/w/default/connections",
        api.owner,
        json={
            "name": "vault-1",
            "connector": "vault",
            "values": {"api_key": SECRET, "pin": PIN, "nested": {}, "region": "eu"},
        },
    )
    assert created.status_code == 201, created.text
    monkeypatch.setattr(api_kit, "OPTION_LOADS", _Failing())
    url = "/api/w/default/connectors/vault/actions/lookup/options/pipeline"
    response = await api.call("POST", url, api.editor, json={"connection": "vault-1"})
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "bad_gateway"
    assert error["message"].startswith("listing the options failed: RuntimeError: ")
    assert SECRET not in response.text and str(PIN) not in response.text
