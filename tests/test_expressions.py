"""The sandboxed expressions: native types, key-first access, step refs, escapes, bombs."""

from __future__ import annotations

import base64
import hashlib
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from hub.expressions import ExpressionError, Expressions, Limits

CONTEXT: dict[str, Any] = {
    "trigger": {
        "phone": "+15551234",
        "code": "0012",
        "body": {"email": "ada@example.com", "name": "ada", "tags": ["a", "b"]},
        "template": "{{ 7 * 7 }}",
        "statement": "{% for i in range(3) %}x{% endfor %}",
    },
    "steps": {
        "find": {"output": {"items": [1, 2], "keys": "K", "values": "V", "get": "G", "n": 3}},
        "skipped": {"output": None},
    },
    "item": {"id": 7},
    "index": 0,
    "run": {"id": "r1"},
}

# Bomb tests run with a long deadline: they must be stopped by the bounds, not by the clock.
BOMB_LIMITS = Limits(max_render_seconds=60.0)


@pytest.fixture
def ex() -> Expressions:
    return Expressions()


def render(ex: Expressions, value: Any, context: dict[str, Any] | None = None) -> Any:
    return ex.compile(value, "f").render(CONTEXT if context is None else context)


def refused(ex: Expressions, source: str, context: dict[str, Any] | None = None) -> str:
    with pytest.raises(ExpressionError) as info:
        render(ex, source, context)
    assert info.value.location == "f"
    return info.value.message


# -- values and types ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ [1, 2] }}", [1, 2]),
        ("{{ {'a': 1} }}", {"a": 1}),
        ("{{ 1 + 2 }}", 3),
        ("{{ 1.5 }}", 1.5),
        ("{{ true }}", True),
        ("{{ none }}", None),
        ("  {{ trigger.body.tags }}\n", ["a", "b"]),
        ("{{ steps.find.output.n * 2 }}", 6),
    ],
)
def test_single_expression_keeps_its_native_type(
    ex: Expressions, source: str, expected: Any
) -> None:
    assert render(ex, source) == expected
    assert type(render(ex, source)) is type(expected)


def test_strings_that_look_like_numbers_stay_strings(ex: Expressions) -> None:
    assert render(ex, "+15551234") == "+15551234"
    assert render(ex, "{{ '0012' }}") == "0012"
    assert render(ex, "{{ trigger.phone }}") == "+15551234"
    assert render(ex, "{{ trigger.code }}") == "0012"
    assert render(ex, "{{ trigger.phone | trim }}") == "+15551234"


def test_text_with_several_parts_renders_to_a_string(ex: Expressions) -> None:
    assert render(ex, "Hi {{ trigger.body.name | title }}!") == "Hi Ada!"
    assert render(ex, "{{ 1 }}{{ 2 }}") == "12"
    assert render(ex, "{% if true %}{{ [1] }}{% endif %}") == "[1]"
    assert render(ex, "line {{ index }}\n") == "line 0\n"


def test_static_values_are_returned_as_is(ex: Expressions) -> None:
    value = {"a": [1, "two", {"b": None}], "c": "plain {text}"}
    compiled = ex.compile(value, "steps[0].input")
    assert compiled.is_static
    assert compiled.step_refs == frozenset()
    assert compiled.location == "steps[0].input"
    assert compiled.render(CONTEXT) is value


def test_nested_values_render_their_templates_and_keep_keys_literal(ex: Expressions) -> None:
    value = {"{{ key }}": "{{ item.id }}", "list": ["x", "{{ index }}", {"deep": "{{ run.id }}"}]}
    compiled = ex.compile(value, "steps[1].input")
    assert not compiled.is_static
    assert compiled.render(CONTEXT) == {
        "{{ key }}": 7,
        "list": ["x", 0, {"deep": "r1"}],
    }


def test_results_of_filters_that_yield_become_lists(ex: Expressions) -> None:
    assert render(ex, "{{ trigger.body.tags | map('upper') }}") == ["A", "B"]
    assert render(ex, "{{ range(3) }}") == [0, 1, 2]


def test_a_function_is_not_a_value(ex: Expressions) -> None:
    assert "call it" in refused(ex, "{{ 'x'.upper }}")


# -- attribute access and undefined ----------------------------------------------------


def test_attribute_access_on_a_mapping_reads_the_key_first(ex: Expressions) -> None:
    assert render(ex, "{{ steps.find.output.items }}") == [1, 2]
    assert render(ex, "{{ steps.find.output.keys }}") == "K"
    assert render(ex, "{{ steps.find.output.values }}") == "V"
    assert render(ex, "{{ steps.find.output.get }}") == "G"
    assert render(ex, "{{ trigger.body.items() | list | length }}") == 3


