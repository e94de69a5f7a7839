"""nats.publish and the connection test, against the real NATS server (JetStream enabled)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import hub_nats.plugin as plugin
import nats
import pytest

from hub import ActionError
from hub.testing import check_examples, check_flow_file, make_context, registry_of, run_action

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "connectors"
EXAMPLE = EXAMPLES / "nats-sensor-alerts.yaml"


@pytest.fixture
async def stream(nats_conn: dict[str, Any], unique: str) -> AsyncIterator[str]:
    """A fresh stream capturing ``<unique>.>``; yields the subject prefix."""
    nc = await nats.connect(nats_conn["servers"])
    js = nc.jetstream()
    await js.add_stream(name=unique, subjects=[f"{unique}.>"])
    try:
        yield unique
    finally:
        await js.delete_stream(unique)
        await nc.close()


def test_registry_accepts_the_connector_and_its_examples() -> None:
    registry = registry_of(plugin)
    assert "nats.publish" in registry.actions
    assert registry.triggers["nats.message"].kind == "subscribe"
    props = registry.connectors["nats"].connection_schema["properties"]  # type: ignore[index]
    assert props["password"]["writeOnly"] is True and props["token"]["writeOnly"] is True
    check_examples(plugin.PUBLISH)


def test_example_flow_validates() -> None:
    flow = check_flow_file(EXAMPLE, plugin)
    assert flow.trigger.type == "nats.message"


async def test_core_publish_delivers_data_headers_and_the_idempotency_msg_id(
    nats_conn: dict[str, Any], unique: str
) -> None:
    nc = await nats.connect(nats_conn["servers"])
    sub = await nc.subscribe(f"{unique}.core")
    await nc.flush()
    ctx = make_context(connection=nats_conn, step_key="tell")
    try:
        out = await plugin.PUBLISH.run(
            ctx,
            {"subject": f"{unique}.core", "data": {"temp": 21.5}, "headers": {"X-Site": "north"}},
        )
        msg = await sub.next_msg(timeout=5)
    finally:
        await ctx.http.aclose()
        await nc.close()
    assert json.loads(msg.data) == {"temp": 21.5}
    assert msg.headers is not None
    assert msg.headers["X-Site"] == "north"
    assert msg.headers["Content-Type"] == "application/json"
    assert msg.headers["Nats-Msg-Id"] == ctx.idempotency_key == f"{ctx.run_id}:tell"
    assert out == {
        "subject": f"{unique}.core",
        "bytes": len(msg.data),
        "msg_id": ctx.idempotency_key,
        "jetstream": False,
        "stream": None,
        "seq": None,
        "duplicate": False,
    }


async def test_jetstream_publish_is_stored_once_when_a_step_is_retried(
    nats_conn: dict[str, Any], stream: str
) -> None:
    """Two attempts of one step share the idempotency key: JetStream keeps one message."""
    subject = f"{stream}.orders"
    first_try = make_context(connection=nats_conn, step_key="send", attempt=1)
    retry = make_context(connection=nats_conn, step_key="send", attempt=2)
    retry.idempotency_key = first_try.idempotency_key  # same run and step key, as the engine
    try:
        one = await plugin.PUBLISH.run(
            first_try, {"subject": subject, "data": "order 1", "jetstream": True}
        )
        two = await plugin.PUBLISH.run(
            retry, {"subject": subject, "data": "order 1", "jetstream": True}
        )
    finally:
        await first_try.http.aclose()
        await retry.http.aclose()
    assert one["stream"] == stream and one["seq"] == 1 and one["duplicate"] is False
    assert two["seq"] == 1 and two["duplicate"] is True
    nc = await nats.connect(nats_conn["servers"])
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        stored = await js.get_msg(stream, 1)
    finally:
        await nc.close()
    assert info.state.messages == 1
    assert stored.data == b"order 1"
    assert stored.headers is not None
    assert stored.headers["Nats-Msg-Id"] == first_try.idempotency_key


async def test_jetstream_publish_without_a_stream_is_a_clear_non_retryable_error(
    nats_conn: dict[str, Any], unique: str
) -> None:
    with pytest.raises(ActionError, match="no JetStream stream captures") as info:
        await run_action(
            plugin.PUBLISH,
            {"subject": f"{unique}.nowhere", "data": 1, "jetstream": True},
            connection=nats_conn,
        )
    assert info.value.retryable is False


async def test_jetstream_publish_to_the_wrong_expected_stream_fails(
    nats_conn: dict[str, Any], stream: str
) -> None:
    with pytest.raises(ActionError, match="JetStream refused") as info:
        await run_action(
            plugin.PUBLISH,
            {"subject": f"{stream}.x", "data": 1, "jetstream": True, "stream": "OTHER"},
            connection=nats_conn,
        )
    assert info.value.retryable is False


async def test_connection_test_reports_jetstream(nats_conn: dict[str, Any]) -> None:
    result = await plugin.test_connection(nats_conn)
    assert result["ok"] is True and result["jetstream"] is True


async def test_refused_credentials_are_not_retryable_and_hide_the_password(
    auth_server: dict[str, Any],
) -> None:
    assert (await plugin.test_connection(auth_server))["ok"] is True
    bad = {**auth_server, "password": "Wr0ng-s3cret-pw"}
    with pytest.raises(ActionError) as info:
        await plugin.test_connection(bad)
    assert "refused the credentials of user 'alice'" in str(info.value)
    assert info.value.retryable is False and "Wr0ng-s3cret-pw" not in str(info.value)
    with pytest.raises(ActionError, match="none were given") as none:
        await plugin.test_connection({"servers": auth_server["servers"]})
    assert none.value.retryable is False
    with pytest.raises(ActionError) as step:
        await run_action(plugin.PUBLISH, {"subject": "a", "data": 1}, connection=bad)
    assert step.value.retryable is False and "Wr0ng-s3cret-pw" not in str(step.value)


async def test_credentials_in_a_server_url_never_reach_an_error(closed_port: int) -> None:
    url = f"nats://bob:Url-s3cret@127.0.0.1:{closed_port}"
    with pytest.raises(ActionError, match="cannot connect") as info:
        await asyncio.wait_for(plugin.test_connection({"servers": url, "timeout": 2}), 20)
    assert info.value.retryable is True
    assert "Url-s3cret" not in str(info.value) and "bob:" not in str(info.value)


async def test_publish_without_a_connection_names_the_action() -> None:
    with pytest.raises(ActionError, match=r"nats\.publish: needs a connection"):
        await run_action(plugin.PUBLISH, {"subject": "a", "data": 1})
