"""The Slack actions against a local stand-in of the Slack Web API.

slack.com cannot be reached from here: ``slack_standin`` implements the documented requests
and answers of auth.test, chat.postMessage, chat.update, chat.delete and conversations.list
(checking the bearer token, JSON bodies and required arguments) on 127.0.0.1. Each test
asserts what the connector sent (method, path, headers, body) as well as what it returned.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
from hub_slack import plugin
from hub_slack.plugin import channel_options

from hub import ActionError
from hub.testing import Settings, check_examples, make_context, registry_of, run_action


def action(name: str) -> Any:
    found = registry_of(plugin).action(f"slack.{name}")
    assert found is not None
    return found


async def test_post_message_sends_the_token_and_a_json_body(
    slack_api: Any, connection: dict[str, Any], loopback: Settings
) -> None:
    out = await run_action(
        action("post_message"),
        {"channel": "#general", "text": "New lead: ada@example.com"},
        connection=connection,
        settings=loopback,
    )
    [sent] = slack_api.calls("chat.postMessage")
    assert sent.method == "POST"
    assert sent.headers["authorization"] == f"Bearer {slack_api.token}"
    assert sent.headers["content-type"] == "application/json; charset=utf-8"
    assert sent.json == {"channel": "#general", "text": "New lead: ada@example.com"}
    assert out["channel"] == "C0000"
    assert out["ts"] and out["message"]["text"] == "New lead: ada@example.com"
    assert out["thread_ts"] is None


async def test_reply_in_a_thread_passes_thread_ts_and_blocks(
    slack_api: Any, connection: dict[str, Any], loopback: Settings
) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*done*"}}]
    out = await run_action(
        action("post_message"),
        {"channel": "C0001", "text": "done", "blocks": blocks, "thread_ts": "1700000000.000001"},
        connection=connection,
        settings=loopback,
    )
    [sent] = slack_api.calls("chat.postMessage")
    assert sent.json["thread_ts"] == "1700000000.000001"
    assert sent.json["blocks"] == blocks
    assert out["thread_ts"] == "1700000000.000001"


async def test_update_then_delete_a_message(
    slack_api: Any, connection: dict[str, Any], loopback: Settings
) -> None:
    posted = await run_action(
        action("post_message"),
        {"channel": "C0002", "text": "draft"},
        connection=connection,
        settings=loopback,
    )
    ref = {"channel": posted["channel"], "ts": posted["ts"]}
    updated = await run_action(
        action("update_message"), {**ref, "text": "final"}, connection=connection, settings=loopback
    )
    assert slack_api.calls("chat.update")[0].json == {**ref, "text": "final"}
    assert updated["message"]["text"] == "final"
    assert slack_api.messages[(ref["channel"], ref["ts"])]["text"] == "final"

    deleted = await run_action(
        action("delete_message"), ref, connection=connection, settings=loopback
    )
    assert slack_api.calls("chat.delete")[0].json == ref
    assert deleted == ref
    assert (ref["channel"], ref["ts"]) not in slack_api.messages


async def test_deleting_an_unknown_message_fails_with_slacks_error_and_a_hint(
    slack_api: Any, connection: dict[str, Any], loopback: Settings
) -> None:
    with pytest.raises(ActionError) as caught:
        await run_action(
            action("delete_message"),
            {"channel": "C0002", "ts": "1.000000"},
            connection=connection,
            settings=loopback,
        )
    assert "message_not_found" in str(caught.value)
    assert "no message with that ts" in str(caught.value)
    assert not caught.value.retryable


async def test_list_channels_follows_the_cursor(
    slack_api: Any, connection: dict[str, Any], loopback: Settings
) -> None:
    out = await run_action(action("list_channels"), {}, connection=connection, settings=loopback)
    first, second = slack_api.calls("conversations.list")
    assert first.method == second.method == "GET"
    assert first.query == {"types": "public_channel", "exclude_archived": "true", "limit": "200"}
    assert second.query["cursor"]  # the next_cursor of the first answer
    assert second.headers["authorization"] == f"Bearer {slack_api.token}"
    names = [c["name"] for c in out["channels"]]
    assert len(names) == 205  # every public channel, over two pages
    assert "old-stuff" not in names  # archived
    assert "secret-plans" not in names  # private


async def test_channel_options_list_public_and_private_channels_and_are_cached(
    slack_api: Any, connection: dict[str, Any], loopback: Settings
) -> None:
    assert action("post_message").options["channel"] is channel_options
    ctx = make_context(settings=loopback, connection=connection)
    try:
        options = await channel_options(ctx)
        again = await channel_options(ctx)
    finally:
        await ctx.http.aclose()
    assert {"value": "C0000", "label": "#general"} in options
    assert {"value": "G0001", "label": "#secret-plans"} in options
    assert again == options
    assert len(slack_api.calls("conversations.list")) == 2  # two pages, once
    assert slack_api.calls("conversations.list")[0].query["types"] == (
        "public_channel,private_channel"
    )


async def test_a_refused_token_fails_without_retry_and_without_the_token(
    slack_api: Any, connection: dict[str, Any], loopback: Settings
) -> None:
    bad = {**connection, "bot_token": "xoxb-wrong-token-123456"}
    with pytest.raises(ActionError) as caught:
        await run_action(
            action("post_message"),
            {"channel": "C0001", "text": "x"},
            connection=bad,
            settings=loopback,
        )
    message = str(caught.value)
    assert "refused the credentials (invalid_auth)" in message
    assert not caught.value.retryable
    assert "xoxb-wrong-token-123456" not in message
    assert slack_api.calls("chat.postMessage")[0].headers["authorization"] == (
        "Bearer xoxb-wrong-token-123456"
    )


async def test_http_401_is_a_refusal_that_is_not_retried(
    slack_api: Any, connection: dict[str, Any], loopback: Settings
) -> None:
    slack_api.force(401, {"ok": False, "error": "not_authed"})
    with pytest.raises(ActionError) as caught:
        await run_action(
            action("delete_message"),
            {"channel": "C1", "ts": "1.1"},
            connection=connection,
            settings=loopback,
        )
    assert "refused the credentials" in str(caught.value)
    assert not caught.value.retryable


async def test_http_429_is_retryable_after_retry_after(
    slack_api: Any, connection: dict[str, Any], loopback: Settings
) -> None:
    slack_api.force(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "7"})
    with pytest.raises(ActionError) as caught:
        await run_action(
            action("post_message"),
            {"channel": "C0001", "text": "x"},
            connection=connection,
            settings=loopback,
        )
    assert caught.value.retryable
    assert caught.value.retry_after == 7.0
    assert "rate limited" in str(caught.value)


async def test_ratelimited_in_the_body_and_internal_errors_are_retryable(
    slack_api: Any, connection: dict[str, Any], loopback: Settings
) -> None:
    for body in ({"ok": False, "error": "ratelimited"}, {"ok": False, "error": "internal_error"}):
        slack_api.force(200, body)
        with pytest.raises(ActionError) as caught:
            await run_action(
                action("update_message"),
                {"channel": "C0001", "ts": "1.1", "text": "x"},
                connection=connection,
                settings=loopback,
            )
        assert caught.value.retryable, body


async def test_5xx_is_retryable(
    slack_api: Any, connection: dict[str, Any], loopback: Settings
) -> None:
    slack_api.force(503, b"<html>upstream down</html>")
    with pytest.raises(ActionError) as caught:
        await run_action(action("list_channels"), {}, connection=connection, settings=loopback)
    assert caught.value.retryable
    assert "HTTP 503" in str(caught.value)


async def test_missing_scope_names_the_scope_needed(
    slack_api: Any, connection: dict[str, Any], loopback: Settings
) -> None:
    slack_api.force(200, {"ok": False, "error": "missing_scope", "needed": "chat:write"})
    with pytest.raises(ActionError, match=r"lacks a scope.*needed: chat:write") as caught:
        await run_action(
            action("post_message"),
            {"channel": "C0001", "text": "x"},
            connection=connection,
            settings=loopback,
        )
    assert not caught.value.retryable


async def test_a_message_without_text_or_blocks_is_refused_before_any_request(
    slack_api: Any, connection: dict[str, Any], loopback: Settings
) -> None:
    with pytest.raises(ActionError, match=r"give input\.text or input\.blocks"):
        await run_action(
            action("post_message"), {"channel": "C0001"}, connection=connection, settings=loopback
        )
    assert slack_api.requests == []


async def test_an_unreachable_server_is_retryable(
    connection: dict[str, Any], loopback: Settings
) -> None:
    with socket.socket() as sock:  # a port that nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dead = {**connection, "base_url": f"http://127.0.0.1:{port}/api"}
    with pytest.raises(ActionError) as caught:
        await run_action(
            action("post_message"),
            {"channel": "C1", "text": "x"},
            connection=dead,
            settings=loopback,
        )
    assert caught.value.retryable
    assert connection["bot_token"] not in str(caught.value)


async def test_requests_go_through_the_hubs_ssrf_guard(
    slack_api: Any, connection: dict[str, Any]
) -> None:
    with pytest.raises(ActionError) as caught:
        await run_action(
            action("post_message"),
            {"channel": "C1", "text": "x"},
            connection=connection,
            settings=Settings(),  # loopback not allowed
        )
    assert not caught.value.retryable
    assert slack_api.requests == []


async def test_test_connection_calls_auth_test(
    slack_api: Any, connection: dict[str, Any], loopback: Settings
) -> None:
    ctx = make_context(settings=loopback)
    try:
        found = await plugin.test_connection(connection, ctx.http)
        with pytest.raises(ActionError, match="refused the credentials"):
            await plugin.test_connection({**connection, "bot_token": "xoxb-nope-00000"}, ctx.http)
    finally:
        await ctx.http.aclose()
    assert found == {"team": "Stand-in", "team_id": "T0001", "user": "hubbot"}
    assert [r.path for r in slack_api.requests] == ["/api/auth.test", "/api/auth.test"]


def test_the_declared_examples_validate_and_secrets_are_marked() -> None:
    connector = registry_of(plugin).connectors["slack"]
    for act in connector.actions:
        check_examples(act)
    props = connector.connection_schema["properties"]
    assert props["bot_token"]["writeOnly"] and props["signing_secret"]["writeOnly"]
    assert props["base_url"]["default"] == "https://slack.com/api"
