"""Slack's Events API through the hub's own webhook route (/hooks/{workspace}/{flow}).

Slack cannot be reached from here: the requests below are what Slack documents sending
(signed with the app's signing secret), replayed against a real hub app over ASGI.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from hub_slack import plugin
from hub_slack.events import slack_signature

from hub.testing import Settings, http_client, started_hub

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def signed(body: dict[str, Any], secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    ts = str(int(time.time()))
    return raw, {
        "content-type": "application/json",
        "x-slack-request-timestamp": ts,
        "x-slack-signature": slack_signature(secret, ts, raw),
    }


async def test_slack_events_reach_the_hub_through_its_webhook_route(tmp_path: Path) -> None:
    async with started_hub(Settings(data_dir=tmp_path), [plugin]) as hub:
        await hub.set_connection(
            "slack-app", "slack", {"bot_token": "xoxb-1-2", "signing_secret": SECRET}
        )
        await hub.save_flow(
            {
                "id": "mentions",
                "trigger": {"type": "slack.events", "connection": "slack-app"},
                "steps": [
                    {
                        "id": "a",
                        "action": "data.set",
                        "input": {"value": "{{ trigger.event.text }}"},
                    }
                ],
            },
            publish=True,
        )
        async with http_client(hub) as client:
            url = "/hooks/default/mentions"
            raw, headers = signed({"type": "url_verification", "challenge": "3eZbrw1aB"})
            answer = await client.post(url, content=raw, headers=headers)
            assert answer.status_code == 200 and answer.json() == {"challenge": "3eZbrw1aB"}
            assert await hub.list_runs(flow_id="mentions") == []

            event = {
                "type": "event_callback",
                "event_id": "Ev08MFMKH6",
                "event": {"type": "app_mention", "text": "<@U1> deploy please", "user": "U2"},
            }
            raw, headers = signed(event)
            first = await client.post(url, content=raw, headers=headers)
            again = await client.post(
                url, content=raw, headers={**headers, "x-slack-retry-num": "1"}
            )
            assert first.status_code == 200 and again.status_code == 200
            run_id = first.headers["x-run-ids"]
            assert again.headers["x-run-ids"] == run_id  # Slack's retry: the same run
            record = await hub.wait_for_run(run_id, 10)
            assert record["output"] == "<@U1> deploy please"

            raw, headers = signed(event, secret="not-the-secret")
            refused = await client.post(url, content=raw, headers=headers)
            assert refused.status_code == 401
            assert len(await hub.list_runs(flow_id="mentions")) == 1
