"""Webhooks: signatures over the raw body, Idempotency-Key, sync answers, JSON shape limits.

The app runs in-process (real ASGI through httpx's ASGI transport, on the hub's own event
loop, so requests gathered together really run concurrently), on a started hub with a real
database: SQLite, and PostgreSQL for the concurrent idempotency test. Signatures are made
here the way Stripe and Slack document them (HMAC-SHA256 over ``{t}.{body}`` and
``v0:{ts}:{body}``); no outside service is involved. Every refusal is checked to leave no run.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import pytest

from hub import Connector, Trigger, hookimpl
from hub.connectors import RegistrationError, Registry
from hub.db import webhook_keys
from hub.db.models import webhook_keys as webhook_keys_table
from hub.runtime import Hub
from hub.services import events as webhook_events
from hub.settings import Settings
from hub.testing import http_client
from hub.triggers.signatures import sign_slack, sign_stripe
from tests import kit
from tests.conftest import started

SECRET = "whsec-test-signing-secret-1"
OLD_SECRET = "whsec-old-signing-secret-0"
HOOK = "/hooks/default/{}"
BODY = b'{"order_id":"A-1","total":12.5,"lines":[{"sku":"X","qty":2}]}'


# -- a plugin with its own webhook trigger and verifier -----------------------------------


def verify_sigtest(
    config: dict[str, Any],
    secrets: dict[str, Any],
    headers: Mapping[str, str],
    raw: bytes,
    now: float,
) -> None:
    """The test service signs with HMAC-SHA256 of the body in X-Sigtest, hex."""
    expected = hmac.new(secrets["signing_secret"].encode(), raw, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, headers.get("x-sigtest", "")):
        # A careless plugin quoting its secret: the hub redacts it from the answer.
        raise ValueError(f"the sigtest signature does not match (key {secrets['signing_secret']})")


@hookimpl
def hub_connectors() -> list[Connector]:
    """A connector whose webhook trigger brings its own verifier."""
    return [
        Connector(
            name="sigtest",
            connection_schema={
                "type": "object",
                "properties": {"signing_secret": {"type": "string", "writeOnly": True}},
                "required": ["signing_secret"],
            },
            triggers=[Trigger(name="events", kind="webhook", verify=verify_sigtest)],
        )
    ]


# -- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture
async def hub(settings: Settings) -> AsyncIterator[Hub]:
    """A started hub with the kit plugin and this module's sigtest plugin."""
    async with started(settings, plugins=(kit, sys.modules[__name__])) as instance:
        await instance.set_connection("hook-secret", "core", {"secret": SECRET})
        await instance.set_connection(
            "rotating", "core", {"secret": SECRET, "secrets": [OLD_SECRET]}
        )
        await instance.set_connection("sigtest-main", "sigtest", {"signing_secret": SECRET})
        yield instance


