"""From an OpenAPI document to a connector: names, schemas, auth fields, policies, refusals.

The documents are the hand-written pet store (OpenAPI 3.0, ``examples/petstore.yaml``) and
the OpenAPI 3.1 document that Litestar generates for the stand-in app of ``conftest.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hub import Connector, hookimpl
from hub.testing import registry_of
from jsonschema import Draft202012Validator

from hub_openapi import plugin
from hub_openapi.spec import SpecError, snake_case

SPEC = Path(__file__).resolve().parent.parent / "examples" / "petstore.yaml"


def schema_errors(schema: dict[str, Any], value: Any, where: str) -> list[str]:
    """Every way ``value`` breaks ``schema``, each with its JSON path."""
    return [
        f"{where}{error.json_path[1:]}: {error.message}"
        for error in Draft202012Validator(schema).iter_errors(value)
    ]


def petstore() -> Connector:
    return plugin.build_connector(SPEC)


def actions(connector: Connector) -> dict[str, Any]:
    return {a.name: a for a in connector.actions}


def write(folder: Path, name: str, document: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(document))
    return path


def minimal(**extra: Any) -> dict[str, Any]:
    return {"openapi": "3.0.3", "info": {"title": "T", "version": "1"}, "paths": {}, **extra}


@pytest.mark.parametrize(
    ("raw", "snake"),
    [
        ("listPets", "list_pets"),
        ("getPetByID", "get_pet_by_id"),
        ("pets.list-all", "pets_list_all"),
    ],
)
def test_operation_ids_are_snake_cased(raw: str, snake: str) -> None:
    assert snake_case(raw) == snake


def test_every_operation_becomes_an_action_named_after_its_operation_id() -> None:
    connector = petstore()
    assert connector.name == "petstore"  # x-hub-name
    assert connector.title == "Petstore" and connector.version == "1.0.0"
    assert sorted(actions(connector)) == [
        "admin_stats",
        "create_pet",
        "delete_pet",
        "get_pet_by_id",
        "health",
        "legacy_stats",
        "list_orders",
        "list_pets",
        "search_stats",
    ]
    assert "`GET /pets/{petId}`" in actions(connector)["get_pet_by_id"].description


def test_the_registry_accepts_the_generated_schemas(specs: Path) -> None:
    registry = registry_of(plugin)
    assert "petstore.create_pet" in registry.actions
    assert registry.owners["petstore"] == "hub_openapi.plugin"


def test_input_has_path_query_and_header_parameters_and_the_json_body() -> None:
    acts = actions(petstore())
    get_pet = acts["get_pet_by_id"].input_schema
    assert get_pet["properties"]["petId"] == {
        "type": "integer",
        "minimum": 1,
        "description": "The pet's id.",
    }
    assert get_pet["required"] == ["petId"]
    assert schema_errors(get_pet, {"petId": 0}, "input")  # minimum 1
    assert schema_errors(get_pet, {"petId": 1, "extra": 1}, "input")  # no unknown fields
    listing = acts["list_pets"].input_schema
    assert listing["properties"]["limit"]["default"] == 20  # from a $ref'd parameter
    assert listing["properties"]["tag"]["items"] == {"type": "string"}
    assert "required" not in listing
    create = acts["create_pet"].input_schema
    assert create["required"] == ["body"]  # Idempotency-Key is filled in by the hub
    assert create["properties"]["body"] == {"$ref": "#/$defs/Pet"}


def test_read_only_fields_are_required_in_responses_only() -> None:
    acts = actions(petstore())
    create = acts["create_pet"]
    assert create.input_schema["$defs"]["Pet"]["required"] == ["name"]
    assert create.output_schema["$defs"]["Pet"]["required"] == ["id", "name"]
    assert not schema_errors(create.input_schema, {"body": {"name": "Rex"}}, "input")
    output = {"status": 201, "headers": {}, "body": {"name": "Rex"}}
    assert schema_errors(create.output_schema, output, "output")  # the id is missing


def test_openapi_30_keywords_become_json_schema_2020_12() -> None:
    pet = actions(petstore())["get_pet_by_id"].output_schema["$defs"]["Pet"]["properties"]
    assert pet["tag"]["type"] == ["string", "null"]  # nullable: true
    assert pet["weight"]["exclusiveMinimum"] == 0 and "minimum" not in pet["weight"]
    assert pet["weight"]["examples"] == [4.5]  # example -> examples


def test_recursive_schemas_are_kept_finite_in_defs() -> None:
    out = actions(petstore())["get_pet_by_id"].output_schema
    category = out["$defs"]["Category"]
    assert category["properties"]["subcategories"]["items"] == {"$ref": "#/$defs/Category"}
    nested = {"name": "a", "subcategories": [{"name": "b", "subcategories": [{"name": 3}]}]}
    body = {"id": 1, "name": "Rex", "category": nested}
    errors = schema_errors(out, {"status": 200, "headers": {}, "body": body}, "output")
    assert errors and "subcategories[0].subcategories[0].name" in errors[0]


def test_output_is_status_headers_and_the_2xx_body() -> None:
    acts = actions(petstore())
    listing = acts["list_pets"].output_schema
    assert listing["properties"]["body"]["items"] == {"$ref": "#/$defs/Pet"}
    assert acts["delete_pet"].output_schema["properties"]["body"]["type"] == "null"  # 204
    assert acts["health"].output_schema["properties"]["body"]["type"] == "string"  # text/plain


def test_the_connection_carries_each_security_scheme_with_secrets_marked() -> None:
    schema = petstore().connection_schema
    assert schema is not None
    props = schema["properties"]
    assert props["base_url"]["default"] == "https://petstore.example/v1"  # server variables
    secret = {name for name, p in props.items() if p.get("writeOnly")}
    assert secret == {
        "api_key",
        "bearer_auth_token",
        "basic_auth_password",
        "query_key",
        "oauth_access_token",
        "oauth_client_secret",
    }
    assert {"basic_auth_username", "oauth_client_id"} <= set(props)
    assert "required" not in schema  # the base URL has a default


def test_policies_come_from_the_document() -> None:
    acts = actions(petstore())
    assert acts["list_pets"].cache is not None and acts["list_pets"].cache.ttl == 30
    assert acts["get_pet_by_id"].cache is None
    rate = acts["create_pet"].rate_limit
    assert rate is not None and (rate.requests, rate.per_seconds) == (50, 1)
    assert acts["get_pet_by_id"].idempotent and acts["delete_pet"].idempotent
    assert not acts["create_pet"].idempotent
    assert acts["create_pet"].needs_connection and not acts["health"].needs_connection


def test_litestar_generated_openapi_31_document_becomes_a_connector(
    tmp_path: Path, standin_app: Any
) -> None:
    document = standin_app.openapi_schema.to_schema()
    assert document["openapi"].startswith("3.1")
    path = tmp_path / "pets-live.json"
    path.write_text(json.dumps(document))
    connector = plugin.build_connector(path)
    assert connector.name == "pets_live"  # from the file name
    acts = actions(connector)
    assert {"list_pets", "create_pet", "get_pet_by_id", "delete_pet", "health"} <= set(acts)
    assert "issue_token" not in acts  # not in the generated document
    get_pet = acts["get_pet_by_id"].input_schema
    assert get_pet["properties"]["pet_id"]["type"] == "integer"
    assert get_pet["required"] == ["pet_id"]
    create = acts["create_pet"]
    assert "Idempotency-Key" in create.input_schema["properties"]
    pet = create.output_schema["$defs"]["Pet"]
    assert pet["properties"]["name"]["type"] == "string"
    assert connector.connection_schema is not None
    assert connector.connection_schema["properties"]["api_key"]["writeOnly"] is True
    assert "base_url" in connector.connection_schema["required"]  # no server in the document
    registry_of(_plugin_of(connector))  # the hub accepts every schema


def _plugin_of(connector: Connector) -> Any:
    class One:
        @staticmethod
        def hub_connectors() -> list[Connector]:
            return [connector]

    One.hub_connectors = hookimpl(One.hub_connectors)  # type: ignore[method-assign]
    return One


def test_a_reference_outside_the_document_is_refused_naming_the_place(tmp_path: Path) -> None:
    op = {"responses": {"200": {"$ref": "https://example.com/common.yaml#/Ok"}}}
    path = write(tmp_path, "remote.yaml", minimal(paths={"/x": {"get": op}}))
    with pytest.raises(SpecError) as err:
        plugin.build_connector(path)
    message = str(err.value)
    assert "remote.yaml" in message and "paths./x.get.responses.200" in message
    assert "only references inside the document" in message


def test_a_dangling_reference_is_refused(tmp_path: Path) -> None:
    schema = {"$ref": "#/components/schemas/Missing"}
    op = {"parameters": [{"name": "q", "in": "query", "schema": schema}], "responses": {}}
    path = write(tmp_path, "dangling.yaml", minimal(paths={"/x": {"get": op}}))
    with pytest.raises(SpecError, match="points at nothing"):
        plugin.build_connector(path)


def test_a_swagger_2_document_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "old.yaml", {"swagger": "2.0", "paths": {}})
    with pytest.raises(SpecError, match=r"only OpenAPI 3\.0 and 3\.1"):
        plugin.build_connector(path)


def test_a_missing_specs_folder_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(plugin.ENV_VAR, str(tmp_path / "nope"))
    with pytest.raises(SpecError, match=r"HUB_OPENAPI_SPECS: .*nope: no such file or folder"):
        plugin.hub_connectors()


def test_no_specs_no_connectors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(plugin.ENV_VAR, raising=False)
    assert plugin.hub_connectors() == []


def test_two_documents_claiming_one_name_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write(tmp_path, "a.yaml", minimal(**{"x-hub-name": "same"}))
    write(tmp_path, "b.yaml", minimal(**{"x-hub-name": "same"}))
    monkeypatch.setenv(plugin.ENV_VAR, str(tmp_path))
    with pytest.raises(SpecError, match="both define the connector 'same'"):
        plugin.hub_connectors()


def test_operations_with_unsupported_bodies_are_left_out_and_noted(tmp_path: Path) -> None:
    upload = {
        "operationId": "upload",
        "requestBody": {"content": {"multipart/form-data": {"schema": {"type": "object"}}}},
        "responses": {"204": {"description": "ok"}},
    }
    form = {
        "operationId": "submitForm",
        "requestBody": {
            "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object"}}}
        },
        "responses": {"204": {"description": "ok"}},
    }
    path = write(
        tmp_path, "mixed.yaml", minimal(paths={"/u": {"post": upload}, "/f": {"post": form}})
    )
    connector = plugin.build_connector(path)
    assert [a.name for a in connector.actions] == ["submit_form"]
    assert "POST /u: request body of an unsupported type (multipart/form-data)" in connector.notes


@pytest.mark.parametrize(
    ("style", "explode", "value", "pairs"),
    [
        ("form", True, ["a", "b"], [("p", "a"), ("p", "b")]),
        ("form", False, ["a", "b"], [("p", "a,b")]),
        ("pipeDelimited", False, [1, 2], [("p", "1|2")]),
        ("deepObject", True, {"x": 1, "y": True}, [("p[x]", "1"), ("p[y]", "true")]),
        ("form", True, {"x": 1}, [("x", "1")]),
        ("form", True, False, [("p", "false")]),
    ],
)
def test_query_parameters_serialise_in_their_documented_style(
    style: str, explode: bool, value: Any, pairs: list[tuple[str, str]]
) -> None:
    from hub_openapi.client import query_pairs
    from hub_openapi.operations import Param

    assert query_pairs(Param("p", "p", "query", style, explode, False), value) == pairs


def test_a_nullable_reference_accepts_null(tmp_path: Path) -> None:
    schemas = {"Tag": {"type": "object", "properties": {"v": {"type": "string"}}}}
    body = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Tag"}}}}
    op = {"operationId": "put", "requestBody": body, "responses": {"204": {"description": "x"}}}
    wrapped = {"allOf": [{"$ref": "#/components/schemas/Tag"}], "nullable": True}
    body["content"]["application/json"]["schema"] = wrapped
    document = minimal(paths={"/t": {"put": op}}, components={"schemas": schemas})
    (act,) = plugin.build_connector(write(tmp_path, "tags.yaml", document)).actions
    assert not schema_errors(act.input_schema, {"body": None}, "input")
    assert not schema_errors(act.input_schema, {"body": {"v": "x"}}, "input")
    assert schema_errors(act.input_schema, {"body": {"v": 1}}, "input")
