"""The flow builder's graph commands (issue 16, "The canvas"): delete, duplicate, rename,
connect and disconnect, error handlers and moves, as JSON Patches of a document. Each patch
is applied with jsonpatch and the result validated by the hub's own ``load_flow``; the
resolved needs (what the engine waits for) are compared before and after, so that
"implicit needs keep their meaning" is checked against the validator, not against the
commands' own idea of it. Then the builder's routes, in-process, through the real draft
service: one command is one undo entry, and undo gives the document back exactly.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import jsonpatch
import pytest

from hub.expressions import Expressions
from hub.flows import FlowError, load_flow
from hub.settings import Settings
from hub.web.builder import commands
from hub.web.builder.commands import CommandError
from tests.api_kit import Api, started_api
from tests.web_kit import htmx_headers, post_form, signed_in

EXPRESSIONS = Expressions()


def step(step_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "action": "test.echo", **fields}


def flow(*steps: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"id": "f", "trigger": {"type": "manual"}, "steps": list(steps), **fields}


def apply(document: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    before = copy.deepcopy(document)
    after = jsonpatch.apply_patch(document, ops)
    assert document == before  # the command did not touch its input
    return after


def needs(document: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """The needs the validator resolves (the document must be valid)."""
    return {k: v.needs for k, v in load_flow(document, expressions=EXPRESSIONS).steps.items()}


def chain() -> dict[str, Any]:
    return flow(step("fetch"), step("format"), step("notify"), step("log"))


# Delete --------------------------------------------------------------------------------


def test_delete_in_a_chain_keeps_it_connected_without_writing_needs() -> None:
    document = chain()
    after = apply(document, commands.delete_step(document, "format"))
    assert [s["id"] for s in after["steps"]] == ["fetch", "notify", "log"]
    assert all("needs" not in s for s in after["steps"])
    assert needs(after) == {"fetch": (), "notify": ("fetch",), "log": ("notify",)}


def test_delete_gives_its_needs_to_the_steps_that_needed_it() -> None:
    document = flow(
        step("a"),
        step("b", needs=[]),
        step("c", needs=["a", "b"]),
        step("d", needs=["c", "a"]),
        step("e"),  # implicitly needs d
    )
    after = apply(document, commands.delete_step(document, "c"))
    resolved = needs(after)
    assert resolved["d"] == ("a", "b")  # c's place taken by its needs, no duplicate
    assert resolved["e"] == ("d",)
    after = apply(document, commands.delete_step(document, "d"))
    # e implicitly needed d (explicit [c, a]): it now needs them, written explicitly.
    assert needs(after)["e"] == ("c", "a")
    assert after["steps"][-1]["needs"] == ["c", "a"]


def test_delete_of_a_step_that_needed_nothing_keeps_the_next_one_at_the_start() -> None:
    document = flow(step("a"), step("b", needs=[]), step("c"))
    after = apply(document, commands.delete_step(document, "b"))
    assert needs(after) == {"a": (), "c": ()}


def test_delete_reverts_on_error_and_leaves_expressions_to_the_validator() -> None:
    document = flow(
        step("a", on_error="h"),
        step("h"),
        step("b", input={"x": "{{ steps.a.output }}"}),
        output={"y": "{{ steps.b.output }}"},
    )
    after = apply(document, commands.delete_step(document, "h"))
    assert "on_error" not in after["steps"][0]
    assert needs(after) == {"a": (), "b": ("a",)}
    after = apply(document, commands.delete_step(document, "b"))
    assert after["output"] == {"y": "{{ steps.b.output }}"}
    with pytest.raises(FlowError, match=r"steps\.b"):
        load_flow(after, expressions=EXPRESSIONS)


def test_delete_of_the_only_handled_step_pins_the_steps_after_the_former_handler() -> None:
    document = flow(step("a", on_error="h"), step("h"), step("b"))
    before = needs(document)
    after = apply(document, commands.delete_step(document, "a"))
    # h is a plain step now; b needed a, which needed nothing: b starts from the trigger,
    # not after h.
    assert needs(after)["b"] == () and before["b"] == ("a",)


# Duplicate -----------------------------------------------------------------------------


def test_duplicate_is_a_new_branch_after_the_original() -> None:
    document = chain()
    ops, new_id = commands.duplicate_step(document, "format")
    after = apply(document, ops)
    assert new_id == "format_copy"
    assert [s["id"] for s in after["steps"]] == ["fetch", "format", "format_copy", "notify", "log"]
    assert {**after["steps"][2], "id": "format"} == {**document["steps"][1], "needs": ["fetch"]}
    resolved = needs(after)
    assert resolved["format_copy"] == ("fetch",)
    assert resolved["notify"] == ("format",)  # unchanged: written explicitly
    ops, second = commands.duplicate_step(after, "format")
    assert second == "format_copy_2"
    assert needs(apply(after, ops))["format_copy_2"] == ("fetch",)


def test_duplicate_names_the_copy() -> None:
    document = flow(step("a", name="Fetch it"))
    after = apply(document, commands.duplicate_step(document, "a")[0])
    assert after["steps"][1]["name"] == "Fetch it (copy)"
    assert needs(after) == {"a": (), "a_copy": ()}


# Rename --------------------------------------------------------------------------------


def test_rename_updates_needs_on_error_and_expressions() -> None:
    document = flow(
        step("old", on_error="h"),
        step("h", input={"why": "{{ steps.old.error }}"}),
        step("old_x", needs=["old"]),
        step(
            "c",
            needs=["old", "old_x"],
            input={
                "a": "{{ steps.old.output.n }} and {{ steps['old'].output }}",
                "b": ['{{ steps["old"].output }}', "steps.old stays: it is text"],
                "c": "{{ steps.old_x.output }} {{ x.steps.old }} {{ steps.oldest }}",
                "d": "{% if steps.old.output %}{{steps . old}}{% endif %}{# steps.old #}",
                "e": "{% raw %}{{ steps.old }}{% endraw %}",
            },
            when="{{ steps.old.output.ok }}",
        ),
        step("d", for_each="{{ steps.old.output.items }}", on_error="old"),
        output={"r": "{{ steps.old.output }}"},
    )
    # d's on_error naming a step that has its own handler is invalid: only rewriting is
    # checked for it; the rest is validated below without it.
    after = apply(document, commands.rename_step(document, "old", "fresh"))
    assert after["steps"][0]["id"] == "fresh"
    assert after["steps"][1]["input"] == {"why": "{{ steps.fresh.error }}"}
    assert after["steps"][2]["needs"] == ["fresh"]
    c = after["steps"][3]
    assert c["needs"] == ["fresh", "old_x"]
    assert c["input"] == {
        "a": "{{ steps.fresh.output.n }} and {{ steps['fresh'].output }}",
        "b": ['{{ steps["fresh"].output }}', "steps.old stays: it is text"],
        "c": "{{ steps.old_x.output }} {{ x.steps.old }} {{ steps.oldest }}",
        "d": "{% if steps.fresh.output %}{{steps . fresh}}{% endif %}{# steps.old #}",
        "e": "{% raw %}{{ steps.old }}{% endraw %}",
    }
    assert c["when"] == "{{ steps.fresh.output.ok }}"
    assert after["steps"][4]["for_each"] == "{{ steps.fresh.output.items }}"
    assert after["steps"][4]["on_error"] == "fresh"
    assert after["output"] == {"r": "{{ steps.fresh.output }}"}


def test_rename_keeps_a_valid_flow_valid() -> None:
    document = flow(
        step("a"),
        step("b", input={"x": "{{ steps.a.output }}"}),
        step("c", needs=["a"], on_error="h", input={"y": "{{ steps['a'].output }}"}),
        step("h"),
        output={"z": "{{ steps.b.output }}"},
    )
    for old, new in [("a", "first"), ("h", "on_failure"), ("b", "b2")]:
        after = apply(document, commands.rename_step(document, old, new))
        renamed = needs(after)
        assert renamed == {
            (new if k == old else k): tuple(new if n == old else n for n in v)
            for k, v in needs(document).items()
        }


def test_rename_of_a_template_the_lexer_refuses_leaves_it() -> None:
    refused = "{{ steps.old ~ 'unterminated }}"
    assert commands.rename_in_template(refused, "old", "x") == refused
    # An expression still being typed is code already.
    assert commands.rename_in_template("{{ steps.old ", "old", "x") == "{{ steps.x "
    assert commands.rename_in_template("a\r\n{{ steps.old }}", "old", "x") == "a\r\n{{ steps.x }}"
    assert commands.rename_in_template("{{steps.old}}{%-if 1%}", "old", "x").startswith(
        "{{steps.x}}"
    )


@pytest.mark.parametrize(
    ("new", "message"),
    [
        ("1abc", "letters, digits"),
        ("a-b", "letters, digits"),
        ("", "letters, digits"),
        ("b", "already a step 'b'"),
        ("continue", "on_error keyword"),
    ],
)
def test_rename_refuses_bad_ids(new: str, message: str) -> None:
    document = flow(step("a"), step("b"))
    with pytest.raises(CommandError, match=message):
        commands.rename_step(document, "a", new)


# Connect, disconnect, handlers ---------------------------------------------------------


def test_connect_and_disconnect_write_explicit_needs() -> None:
    document = chain()
    after = apply(document, commands.connect(document, "fetch", "notify"))
    assert after["steps"][2]["needs"] == ["format", "fetch"]
    assert needs(after)["notify"] == ("format", "fetch")
    after = apply(document, commands.disconnect(document, "format", "notify"))
    assert after["steps"][2]["needs"] == []
    assert needs(after) == {"fetch": (), "format": ("fetch",), "notify": (), "log": ("notify",)}


def test_connect_refuses_a_cycle_with_the_validators_message() -> None:
    document = chain()
    with pytest.raises(CommandError) as refused:
        commands.connect(document, "log", "format")
    # The same words as the validator's, for the same document written by hand.
    by_hand = copy.deepcopy(document)
    by_hand["steps"][1]["needs"] = ["fetch", "log"]
    with pytest.raises(FlowError) as invalid:
        load_flow(by_hand, expressions=EXPRESSIONS)
    assert str(refused.value) in [i.message for i in invalid.value.issues]
    assert "needs form a cycle" in str(refused.value)
    with pytest.raises(CommandError, match="itself"):
        commands.connect(document, "fetch", "fetch")
    with pytest.raises(CommandError, match="already needs"):
        commands.connect(document, "fetch", "format")
    with pytest.raises(CommandError, match="does not need"):
        commands.disconnect(document, "fetch", "notify")


def test_handler_edges_keep_the_chain() -> None:
    document = chain()
    after = apply(document, commands.set_handler(document, "fetch", "format"))
    assert after["steps"][0]["on_error"] == "format"
    resolved = needs(after)
    # notify implicitly needed format, which is a handler now: it needs what format needed.
    assert resolved["notify"] == ("fetch",)
    assert resolved["format"] == ()
    back = apply(after, commands.remove_handler(after, "fetch"))
    assert "on_error" not in back["steps"][0]
    assert needs(back)["notify"] == ("fetch",)
    with pytest.raises(CommandError, match="own error handler"):
        commands.set_handler(document, "fetch", "fetch")
    explicit = flow(step("a"), step("h"), step("b", needs=["h"]))
    with pytest.raises(CommandError, match="disconnect it first"):
        commands.set_handler(explicit, "a", "h")
    with pytest.raises(CommandError, match="no error handler"):
        commands.remove_handler(document, "fetch")


# Move ----------------------------------------------------------------------------------


def test_move_says_which_needs_change() -> None:
    document = flow(step("fetch"), step("format"), step("notify"))
    changes = commands.move_changes(document, "notify", -1)
    assert [c.describe() for c in changes] == [
        "'notify' will need 'fetch' instead of 'format'",
        "'format' will need 'notify' instead of 'fetch'",
    ]
    after = apply(document, commands.move_step(document, "notify", -1, keep=False))
    assert [s["id"] for s in after["steps"]] == ["fetch", "notify", "format"]
    assert needs(after) == {"fetch": (), "notify": ("fetch",), "format": ("notify",)}


def test_move_keeping_dependencies_changes_no_meaning() -> None:
    document = flow(step("fetch"), step("format"), step("notify"), step("log", needs=[]))
    for step_id, offset in [("notify", -1), ("fetch", 1), ("format", 1), ("log", -1)]:
        after = apply(document, commands.move_step(document, step_id, offset, keep=True))
        assert needs(after) == needs(document)
    with pytest.raises(CommandError, match="already the first"):
        commands.move_step(document, "fetch", -1, keep=True)
    with pytest.raises(CommandError, match="already the last"):
        commands.move_changes(document, "log", 1)


def test_commands_on_a_step_that_is_not_there_are_refused() -> None:
    with pytest.raises(CommandError, match="no step 'x'"):
        commands.delete_step(chain(), "x")


# Through the builder's routes and the draft service ------------------------------------

BUILD = "/w/default/flows/greet/build"


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async for value in started_api(settings):
        yield value


async def test_each_command_is_one_undo_entry_and_undo_restores_exactly(api: Api) -> None:
    document = flow(
        step("fetch", input={"n": "{{ trigger.n }}"}),
        step("format", input={"v": "{{ steps.fetch.output }}"}),
        step("notify", input={"v": "{{ steps.format.output }}"}),
        step("log"),
        name="Greet",
    )
    document["id"] = "greet"
    answer = await api.call("POST", "/api/w/default/flows", api.editor, json={"document": document})
    assert answer.status_code == 201, answer.text
    client = await signed_in(api, api.editor)
    await client.get(BUILD)
    seen = [await _draft(api)]
    for tail, form in [
        ("/steps/format/rename", {"new_id": "shape"}),
        ("/steps/shape/duplicate", {}),
        ("/steps/notify/needs", {"connect": "fetch"}),
        ("/steps/notify/needs", {"disconnect": "shape"}),
        ("/steps/log/on-error", {"handler": "shape_copy"}),
        ("/steps/notify/move", {"offset": "-1", "mode": "keep"}),
        ("/steps/fetch/delete", {}),
    ]:
        answer = await post_form(client, BUILD + tail, form, headers=htmx_headers(client, BUILD))
        assert answer.status_code == 200, (tail, answer.text)
        assert 'id="builder-canvas-region"' in answer.text
        seen.append(await _draft(api))
    assert [s["id"] for s in seen[2]["steps"]] == ["fetch", "shape", "shape_copy", "notify", "log"]
    assert seen[1]["steps"][2]["input"] == {"v": "{{ steps.shape.output }}"}
    for expected in reversed(seen[:-1]):
        answer = await post_form(client, BUILD + "/undo", headers=htmx_headers(client, BUILD))
        assert answer.status_code == 200
        assert await _draft(api) == expected
    for expected in seen[1:]:
        await post_form(client, BUILD + "/redo", headers=htmx_headers(client, BUILD))
        assert await _draft(api) == expected


async def test_refused_commands_answer_the_reason_and_change_nothing(api: Api) -> None:
    document = chain()
    document["id"] = "greet"
    answer = await api.call("POST", "/api/w/default/flows", api.editor, json={"document": document})
    assert answer.status_code == 201, answer.text
    client = await signed_in(api, api.editor)
    await client.get(BUILD)
    before = await _draft(api)
    for tail, form, message, kept in [
        ("/steps/fetch/rename", {"new_id": "9x"}, "letters, digits", 'value="9x"'),
        (
            "/steps/format/needs",
            {"connect": "log"},
            "needs form a cycle",
            '<option value="log" selected="selected">',
        ),
    ]:
        answer = await post_form(client, BUILD + tail, form, headers=htmx_headers(client, BUILD))
        assert answer.status_code == 422
        assert message in answer.text and kept in answer.text
        assert answer.headers["hx-retarget"] == "#step-commands"
    assert await _draft(api) == before
    # A move that changes needs asks first, naming the changes.
    answer = await post_form(
        client, BUILD + "/steps/notify/move", {"offset": "-1"}, headers=htmx_headers(client, BUILD)
    )
    assert answer.status_code == 200
    assert "&#39;notify&#39; will need &#39;fetch&#39; instead of &#39;format&#39;" in answer.text
    assert "Keep explicit dependencies" in answer.text
    assert await _draft(api) == before
    # A move past the end (a list older than the draft): the reason, the step's panel kept.
    answer = await post_form(
        client, BUILD + "/steps/log/move", {"offset": "1"}, headers=htmx_headers(client, BUILD)
    )
    assert answer.status_code == 422
    assert "already the last step" in answer.text and 'data-selected-step="log"' in answer.text
    answer = await client.get(BUILD + "/steps/format/commands", headers=htmx_headers(client, BUILD))
    assert answer.status_code == 200
    assert "Disconnect from" in answer.text and "?panel=catalog&amp;after=format" in answer.text


async def _draft(api: Api) -> dict[str, Any]:
    from tests.test_builder_drafts import as_person

    return copy.deepcopy((await as_person(api, api.editor).draft("greet")).document)
