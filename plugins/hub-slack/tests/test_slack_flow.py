"""The Slack actions inside real hub flow runs, against the local Slack stand-in.

slack.com cannot be reached from here: the connection points at ``slack_standin`` (the
documented Web API methods on 127.0.0.1). The hub runs on a fresh SQLite data folder with
only this plugin loaded; the connection is stored encrypted like any other.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hub_slack import plugin

from hub.testing import Hub, Settings, check_flow_file, run_flow, started_hub

EXAMPLE = (
    Path(__file__).resolve().parents[3] / "examples" / "connectors" / "slack-mention-reply.yaml"
)


@pytest.fixture
async def hub(tmp_path: Path, slack_api: Any) -> AsyncIterator[Hub]:
    settings = Settings(data_dir=tmp_path, allow_hosts=("127.0.0.1",), sweep_interval=0.2)
    async with started_hub(settings, [plugin]) as instance:
        await instance.set_connection(
            "slack-main", "slack", {"bot_token": slack_api.token, "base_url": slack_api.base_url}
        )
        yield instance


def step(id: str, action: str, input: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": id, "action": action, "connection": "slack-main", "input": input, **extra}


async def test_every_action_runs_in_a_flow_and_the_record_holds_no_token(
    hub: Hub, slack_api: Any
) -> None:
    document = {
        "id": "slack-tour",
        "trigger": {"type": "manual"},
        "steps": [
            step(
                "post", "slack.post_message", {"channel": "#general", "text": "{{ trigger.text }}"}
            ),
            step(
                "reply",
                "slack.post_message",
                {
                    "channel": "{{ steps.post.output.channel }}",
                    "thread_ts": "{{ steps.post.output.ts }}",
                    "text": "in the thread",
                },
            ),
            step(
                "edit",
                "slack.update_message",
                {
                    "channel": "{{ steps.post.output.channel }}",
                    "ts": "{{ steps.post.output.ts }}",
                    "text": "edited",
                },
            ),
            step("channels", "slack.list_channels", {}),
            step(
                "remove",
                "slack.delete_message",
                {
                    "channel": "{{ steps.reply.output.channel }}",
                    "ts": "{{ steps.reply.output.ts }}",
                },
            ),
        ],
        "output": {
            "posted": "{{ steps.post.output.ts }}",
            "thread": "{{ steps.reply.output.thread_ts }}",
            "edited": "{{ steps.edit.output.message.text }}",
            "channels": "{{ steps.channels.output.channels | length }}",
        },
    }
    record = await run_flow(hub, document, {"text": "hello from a flow"})
    assert record["status"] == "succeeded", record
    assert record["output"]["thread"] == record["output"]["posted"]
    assert record["output"]["edited"] == "edited"
    assert record["output"]["channels"] == 205
    methods = [r.path.removeprefix("/api/") for r in slack_api.requests]
    assert methods[:3] == ["chat.postMessage", "chat.postMessage", "chat.update"]
    assert methods.count("conversations.list") == 2 and methods[-1] == "chat.delete"
    assert all(
        r.headers["authorization"] == f"Bearer {slack_api.token}" for r in slack_api.requests
    )
    assert slack_api.token not in json.dumps(record, default=str)


async def test_a_refused_token_fails_the_run_once_and_the_record_holds_no_token(
    hub: Hub, slack_api: Any
) -> None:
    wrong = "xoxb-revoked-token-987654321"
    await hub.set_connection(
        "slack-main", "slack", {"bot_token": wrong, "base_url": slack_api.base_url}
    )
    document = {
        "id": "slack-refused",
        "steps": [
            step(
                "post",
                "slack.post_message",
                {"channel": "C0001", "text": "x"},
                retry={"max_attempts": 3, "initial": "10ms"},
            )
        ],
    }
    record = await run_flow(hub, document)
    assert record["status"] == "failed"
    assert "refused the credentials (invalid_auth)" in json.dumps(record["error"], default=str)
    assert len(slack_api.calls("chat.postMessage")) == 1  # not retried
    assert wrong not in json.dumps(record, default=str)


def test_the_example_flow_validates() -> None:
    flow = check_flow_file(EXAMPLE, plugin)
    assert flow.trigger.type == "slack.events"
