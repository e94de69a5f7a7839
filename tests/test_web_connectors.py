"""The Connectors pages (issue 15): the installed plugins with their versions, each
connector's actions and triggers, and a reference page per action and trigger generated
from its schemas (fields, nested rows, ``$ref`` resolved, examples, a step in YAML).

In-process against the real app; a step example is checked by the hub's flow validator.
"""

from __future__ import annotations

import html
import importlib.metadata
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import msgspec
import pytest
import yaml

from hub import Connector, Trigger, action, hookimpl
from hub.flows import FlowError
from hub.runtime import Hub
from hub.services import overview
from hub.settings import Settings
from tests import kit
from tests.api_kit import Api, ApiPlugin, make_api
from tests.web_kit import signed_in, write_controls

XSS = "<script>alert(1)</script>"


class Street(msgspec.Struct):
    line: Annotated[str, msgspec.Meta(description="The street and number.")]
    floor: int | None = None


class Address(msgspec.Struct):
    city: Annotated[str, msgspec.Meta(examples=["Lyon"])]
    street: Street
    country: Literal["fr", "de", "it"] = "fr"


class Contact(msgspec.Struct):
    """A contact to add."""

    email: Annotated[
        str,
        msgspec.Meta(extra_json_schema={"format": "email"}, description=f"Where to write {XSS}"),
    ]
    tags: list[str]
    addresses: list[Address]
    home: Address | None = None
    priority: int = 3


class Added(msgspec.Struct):
    id: str
    address: Address


@action(title="Add a contact")
async def add_contact(ctx: Any, data: Contact) -> Added:
    """Adds a contact. <b>bold</b> is text here."""
    return Added(id="1", address=data.addresses[0])


class RefPlugin:
    """A connector whose action has a nested schema with ``$ref``s and a hostile text."""

    @hookimpl
    def hub_connectors(self) -> list[Connector]:
        return [
            Connector(
                name="crm",
                title="CRM",
                version="2.1",
                description=f"A CRM {XSS}",
                connection_schema={
                    "type": "object",
                    "properties": {
                        "token": {"type": "string", "writeOnly": True, "description": "API token"},
                        "region": {"enum": ["eu", "us"], "default": "eu"},
                    },
                    "required": ["token"],
                },
                actions=[add_contact],
                triggers=[
                    Trigger(
                        name="new_contact",
                        kind="poll",
                        description=f"New contacts {XSS}",
                        config_schema={
                            "type": "object",
                            "properties": {"list": {"type": "string", "description": "A list."}},
                            "required": ["list"],
                        },
                        output_schema={
                            "type": "object",
                            "properties": {"email": {"type": "string", "format": "email"}},
                        },
                    )
                ],
            )
        ]


BUILT_INS = ("http", "data", "flow", "triggers")


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    """A hub with the kit, the API plugin, the CRM above, one installed entry point
    (hub-slack) and one installed plugin named by its module (hub-sql's), the other entry
    points left out."""
    chosen = settings.replace(
        load_plugins=(*BUILT_INS, "slack", "hub_sql.plugin"), plugin_modules=("hub_sql.plugin",)
    )
    hub = Hub(chosen, plugins=[kit, ApiPlugin(), RefPlugin()], entry_points=True)
    await hub.start(migrate=False)
    try:
        async for value in make_api(hub):
            yield value
    finally:
        await hub.stop(grace=1.0)


def text_of(page: str) -> str:
    """A page's text without tags, unescaped, whitespace folded (no space before a comma)."""
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())
    return text.replace(" ,", ",")


async def test_the_list_shows_each_plugin_with_its_version_and_its_actions(api: Api) -> None:
    client = await signed_in(api, api.viewer)
    answer = await client.get("/w/default/connectors")
    assert answer.status_code == 200, answer.text
    page = answer.text
    text = text_of(page)
    version = importlib.metadata.version("hub-slack")
    assert f"Plugin slack hub-slack {version}" in text
    sql = importlib.metadata.version("hub-sql")
    assert f"Plugin hub_sql.plugin hub-sql {sql}" in text  # a module's distribution
    assert "Plugin http built in" in text and "Plugin triggers built in" in text
    assert "CRM crm version 2.1" in text
    # an action: title, full name, description, whether it needs a connection
    assert "Add a contact crm.add_contact Adds a contact. <b>bold</b> is text here. no" in text
    assert "Use secret test.use_secret yes" in text
    assert 'href="/w/default/connectors/crm/actions/add_contact"' in page
    # a trigger: its kind, and a poll trigger of a connector with a connection needs one
    assert "New_contact crm.new_contact poll New contacts" in text
    assert 'href="/w/default/connectors/crm/triggers/new_contact"' in page
    # plugins' texts are escaped
    assert XSS not in page and "<b>bold</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


