"""The flow document: parsing with locations, validation collecting every issue, the graph."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from hub.connectors import Action, Connector, Registry, Trigger
from hub.expressions import Expressions
from hub.flows import (
    Flow,
    FlowError,
    FlowIssue,
    RetryPolicy,
    diff_documents,
    load_flow,
    load_flow_text,
    parse_document,
    parse_duration,
)


async def _echo(ctx: Any, data: Any) -> Any:
    return data


CONNECTION = {"type": "object", "properties": {"token": {"type": "string", "writeOnly": True}}}
REQUEST_INPUT = {
    "type": "object",
    "required": ["url"],
    "properties": {
        "url": {"type": "string"},
        "method": {"enum": ["GET", "POST"]},
        "timeout": {"type": "number"},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "additionalProperties": False,
}


def make_registry() -> Registry:
    """A small registry: core triggers, an http, a crm, a chat and a flow connector."""
    registry = Registry()
    registry.add(
        "test",
        [
            Connector(
                name="core",
                triggers=[
                    Trigger(name="manual", kind="manual"),
                    Trigger(
                        name="webhook",
                        kind="webhook",
                        config_schema={
                            "type": "object",
                            "properties": {"path": {"type": "string"}},
                            "additionalProperties": False,
                        },
                    ),
                    Trigger(
                        name="schedule",
                        kind="schedule",
                        config_schema={
                            "type": "object",
                            "required": ["cron"],
                            "properties": {"cron": {"type": "string"}},
                        },
                    ),
                ],
            ),
            Connector(
                name="http",
                actions=[Action(name="request", run=_echo, input_schema=REQUEST_INPUT)],
            ),
            Connector(
                name="crm",
                connection_schema=CONNECTION,
                actions=[
                    Action(
                        name="find_contact",
                        run=_echo,
                        needs_connection=True,
                        input_schema={"type": "object", "required": ["email"]},
                    ),
                    Action(name="create_contact", run=_echo, needs_connection=True),
                ],
            ),
            Connector(
                name="chat",
                connection_schema=CONNECTION,
                actions=[Action(name="post_message", run=_echo, needs_connection=True)],
            ),
            Connector(name="flow", actions=[Action(name="noop", run=_echo)]),
        ],
    )
    return registry


@pytest.fixture(scope="module")
def expressions() -> Expressions:
    return Expressions()


@pytest.fixture(scope="module")
def registry() -> Registry:
    return make_registry()


def load(
    text: str,
    expressions: Expressions,
    registry: Registry | None = None,
    connections: dict[str, str] | None = None,
) -> Flow:
    """Load a YAML document written indented in a test."""
    return load_flow_text(
        textwrap.dedent(text),
        "test.yaml",
        expressions=expressions,
        registry=registry,
        connections=connections,
    )


def issues_of(
    text: str,
    expressions: Expressions,
    registry: Registry | None = None,
    connections: dict[str, str] | None = None,
) -> list[FlowIssue]:
    """The issues a document raises (the test fails if it loads)."""
    with pytest.raises(FlowError) as caught:
        load(text, expressions, registry, connections)
    return caught.value.issues


def locations(issues: list[FlowIssue]) -> list[str]:
    return [issue.location for issue in issues]


def issue_at(issues: list[FlowIssue], location: str) -> FlowIssue:
    found = [issue for issue in issues if issue.location == location]
    assert found, f"no issue at {location}: {issues}"
    return found[0]


# --- Parsing ---------------------------------------------------------------------------------


def test_malformed_yaml_reports_line_and_column() -> None:
    text = "id: x\nsteps:\n  - id: a\n    action: flow.noop\n   input: 1\n"
    with pytest.raises(FlowError) as caught:
        parse_document(text, "broken.yaml")
    [issue] = caught.value.issues
    assert issue.location == "line 5, column 4"
    assert "expected" in issue.message
    assert str(caught.value).startswith("broken.yaml: line 5, column 4:")


def test_unclosed_yaml_quote_reports_where_the_scan_failed() -> None:
    text = 'id: x\nname: "unclosed\n'
    with pytest.raises(FlowError) as caught:
        parse_document(text)
    assert caught.value.issues[0].location == "line 3, column 1"


def test_malformed_json_reports_line_and_column() -> None:
    text = '{\n  "id": "x",\n  "steps": [\n    {"id": "a" "action": "flow.noop"}\n  ]\n}'
    with pytest.raises(FlowError) as caught:
        parse_document(text, "broken.json")
    [issue] = caught.value.issues
    assert issue.location == "line 4, column 16"
    assert issue.message == "Expecting ',' delimiter"


def test_duplicate_yaml_key_is_refused_with_its_position() -> None:
    text = "id: x\nsteps: []\nid: y\n"
    with pytest.raises(FlowError) as caught:
        parse_document(text)
    [issue] = caught.value.issues
    assert issue.location == "line 3, column 1"
    assert "duplicate key 'id' (first at line 1)" in issue.message


def test_duplicate_json_key_is_refused_with_its_position() -> None:
    text = '{"id": "x",\n "id": "y"}'
    with pytest.raises(FlowError) as caught:
        parse_document(text)
    assert caught.value.issues[0].location == "line 2, column 2"
    assert "duplicate key 'id'" in caught.value.issues[0].message


def test_top_level_list_is_refused() -> None:
    with pytest.raises(FlowError) as caught:
        parse_document("# a comment\n- id: x\n")
    [issue] = caught.value.issues
    assert issue.location == "line 2, column 1"
    assert "must be a mapping" in issue.message and "a list" in issue.message


def test_empty_document_is_refused() -> None:
    with pytest.raises(FlowError, match="empty"):
        parse_document("# nothing\n")


def test_yaml_dates_stay_strings_and_scalar_keys_become_strings() -> None:
    document = parse_document("id: x\nwhen: 2024-05-01\ncodes: {200: ok, true: yes}\n")
    assert document["when"] == "2024-05-01"
    assert document["codes"] == {"200": "ok", "true": True}


def test_json_and_yaml_give_the_same_document() -> None:
    yaml_doc = parse_document("id: x\nsteps:\n  - {id: a, action: flow.noop, input: [1, 'b']}\n")
    json_doc = parse_document(
        '  {"id": "x", "steps": [{"id": "a", "action": "flow.noop", "input": [1, "b"]}]}'
    )
    assert yaml_doc == json_doc


# --- Schema ----------------------------------------------------------------------------------


def test_schema_errors_are_located_with_clear_messages(expressions: Expressions) -> None:
    issues = issues_of(
        """
        id: Not A Slug
        steps:
          - id: first
            action: flow.noop
          - id: second
            action: flow.noop
            retry: {max_attempts: 0, backoff: linear}
            when: 5
            inputs: {}
        """,
        expressions,
    )
    assert "must be a slug" in issue_at(issues, "id").message
    assert "less than the minimum of 1" in issue_at(issues, "steps[1].retry.max_attempts").message
    assert "'linear' is not one of" in issue_at(issues, "steps[1].retry.backoff").message
    assert "is not of type 'string', 'boolean'" in issue_at(issues, "steps[1].when").message
    assert issue_at(issues, "steps[1].inputs").message == "unknown field; did you mean 'input'?"
    assert len(issues) == 5


def test_missing_required_fields_are_named(expressions: Expressions) -> None:
    issues = issues_of("steps:\n  - {id: a}\n", expressions)
    assert FlowIssue("", "'id' is a required property") in issues
    assert FlowIssue("steps[0]", "'action' is a required property") in issues


def test_reserved_step_ids_are_refused(expressions: Expressions) -> None:
    issues = issues_of("id: x\nsteps:\n  - {id: continue, action: flow.noop}\n", expressions)
    assert "reserved" in issue_at(issues, "steps[0].id").message


def test_extension_fields_are_allowed(expressions: Expressions) -> None:
    flow = load(
        """
        id: x
        x-ui: {zoom: 2}
        steps:
          - {id: a, action: flow.noop, x-position: [10, 20]}
        """,
        expressions,
    )
    assert flow.document["x-ui"] == {"zoom": 2}


def test_duplicate_step_ids_name_both_places(expressions: Expressions) -> None:
    issues = issues_of(
        """
        id: x
        steps:
          - {id: a, action: flow.noop}
          - {id: b, action: flow.noop}
          - {id: a, action: flow.noop}
        """,
        expressions,
    )
    assert issues == [FlowIssue("steps[2].id", "duplicate step id 'a' (also steps[0])")]


# --- Order and dependencies --------------------------------------------------------------------


def test_steps_without_needs_follow_the_document_order(expressions: Expressions) -> None:
    flow = load(
        """
        id: x
        steps:
          - {id: a, action: flow.noop}
          - {id: b, action: flow.noop}
          - {id: c, action: flow.noop}
        """,
        expressions,
    )
    assert list(flow.steps) == ["a", "b", "c"]
    assert [flow.steps[s].needs for s in flow.steps] == [(), ("a",), ("b",)]
    assert flow.roots == ("a",)
    assert flow.successors == {"a": ("b",), "b": ("c",), "c": ()}
    assert flow.ancestors["c"] == frozenset({"a", "b"})


def test_empty_needs_makes_a_root_and_branches_run_in_parallel(
    expressions: Expressions,
) -> None:
    flow = load(
        """
        id: x
        steps:
          - {id: fetch, action: flow.noop}
          - {id: left, action: flow.noop}
          - {id: right, action: flow.noop, needs: [fetch]}
          - {id: audit, action: flow.noop, needs: []}
          - {id: join, action: flow.noop, needs: [left, right]}
        """,
        expressions,
    )
    assert flow.roots == ("fetch", "audit")
    assert flow.successors["fetch"] == ("left", "right")
    assert flow.steps["join"].needs == ("left", "right")
    assert flow.ancestors["join"] == frozenset({"fetch", "left", "right"})
    assert "left" not in flow.ancestors["right"]
    assert flow.ancestors["audit"] == frozenset()


def test_unknown_needs_is_located(expressions: Expressions) -> None:
    issues = issues_of(
        """
        id: x
        steps:
          - {id: fetch_all, action: flow.noop}
          - {id: b, action: flow.noop}
          - {id: c, action: flow.noop, needs: [fetch]}
        """,
        expressions,
    )
    assert issues == [
        FlowIssue("steps[2].needs[0]", "no step 'fetch' in this flow; did you mean 'fetch_all'?")
    ]


def test_cycle_is_refused_and_named(expressions: Expressions) -> None:
    issues = issues_of(
        """
        id: x
        steps:
          - {id: start, action: flow.noop}
          - {id: a, action: flow.noop, needs: [b]}
          - {id: b, action: flow.noop, needs: [c]}
          - {id: c, action: flow.noop, needs: [a, start]}
        """,
        expressions,
    )
    assert issues == [FlowIssue("steps", "needs form a cycle: a -> b -> c -> a")]


def test_self_need_is_a_cycle(expressions: Expressions) -> None:
    issues = issues_of("id: x\nsteps:\n  - {id: a, action: flow.noop, needs: [a]}\n", expressions)
    assert issues == [FlowIssue("steps", "needs form a cycle: a -> a")]


# --- Error handlers ----------------------------------------------------------------------------


HANDLED = """
id: x
steps:
  - {id: fetch, action: flow.noop}
  - {id: save, action: flow.noop, on_error: recover}
  - {id: recover, action: flow.noop, input: {failed: "{{ steps.save.output }}"}}
  - {id: notify, action: flow.noop}