@pytest.fixture
async def client(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    """The app on the started hub, called through httpx's ASGI transport on this event loop.

    (The app's start-up hooks are not needed: the hub is started and stopped by the fixture.)
    """
    async with http_client(hub) as c:
        yield c


def hook_flow(flow_id: str, config: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A webhook flow of two data.set steps whose output echoes the body's order id."""
    document: dict[str, Any] = {
        "id": flow_id,
        "trigger": {"type": "webhook", "config": config},
        "steps": [
            {"id": "first", "action": "data.set", "input": {"value": "{{ trigger.body }}"}},
            {
                "id": "second",
                "action": "data.set",
                "input": {"value": {"order": "{{ steps.first.output.order_id }}"}},
            },
        ],
        "output": "{{ steps.second.output }}",
    }
    document.update(changes)
    return document


async def publish(hub: Hub, document: dict[str, Any]) -> str:
    saved = await hub.save_flow(document, publish=True)
    return HOOK.format(saved.flow_id)


async def run_count(hub: Hub, flow_id: str) -> int:
    return len(await hub.list_runs(flow_id=flow_id, limit=1000))


def hmac_hex(secret: str, body: bytes, algorithm: str = "sha256") -> str:
    return hmac.new(secret.encode(), body, algorithm).hexdigest()


def assert_refused(
    response: httpx.Response, status: int, code: str, reason: str | None = None
) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    if reason is not None:
        assert error["details"] == {"reason": reason}, error


def assert_replayed(first: httpx.Response, again: httpx.Response) -> None:
    """``first`` started a run (202) and ``again`` was answered as its replay: 200,
    ``Idempotent-Replayed: true``, the same run."""
    assert first.status_code == 202, first.text
    assert "idempotent-replayed" not in first.headers
    assert again.status_code == 200, again.text
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json()["run_id"] == first.json()["run_id"]


async def post(
    client: httpx.AsyncClient, path: str, body: bytes, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await client.post(
        path, content=body, headers={"content-type": "application/json", **(headers or {})}
    )


# -- generic HMAC ---------------------------------------------------------------------------

HMAC_CONFIG = {"signature": {"secret_ref": "hook-secret", "header": "X-Signature"}}


async def test_a_good_hmac_signature_starts_a_run(hub: Hub, client: httpx.AsyncClient) -> None:
    path = await publish(hub, hook_flow("signed", HMAC_CONFIG))
    response = await post(client, path, BODY, {"x-signature": hmac_hex(SECRET, BODY)})
    assert response.status_code == 202, response.text
    run = await hub.wait_for_run(response.json()["run_id"], 10)
    assert run["status"] == "succeeded"
    assert run["output"] == {"order": "A-1"}


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing"),
        ({"x-signature": hmac_hex("another-secret-entirely", BODY)}, "mismatch"),
        ({"x-signature": hmac_hex(SECRET, BODY + b" ")}, "mismatch"),
        ({"x-signature": "not hex at all"}, "malformed"),
    ],
    ids=["missing", "wrong-secret", "other-body", "malformed"],
)
async def test_a_missing_or_wrong_hmac_signature_is_401_and_starts_no_run(
    hub: Hub, client: httpx.AsyncClient, headers: dict[str, str], reason: str
) -> None:
    path = await publish(hub, hook_flow("signed", HMAC_CONFIG))
    response = await post(client, path, BODY, headers)
    assert_refused(response, 401, "invalid_signature", reason)
    assert await run_count(hub, "signed") == 0


async def test_a_re_serialized_body_breaks_the_signature(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    """The same JSON, re-encoded with other spacing, is another body: refused."""
    path = await publish(hub, hook_flow("signed", HMAC_CONFIG))
    signature = hmac_hex(SECRET, BODY)
    reserialized = json.dumps(json.loads(BODY)).encode()  # ", " and ": " separators
    assert reserialized != BODY and json.loads(reserialized) == json.loads(BODY)
    response = await post(client, path, reserialized, {"x-signature": signature})
    assert_refused(response, 401, "invalid_signature", "mismatch")
    assert await run_count(hub, "signed") == 0


@pytest.mark.parametrize(
    ("options", "header_value"),
    [
        (
            {"prefix": "sha256="},
            lambda body: "sha256=" + hmac_hex(SECRET, body),
        ),
        (
            {"algorithm": "sha1", "prefix": "sha1="},
            lambda body: "sha1=" + hmac_hex(SECRET, body, "sha1"),
        ),
        (
            {"algorithm": "sha512", "encoding": "base64"},
            lambda body: base64.b64encode(
                hmac.new(SECRET.encode(), body, "sha512").digest()
            ).decode(),
        ),
        ({}, lambda body: hmac_hex(SECRET, body).upper()),
    ],
    ids=["github-style-prefix", "sha1", "sha512-base64", "upper-case-hex"],
)
async def test_hmac_variants_are_accepted_as_configured(
    hub: Hub, client: httpx.AsyncClient, options: dict[str, str], header_value: Any
) -> None:
    config = {"signature": {"secret_ref": "hook-secret", "header": "X-Hub-Signature", **options}}
    path = await publish(hub, hook_flow("variant", config))
    good = await post(client, path, BODY, {"x-hub-signature": header_value(BODY)})
    assert good.status_code == 202, good.text
    bad = await post(client, path, BODY, {"x-hub-signature": header_value(b"{}")})
    assert_refused(bad, 401, "invalid_signature")
    assert await run_count(hub, "variant") == 1


async def test_during_a_rotation_both_secrets_are_accepted_and_no_other(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    config = {"signature": {"secret_ref": "rotating"}}  # header X-Signature by default
    path = await publish(hub, hook_flow("rotated", config))
    for secret in (OLD_SECRET, SECRET):
        response = await post(client, path, BODY, {"x-signature": hmac_hex(secret, BODY)})
        assert response.status_code == 202, response.text
    stale = await post(client, path, BODY, {"x-signature": hmac_hex("retired-secret-x", BODY)})
    assert_refused(stale, 401, "invalid_signature", "mismatch")
    assert await run_count(hub, "rotated") == 2


async def test_a_changed_secret_takes_effect_after_the_short_local_cache(
    hub: Hub, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webhook_events, "SECRET_TTL", 0.05)
    path = await publish(hub, hook_flow("changing", HMAC_CONFIG))
    assert (await post(client, path, BODY, {"x-signature": hmac_hex(SECRET, BODY)})).is_success
    await hub.set_connection("hook-secret", "core", {"secret": OLD_SECRET})
    await asyncio.sleep(0.1)
    retired = await post(client, path, BODY, {"x-signature": hmac_hex(SECRET, BODY)})
    assert_refused(retired, 401, "invalid_signature", "mismatch")
    current = await post(client, path, BODY, {"x-signature": hmac_hex(OLD_SECRET, BODY)})
    assert current.status_code == 202
    assert await run_count(hub, "changing") == 2


async def test_a_missing_secret_connection_is_503_and_starts_no_run(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    config = {"signature": {"secret_ref": "no-such-connection"}}
    path = await publish(hub, hook_flow("orphan", config))
    response = await post(client, path, BODY, {"x-signature": hmac_hex(SECRET, BODY)})
    assert_refused(response, 503, "unavailable")
    assert SECRET not in response.text
    assert await run_count(hub, "orphan") == 0


# -- Stripe ---------------------------------------------------------------------------------

STRIPE_CONFIG = {"signature": {"scheme": "stripe", "secret_ref": "hook-secret", "tolerance": "5m"}}


async def test_stripe_signatures_good_expired_replayed_and_re_serialized(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    path = await publish(hub, hook_flow("stripe", STRIPE_CONFIG))
    now = int(time.time())
    header = sign_stripe(SECRET, BODY, now)
    good = await post(client, path, BODY, {"stripe-signature": header})
    assert good.status_code == 202, good.text

    replay = await post(client, path, BODY, {"stripe-signature": header})
    assert_refused(replay, 401, "invalid_signature", "replayed")

    expired = await post(
        client, path, BODY, {"stripe-signature": sign_stripe(SECRET, BODY, now - 301)}
    )
    assert_refused(expired, 401, "invalid_signature", "expired")
    future = await post(
        client, path, BODY, {"stripe-signature": sign_stripe(SECRET, BODY, now + 400)}
    )
    assert_refused(future, 401, "invalid_signature", "expired")

    reserialized = json.dumps(json.loads(BODY)).encode()
    moved = await post(client, path, reserialized, {"stripe-signature": header})
    assert_refused(moved, 401, "invalid_signature", "mismatch")
    missing = await post(client, path, BODY)
    assert_refused(missing, 401, "invalid_signature", "missing")
    garbage = await post(client, path, BODY, {"stripe-signature": "t=abc"})
    assert_refused(garbage, 401, "invalid_signature", "malformed")
    assert await run_count(hub, "stripe") == 1


async def test_stripe_accepts_any_of_several_v1_signatures(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    """Stripe sends one v1 per active secret while an endpoint's secret is rolled."""
    path = await publish(hub, hook_flow("stripe", STRIPE_CONFIG))
    now = int(time.time())
    wrong = sign_stripe("an-expired-endpoint-secret", BODY, now).split("v1=")[1]
    right = sign_stripe(SECRET, BODY, now).split("v1=")[1]
    header = f"t={now},v1={wrong},v1={right},v0=ignored"
    response = await post(client, path, BODY, {"stripe-signature": header})
    assert response.status_code == 202, response.text
    only_wrong = await post(client, path, BODY, {"stripe-signature": f"t={now},v1={wrong}"})
    assert_refused(only_wrong, 401, "invalid_signature", "mismatch")


async def test_a_replay_racing_the_first_delivery_starts_one_run(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    path = await publish(hub, hook_flow("stripe", STRIPE_CONFIG))
    header = sign_stripe(SECRET, BODY, int(time.time()))
    responses = await asyncio.gather(
        *(post(client, path, BODY, {"stripe-signature": header}) for _ in range(10))
    )
    assert sorted(r.status_code for r in responses) == [202] + [401] * 9
    assert await run_count(hub, "stripe") == 1


# -- Slack ----------------------------------------------------------------------------------

SLACK_CONFIG = {"signature": {"scheme": "slack", "secret_ref": "hook-secret", "tolerance": 60}}


async def test_slack_signatures_good_expired_replayed_wrong_and_missing(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    path = await publish(hub, hook_flow("slack", SLACK_CONFIG))
    now = int(time.time())
    headers = sign_slack(SECRET, BODY, now)
    good = await post(client, path, BODY, headers)
    assert good.status_code == 202, good.text

    assert_refused(await post(client, path, BODY, headers), 401, "invalid_signature", "replayed")
    old = sign_slack(SECRET, BODY, now - 61)
    assert_refused(await post(client, path, BODY, old), 401, "invalid_signature", "expired")
    wrong = sign_slack("not-the-slack-secret", BODY, now)
    assert_refused(await post(client, path, BODY, wrong), 401, "invalid_signature", "mismatch")
    # The timestamp is signed: moving it breaks the signature.
    moved = {**headers, "X-Slack-Request-Timestamp": str(now + 1)}
    assert_refused(await post(client, path, BODY, moved), 401, "invalid_signature", "mismatch")
    no_stamp = {"X-Slack-Signature": headers["X-Slack-Signature"]}
    assert_refused(await post(client, path, BODY, no_stamp), 401, "invalid_signature", "missing")
    reserialized = json.dumps(json.loads(BODY)).encode()
    fresh = sign_slack(SECRET, BODY, now + 2)
    assert_refused(await post(client, path, reserialized, fresh), 401, "invalid_signature")
    assert await run_count(hub, "slack") == 1


# -- a plugin's own verifier ----------------------------------------------------------------


async def test_a_plugin_webhook_trigger_verifies_with_its_own_function(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    document = hook_flow("plugged", {})
    document["trigger"] = {"type": "sigtest.events", "connection": "sigtest-main"}
    path = await publish(hub, document)
    good = await post(client, path, BODY, {"x-sigtest": hmac_hex(SECRET, BODY)})
    assert good.status_code == 202, good.text
    run = await hub.wait_for_run(good.json()["run_id"], 10)
    assert run["output"] == {"order": "A-1"}
    bad = await post(client, path, BODY, {"x-sigtest": hmac_hex(SECRET, b"other")})
    assert_refused(bad, 401, "invalid_signature", "refused")
    assert "sigtest signature does not match (key [redacted])" in bad.json()["error"]["message"]
    assert SECRET not in bad.text
    assert await run_count(hub, "plugged") == 1


def test_a_verifier_on_a_trigger_that_is_not_a_webhook_is_refused_at_registration() -> None:
    async def poll(ctx: Any, config: Any, cursor: Any) -> tuple[list[Any], Any]:
        return [], cursor

    registry = Registry()
    bad = Connector(
        name="confused",
        triggers=[Trigger(name="feed", kind="poll", poll=poll, verify=verify_sigtest)],
    )
    with pytest.raises(RegistrationError, match="plugin 'p', connector 'confused', trigger"):
        registry.add("p", [bad])


# -- Idempotency-Key ------------------------------------------------------------------------


async def test_the_same_idempotency_key_and_body_answer_the_first_run(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    path = await publish(hub, hook_flow("idem", {}))
    first = await post(client, path, BODY, {"idempotency-key": "order-A-1"})
    again = await post(client, path, BODY, {"idempotency-key": "order-A-1"})
    assert_replayed(first, again)

    other = await post(client, path, BODY + b" ", {"idempotency-key": "order-A-1"})
    assert_refused(other, 409, "idempotency_conflict")
    assert other.json()["error"]["details"] == {"run_id": first.json()["run_id"]}

    fresh = await post(client, path, BODY, {"idempotency-key": "order-A-2"})
    assert fresh.status_code == 202
    assert fresh.json()["run_id"] != first.json()["run_id"]
    assert await run_count(hub, "idem") == 2


async def test_keys_are_per_flow(hub: Hub, client: httpx.AsyncClient) -> None:
    one = await publish(hub, hook_flow("idem-one", {}))
    two = await publish(hub, hook_flow("idem-two", {}))
    a = await post(client, one, BODY, {"idempotency-key": "shared"})
    b = await post(client, two, BODY, {"idempotency-key": "shared"})
    assert (a.status_code, b.status_code) == (202, 202)
    assert a.json()["run_id"] != b.json()["run_id"]


async def test_a_too_long_idempotency_key_is_400(hub: Hub, client: httpx.AsyncClient) -> None:
    path = await publish(hub, hook_flow("idem", {}))
    response = await post(client, path, BODY, {"idempotency-key": "k" * 196})
    assert_refused(response, 400, "invalid_idempotency_key")
    assert await run_count(hub, "idem") == 0


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_twenty_concurrent_requests_with_one_key_create_exactly_one_run(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    path = await publish(hub, hook_flow("idem", {}))
    responses = await asyncio.gather(
        *(post(client, path, BODY, {"idempotency-key": "burst-1"}) for _ in range(20))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 19 + [202], [r.text for r in responses]
    assert len({r.json()["run_id"] for r in responses}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 19
    assert await run_count(hub, "idem") == 1
    # And a conflicting body racing the same key never makes a second run either.
    racing = await asyncio.gather(
        *(post(client, path, BODY + b" " * i, {"idempotency-key": "burst-2"}) for i in range(10))
    )
    assert sorted(r.status_code for r in racing) == [202] + [409] * 9
    assert await run_count(hub, "idem") == 2


# -- synchronous answers --------------------------------------------------------------------


async def test_sync_mode_answers_with_the_flow_output(hub: Hub, client: httpx.AsyncClient) -> None:
    path = await publish(hub, hook_flow("sync", {"response": {"mode": "sync", "timeout": "5s"}}))
    response = await post(client, path, BODY)
    assert response.status_code == 200, response.text
    assert response.json() == {"order": "A-1"}
    run = await hub.get_run(response.headers["x-run-id"], with_steps=False)
    assert run["status"] == "succeeded"


async def test_sync_mode_past_the_timeout_answers_202_with_the_run_id(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    document = hook_flow("slow", {"response": {"mode": "sync", "timeout": "200ms"}})
    document["steps"] = [
        {"id": "wait", "action": "test.sleep", "input": {"seconds": 1.0, "value": "late"}}
    ]
    document.pop("output")
    path = await publish(hub, document)
    started_at = time.monotonic()
    response = await post(client, path, BODY)
    took = time.monotonic() - started_at
    assert response.status_code == 202, response.text
    assert 0.15 < took < 0.9
    run = await hub.wait_for_run(response.json()["run_id"], 10)
    assert (run["status"], run["output"]) == ("succeeded", "late")


async def test_sync_mode_reports_a_failed_run_without_its_error_text(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    document = hook_flow("failing", {"response": {"mode": "sync"}})
    document["steps"] = [{"id": "no", "action": "flow.fail", "input": {"message": "internal x"}}]
    document.pop("output")
    path = await publish(hub, document)
    response = await post(client, path, BODY)
    assert_refused(response, 502, "run_failed")
    assert "internal x" not in response.text
    assert response.json()["error"]["details"]["status"] == "failed"


async def test_async_mode_is_the_default_and_answers_at_once(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    document = hook_flow("later", {})
    document["steps"] = [{"id": "wait", "action": "test.sleep", "input": {"seconds": 0.5}}]
    document.pop("output")
    path = await publish(hub, document)
    started_at = time.monotonic()
    response = await post(client, path, BODY)
    assert response.status_code == 202
    assert time.monotonic() - started_at < 0.3
    assert response.json() == {"run_id": response.json()["run_id"], "status": "running"}


# -- JSON shape limits ----------------------------------------------------------------------


def nested(depth: int) -> bytes:
    return b'{"a":' * (depth - 1) + b"[1]" + b"}" * (depth - 1)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (nested(65), 422, "json_too_deep"),
        (b"[" * 5000 + b"]" * 5000, 422, "json_too_deep"),
        (b"[" * 900_000, 422, "json_too_deep"),  # unbalanced too: refused before parsing ends
        (b'{"' + b"k" * 1025 + b'":1}', 422, "json_key_too_long"),
        (
            b"{" + b",".join(b'"k%d":0' % i for i in range(10_001)) + b"}",
            413,
            "json_too_many_keys",
        ),
    ],
    ids=["depth-65", "depth-5000", "900k-open-brackets", "key-1025", "10001-keys"],
)
async def test_deep_or_huge_key_json_is_refused_with_bounded_memory(
    hub: Hub, client: httpx.AsyncClient, body: bytes, status: int, code: str
) -> None:
    path = await publish(hub, hook_flow("shapes", {}))
    tracemalloc.start()
    try:
        response = await post(client, path, body)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert_refused(response, status, code)
    assert response.json()["error"]["message"].startswith("body")
    assert peak < 8 * len(body) + 4_000_000, peak
    assert await run_count(hub, "shapes") == 0


async def test_json_at_the_limits_is_accepted(hub: Hub, client: httpx.AsyncClient) -> None:
    path = await publish(hub, hook_flow("shapes", {}))
    at_limits = [
        nested(64),
        b'{"' + b"k" * 1024 + b'":1}',
        b"{" + b",".join(b'"k%d":0' % i for i in range(10_000)) + b"}",
    ]
    for body in at_limits:
        response = await post(client, path, body)
        assert response.status_code == 202, response.text[:200]
    assert await run_count(hub, "shapes") == 3


async def test_the_error_names_the_place_of_a_long_key(hub: Hub, client: httpx.AsyncClient) -> None:
    path = await publish(hub, hook_flow("shapes", {}))
    body = b'{"order":{"lines":[{"ok":1},{"' + b"x" * 2000 + b'":2}]}}'
    response = await post(client, path, body)
    assert_refused(response, 422, "json_key_too_long")
    assert response.json()["error"]["message"].startswith("body.order.lines[1]: a key of 2000")


# -- pruning --------------------------------------------------------------------------------


async def test_prune_deletes_expired_markers_and_keys_and_keeps_fresh_ones(hub: Hub) -> None:
    now_s = int(time.time())
    old_us = (now_s - 2 * 86400) * 1_000_000
    rows = {
        f"sig:{now_s - 900:012d}:aa": old_us,  # signed 15 min ago: out of a 5 min tolerance
        f"sig:{now_s - 10:012d}:bb": old_us,  # signed 10 s ago: kept
        "idem:old-key": old_us,  # stored 2 days ago: over 24 h
        "idem:new-key": (now_s - 60) * 1_000_000,
    }

    def seed(conn: Any) -> None:
        conn.execute(
            webhook_keys_table.insert(),
            [
                {
                    "workspace_id": "default",
                    "flow_id": "pruned",
                    "key": key,
                    "request_hash": "h",
                    "run_id": "r",
                    "created_at": created,
                }
                for key, created in rows.items()
            ],
        )

    await hub.db.write(seed)
    gone = await hub.db.write(
        lambda c: webhook_keys.prune(
            c, "default", "pruned", now_s - 300, now_s * 1_000_000 - 86400e6
        )
    )
    assert gone == 2
    left = await hub.db.read(lambda c: webhook_keys.find(c, "default", "pruned", list(rows)))
    assert sorted(left) == sorted([f"sig:{now_s - 10:012d}:bb", "idem:new-key"])


async def test_sync_mode_answers_null_for_a_flow_without_output(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    document = hook_flow("quiet", {"response": {"mode": "sync"}})
    document["steps"] = [{"id": "nothing", "action": "data.set", "input": {"value": None}}]
    document.pop("output")
    path = await publish(hub, document)
    response = await post(client, path, BODY)
    assert response.status_code == 200, response.text
    assert response.content == b"null"
