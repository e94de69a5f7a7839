"""Webhooks as real senders send them: delivery ids, presets, form bodies, one refusal format.

Signed with the senders' own libraries, on loopback only (the app in-process through httpx's
ASGI transport, as in tests/test_webhooks.py):

- GitHub: Octokit's ``@octokit/webhooks-methods`` (``sign``, from the npm registry, vendored
  as ``tests/vendor/octokit-webhooks-methods-6.0.0.tgz`` and run with node);
- Stripe: the ``stripe`` package's ``WebhookSignature.generate_signature_header`` (what
  Stripe documents for tests) and ``Webhook.construct_event`` (its verifier);
- Slack: ``slack_sdk.signature.SignatureVerifier`` (``generate_signature``, ``is_valid``);
- Svix: ``standardwebhooks`` (``Webhook.sign``, ``Webhook.verify``), the Standard Webhooks
  reference library that Svix signs by;
- Shopify: a Shopify-style delivery (base64 HMAC-SHA256 in ``X-Shopify-Hmac-Sha256``,
  ``X-Shopify-Webhook-Id``), made here: Shopify ships no signing library for Python.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import hmac
import json
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import stripe
from slack_sdk.signature import SignatureVerifier
from standardwebhooks.webhooks import Webhook as StandardWebhook

from hub import Connector, Trigger, hookimpl
from hub.builtin.triggers import SENDER_PRESETS
from hub.db import webhook_keys
from hub.db.models import webhook_keys as webhook_keys_table
from hub.flows import FlowError, parse_document
from hub.runtime import Hub
from hub.settings import Settings
from hub.testing import http_client, service_missing
from hub.triggers.senders import PRESETS
from hub.triggers.signatures import SignatureError, verify_svix
from tests import kit
from tests.conftest import started
from tests.test_webhooks import assert_refused, assert_replayed, hook_flow, publish, run_count

SECRET = "webhook-sender-secret-1"
SVIX_SECRET = "whsec_" + base64.b64encode(b"svix-test-key-0123456789abcdef").decode()
OCTOKIT = Path(__file__).parent / "vendor" / "octokit-webhooks-methods-6.0.0.tgz"


class ExpiredError(ValueError):
    """A plugin verifier's refusal that names its reason, as the built-in schemes do."""

    reason = "expired"


def verify_always_expired(
    config: dict[str, Any], secrets: dict[str, Any], headers: Any, raw: bytes, now: float
) -> None:
    """A plugin verifier that refuses every request as expired (or unnamed, on request)."""
    if headers.get("x-plain"):
        raise ValueError("refused without a reason")
    raise ExpiredError("the plugin's timestamp is too old")


@hookimpl
def hub_connectors() -> list[Connector]:
    """A connector whose webhook trigger's verifier gives reasons."""
    return [
        Connector(
            name="reasoned",
            triggers=[Trigger(name="events", kind="webhook", verify=verify_always_expired)],
        )
    ]


def sender(preset: str) -> dict[str, Any]:
    """A webhook trigger's config: the sender ``preset``, signed with the secret of the
    connection of the same name (the ``hub`` fixture makes one per sender)."""
    return {"sender": {"preset": preset, "secret_ref": preset}}


@pytest.fixture
async def hub(settings: Settings) -> AsyncIterator[Hub]:
    """A started hub with signing secrets for each sender."""
    async with started(settings, plugins=(kit, sys.modules[__name__])) as instance:
        for name in ("github", "stripe", "shopify", "slack"):
            await instance.set_connection(name, "core", {"secret": SECRET})
        await instance.set_connection("svix", "core", {"secret": SVIX_SECRET})
        yield instance


