"""One render's budget of work and bytes built: hostile templates end with an error that
names a limit, in bounded time and memory; realistic templates still render."""

from __future__ import annotations

import json
import os
import random
import re
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from hub.expressions import ExpressionError, Expressions, Limits
from hub.expressions.budget import BUDGET, Budget, RenderMoved
from hub.expressions.textops import wrap_lines
from hub.settings import Settings

LOCATION = "steps.fetch.input.url"
# The clock is far: these must be stopped by the budget, not by the deadline.
LIMITS = Limits(max_render_seconds=120.0)
WALL = 15.0  # a generous bound: they must end, not be fast on a loaded runner
MEMORY = 2 * LIMITS.max_render_bytes

random.seed(14)
CONTEXT: dict[str, Any] = {
    "big_s": "a" * 1_000_000,
    "words": " ".join(random.choice(["alpha", "beta-gamma", "x", "(b)"]) for _ in range(200_000))[
        :1_000_000
    ],
    "rows": [{"k": i % 10, "v": i, "name": f"n{i}"} for i in range(100_000)],
    "bigdict": {str(i): i for i in range(100_000)},
    "lists_json": "[" + ",".join(["[]"] * 333_000) + "]",
}


def _big(value: Any, n: int) -> str:
    """A plugin filter that builds a big string, with no check of its own."""
    return "x" * n


def _make(n: int) -> list[int]:
    """A plugin function that builds a big list, with no check of its own."""
    return list(range(n))


def expressions(limits: Limits = LIMITS) -> Expressions:
    return Expressions(limits, filters={"big": _big}, globals={"make": _make})


HOSTILE = [
    # the examples
    "{{ range(100000)|map('center', 1000000)|map('length')|sum }}",
    "{{ ('a'*400000)|wordwrap(1)|length }}",
    "{{ (['%0400000d']*3)|map('format', 1)|map('wordwrap', 1)|map('length')|sum }}",
    "{{ range(1000)|map('center', 1000000)|list|length }}",
    # nested maps and filter chains
    "{{ range(100000)|map('string')|map('center', 900000)|map('upper')|map('length')|sum }}",
    "{{ range(100000)|map('string')|map('indent', 900000)|map('trim')|list|length }}",
    # string methods
    "{% for i in range(100000) %}{% set s = 'x'.ljust(1000000) %}{% endfor %}",
    "{% for i in range(100000) %}{{ ('%d' % i).zfill(999999)|length }}{% endfor %}",
    "{% for i in range(100000) %}{% set s = ('x' * 500000).replace('x', 'yy') %}{% endfor %}",
    "{% for i in range(100000) %}{% set s = ('a ' * 400000).split() %}{% endfor %}",
    "{% for i in range(100000) %}{{ '{:>900000}'.format(i)|length }}{% endfor %}",
    "{% for i in range(100000) %}{{ ','.join(range(100000)|map('string'))|length }}{% endfor %}",
    # repetition nested in lists, dicts built in loops
    "{% for i in range(100000) %}{% set x = [['y' * 100000] * 9] %}{% endfor %}",
    "{% set ns = namespace(d={}) %}{% for i in range(100000) %}"
    "{% set ns.d = dict(ns.d, **{'k' ~ i: i}) %}{% endfor %}",
    # recursion through macros
    "{% macro f(n) %}{% set s = 'x' * 900000 %}{{ f(n - 1) if n else s|length }}{% endmacro %}"
    "{{ f(900) }}",
    # sorting, unique, batch, groupby over big lists, again and again
    "{% for i in range(100000) %}{% set s = range(100000)|reverse|sort %}{% endfor %}",
    "{% for i in range(100000) %}{{ range(100000)|unique|list|length }}{% endfor %}",
    "{% for i in range(1000) %}{{ range(100000)|batch(1)|list|length }}{% endfor %}",
    "{% for i in range(1000) %}{{ rows|groupby('v')|length }}{% endfor %}",
    "{% for i in range(1000) %}{{ rows|sort(attribute='name')|length }}{% endfor %}",
    "{% for i in range(1000) %}{{ bigdict|xmlattr|length }}{% endfor %}",
    "{% for i in range(1000) %}{{ bigdict|dictsort|length }}{% endfor %}",
    # tojson of deep data, |string of big containers
    "{% set ns = namespace(d=[]) %}{% for i in range(100000) %}{% set ns.d = [ns.d] %}"
    "{% endfor %}{{ ns.d|tojson|length }}",
    "{% for i in range(1000) %}{{ (range(100000)|list|string)|length }}{% endfor %}",
    # ~ in loops, slices, comparisons and searches of big values
    "{% set ns = namespace(s='') %}{% for i in range(100000) %}"
    "{% set ns.s = ns.s ~ ('x' * 1000) %}{% endfor %}",
    "{% for i in range(100000) %}{% set x = big_s[1:] %}{% endfor %}",
    "{% for i in range(100000) %}{{ ('a' * 999 ~ 'b') in big_s }}{% endfor %}",
    "{% set l = range(100000)|list %}{% for i in range(100000) %}{{ -1 in l }}{% endfor %}",
    # costly text filters over a big body, again and again
    "{% for i in range(1000) %}{{ big_s|wordwrap(79)|length }}{% endfor %}",
    "{% for i in range(1000) %}{{ words[:100000]|urlize|length }}{% endfor %}",
    "{% for i in range(1000) %}{{ words|title|length }}{% endfor %}",
    "{{ ('.' * 50000 ~ 'x.')|urlize|length }}",
    # parsing JSON that takes far more memory than its text, again and again
    "{% for i in range(1000) %}{{ (lists_json|fromjson)|length }}{% endfor %}",
    # plugins: a filter and a function that build big values with no check of their own
    "{% for i in range(100000) %}{{ i|big(900000)|length }}{% endfor %}",
    "{% for i in range(1000) %}{{ make(100000)|length }}{% endfor %}",
    # arithmetic on big integers
    "{% for i in range(100000) %}{{ (10 ** 15000 // 7 ** 5000) > 0 }}{% endfor %}",
]