def test_a_skipped_step_has_output_none(ex: Expressions) -> None:
    assert render(ex, "{{ steps.skipped.output }}") is None
    assert render(ex, "{{ steps.skipped.output.found | default('no') }}") == "no"


def test_an_undefined_variable_is_an_error_that_names_it(ex: Expressions) -> None:
    message = refused(ex, "{{ nobody }}")
    assert "'nobody' is undefined" in message
    assert "'nobody' is undefined" in refused(ex, "Hello {{ nobody }}")


def test_a_missing_key_is_an_error_that_names_it(ex: Expressions) -> None:
    assert "'emial'" in refused(ex, "{{ trigger.body.emial }}")
    assert "'emial'" in refused(ex, "{{ trigger.body.emial.domain }}")
    assert "'emial'" in refused(ex, "{% if trigger.body.emial %}x{% endif %}")
    assert "'emial'" in refused(ex, "{{ {'e': trigger.body.emial} }}")


def test_defined_tests_and_default_work_on_missing_keys(ex: Expressions) -> None:
    assert render(ex, "{{ trigger.body.emial is defined }}") is False
    assert render(ex, "{{ trigger.nope.deeper is defined }}") is False
    assert render(ex, "{{ trigger.body.email is defined }}") is True
    assert render(ex, "{{ trigger.nope.deeper | default('d') }}") == "d"


def test_render_errors_name_the_nested_field(ex: Expressions) -> None:
    compiled = ex.compile(
        {"email": "{{ trigger.body.email }}", "tags": ["{{ nobody }}"]}, "steps[1].input"
    )
    with pytest.raises(ExpressionError) as info:
        compiled.render(CONTEXT)
    assert info.value.location == "steps[1].input.tags[0]"
    assert "'nobody' is undefined" in info.value.message
    other = ex.compile({"email": "{{ 1 / 0 }}"}, "steps[1].input")
    with pytest.raises(ExpressionError) as info:
        other.render(CONTEXT)
    assert info.value.location == "steps[1].input.email"
    assert "ZeroDivisionError" in info.value.message


def test_syntax_errors_name_the_field_and_the_line(ex: Expressions) -> None:
    with pytest.raises(ExpressionError) as info:
        ex.compile({"text": "ok\n{{ a +  }}"}, "steps[2].input")
    assert info.value.location == "steps[2].input.text"
    assert "line 2" in info.value.message
    with pytest.raises(ExpressionError) as info:
        ex.compile("{{ x | no_such_filter }}", "output")
    assert "no_such_filter" in info.value.message


def test_values_nested_too_deep_are_refused() -> None:
    ex = Expressions(Limits(max_nesting=3))
    ex.compile([[["ok"]]], "f")
    with pytest.raises(ExpressionError) as info:
        ex.compile([[[["deep"]]]], "f")
    assert "nested deeper" in info.value.message


def test_data_is_never_rendered_as_a_template(ex: Expressions) -> None:
    assert render(ex, "{{ trigger.template }}") == "{{ 7 * 7 }}"
    assert render(ex, "got {{ trigger.template }}") == "got {{ 7 * 7 }}"
    assert render(ex, "{{ trigger.statement }}") == CONTEXT["trigger"]["statement"]
    assert render(ex, "{{ trigger }}")["template"] == "{{ 7 * 7 }}"


# -- step refs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "refs"),
    [
        ("{{ steps.find.output }}", {"find"}),
        ("{{ steps['find'].output }}", {"find"}),
        ("{{ steps.a.output }} and {{ steps['b'].output | length }}", {"a", "b"}),
        ({"x": "{{ steps.a.output }}", "y": ["{{ steps.b.output }}"]}, {"a", "b"}),
        ("{% if steps.a.output %}{{ steps.c.output }}{% endif %}", {"a", "c"}),
        ("{{ trigger.body }}", set()),
        ("static", set()),
    ],
)
def test_step_refs_lists_the_steps_read(ex: Expressions, value: Any, refs: set[str]) -> None:
    assert ex.compile(value, "f").step_refs == frozenset(refs)


@pytest.mark.parametrize(
    "value",
    [
        "{{ steps[item.id].output }}",
        "{{ steps | list }}",
        "{% for s in steps %}{{ s }}{% endfor %}",
        "{{ steps.items() }}",
        "{{ steps }}",
        {"a": "{{ steps.a.output }}", "b": "{{ steps[index] }}"},
    ],
)
def test_step_refs_is_none_when_steps_is_read_dynamically(ex: Expressions, value: Any) -> None:
    assert ex.compile(value, "f").step_refs is None


