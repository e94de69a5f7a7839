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


def refused_with(response: Any, status: int, code: str, reason: str | None) -> None:
    """The answer is a refusal in the hub's one error shape with this code and reason."""
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"}
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code, error
    assert error["details"] == ({"reason": reason} if reason else None), error


def webhook_count(metrics: str, outcome: str) -> float:
    line = f'hub_webhook_requests_total{{outcome="{outcome}"}} '
    found = [row for row in metrics.splitlines() if row.startswith(line)]
    return float(found[0].split()[-1]) if found else 0.0


async def test_every_refusal_is_in_the_hub_error_shape_and_counted_by_reason(
    tmp_path: Path,
) -> None:
    """Each refusal of the slack.events trigger answers like the hub's built-in checks (code,
    status, details.reason) and /metrics counts it by code and reason, not as ``refused``;
    an accepted event answers its run id, a retried one the same run, marked replayed."""
    async with started_hub(Settings(data_dir=tmp_path), [plugin]) as hub:
        await hub.set_connection(
            "slack-app", "slack", {"bot_token": "xoxb-1-2", "signing_secret": SECRET}
        )
        await hub.set_connection("no-secret", "slack", {"bot_token": "xoxb-1-2"})
        step = {"id": "a", "action": "data.set", "input": {"value": "{{ trigger.event_id }}"}}
        for flow_id, connection in (("events", "slack-app"), ("unconfigured", "no-secret")):
            await hub.save_flow(
                {
                    "id": flow_id,
                    "trigger": {"type": "slack.events", "connection": connection},
                    "steps": [step],
                },
                publish=True,
            )
        event = {"type": "event_callback", "event_id": "Ev1", "event": {"type": "app_mention"}}
        raw, good = signed(event)
        now = int(time.time())
        old = str(now - 3600)
        cases = [
            ({"content-type": "application/json"}, raw, 401, "invalid_signature", "missing"),
            (
                {**good, "x-slack-request-timestamp": "12e3"},
                raw,
                401,
                "invalid_signature",
                "malformed",
            ),
            (
                {
                    **good,
                    "x-slack-request-timestamp": old,
                    "x-slack-signature": slack_signature(SECRET, old, raw),
                },
                raw,
                401,
                "invalid_signature",
                "expired",
            ),
            (
                {**good, "x-slack-signature": "v0=" + "0" * 64},
                raw,
                401,
                "invalid_signature",
                "mismatch",
            ),
        ]
        for not_an_object in (b"not json", b"[1, 2]"):  # signed, so only the JSON is wrong
            stamp = good["x-slack-request-timestamp"]
            resigned = {**good, "x-slack-signature": slack_signature(SECRET, stamp, not_an_object)}
            cases.append((resigned, not_an_object, 400, "invalid_json", None))
        async with http_client(hub) as client:
            for headers, body, status, code, reason in cases:
                answer = await client.post("/hooks/default/events", content=body, headers=headers)
                refused_with(answer, status, code, reason)
            answer = await client.post("/hooks/default/unconfigured", content=raw, headers=good)
            refused_with(answer, 503, "unavailable", None)
            assert await hub.list_runs(flow_id="events") == []

            first = await client.post("/hooks/default/events", content=raw, headers=good)
            assert first.status_code == 200, first.text
            run_id = first.json()["run_id"]
            assert first.json() == {"run_id": run_id, "status": "running"}
            retry = await client.post(
                "/hooks/default/events", content=raw, headers={**good, "x-slack-retry-num": "1"}
            )
            assert retry.json()["run_id"] == run_id
            assert retry.headers["idempotent-replayed"] == "true"

            metrics = (await client.get("/metrics")).text
        for outcome in ("missing", "malformed", "expired", "mismatch"):
            assert webhook_count(metrics, f"invalid_signature:{outcome}") == 1, outcome
        assert webhook_count(metrics, "invalid_json") == 2
        assert webhook_count(metrics, "unavailable") == 1
        assert webhook_count(metrics, "refused") == 0
        assert webhook_count(metrics, "accepted") == 1
        assert webhook_count(metrics, "replayed") == 1