async def test_a_connector_page_summarises_its_connection(api: Api) -> None:
    client = await signed_in(api, api.viewer)
    answer = await client.get("/w/default/connectors/crm")
    assert answer.status_code == 200, answer.text
    text = text_of(answer.text)
    assert "token string required secret none API token" in text
    assert 'region string (enum) optional no "eu" One of: "eu", "us"' in text
    assert "Add a contact crm.add_contact" in text and "New_contact poll" in text
    assert XSS not in answer.text
    missing = await client.get("/w/default/connectors/nothing")
    assert missing.status_code == 404
    assert "no connector" in missing.text


def step_example(page: str) -> Any:
    found = re.search(r'<pre class="code" id="step-example">(.*?)</pre>', page, re.S)
    assert found, "no step example"
    return yaml.safe_load(html.unescape(found.group(1)))


async def test_an_action_reference_lists_every_nested_field_and_a_valid_step(
    api: Api,
) -> None:
    client = await signed_in(api, api.viewer)
    answer = await client.get("/w/default/connectors/crm/actions/add_contact")
    assert answer.status_code == 200, answer.text
    page = answer.text
    text = text_of(page)
    rows = re.findall(r'<th scope="row" class="field-name depth-(\d)"><code>([^<]+)</code>', page)
    names = [name for _depth, name in rows]
    expected_input = [
        "email",
        "tags",
        "addresses",
        "addresses[].city",
        "addresses[].street",
        "addresses[].street.line",
        "addresses[].street.floor",
        "addresses[].country",
        "home",
        "home.city",
        "home.street",
        "home.street.line",
        "home.street.floor",
        "home.country",
        "priority",
    ]
    expected_output = [
        "id",
        "address",
        "address.city",
        "address.street",
        "address.street.line",
        "address.street.floor",
        "address.country",
    ]
    assert names == expected_input + expected_output
    depths = dict((name, int(depth)) for depth, name in rows[: len(expected_input)])
    assert depths["addresses[].street.line"] == 2 and depths["email"] == 0
    # types, required, defaults, enums, formats, descriptions ($ref resolved)
    assert "email string (email) required none Where to write" in text
    assert "Format: email" in text
    assert "addresses array of object (Address) required none" in text
    assert "addresses[].street object (Street) required none" in text
    assert "home object (Address) or null optional null" in text
    assert "addresses[].street.line string required none The street and number." in text
    assert 'country string (enum) optional "fr" One of: "de", "fr", "it"' in text
    assert "priority integer optional 3" in text
    assert 'Example: "Lyon"' in text
    assert XSS not in page and "<b>bold</b>" not in page
    # the step example is a valid step of a flow (the hub's own validator)
    steps = step_example(page)
    assert isinstance(steps, list) and len(steps) == 1
    step = steps[0]
    assert step["action"] == "crm.add_contact" and step["id"] == "add_contact"
    assert set(step["input"]) == {"email", "tags", "addresses"}
    assert step["input"]["addresses"][0]["city"] == "Lyon"
    flow = await api.hub.validate_flow({"id": "uses_crm", "steps": steps})
    assert flow.steps["add_contact"].action == "crm.add_contact"


async def test_a_step_example_names_a_connection_when_the_action_needs_one(api: Api) -> None:
    await api.hub.set_connection("my_test", "test", {"token": "t0ken"})
    client = await signed_in(api, api.viewer)
    answer = await client.get("/w/default/connectors/test/actions/use_secret")
    assert answer.status_code == 200, answer.text
    steps = step_example(answer.text)
    assert steps[0]["connection"] == "my_test"
    await api.hub.validate_flow({"id": "uses_secret", "steps": steps})
    assert "t0ken" not in answer.text