def test_is_static_only_without_templates(ex: Expressions) -> None:
    assert ex.compile("no template {here}", "f").is_static
    assert not ex.compile("{{ 1 }}", "f").is_static
    assert not ex.compile("{% if true %}x{% endif %}", "f").is_static
    assert not ex.compile(["a", {"b": "{{ 1 }}"}], "f").is_static


# -- sandbox escapes -------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "{{ '{0.__class__}'.format(trigger) }}",
        "{{ '{0.__class__.__mro__}'.format(1) }}",
        "{{ '{a.__class__}'.format_map({'a': 1}) }}",
        "{{ ('{0.__class__}' | attr('format'))(1) }}",
        "{{ 'x' | attr('__class__') }}",
        "{{ trigger | attr('__class__') }}",
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ [].__class__.__base__.__subclasses__() }}",
        "{{ trigger.__class__ }}",
        "{{ trigger['__class__'] }}",
        "{{ range.__globals__ }}",
        "{{ range.__self__ }}",
        "{{ now.__globals__['__builtins__'] }}",
        "{{ dict.__init__ }}",
        "{{ dict.mro() }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ joiner.__init__.__globals__ }}",
        "{{ lipsum.__globals__ }}",
        "{{ self._TemplateReference__context }}",
        "x{{ self._TemplateReference__context }}",
        "{% for i in [1] %}{{ loop.__class__.__mro__ }}{% endfor %}",
        "{{ (trigger.body.tags | map('upper')).gi_frame }}",
        "{{ trigger.body.tags.append(1) }}",
        "{{ trigger.body.update({'a': 1}) }}",
        "{{ (1).to_bytes(10, 'big') }}",
        "{{ 'x'.encode().center(10) }}",
        "{{ 'x'.encode() % 1 }}",
    ],
)
def test_sandbox_escapes_are_refused(ex: Expressions, source: str) -> None:
    message = refused(ex, source)
    assert message.startswith(("refused by the sandbox", "undefined"))
    assert "<class" not in message and "<function" not in message


def test_no_lipsum_cycler_or_joiner_globals(ex: Expressions) -> None:
    assert not {"lipsum", "cycler", "joiner"} & set(ex.env.globals)
    assert render(ex, "{% set ns = namespace(n=1) %}{% set ns.n = 2 %}{{ ns.n }}") == "2"


# -- bounds ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "{{ range(10 ** 9) | length }}",
        "{% for a in range(1000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}",
        "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(60) }}",
        "{{ 'a' * 10 ** 9 }}",
        "{{ 10 ** 9 * 'a' }}",
        "{{ [1] * 10 ** 9 }}",
        "{{ (1,) * 10 ** 9 }}",
        "{{ ['x' * 100000] * 100 }}",
        "{{ 2 ** 1000000000 }}",
        "{{ (10 ** 10000) * (10 ** 10000) * (10 ** 10000) * (10 ** 10000) }}",
        "{{ '%999999999s' | format(1) }}",
        "{{ '%999999999s' % 1 }}",
        "{{ '%.999999999f' % 1.0 }}",
        "{{ '%*s' % (999999999, 'x') }}",
        "{{ '{:>999999999}'.format(1) }}",
        "{{ '{0:{1}}'.format(1, 999999999) }}",
        "{{ ('{0}' * 300000).format('x' * 1000) }}",
        "{{ 'x' | center(10 ** 9) }}",
        "{{ 'x' | indent(10 ** 9) }}",
        "{{ ('a\\n' * 400000) | indent('xxxx') }}",
        "{{ ('x' * 1000) | wordwrap(1, wrapstring='y' * 1000000) }}",
        "{{ 'x'.ljust(10 ** 9) }}",
        "{{ 'x'.zfill(10 ** 9) }}",
        "{{ ('a' * 1000).replace('a', 'b' * 100000) }}",
        "{{ ('a' * 1000) | replace('a', 'b' * 100000) }}",
        "{{ range(100000) | join('x' * 100000) }}",
        "{{ ('x' * 100000).join(range(100000) | map('string')) }}",
        "{{ [1] | batch(10 ** 9, 'x') | list }}",
        "{{ [1] | slice(10 ** 9) | list }}",
        "{{ {'a': 1} | tojson(indent=10 ** 9) }}",
        "{{ ('x' * 600000) ~ ('y' * 600000) }}",
        "{{ ('x' * 600000) + ('y' * 600000) }}",
        "{% set a = ['x' * 100000] %}{% set b = [a, a, a, a, a, a, a, a, a, a, a] %}{{ 1 }}",
        "{% set ns = namespace(d='x' * 100000) %}"
        "{% for i in range(30) %}{% set ns.d = dict(l=ns.d, r=ns.d) %}{% endfor %}{{ 1 }}",
        "{% set ns = namespace(s='&' * 100000) %}"
        "{% for i in range(300) %}{% set ns.s = ns.s | forceescape %}{% endfor %}{{ 1 }}",
        "{% set b = 'x'.encode() * 1000000 %}{% set b = b + b %}{{ 1 }}",
        "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}",
        "{% set s %}{% for i in range(100000) %}" + "x" * 100 + "{% endfor %}{% endset %}.",
        "{% set s %}{% for i in range(100000) %}{{ 'x' * 100000 }}{% endfor %}{% endset %}{{ 1 }}",
    ],
)
def test_bombs_are_refused_quickly(source: str) -> None:
    ex = Expressions(BOMB_LIMITS)
    started = time.monotonic()
    message = refused(ex, source)
    assert time.monotonic() - started < 3.0
    assert message.startswith("limit exceeded")


