"""Calling operations of a generated connector against the local pet store stand-in.

Pet store is a local stand-in (``conftest.py``: a Litestar app on 127.0.0.1 implementing
``examples/petstore.yaml``). Requests go through the hub's own HTTP client and SSRF guard
(``hub_settings`` lets loopback through), exactly as in a run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hub import Action, ActionError
from hub.testing import ActionCheckError, run_action

from hub_openapi import plugin

SPEC = Path(__file__).resolve().parent.parent / "examples" / "petstore.yaml"


@pytest.fixture(scope="module")
def acts() -> dict[str, Action]:
    return {a.name: a for a in plugin.build_connector(SPEC).actions}


async def call(
    acts: dict[str, Action], name: str, data: Any, connection: dict[str, Any], settings: Any
) -> Any:
    return await run_action(acts[name], data, connection=connection, settings=settings)


async def test_query_parameters_and_the_api_key_header_are_sent(
    acts: dict[str, Action], petstore: Any, connection: dict[str, Any], hub_settings: Any
) -> None:
    out = await call(
        acts, "list_pets", {"tag": ["dog", "bird"], "limit": 5}, connection, hub_settings
    )
    assert out["status"] == 200
    assert out["body"] == [{"id": 1, "name": "Rex", "tag": "dog"}]
    assert out["headers"]["content-type"].startswith("application/json")
    (seen,) = petstore.requests
    assert seen["query"] == "limit=5&tag=dog&tag=bird"  # form style, exploded
    assert seen["headers"]["x-api-key"] == connection["api_key"]


async def test_a_path_parameter_selects_the_resource(
    acts: dict[str, Action], petstore: Any, connection: dict[str, Any], hub_settings: Any
) -> None:
    out = await call(acts, "get_pet_by_id", {"petId": 2}, connection, hub_settings)
    assert out["body"] == {"id": 2, "name": "Tom", "tag": "cat"}
    assert petstore.requests[0]["path"] == "/pets/2"


async def test_a_json_body_creates_with_the_hubs_idempotency_key(
    acts: dict[str, Action], petstore: Any, connection: dict[str, Any], hub_settings: Any
) -> None:
    body = {"name": "Nemo", "tag": None, "weight": 0.1}
    out = await call(acts, "create_pet", {"body": body}, connection, hub_settings)
    assert out["status"] == 201
    assert out["body"] == {"id": 3, "name": "Nemo", "weight": 0.1}
    key = petstore.requests[0]["headers"]["idempotency-key"]
    assert key.endswith(":test")  # the context's key: run id and step key
    assert petstore.requests[0]["headers"]["content-type"] == "application/json"


async def test_an_explicit_idempotency_key_is_kept(
    acts: dict[str, Action], petstore: Any, connection: dict[str, Any], hub_settings: Any
) -> None:
    data = {"body": {"name": "Nemo"}, "Idempotency-Key": "mine-1"}
    first = await call(acts, "create_pet", data, connection, hub_settings)
    again = await call(acts, "create_pet", data, connection, hub_settings)
    assert first["body"]["id"] == again["body"]["id"] == 3  # the service deduplicated
    assert {r["headers"]["idempotency-key"] for r in petstore.requests} == {"mine-1"}


async def test_no_content_returns_a_null_body(
    acts: dict[str, Action], petstore: Any, connection: dict[str, Any], hub_settings: Any
) -> None:
    out = await call(acts, "delete_pet", {"petId": 1}, connection, hub_settings)
    assert (out["status"], out["body"]) == (204, None)
    assert 1 not in petstore.pets


async def test_not_found_fails_the_step_without_retry_and_says_why(
    acts: dict[str, Action], petstore: Any, connection: dict[str, Any], hub_settings: Any
) -> None:
    with pytest.raises(ActionError) as err:
        await call(acts, "get_pet_by_id", {"petId": 99}, connection, hub_settings)
    message = str(err.value)
    assert "petstore.get_pet_by_id (GET /pets/{petId}) answered 404 Not Found" in message
    assert "no pet 99" in message
    assert err.value.retryable is False


async def test_input_breaking_the_schema_is_refused_before_any_request(
    acts: dict[str, Action], petstore: Any, connection: dict[str, Any], hub_settings: Any
) -> None:
    with pytest.raises(ActionCheckError, match="petId"):
        await call(acts, "get_pet_by_id", {"petId": 0}, connection, hub_settings)
    assert petstore.requests == []


async def test_refused_credentials_are_not_retried_and_not_shown(
    acts: dict[str, Action], petstore: Any, connection: dict[str, Any], hub_settings: Any
) -> None:
    bad = {**connection, "api_key": "wrong-secret-value"}
    with pytest.raises(ActionError, match="the credentials were refused \\(401") as err:
        await call(acts, "list_pets", {}, bad, hub_settings)
    assert err.value.retryable is False
    assert "wrong-secret-value" not in str(err.value)


async def test_rate_limiting_is_retryable_after_retry_after(
    acts: dict[str, Action], petstore: Any, connection: dict[str, Any], hub_settings: Any
) -> None:
    petstore.fail_next = (429, {"Retry-After": "3"})
    with pytest.raises(ActionError, match="answered 429") as err:
        await call(acts, "list_pets", {}, connection, hub_settings)
    assert err.value.retryable is True and err.value.retry_after == 3.0


async def test_server_errors_are_retryable(
    acts: dict[str, Action], petstore: Any, connection: dict[str, Any], hub_settings: Any
) -> None:
    petstore.fail_next = (503, {})
    with pytest.raises(ActionError, match="answered 503") as err:
        await call(acts, "get_pet_by_id", {"petId": 1}, connection, hub_settings)
    assert err.value.retryable is True


async def test_a_closed_port_is_a_retryable_connection_error(
    acts: dict[str, Action], hub_settings: Any
) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    conn = {"base_url": f"http://127.0.0.1:{port}", "api_key": "k"}
    with pytest.raises(ActionError, match="failed: ConnectError") as err:
        await call(acts, "list_pets", {}, conn, hub_settings)
    assert err.value.retryable is True


async def test_loopback_is_refused_without_allow_hosts(
    acts: dict[str, Action], petstore: Any, connection: dict[str, Any]
) -> None:
    with pytest.raises(ActionError, match="loopback"):
        await run_action(acts["list_pets"], {}, connection=connection)  # default settings
    assert petstore.requests == []


@pytest.mark.parametrize(
    ("action", "fields", "via"),
    [
        ("admin_stats", {"bearer_auth_token": "admin-token-456"}, "bearer"),
        (
            "legacy_stats",
            {"basic_auth_username": "ada", "basic_auth_password": "lovelace-789"},
            "basic",
        ),
        ("search_stats", {"query_key": "query-key-000"}, "query"),
    ],
)
async def test_each_security_scheme_sends_its_credentials(
    acts: dict[str, Action],
    petstore: Any,
    hub_settings: Any,
    action: str,
    fields: dict[str, str],
    via: str,
) -> None:
    conn = {"base_url": petstore.url, **fields}
    out = await call(acts, action, {}, conn, hub_settings)
    assert out["body"] == {"pets": 2, "via": via}
    assert "x-api-key" not in petstore.requests[0]["headers"]  # the operation's own security


async def test_oauth2_client_credentials_fetch_a_token_once(
    acts: dict[str, Action], petstore: Any, hub_settings: Any
) -> None:
    conn = {
        "base_url": petstore.url,
        "oauth_client_id": "orders-app",
        "oauth_client_secret": "client-secret-321",
    }
    first = await call(acts, "list_orders", {}, conn, hub_settings)
    second = await call(acts, "list_orders", {}, conn, hub_settings)
    assert first["body"] == second["body"] == [{"id": 1, "pet": 1}]
    assert petstore.token_requests == 1  # kept until it expires


async def test_an_oauth2_access_token_in_the_connection_is_sent_as_bearer(
    acts: dict[str, Action], petstore: Any, hub_settings: Any
) -> None:
    conn = {"base_url": petstore.url, "oauth_access_token": "issued-token-654"}
    out = await call(acts, "list_orders", {}, conn, hub_settings)
    assert out["status"] == 200 and petstore.token_requests == 0


async def test_missing_credentials_name_the_fields_to_set(
    acts: dict[str, Action], petstore: Any, hub_settings: Any
) -> None:
    with pytest.raises(ActionError, match=r"no credentials .*: set bearer_auth_token"):
        await call(acts, "admin_stats", {}, {"base_url": petstore.url}, hub_settings)
    assert petstore.requests == []


async def test_an_operation_without_security_sends_no_credentials(
    acts: dict[str, Action], petstore: Any, connection: dict[str, Any], hub_settings: Any
) -> None:
    out = await call(acts, "health", {}, connection, hub_settings)
    assert out["body"] == "ok"
    assert "x-api-key" not in petstore.requests[0]["headers"]


async def test_the_connection_test_calls_the_named_operation(
    petstore: Any, connection: dict[str, Any]
) -> None:
    connector = plugin.build_connector(SPEC)
    assert connector.test_connection is not None
    await connector.test_connection(connection)
    assert petstore.requests[-1]["path"] == "/pets"  # x-hub-test-operation: listPets
    with pytest.raises(ActionError, match="credentials were refused"):
        await connector.test_connection({**connection, "api_key": "nope"})


def _closed_port_url() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


async def test_path_and_operation_servers_are_where_their_operations_are_called(
    petstore: Any, hub_settings: Any, tmp_path: Path
) -> None:
    """A path item's ``servers`` beat the document's (and the connection's base_url), an
    operation's beat its path item's; a relative one resolves against base_url."""
    import yaml

    document = yaml.safe_load(SPEC.read_text())
    nowhere = _closed_port_url()
    document["paths"]["/pets"]["servers"] = [
        {"url": "{root}", "variables": {"root": {"default": petstore.url}}}
    ]
    by_id = document["paths"]["/pets/{petId}"]
    by_id["servers"] = [{"url": nowhere}]
    by_id["get"]["servers"] = [{"url": petstore.url + "/"}]
    by_id["delete"]["servers"] = [{"url": "/"}]  # relative: the base URL's root
    path = tmp_path / "servers.yaml"
    path.write_text(yaml.safe_dump(document))
    acts = {a.name: a for a in plugin.build_connector(path).actions}
    conn = {"base_url": nowhere + "/api/v9", "api_key": "pet-key-123"}

    listed = await call(acts, "list_pets", {}, conn, hub_settings)  # the path item's server
    assert listed["status"] == 200
    got = await call(acts, "get_pet_by_id", {"petId": 2}, conn, hub_settings)  # the operation's
    assert got["body"]["name"] == "Tom"
    assert [r["path"] for r in petstore.requests] == ["/pets", "/pets/2"]
    with pytest.raises(ActionError, match="ConnectError"):  # relative: the closed port's root
        await call(acts, "delete_pet", {"petId": 2}, conn, hub_settings)
    relative = {**conn, "base_url": petstore.url + "/api/v9"}
    deleted = await call(acts, "delete_pet", {"petId": 2}, relative, hub_settings)
    assert deleted["status"] == 204
    assert petstore.requests[-1]["path"] == "/pets/2"