"""


def test_handler_never_runs_in_the_normal_order(expressions: Expressions) -> None:
    flow = load(HANDLED, expressions)
    recover = flow.steps["recover"]
    assert recover.is_handler and recover.handles == ("save",)
    assert recover.needs == ()
    assert "recover" not in flow.roots
    # notify follows save (the previous step that is not a handler), not recover.
    assert flow.steps["notify"].needs == ("save",)
    assert "recover" not in flow.successors["save"]
    assert flow.successors["recover"] == ()
    assert flow.ancestors["recover"] == frozenset({"fetch", "save"})
    assert not flow.steps["save"].is_handler and flow.steps["save"].on_error == "recover"


def test_handler_cannot_be_needed(expressions: Expressions) -> None:
    issues = issues_of(
        HANDLED + "  - {id: after, action: flow.noop, needs: [notify, recover]}\n", expressions
    )
    assert [i.location for i in issues] == ["steps[4].needs[1]"]
    assert "'recover' is an error handler" in issues[0].message


def test_handler_cannot_handle_itself_and_must_exist(expressions: Expressions) -> None:
    issues = issues_of(
        """
        id: x
        steps:
          - {id: a, action: flow.noop, on_error: a}
          - {id: b, action: flow.noop, on_error: recovr}
          - {id: recover, action: flow.noop, needs: []}
        """,
        expressions,
    )
    assert issues[0] == FlowIssue("steps[0].on_error", "a step cannot be its own error handler")
    assert issues[1].location == "steps[1].on_error"
    assert "no step 'recovr'" in issues[1].message and "'recover'" in issues[1].message


def test_handler_takes_no_needs_and_does_not_chain(expressions: Expressions) -> None:
    issues = issues_of(
        """
        id: x
        steps:
          - {id: a, action: flow.noop, on_error: h1}
          - {id: h1, action: flow.noop, needs: [a], on_error: h2}
          - {id: h2, action: flow.noop}
        """,
        expressions,
    )
    assert locations(issues) == ["steps[1].needs", "steps[1].on_error"]


def test_handler_of_several_steps_reads_only_what_precedes_all(expressions: Expressions) -> None:
    issues = issues_of(
        """
        id: x
        steps:
          - {id: base, action: flow.noop}
          - {id: a, action: flow.noop, on_error: h}
          - {id: b, action: flow.noop, needs: [base], on_error: h}
          - id: h
            action: flow.noop
            input: {ok: "{{ steps.base.output }}", bad: "{{ steps.a.output }}"}
        """,
        expressions,
    )
    assert locations(issues) == ["steps[3].input.bad"]


# --- Expressions and the graph ---------------------------------------------------------------


def test_expression_reading_a_later_step_is_refused(expressions: Expressions) -> None:
    issues = issues_of(
        """
        id: x
        steps:
          - id: a
            action: flow.noop
            input: {email: "{{ trigger.email }}", prior: "{{ steps.b.output }}"}
          - {id: b, action: flow.noop}
        """,
        expressions,
    )
    assert len(issues) == 1
    assert issues[0].location == "steps[0].input.prior"
    assert issues[0].message.startswith("reads steps.b, which is not an ancestor of this step")


def test_expression_reading_a_sibling_branch_is_refused(expressions: Expressions) -> None:
    issues = issues_of(
        """
        id: x
        steps:
          - {id: fetch, action: flow.noop}
          - {id: left, action: flow.noop, needs: [fetch]}
          - id: right
            action: flow.noop
            needs: [fetch]
            when: "{{ steps.left.output and steps.fetch.output }}"
        """,
        expressions,
    )
    assert len(issues) == 1
    assert issues[0].location == "steps[2].when"
    assert "reads steps.left, which is not an ancestor" in issues[0].message


def test_expression_reading_an_unknown_step_is_refused(expressions: Expressions) -> None:
    issues = issues_of(
        """
        id: x
        steps:
          - {id: fetch, action: flow.noop}
          - {id: use, action: flow.noop, for_each: "{{ steps.fetchh.output }}"}
        """,
        expressions,
    )
    assert issues[0].location == "steps[1].for_each"
    assert "no step 'fetchh'" in issues[0].message


def test_dynamic_step_access_is_allowed(expressions: Expressions) -> None:
    flow = load(
        """
        id: x
        steps:
          - {id: a, action: flow.noop}
          - {id: b, action: flow.noop, input: {v: "{{ steps[trigger.name].output }}"}}
        """,
        expressions,
    )
    assert flow.steps["b"].input.step_refs is None


def test_output_may_read_any_step_but_not_a_handler(expressions: Expressions) -> None:
    flow = load(
        """
        id: x
        steps:
          - {id: a, action: flow.noop}
          - {id: b, action: flow.noop, needs: []}
        output: {a: "{{ steps.a.output }}", b: "{{ steps.b.output }}"}
        """,
        expressions,
    )
    assert flow.output is not None and flow.output.step_refs == frozenset({"a", "b"})
    issues = issues_of(HANDLED + 'output: "{{ steps.recover.output }}"\n', expressions)
    assert locations(issues) == ["output"]
    assert "error handler" in issues[0].message


def test_expression_syntax_error_is_located(expressions: Expressions) -> None:
    issues = issues_of(
        """
        id: x
        steps:
          - {id: a, action: flow.noop, input: {v: "{{ trigger.x "}}
        """,
        expressions,
    )
    assert len(issues) == 1
    assert issues[0].location.startswith("steps[0].input")


# --- Actions, triggers, connections ------------------------------------------------------------


def test_unknown_action_suggests_close_names(expressions: Expressions, registry: Registry) -> None:
    issues = issues_of(
        "id: x\nsteps:\n  - {id: a, action: crm.find_contacts, connection: c}\n",
        expressions,
        registry,
    )
    [issue] = issues
    assert issue.location == "steps[0].action"
    assert issue.message.startswith(
        "unknown action 'crm.find_contacts': connector 'crm' has no action 'find_contacts'; "
        "did you mean 'crm.find_contact'"
    )


def test_unknown_connector_is_named(expressions: Expressions, registry: Registry) -> None:
    issues = issues_of("id: x\nsteps:\n  - {id: a, action: erp.sync}\n", expressions, registry)
    assert "no connector 'erp' is installed" in issue_at(issues, "steps[0].action").message


def test_unknown_trigger_type_and_bad_config(expressions: Expressions, registry: Registry) -> None:
    issues = issues_of(
        "id: x\ntrigger: {type: webhok}\nsteps:\n  - {id: a, action: flow.noop}\n",
        expressions,
        registry,
    )
    assert "unknown trigger type 'webhok'; did you mean 'webhook'?" in issues[0].message
    issues = issues_of(
        "id: x\ntrigger: {type: schedule, config: {every: 5}}\nsteps:\n"
        "  - {id: a, action: flow.noop}\n",
        expressions,
        registry,
    )
    assert issues == [FlowIssue("trigger.config", "'cron' is a required property")]


def test_trigger_defaults_to_manual(expressions: Expressions, registry: Registry) -> None:
    flow = load("id: x\nsteps:\n  - {id: a, action: flow.noop}\n", expressions, registry)
    assert (flow.trigger.type, flow.trigger.config) == ("manual", {})
    flow = load(
        "id: x\ntrigger: {type: webhook, config: {path: /in}}\nsteps:\n"
        "  - {id: a, action: flow.noop}\n",
        expressions,
        registry,
    )
    assert (flow.trigger.type, flow.trigger.config) == ("webhook", {"path": "/in"})


def test_missing_connection_is_reported(expressions: Expressions, registry: Registry) -> None:
    issues = issues_of(
        "id: x\nsteps:\n  - {id: a, action: chat.post_message}\n", expressions, registry
    )
    assert issues == [
        FlowIssue("steps[0].connection", "action chat.post_message needs a connection")
    ]


def test_unknown_connection_and_connection_of_another_connector(
    expressions: Expressions, registry: Registry
) -> None:
    connections = {"crm-main": "crm", "slack-sales": "chat"}
    issues = issues_of(
        """
        id: x
        steps:
          - {id: a, action: chat.post_message, connection: slack-sale}
          - {id: b, action: chat.post_message, connection: crm-main}
        """,
        expressions,
        registry,
        connections,
    )
    assert issue_at(issues, "steps[0].connection").message == (
        "no connection named 'slack-sale'; did you mean 'slack-sales'?"
    )
    assert issue_at(issues, "steps[1].connection").message == (
        "connection 'crm-main' belongs to connector 'crm', but action 'chat.post_message' "
        "needs a connection of 'chat'"
    )
    flow = load(
        "id: x\nsteps:\n  - {id: a, action: chat.post_message, connection: slack-sales}\n",
        expressions,
        registry,
        connections,
    )
    assert flow.steps["a"].connection == "slack-sales"


def test_literal_input_breaking_the_schema_is_located(
    expressions: Expressions, registry: Registry
) -> None:
    issues = issues_of(
        """
        id: x
        steps:
          - id: call
            action: http.request
            input:
              url: https://example.org
              method: PUT
              timeout: soon
              headers: {X-Trace: 1}
              tags: [ok, 2]
              extra: true
        """,
        expressions,
        registry,
    )
    assert issues == [
        FlowIssue(
            "steps[0].input.extra", "unknown field (allowed: headers, method, tags, timeout, url)"
        ),
        FlowIssue("steps[0].input.headers['X-Trace']", "1 is not of type 'string'"),
        FlowIssue("steps[0].input.method", "'PUT' is not one of ['GET', 'POST']"),
        FlowIssue("steps[0].input.tags[1]", "2 is not of type 'string'"),
        FlowIssue("steps[0].input.timeout", "'soon' is not of type 'number'"),
    ]


def test_missing_input_is_checked_against_the_schema(
    expressions: Expressions, registry: Registry
) -> None:
    issues = issues_of(
        "id: x\nsteps:\n  - {id: call, action: http.request}\n", expressions, registry
    )
    assert issues == [FlowIssue("steps[0].input", "'url' is a required property")]


def test_partially_templated_input_missing_a_required_key(
    expressions: Expressions, registry: Registry
) -> None:
    issues = issues_of(
        """
        id: x
        steps:
          - id: call
            action: http.request
            input: {method: "{{ trigger.method }}", timeout: "{{ trigger.timeout }}", tags: [a, 3]}
        """,
        expressions,
        registry,
    )
    assert issues == [
        FlowIssue("steps[0].input", "'url' is a required property"),
        FlowIssue("steps[0].input.tags[1]", "3 is not of type 'string'"),
    ]


def test_templated_values_are_never_judged_before_rendering(
    expressions: Expressions, registry: Registry
) -> None:
    flow = load(
        """
        id: x
        steps:
          - id: call
            action: http.request
            input:
              url: "https://{{ trigger.host }}/x"
              method: "{{ trigger.method }}"
              timeout: "{{ trigger.timeout }}"
              headers: "{{ trigger.headers }}"
              tags: ["{{ trigger.tag }}", static]
          - id: whole
            action: http.request
            input: "{{ trigger.request }}"
        """,
        expressions,
        registry,
    )
    assert not flow.steps["call"].input.is_static
    assert list(flow.steps) == ["call", "whole"]


# --- Step fields ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(30, 30.0), (0.5, 0.5), ("500ms", 0.5), ("30s", 30.0), ("1m", 60.0), ("2h", 7200.0),
     ("1d", 86400.0), ("1h30m", 5400.0), (" 1.5s ", 1.5)],
)  # fmt: skip
def test_durations_are_parsed(value: Any, seconds: float) -> None:
    assert parse_duration(value, "timeout") == seconds


@pytest.mark.parametrize("value", ["5 minutes", "10", "-1s", -1, True, None, "1w"])
def test_invalid_durations_are_refused_at_their_location(value: Any) -> None:
    with pytest.raises(FlowError) as caught:
        parse_duration(value, "steps[0].timeout")
    assert caught.value.issues[0].location == "steps[0].timeout"
    assert "must be a duration" in caught.value.issues[0].message


def test_retry_timeout_and_for_each_are_built(expressions: Expressions) -> None:
    flow = load(
        """
        id: x
        steps:
          - id: a
            action: flow.noop
            retry: {max_attempts: 5, initial: 500ms, max: 1m, backoff: constant, jitter: false}
            timeout: 30s
            for_each: [1, 2, 3]
            concurrency: 2
          - {id: b, action: flow.noop}
        """,
        expressions,
    )
    a, b = flow.steps["a"], flow.steps["b"]
    assert a.retry == RetryPolicy(5, "constant", 0.5, 60.0, False)
    assert a.timeout == 30.0 and a.concurrency == 2 and a.for_each is not None
    assert b.retry == RetryPolicy() and b.timeout is None and b.for_each is None
    assert b.retry.max_attempts == 1 and b.retry.backoff == "exponential"


def test_concurrency_without_for_each_is_refused(expressions: Expressions) -> None:
    issues = issues_of(
        "id: x\nsteps:\n  - {id: a, action: flow.noop, concurrency: 3}\n", expressions
    )
    assert locations(issues) == ["steps[0].concurrency"]


def test_retry_initial_above_max_is_refused(expressions: Expressions) -> None:
    issues = issues_of(
        "id: x\nsteps:\n  - {id: a, action: flow.noop, retry: {initial: 2m, max: 1m}}\n",
        expressions,
    )
    assert issues == [FlowIssue("steps[0].retry.max", "is less than retry.initial (120s)")]


def test_flow_keeps_its_document_and_metadata(expressions: Expressions) -> None:
    document = parse_document(
        "id: x\nname: X flow\ndescription: d\nsteps:\n  - {id: a, action: flow.noop}\n"
    )
    flow = load_flow(document, expressions=expressions)
    assert flow.document is document
    assert (flow.id, flow.name, flow.description) == ("x", "X flow", "d")
    assert flow.output is None
    assert load_flow({"id": "y", "steps": [{"id": "a", "action": "flow.noop"}]},
                     expressions=expressions).name == "y"  # fmt: skip


def test_all_issues_are_reported_at_once(expressions: Expressions, registry: Registry) -> None:
    issues = issues_of(
        """
        id: x
        steps:
          - {id: a, action: flow.nop}
          - {id: b, action: flow.noop, needs: [missing]}
          - {id: c, action: flow.noop, retry: {max_attempts: 1000}}
        """,
        expressions,
        registry,
    )
    assert locations(issues) == [
        "steps[0].action",
        "steps[1].needs[0]",
        "steps[2].retry.max_attempts",
    ]
    with pytest.raises(FlowError) as caught:
        load(
            "id: x\nsteps:\n  - {id: a, action: flow.nop}\n"
            "  - {id: b, action: flow.noop, needs: [z]}\n",
            expressions,
            registry,
        )
    assert len(str(caught.value).splitlines()) == 2


# --- Versions ----------------------------------------------------------------------------------


def test_diff_documents_describes_each_change() -> None:
    old = parse_document(
        """
id: x
name: Old
trigger: {type: webhook, config: {path: /a}}
steps:
  - {id: a, action: flow.noop}
  - {id: b, action: flow.noop, input: 1}
  - {id: gone, action: flow.noop}
"""
    )
    new = parse_document(
        """
id: x
name: New
trigger: {type: webhook, config: {path: /b}}
steps:
  - {id: a, action: flow.noop}
  - {id: b, action: flow.noop, input: 2, timeout: 5s}
  - {id: fresh, action: http.request}
output: 1
"""
    )
    assert diff_documents(old, new) == [
        'name changed: "Old" -> "New"',
        "trigger config changed (webhook): path",
        "step removed: gone (flow.noop)",
        "step changed: b (input, timeout)",
        "step added: fresh (http.request)",
        "output added",
    ]
    assert diff_documents(new, new) == []
    moved = {**new, "trigger": {"type": "schedule"}, "steps": list(reversed(new["steps"]))}
    assert diff_documents(new, moved) == [
        "trigger changed: webhook -> schedule",
        "steps reordered: fresh, b, a",
    ]