def test_recursive_macro_and_block_calls_are_counted() -> None:
    ex = Expressions(Limits(max_loop_iterations=1000, max_render_seconds=60.0))
    blocks = (
        "{% set ns = namespace(d=0) %}{% block b %}{% if ns.d < 40 %}{% set ns.d = ns.d + 1 %}"
        "{{ self.b() }}{{ self.b() }}{% set ns.d = ns.d - 1 %}{% endif %}{% endblock %}"
    )
    macros = "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}"
    for source in (blocks, macros + "{{ f(40) }}"):
        started = time.monotonic()
        assert "macro calls" in refused(ex, source)
        assert time.monotonic() - started < 3.0
    assert render(ex, macros + "{{ f(5) }}.") == "."


def test_loop_iterations_are_counted_per_render() -> None:
    ex = Expressions(Limits(max_loop_iterations=10))
    assert render(ex, "{% for i in range(10) %}{{ i }}{% endfor %}") == "0123456789"
    nested = "{% for a in range(4) %}{% for b in range(2) %}.{% endfor %}{% endfor %}"
    assert "loop iterations" in refused(ex, nested)
    two = ex.compile(["{% for i in range(6) %}{% endfor %}"] * 2, "f")
    with pytest.raises(ExpressionError, match="loop iterations"):
        two.render(CONTEXT)


def test_recursive_loops_count_every_level() -> None:
    ex = Expressions(Limits(max_loop_iterations=3))
    tree: dict[str, Any] = {"t": [{"c": [{"c": [{"c": []}]}]}]}
    source = "{% for x in t recursive %}[{{ loop(x.c) }}]{% endfor %}"
    assert render(Expressions(), source, tree) == "[[[]]]"
    with pytest.raises(ExpressionError, match="loop iterations"):
        ex.compile(source, "f").render({"t": tree["t"] * 2})


def test_text_output_is_bounded() -> None:
    ex = Expressions(Limits(max_output=100))
    assert len(render(ex, "{{ 'x' * 50 }}{{ 'y' * 50 }}")) == 100
    assert "limit exceeded" in refused(ex, "{{ 'x' * 50 }}{{ 'y' * 51 }}")
    assert "limit exceeded" in refused(ex, "{% for i in range(11) %}0123456789{% endfor %}")


def test_data_passed_through_is_not_limited_by_max_output() -> None:
    ex = Expressions(Limits(max_output=100))
    big = {"blob": "x" * 1000, "rows": list(range(1000))}
    assert render(ex, "{{ blob }}", big) == big["blob"]
    assert render(ex, "{{ rows }}", big) is big["rows"]
    assert render(ex, "{{ blob | upper | length }}", big) == 1000


def test_the_process_keeps_working_after_a_refused_bomb() -> None:
    ex = Expressions(BOMB_LIMITS)
    bombs = ("{{ 'a' * 10 ** 9 }}", "{% for a in range(1000) %}{% for b in range(1000) %}.")
    for source in (bombs[0], bombs[1] + "{% endfor %}{% endfor %}"):
        refused(ex, source)
    assert render(ex, "{{ trigger.body.email }}") == "ada@example.com"
    assert render(ex, "{% for i in range(3) %}{{ i }}{% endfor %}") == "012"


# -- filters, globals, cache -----------------------------------------------------------