async def test_a_trigger_reference_shows_its_config_event_and_a_flow_trigger(api: Api) -> None:
    client = await signed_in(api, api.viewer)
    answer = await client.get("/w/default/connectors/crm/triggers/new_contact")
    assert answer.status_code == 200, answer.text
    text = text_of(answer.text)
    assert "Polls every 60 s" in text
    assert "list string required none A list." in text
    assert "email string (email) none" in text
    assert "type: crm.new_contact config: list: text connection: my_crm" in text
    assert XSS not in answer.text
    missing = await client.get("/w/default/connectors/crm/actions/nothing")
    assert missing.status_code == 404


async def test_the_pages_need_a_member(api: Api) -> None:
    client = await signed_in(api, api.stranger)
    answer = await client.get("/w/default/connectors")
    assert answer.status_code == 404


async def test_declared_examples_are_shown_and_used_in_the_step(api: Api) -> None:
    """data.set declares ``{"input", "output"}``; http.request declares bare inputs (taken as
    inputs): both are shown, and the first valid one is the step's input."""
    client = await signed_in(api, api.viewer)
    answer = await client.get("/w/default/connectors/data/actions/set")
    assert answer.status_code == 200, answer.text
    steps = step_example(answer.text)
    assert steps == [{"id": "set", "action": "data.set", "input": {"value": {"a": 1}}}]
    await api.hub.validate_flow({"id": "sets", "steps": steps})
    text = text_of(answer.text)
    assert "Example 1 Input" in text and "Output" in text
    answer = await client.get("/w/default/connectors/http/actions/request")
    steps = step_example(answer.text)
    assert steps[0]["input"]["url"] == "https://api.example.com/items"
    assert steps[0]["input"]["query"] == {"page": 1}
    assert '"json": {' in html.unescape(answer.text)  # the second example, shown
    await api.hub.validate_flow({"id": "requests", "steps": steps})


async def test_every_step_example_validates_or_says_what_to_replace(api: Api) -> None:
    """Each installed action's step example (and each trigger's) is a valid part of a
    flow, or its page lists the values the schema refuses."""
    registry = api.hub.registry
    for name, connector in sorted(registry.connectors.items()):
        if connector.connection_schema is not None:
            values = overview.example_value(connector.connection_schema)
            await api.hub.set_connection(f"my_{name}", name, values)
    checked = 0
    for name, connector in sorted(registry.connectors.items()):
        for act in connector.actions:
            ref = overview.action_reference(registry, name, act.name)
            steps = yaml.safe_load(ref["step_yaml"])
            try:
                await api.hub.validate_flow({"id": "one", "steps": steps})
            except FlowError as exc:
                assert ref["step_problems"], f"{name}.{act.name}: {exc}"
            checked += 1
        for trig in connector.triggers:
            ref = overview.trigger_reference(registry, name, trig.name)
            document = {**yaml.safe_load(ref["trigger_yaml"]), "id": "two"}
            document["steps"] = [{"id": "s", "action": "data.set", "input": {"value": 1}}]
            try:
                await api.hub.validate_flow(document)
            except FlowError as exc:
                assert ref["trigger_problems"], f"{ref['full_name']}: {exc}"
            checked += 1
    assert checked > 20


async def test_a_viewer_sees_every_page_and_no_write_control(api: Api) -> None:
    client = await signed_in(api, api.viewer)
    for path in (
        "/w/default/connectors",
        "/w/default/connectors/crm",
        "/w/default/connectors/crm/actions/add_contact",
        "/w/default/connectors/crm/triggers/new_contact",
    ):
        answer = await client.get(path)
        assert answer.status_code == 200, (path, answer.text)
        assert write_controls(answer.text) == [], path


async def test_alternatives_of_required_fields_are_said(api: Api) -> None:
    """flow.delay takes ``seconds`` or ``until`` (a oneOf of required lists)."""
    client = await signed_in(api, api.viewer)
    answer = await client.get("/w/default/connectors/flow/actions/delay")
    assert answer.status_code == 200, answer.text
    assert "Give exactly one of: seconds | until." in text_of(answer.text)
    steps = step_example(answer.text)
    assert list(steps[0]["input"]) == ["seconds"]
    await api.hub.validate_flow({"id": "waits", "steps": steps})