@pytest.fixture
async def client(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    """The app on the started hub, through httpx's ASGI transport on this event loop."""
    async with http_client(hub) as c:
        yield c


@pytest.fixture(scope="session")
def octokit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Octokit's webhooks-methods unpacked, and a node script that signs stdin with it."""
    if shutil.which("node") is None:
        service_missing("node is not installed (Octokit's signer runs under node)")
    folder = tmp_path_factory.mktemp("octokit")
    with tarfile.open(OCTOKIT) as archive:
        archive.extractall(folder, filter="data")
    script = folder / "sign.mjs"
    script.write_text(
        "import { sign, verify } from './package/dist-node/index.js';\n"
        "let data = '';\n"
        "for await (const chunk of process.stdin) data += chunk;\n"
        "const signature = await sign(process.argv[2], data);\n"
        "if (!(await verify(process.argv[2], data, signature))) process.exit(3);\n"
        "process.stdout.write(signature);\n"
    )
    return script


def octokit_sign(script: Path, secret: str, payload: str) -> str:
    """``X-Hub-Signature-256`` as Octokit signs ``payload``."""
    done = subprocess.run(
        ["node", str(script), secret],
        input=payload.encode(),
        capture_output=True,
        check=True,
        timeout=60,
    )
    return done.stdout.decode()


def echo_flow(flow_id: str, config: dict[str, Any]) -> dict[str, Any]:
    """A sync webhook flow whose output is the trigger's body as the flow saw it."""
    return {
        "id": flow_id,
        "trigger": {"type": "webhook", "config": {**config, "response": {"mode": "sync"}}},
        "steps": [{"id": "seen", "action": "data.set", "input": {"value": "{{ trigger.body }}"}}],
        "output": "{{ steps.seen.output }}",
    }


async def metric(client: httpx.AsyncClient, outcome: str) -> float:
    """``hub_webhook_requests_total{outcome=...}`` now (0 when not counted yet)."""
    text = (await client.get("/metrics")).text
    line = f'hub_webhook_requests_total{{outcome="{outcome}"}} '
    found = [row for row in text.splitlines() if row.startswith(line)]
    return float(found[0].split()[-1]) if found else 0.0


# -- presets --------------------------------------------------------------------------------


def test_the_schema_lists_every_preset() -> None:
    assert set(SENDER_PRESETS) == set(PRESETS)


async def test_a_github_delivery_sent_twice_starts_one_run(
    hub: Hub, client: httpx.AsyncClient, octokit: Path
) -> None:
    """Octokit's sign(); a redelivery keeps X-GitHub-Delivery and the signature."""
    config = sender("github")
    path = await publish(hub, hook_flow("gh", config))
    payload = json.dumps({"action": "opened", "order_id": "PR-7", "number": 7})
    headers = {
        "content-type": "application/json",
        "x-github-event": "pull_request",
        "x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "x-hub-signature-256": octokit_sign(octokit, SECRET, payload),
    }
    first = await client.post(path, content=payload, headers=headers)
    again = await client.post(path, content=payload, headers=headers)
    assert_replayed(first, again)
    assert await run_count(hub, "gh") == 1
    # Another delivery of the same payload is another run; a wrong signature none.
    other = await client.post(
        path, content=payload, headers={**headers, "x-github-delivery": "another-delivery"}
    )
    assert other.status_code == 202, other.text
    forged = await client.post(
        path,
        content=payload,
        headers={**headers, "x-github-delivery": "d3", "x-hub-signature-256": "sha256=00"},
    )
    assert_refused(forged, 401, "invalid_signature", "mismatch")
    assert await run_count(hub, "gh") == 2


async def test_a_stripe_event_retried_with_a_fresh_signature_starts_one_run(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    """stripe's generate_signature_header (checked by its construct_event); a retry is the
    same event id under a new timestamp and signature."""
    path = await publish(hub, hook_flow("stripe", sender("stripe")))
    payload = json.dumps(
        {"id": "evt_1Nx", "object": "event", "type": "invoice.paid", "order_id": "in_1"}
    )
    answers = []
    for shift in (0, 7):
        header = stripe.WebhookSignature.generate_signature_header(
            payload, SECRET, int(time.time()) + shift
        )
        stripe.Webhook.construct_event(payload, header, SECRET)  # Stripe's own verifier agrees
        answers.append(
            await client.post(
                path,
                content=payload,
                headers={"content-type": "application/json", "stripe-signature": header},
            )
        )
    assert_replayed(*answers)
    assert await run_count(hub, "stripe") == 1


async def test_a_shopify_style_delivery_sent_twice_starts_one_run(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    path = await publish(hub, hook_flow("shop", sender("shopify")))
    payload = b'{"id":820982911946154508,"order_id":"1001"}'
    digest = hmac.new(SECRET.encode(), payload, hashlib.sha256).digest()
    headers = {
        "content-type": "application/json",
        "x-shopify-topic": "orders/create",
        "x-shopify-hmac-sha256": base64.b64encode(digest).decode(),
        "x-shopify-webhook-id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
    }
    first = await client.post(path, content=payload, headers=headers)
    again = await client.post(path, content=payload, headers=headers)
    assert_replayed(first, again)
    assert await run_count(hub, "shop") == 1


async def test_a_svix_message_sent_twice_starts_one_run(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    """standardwebhooks' Webhook.sign and verify (Svix's scheme)."""
    path = await publish(hub, hook_flow("svix", sender("svix")))
    payload = '{"type":"invoice.paid","order_id":"sv-1"}'
    signer = StandardWebhook(SVIX_SECRET)
    answers = []
    for shift in (0, 3):  # a retry: the same svix-id, a new timestamp and signature
        stamp = datetime.datetime.now(tz=datetime.UTC) + datetime.timedelta(seconds=shift)
        standard = {
            "webhook-id": "msg_2Lx",
            "webhook-timestamp": str(int(stamp.timestamp())),
            "webhook-signature": signer.sign("msg_2Lx", stamp, payload),
        }
        signer.verify(payload, standard)
        # Svix sends the same values as svix-id, svix-timestamp and svix-signature.
        headers = {name.replace("webhook-", "svix-"): value for name, value in standard.items()}
        answers.append(
            await client.post(
                path, content=payload, headers={"content-type": "application/json", **headers}
            )
        )
    assert_replayed(*answers)
    bad = await client.post(
        path,
        content=payload.replace("sv-1", "sv-2"),
        headers={"content-type": "application/json", **headers, "svix-id": "msg_3"},
    )
    assert_refused(bad, 401, "invalid_signature", "mismatch")
    assert await run_count(hub, "svix") == 1


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_twenty_concurrent_repeats_of_one_delivery_start_one_run(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    config = sender("shopify")
    path = await publish(hub, hook_flow("burst", config))
    payload = b'{"order_id":"B-1"}'
    digest = hmac.new(SECRET.encode(), payload, hashlib.sha256).digest()
    headers = {
        "content-type": "application/json",
        "x-shopify-hmac-sha256": base64.b64encode(digest).decode(),
        "x-shopify-webhook-id": "burst-delivery-1",
    }
    responses = await asyncio.gather(
        *(client.post(path, content=payload, headers=headers) for _ in range(20))
    )
    assert sorted(r.status_code for r in responses) == [200] * 19 + [202], [
        r.text for r in responses
    ]
    assert len({r.json()["run_id"] for r in responses}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 19
    assert await run_count(hub, "burst") == 1


# -- where the key is -----------------------------------------------------------------------


async def test_a_request_without_the_named_key_is_400_and_starts_no_run(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    path = await publish(hub, hook_flow("byfield", {"dedup": {"field": "data.object.id"}}))
    for body in (
        b'{"data":{"object":{}}}',
        b'{"data":"x"}',
        b"[1]",
        b'{"data":{"object":{"id":""}}}',
    ):
        response = await client.post(
            path, content=body, headers={"content-type": "application/json"}
        )
        assert_refused(response, 400, "missing_dedup_key")
        assert response.json()["error"]["details"] == {"dedup": "the field body.data.object.id"}
    headed = await publish(hub, hook_flow("byheader", {"dedup": {"header": "X-Delivery"}}))
    response = await client.post(
        headed, content=b"{}", headers={"content-type": "application/json"}
    )
    assert_refused(response, 400, "missing_dedup_key")
    assert await run_count(hub, "byfield") == await run_count(hub, "byheader") == 0
    assert await metric(client, "missing_dedup_key") == 5


async def test_a_body_over_the_cap_is_413_before_any_key_is_read(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    path = await publish(
        hub, hook_flow("capped", {"dedup": {"field": "id"}, "max_body_bytes": 100})
    )
    body = json.dumps({"id": "evt_big", "pad": "x" * 200}).encode()
    response = await client.post(path, content=body, headers={"content-type": "application/json"})
    assert_refused(response, 413, "payload_too_large")
    assert await run_count(hub, "capped") == 0


async def test_a_dedup_key_from_a_body_field_and_from_an_expression(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    path = await publish(hub, hook_flow("field", {"dedup": {"field": ["event.id", "id"]}}))
    post = lambda body: client.post(  # noqa: E731
        path, content=json.dumps(body), headers={"content-type": "application/json"}
    )
    first = await post({"id": 41, "order_id": "F"})
    again = await post({"id": 41, "order_id": "F", "note": "a retry may differ"})
    nested = await post({"event": {"id": 41}, "id": 99})
    assert (first.status_code, again.status_code, nested.status_code) == (202, 200, 200)
    assert nested.json()["run_id"] == first.json()["run_id"]
    expression = "{{ trigger.headers['x-source'] ~ ':' ~ trigger.body.n }}"
    by_expr = await publish(hub, hook_flow("expr", {"dedup": {"expression": expression}}))
    results = [
        await client.post(
            by_expr,
            content=json.dumps({"n": n}),
            headers={"content-type": "application/json", "x-source": source},
        )
        for source, n in (("a", 1), ("a", 1), ("b", 1), ("a", 2))
    ]
    assert [r.status_code for r in results] == [202, 200, 202, 202]
    missing = await client.post(
        by_expr, content=b'{"n": 3}', headers={"content-type": "application/json"}
    )
    assert_refused(missing, 400, "missing_dedup_key")
    assert await run_count(hub, "expr") == 3


async def test_delivery_ids_are_kept_for_the_retention_window(hub: Hub) -> None:
    """Pruning drops ``dedup:`` rows older than HUB_WEBHOOK_DEDUP_RETENTION_HOURS only."""
    now_us = int(time.time() * 1_000_000)
    window = int(hub.settings.webhook_dedup_retention_hours * 3600e6)
    rows = {"dedup:old": now_us - window - 60_000_000, "dedup:new": now_us - window + 600e6}

    def seed(conn: Any) -> None:
        conn.execute(
            webhook_keys_table.insert(),
            [
                {
                    "workspace_id": "default",
                    "flow_id": "kept",
                    "key": key,
                    "request_hash": "h",
                    "run_id": "r",
                    "created_at": int(created),
                }
                for key, created in rows.items()
            ],
        )

    await hub.db.write(seed)
    gone = await hub.db.write(
        lambda c: webhook_keys.prune(c, "default", "kept", 0, 0, now_us - window)
    )
    assert gone == 1
    left = await hub.db.read(lambda c: webhook_keys.find(c, "default", "kept", list(rows)))
    assert sorted(left) == ["dedup:new"]
    assert hub.settings.webhook_dedup_retention_hours == 72.0
    assert (
        Settings.from_env(
            {"HUB_WEBHOOK_DEDUP_RETENTION_HOURS": "24"}, data_dir=hub.settings.data_dir
        ).webhook_dedup_retention_hours
        == 24.0
    )


# -- form bodies ----------------------------------------------------------------------------


def slack_headers(body: bytes) -> dict[str, str]:
    """slack_sdk's signature for ``body`` now (checked by its own verifier)."""
    verifier = SignatureVerifier(SECRET)
    stamp = str(int(time.time()))
    signature = verifier.generate_signature(timestamp=stamp, body=body)
    assert signature is not None and verifier.is_valid(body, stamp, signature)
    return {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": stamp,
        "x-slack-signature": signature,
    }


async def test_a_slack_slash_command_reaches_the_flow_as_an_object(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    path = await publish(hub, echo_flow("cmd", sender("slack")))
    body = urlencode(
        {
            "command": "/deploy",
            "text": "api now & then",
            "user_id": "U2147483697",
            "trigger_id": "13345224609.738474920.8088930838d88f008e0",
            "response_url": "https://hooks.slack.invalid/commands/1234/5678",
        }
    ).encode()
    response = await client.post(path, content=body, headers=slack_headers(body))
    assert response.status_code == 200, response.text
    assert response.json()["command"] == "/deploy"
    assert response.json()["text"] == "api now & then"
    # The same command again (trigger_id) is the same run.
    again = await client.post(path, content=body, headers=slack_headers(body))
    assert again.headers["idempotent-replayed"] == "true"
    assert await run_count(hub, "cmd") == 1


async def test_a_slack_interactive_payload_is_decoded(hub: Hub, client: httpx.AsyncClient) -> None:
    path = await publish(hub, echo_flow("act", sender("slack")))
    payload = {
        "type": "block_actions",
        "trigger_id": "123.456.abc",
        "user": {"id": "U1"},
        "actions": [{"action_id": "approve", "value": "order-7"}],
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    response = await client.post(path, content=body, headers=slack_headers(body))
    assert response.status_code == 200, response.text
    assert response.json() == {"payload": payload}
    # Signed over the raw bytes: the same form re-encoded is refused.
    reencoded = urlencode({"payload": json.dumps(payload, separators=(",", ":"))}).encode()
    headers = slack_headers(body)
    refused = await client.post(path, content=reencoded, headers=headers)
    assert_refused(refused, 401, "invalid_signature", "mismatch")


async def test_urlencoded_and_multipart_forms_become_objects(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    path = await publish(hub, echo_flow("forms", {}))
    form = {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}
    response = await client.post(path, content=b"a=1&b=%C3%A9t%C3%A9&a=2&a=&c", headers=form)
    assert response.status_code == 200, response.text
    assert response.json() == {"a": ["1", "2", ""], "b": "été", "c": ""}
    github_form = urlencode({"payload": json.dumps({"zen": "Keep it simple."})}).encode()
    response = await client.post(path, content=github_form, headers=form)
    assert response.json() == {"payload": {"zen": "Keep it simple."}}
    multipart = await client.post(
        path, data={"name": "Ada", "tags": ["x", "y"], "payload": '{"k": [1]}'}
    )
    assert multipart.status_code == 200, multipart.text
    assert multipart.json() == {"name": "Ada", "tags": ["x", "y"], "payload": {"k": [1]}}


async def test_form_refusals(hub: Hub, client: httpx.AsyncClient) -> None:
    path = await publish(hub, echo_flow("badforms", {}))
    with_file = await client.post(path, data={"a": "1"}, files={"f": ("a.bin", b"\x00\x01")})
    assert_refused(with_file, 415, "unsupported_media_type")
    latin = await client.post(
        path, content=b"a=%E9t%E9", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert_refused(latin, 415, "unsupported_media_type")
    deep = "[" * 100 + "]" * 100
    wrapped = await client.post(
        path,
        content=urlencode({"payload": deep}).encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert_refused(wrapped, 422, "json_too_deep")
    not_multipart = await client.post(
        path, content=b"garbage", headers={"content-type": "multipart/form-data; boundary=zz"}
    )
    assert_refused(not_multipart, 400, "invalid_form")
    assert await run_count(hub, "badforms") == 0


# -- the examples of examples/webhooks ------------------------------------------------------

EXAMPLES = Path(__file__).parent.parent / "examples" / "webhooks"


async def apply_example(hub: Hub, name: str) -> str:
    path = EXAMPLES / f"{name}.yaml"
    saved = await hub.save_flow(parse_document(path.read_text(), str(path)), publish=True)
    return f"/hooks/default/{saved.flow_id}"


async def output_of(hub: Hub, response: httpx.Response) -> Any:
    assert response.status_code == 202, response.text
    record = await hub.wait_for_run(response.json()["run_id"], 10)
    assert record["status"] == "succeeded", record["error"]
    return record["output"]


def test_every_sender_has_an_example() -> None:
    files = {path.stem for path in EXAMPLES.glob("*.yaml")}
    assert files == {
        "github-push",
        "stripe-invoice-paid",
        "shopify-order",
        "svix-event",
        "slack-command",
    }
    for path in EXAMPLES.glob("*.yaml"):
        preset = parse_document(path.read_text(), str(path))["trigger"]["config"]["sender"]
        assert preset["preset"] in PRESETS


async def test_the_github_example_reads_a_push(
    hub: Hub, client: httpx.AsyncClient, octokit: Path
) -> None:
    path = await apply_example(hub, "github-push")
    payload = json.dumps(
        {
            "ref": "refs/heads/main",
            "repository": {"full_name": "octo/hub"},
            "pusher": {"name": "ada"},
            "commits": [{"id": "a1"}, {"id": "b2"}],
        }
    )
    headers = {
        "content-type": "application/json",
        "x-github-event": "push",
        "x-github-delivery": "d-1",
        "x-hub-signature-256": octokit_sign(octokit, SECRET, payload),
    }
    out = await output_of(hub, await client.post(path, content=payload, headers=headers))
    assert out == {
        "event": "push",
        "repository": "octo/hub",
        "branch": "main",
        "commits": 2,
        "pusher": "ada",
    }
    # GitHub's form content type: the same push as payload=<json>, signed over the form.
    form = urlencode({"payload": payload})
    headers = {
        **headers,
        "content-type": "application/x-www-form-urlencoded",
        "x-github-delivery": "d-2",
        "x-hub-signature-256": octokit_sign(octokit, SECRET, form),
    }
    response = await client.post(path, content=form, headers=headers)
    assert response.status_code == 202, response.text


async def test_the_stripe_example_reads_an_invoice(hub: Hub, client: httpx.AsyncClient) -> None:
    path = await apply_example(hub, "stripe-invoice-paid")
    payload = json.dumps(
        {
            "id": "evt_1",
            "type": "invoice.paid",
            "data": {"object": {"customer": "cus_9", "amount_paid": 1250, "currency": "eur"}},
        }
    )
    header = stripe.WebhookSignature.generate_signature_header(payload, SECRET)
    stripe.Webhook.construct_event(payload, header, SECRET)
    response = await client.post(
        path,
        content=payload,
        headers={"content-type": "application/json", "stripe-signature": header},
    )
    out = await output_of(hub, response)
    assert out == {
        "event": "evt_1",
        "type": "invoice.paid",
        "customer": "cus_9",
        "amount": 12.5,
        "currency": "EUR",
    }


async def test_the_shopify_example_reads_an_order(hub: Hub, client: httpx.AsyncClient) -> None:
    path = await apply_example(hub, "shopify-order")
    payload = json.dumps(
        {
            "name": "#1001",
            "total_price": "42.50",
            "line_items": [{"title": "Mug", "quantity": 2}, {"title": "Tea", "quantity": 1}],
        }
    ).encode()
    digest = hmac.new(SECRET.encode(), payload, hashlib.sha256).digest()
    headers = {
        "content-type": "application/json",
        "x-shopify-topic": "orders/create",
        "x-shopify-hmac-sha256": base64.b64encode(digest).decode(),
        "x-shopify-webhook-id": "w-1",
    }
    out = await output_of(hub, await client.post(path, content=payload, headers=headers))
    assert out == {
        "topic": "orders/create",
        "order": "#1001",
        "total": 42.5,
        "items": ["2 x Mug", "1 x Tea"],
    }


async def test_the_svix_example_reads_an_event(hub: Hub, client: httpx.AsyncClient) -> None:
    path = await apply_example(hub, "svix-event")
    payload = '{"type":"user.created","data":{"id":"user_1"}}'
    stamp = datetime.datetime.now(tz=datetime.UTC)
    signature = StandardWebhook(SVIX_SECRET).sign("msg_1", stamp, payload)
    headers = {
        "content-type": "application/json",
        "svix-id": "msg_1",
        "svix-timestamp": str(int(stamp.timestamp())),
        "svix-signature": signature,
    }
    out = await output_of(hub, await client.post(path, content=payload, headers=headers))
    assert out == {"message": "msg_1", "type": "user.created", "data": {"id": "user_1"}}


async def test_the_slack_example_answers_a_command_and_a_button(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    path = await apply_example(hub, "slack-command")
    command = urlencode(
        {"command": "/order", "text": "A-17", "user_id": "U7", "trigger_id": "t.1"}
    ).encode()
    answer = await client.post(path, content=command, headers=slack_headers(command))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "response_type": "ephemeral",
        "text": "Order A-17 is on its way, <@U7>",
    }
    button = {
        "type": "block_actions",
        "trigger_id": "t.2",
        "user": {"id": "U7"},
        "actions": [{"action_id": "size", "value": "large"}],
    }
    form = urlencode({"payload": json.dumps(button)}).encode()
    answer = await client.post(path, content=form, headers=slack_headers(form))
    assert answer.json() == {"response_type": "ephemeral", "text": "U7 chose large"}


async def test_a_plugin_verifier_refusal_carries_its_reason_into_the_answer_and_metrics(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    saved = await hub.save_flow(
        {
            "id": "reasoned",
            "trigger": {"type": "reasoned.events"},
            "steps": [{"id": "a", "action": "data.set", "input": {"value": 1}}],
        },
        publish=True,
    )
    path = f"/hooks/default/{saved.flow_id}"
    expired = await client.post(path, content=b"{}", headers={"content-type": "application/json"})
    assert_refused(expired, 401, "invalid_signature", "expired")
    plain = await client.post(path, content=b"{}", headers={"x-plain": "1"})
    assert_refused(plain, 401, "invalid_signature", "refused")
    assert await metric(client, "invalid_signature:expired") == 1
    assert await metric(client, "invalid_signature:refused") == 1
    assert await run_count(hub, "reasoned") == 0


async def test_a_flow_with_a_broken_dedup_expression_or_two_places_is_refused(hub: Hub) -> None:
    broken = hook_flow("broken", {"dedup": {"expression": "{{ trigger.body.id ) }}"}})
    with pytest.raises(FlowError, match=r"trigger\.config\.dedup\.expression"):
        await hub.save_flow(broken, publish=True)
    both = hook_flow("both", {"dedup": {"header": "X-A", "field": "id"}})
    with pytest.raises(FlowError, match=r"trigger\.config\.dedup"):
        await hub.save_flow(both, publish=True)
    unknown = hook_flow("unknown", {"sender": {"preset": "gitlab", "secret_ref": "github"}})
    with pytest.raises(FlowError, match=r"trigger\.config\.sender\.preset"):
        await hub.save_flow(unknown, publish=True)


def test_svix_signatures_agree_with_standardwebhooks_both_spellings_and_rotation() -> None:
    """standardwebhooks signs; the hub's verifier accepts webhook-* and svix-* headers, any
    of several v1 values, and refuses another body or an old timestamp."""
    old = "whsec_" + base64.b64encode(b"the-old-key-of-this-endpoint").decode()
    stamp = datetime.datetime.now(tz=datetime.UTC)
    body = b'{"type":"ping"}'
    headers = {
        "webhook-id": "msg_9",
        "webhook-timestamp": str(int(stamp.timestamp())),
        "webhook-signature": StandardWebhook(old).sign("msg_9", stamp, body)
        + " "
        + StandardWebhook(SVIX_SECRET).sign("msg_9", stamp, body),
    }
    now = stamp.timestamp()
    assert verify_svix([SVIX_SECRET.encode()], headers, body, now).replay_key
    assert verify_svix([old.encode()], headers, body, now).timestamp == int(now)
    svix = {name.replace("webhook-", "svix-"): value for name, value in headers.items()}
    assert verify_svix([SVIX_SECRET.encode()], svix, body, now).replay_key
    with pytest.raises(SignatureError) as caught:
        verify_svix([SVIX_SECRET.encode()], headers, body + b" ", now)
    assert caught.value.reason == "mismatch"
    with pytest.raises(SignatureError) as caught:
        verify_svix([SVIX_SECRET.encode()], headers, body, now + 3600)
    assert caught.value.reason == "expired"
    with pytest.raises(SignatureError) as caught:
        verify_svix([SVIX_SECRET.encode()], {**headers, "webhook-signature": "v1,@@"}, body, now)
    assert caught.value.reason == "malformed"