def _rss() -> int:
    """This process's resident set size, in bytes."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


@contextmanager
def _rss_growth() -> Iterator[list[int]]:
    """The largest growth of the RSS seen while the block runs (sampled every 2 ms from
    another thread), in ``[0]`` once it is over."""
    before = _rss()
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.002):
            peak[0] = max(peak[0], _rss())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    growth = [0]
    try:
        yield growth
    finally:
        done.set()
        sampler.join()
        growth[0] = max(peak[0], _rss()) - before


@pytest.mark.parametrize("source", HOSTILE)
def test_hostile_template_ends_with_an_error_naming_a_limit(source: str) -> None:
    ex = expressions()
    compiled = ex.compile(source, LOCATION)
    started = time.monotonic()
    with _rss_growth() as growth, pytest.raises(ExpressionError) as info:
        compiled.render(CONTEXT)
    elapsed = time.monotonic() - started
    peak = growth[0]
    assert info.value.location == LOCATION
    assert info.value.message.startswith("limit exceeded: ")
    assert "HUB_MAX_" in info.value.message or "a fixed bound" in info.value.message
    assert elapsed < WALL, f"{elapsed:.1f}s"
    assert peak < MEMORY, f"{peak / 1e6:.0f} MB"


def test_budget_errors_name_the_setting_and_its_value() -> None:
    ex = expressions(Limits(max_render_work=10_000_000, max_render_seconds=120.0))
    with pytest.raises(ExpressionError) as info:
        ex.compile("{% for i in range(100000) %}{{ i }}{% endfor %}", LOCATION).render({})
    assert info.value.location == LOCATION
    assert "work budget is spent (HUB_MAX_RENDER_WORK=10000000)" in info.value.message
    ex = expressions(Limits(max_render_bytes=5_000_000, max_render_seconds=120.0))
    with pytest.raises(ExpressionError) as info:
        ex.compile("{{ range(100)|map('center', 100000)|list|length }}", LOCATION).render({})
    assert "bytes built is spent (HUB_MAX_RENDER_BYTES=5000000)" in info.value.message


def test_the_deadline_is_checked_whenever_the_budget_is_charged() -> None:
    # no loop and no macro: only the filter calls of one chain can see the clock
    ex = expressions(Limits(max_render_seconds=0.2, max_render_work=10**15))
    source = "{{ range(100000)|map('string')|map('center', 100)|map('trim')|list|length }}"
    started = time.monotonic()
    with pytest.raises(ExpressionError) as info:
        ex.compile(source, LOCATION).render({})
    assert "HUB_MAX_RENDER_SECONDS=0.2" in info.value.message
    assert time.monotonic() - started < WALL


def test_bytes_built_count_for_the_whole_render() -> None:
    # each piece is small and dropped at once: only the render's total is over
    ex = expressions(Limits(max_render_bytes=10_000_000, max_render_seconds=120.0))
    source = "{% for i in range(1000) %}{% set s = 'x' * 100000 %}{% endfor %}."
    with pytest.raises(ExpressionError, match="HUB_MAX_RENDER_BYTES"):
        ex.compile(source, LOCATION).render({})
    assert ex.compile("{% for i in range(50) %}{% set s = 'x' * 100000 %}{% endfor %}.", "f")


def test_filters_added_later_are_metered() -> None:
    ex = expressions(Limits(max_render_bytes=5_000_000, max_render_seconds=120.0))
    ex.env.filters["later"] = _big
    ex.env.filters.update(later2=_big)
    for name in ("later", "later2"):
        source = f"{{% for i in range(100) %}}{{{{ i|{name}(900000)|length }}}}{{% endfor %}}"
        with pytest.raises(ExpressionError, match="HUB_MAX_RENDER_BYTES"):
            ex.compile(source, LOCATION).render({})


def test_inline_slice_is_checked_at_every_charge() -> None:
    # a filter chain (no loop, no macro) passing its inline slice moves off the loop
    ex = expressions(Limits(max_render_seconds=120.0, max_render_work=10**15))
    source = "{{ range(100000)|map('string')|map('center', 100)|map('trim')|list|length }}"
    compiled = ex.compile(source, LOCATION)
    with pytest.raises(RenderMoved):
        compiled.render({}, inline=0.01)
    assert compiled.render({}) == 100_000


def test_settings_reach_the_hub_limits() -> None:
    settings = Settings.from_env(
        {
            "HUB_MAX_RENDER_WORK": "123456789",
            "HUB_MAX_RENDER_BYTES": "7000000",
            "HUB_MAX_RENDER_SECONDS": "2.5",
        }
    )
    assert settings.max_render_work == 123_456_789
    assert settings.max_render_bytes == 7_000_000
    assert settings.max_render_seconds == 2.5
    defaults = Settings()
    assert (defaults.max_render_work, defaults.max_render_bytes) == (
        Limits().max_render_work,
        Limits().max_render_bytes,
    )
    assert defaults.max_render_seconds == Limits().max_render_seconds


def test_no_budget_is_left_over_after_a_render() -> None:
    ex = expressions()
    ex.compile("{{ 'x' | upper }}", "f").render({})
    assert BUDGET.get() is None
    budget = Budget(Limits())
    assert budget.work == Limits().max_render_work


# -- realistic templates still render ---------------------------------------------------


def _timed(ex: Expressions, source: str, context: dict[str, Any]) -> Any:
    return ex.compile(source, LOCATION).render(context)


def test_a_megabyte_of_json_goes_through_tojson_and_fromjson() -> None:
    ex = Expressions()  # the defaults, deadline included
    body = {"items": [{"id": i, "name": f"item {i}", "tags": ["a", "b"]} for i in range(17_000)]}
    text = json.dumps(body)
    assert 900_000 < len(text) < 1_000_000
    context = {"trigger": {"body": body, "text": text}}
    assert _timed(ex, "{{ trigger.text | fromjson }}", context) == body
    assert _timed(ex, "{{ trigger.body | tojson | fromjson }}", context) == body
    assert _timed(ex, "{{ (trigger.text | fromjson).items | length }}", context) == 17_000
    assert _timed(ex, "{{ trigger.text | length }}", context) == len(text)
    assert _timed(ex, "{{ trigger.text | upper | lower | trim | length }}", context) == len(text)
    assert _timed(ex, "{{ trigger.text | replace('item', 'ITEM') | length }}", context) == len(text)
    assert _timed(ex, "{{ trigger.text[:700000] | b64encode | b64decode | length }}", context) == (
        700_000
    )


def test_a_megabyte_of_text_goes_through_text_filters() -> None:
    ex = Expressions()
    words = CONTEXT["words"][:900_000]  # wordwrap may add a break after a hyphen
    context = {"t": words}
    wrapped = _timed(ex, "{{ t | wordwrap(79) }}", context)
    assert wrapped == "\n".join(
        textwrap.wrap(words, 79, expand_tabs=False, replace_whitespace=False)
    )
    assert _timed(ex, "{{ t | wordcount }}", context) == len(re.findall(r"\w+", words))
    assert _timed(ex, "{{ t | title | length }}", context) == len(words)
    assert _timed(ex, "{{ t.split(' ') | length }}", context) == len(words.split(" "))
    assert _timed(ex, "{{ t | truncate(100) | length }}", context) <= 100
    assert _timed(ex, "{{ t | striptags | length }}", context) <= len(words)
    assert len(_timed(ex, "{{ t[:100000] | urlize }}", context)) >= 100_000


def test_loops_over_ten_thousand_items_render() -> None:
    ex = Expressions()
    rows = [{"id": i, "name": f"n{i}", "active": i % 2 == 0} for i in range(10_000)]
    context = {"rows": rows}
    text = _timed(
        ex,
        "{% for r in rows if r.active %}{{ r.id }}:{{ r.name | upper }},{% endfor %}",
        context,
    )
    assert text.count(",") == 5_000
    ids = _timed(ex, "{{ rows | selectattr('active') | map(attribute='id') | list }}", context)
    assert ids == list(range(0, 10_000, 2))
    assert _timed(ex, "{{ rows | sort(attribute='name') | first }}", context) == rows[0]
    assert len(_timed(ex, "{{ rows | groupby('active') }}", context)) == 2
    assert _timed(ex, "{{ rows | map(attribute='id') | sum }}", context) == sum(range(10_000))
    assert _timed(ex, "{{ rows | map(attribute='name') | unique | list | length }}", context) == (
        10_000
    )
    total = "{% set ns = namespace(n=0) %}{% for r in rows %}{% set ns.n = ns.n + r.id %}"
    assert _timed(ex, total + "{% endfor %}{{ ns.n }}", context) == str(sum(range(10_000)))


def test_a_hundred_thousand_items_pass_through_a_few_filters() -> None:
    ex = Expressions()
    rows = [{"id": i} for i in range(100_000)]
    assert _timed(ex, "{{ rows | map(attribute='id') | list | length }}", {"rows": rows}) == (
        100_000
    )
    assert _timed(ex, "{{ rows | length }}", {"rows": rows}) == 100_000
    assert _timed(ex, "{{ rows[10:20] | length }}", {"rows": rows}) == 10


# -- the linear wordwrap ----------------------------------------------------------------


def test_wordwrap_gives_textwraps_lines() -> None:
    rng = random.Random(7)
    alphabet = ["a", "b", "-", " ", "  ", "\t", "\u3000", "xyz", "--", "é", "a-b", "\xa0"]
    for _ in range(3_000):
        text = "".join(
            rng.choice(alphabet) * rng.choice([1, 1, 2, 5, 30]) for _ in range(rng.randint(0, 30))
        )
        width = rng.randint(1, 12)
        long_words, hyphens = rng.random() < 0.8, rng.random() < 0.7
        expected = textwrap.wrap(
            text,
            width=width,
            expand_tabs=False,
            replace_whitespace=False,
            break_long_words=long_words,
            break_on_hyphens=hyphens,
        )
        assert wrap_lines(text, width, long_words, hyphens) == expected, (text, width)


def test_wordwrap_of_a_long_word_is_linear() -> None:
    started = time.monotonic()
    lines = wrap_lines("a" * 200_000, 1)
    assert len(lines) == 200_000
    assert time.monotonic() - started < WALL  # textwrap: about 7 s here, quadratic


def test_an_operation_costlier_than_the_inline_slice_moves_the_render_before_it_runs() -> None:
    """One call charged more work than the inline slice is worth (here a filter reading
    1.8 MB, 18 ms of work against a 10 ms slice) raises RenderMoved before the call runs,
    so the event loop never waits for it; with the whole budget (off the loop) it runs."""
    calls: list[int] = []

    def spy(value: str) -> int:
        calls.append(len(value))
        return 1

    compiled = Expressions(filters={"spy": spy}).compile("{{ big|spy }}", "steps.s.input")
    context = {"big": "a" * 1_800_000}
    with pytest.raises(RenderMoved):
        compiled.render(context, inline=0.01)
    assert calls == []
    assert compiled.render(context) == 1
    assert calls == [1_800_000]