def test_builtin_extra_filters_and_now(ex: Expressions) -> None:
    assert render(ex, "{{ '{\"a\": [1]}' | fromjson }}") == {"a": [1]}
    assert render(ex, "{{ 'héllo' | b64encode }}") == base64.b64encode(b"h\xc3\xa9llo").decode()
    assert render(ex, "{{ 'héllo' | b64encode | b64decode }}") == "héllo"
    assert render(ex, "{{ 'abc' | sha256 }}") == hashlib.sha256(b"abc").hexdigest()
    assert render(ex, "{{ 'abc' | md5 }}") == hashlib.md5(b"abc").hexdigest()
    stamp = datetime.fromisoformat(render(ex, "{{ now() }}"))
    assert stamp.tzinfo is not None
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 60


def test_plugin_filters_and_globals_work_and_stay_in_their_hub() -> None:
    ex = Expressions(filters={"shout": lambda s: s.upper() + "!"}, globals={"tenant": "acme"})
    assert render(ex, "{{ trigger.body.name | shout }} {{ tenant }}") == "ADA! acme"
    with pytest.raises(ExpressionError, match="shout"):
        Expressions().compile("{{ 'x' | shout }}", "f")
    assert "tenant" in refused(Expressions(), "{{ tenant }}")


def test_compiling_never_runs_filters() -> None:
    calls: list[Any] = []

    def spy(value: Any) -> Any:
        calls.append(value)
        return value

    ex = Expressions(filters={"spy": spy})
    compiled = ex.compile("{{ 'a' | spy }} and {{ 'b' | spy }}", "f")
    assert calls == []
    assert compiled.render({}) == "a and b"
    assert calls == ["a", "b"]


def test_the_same_source_is_compiled_once(ex: Expressions) -> None:
    source = "{{ trigger.body.email | upper }}"
    ex.compile({"a": source}, "steps[0].input")
    entry = ex.cache[source]
    ex.compile([source, source], "steps[1].input")
    assert len(ex.cache) == 1
    assert ex.cache[source] is entry
    assert ex.cache.maxsize == 4096


def test_static_strings_do_not_fill_the_cache(ex: Expressions) -> None:
    ex.compile(["plain", "text", {"k": "v"}], "f")
    assert len(ex.cache) == 0


# -- the render's budget (more in test_expression_budget.py) ----------------------------


def test_a_spent_budget_names_the_nested_field_and_the_setting() -> None:
    ex = Expressions(Limits(max_render_bytes=1_000_000, max_render_seconds=60.0))
    value = {
        "tags": ["{{ 'ok' }}", "{% for i in range(100) %}{% set s = 'x' * 50000 %}{% endfor %}"]
    }
    with pytest.raises(ExpressionError) as info:
        ex.compile(value, "steps[1].input").render(CONTEXT)
    assert info.value.location == "steps[1].input.tags[1]"
    assert "HUB_MAX_RENDER_BYTES=1000000" in info.value.message


def test_comparisons_and_slices_are_charged() -> None:
    ex = Expressions(Limits(max_render_work=50_000_000, max_render_seconds=60.0))
    big = {"s": "a" * 1_000_000}
    compare = "{% for i in range(100) %}{{ s == s }}{% endfor %}"
    sliced = "{% for i in range(100) %}{% set t = s[1:] %}{% endfor %}"
    for source in (compare, sliced):
        with pytest.raises(ExpressionError, match="HUB_MAX_RENDER_WORK"):
            ex.compile(source, "f").render(big)
    assert render(ex, "{{ s[:3] == 'aaa' }}", big) is True


def test_cheap_renders_fit_a_small_budget() -> None:
    ex = Expressions(Limits(max_render_work=100_000, max_render_bytes=10_000))
    assert render(ex, "{{ trigger.body.name | title }} {{ index + 1 }}") == "Ada 1"
    assert render(ex, "{{ trigger.body.email }}") == "ada@example.com"


def test_lookups_in_a_mapping_or_set_are_not_charged_as_scans() -> None:
    ex = Expressions(Limits(max_render_work=200_000_000, max_render_seconds=60.0))
    data = {"seen": {str(i): True for i in range(100_000)}, "ids": [str(i) for i in range(100_000)]}
    lookups = "{% for i in range(2000) %}{{ (i ~ '') in seen }}{% endfor %}"
    assert ex.compile(lookups, "f").render(data).count("True") == 2000
    scans = "{% for i in range(2000) %}{{ (i ~ '') in ids }}{% endfor %}"
    with pytest.raises(ExpressionError, match="HUB_MAX_RENDER_WORK"):
        ex.compile(scans, "f").render(data)
