"""Text filters of the sandbox whose Jinja versions are super-linear on hostile input.

- :func:`wrap_lines`: ``textwrap.wrap`` as Jinja's ``wordwrap`` calls it, with the same
  lines, in time linear in the text (``textwrap`` copies the rest of a long word for each
  line it cuts from it: quadratic, 27 s for 400,000 characters at width 1).
- :func:`urlize_cost`: what ``urlize`` costs on a text, for the budget: its regular
  expression for trailing punctuation backtracks over runs of ``)>.,`` (quadratic in a
  run's length: 2.4 s for a single word of 8,000 dots).
"""

from __future__ import annotations

import re
import textwrap

_PUNCT_RUN = re.compile(r"[)>.,]{32,}")


def urlize_cost(text: str) -> int:
    """An upper bound of the regex steps ``urlize`` takes on ``text``: its length plus the
    square of each long run of trailing punctuation (a ``>`` counts four: it is escaped to
    ``&gt;`` first)."""
    cost = len(text)
    for match in _PUNCT_RUN.finditer(text):
        run = match.group()
        cost += (len(run) + 3 * run.count(">")) ** 2
    return cost


def _wrapper(width: int, break_long_words: bool, break_on_hyphens: bool) -> textwrap.TextWrapper:
    return textwrap.TextWrapper(
        width=width,
        expand_tabs=False,
        replace_whitespace=False,
        break_long_words=break_long_words,
        break_on_hyphens=break_on_hyphens,
    )


def wrap_lines(
    text: str, width: int, break_long_words: bool = True, break_on_hyphens: bool = True
) -> list[str]:
    """The lines of ``textwrap.wrap(text, width, expand_tabs=False,
    replace_whitespace=False, break_long_words=..., break_on_hyphens=...)``, in linear time.

    It follows ``TextWrapper._wrap_chunks`` (no indents, no ``max_lines``), but reads the
    chunk being cut by an offset instead of copying what is left of it at every line.
    """
    if width <= 0:
        raise ValueError(f"invalid width {width!r} (must be > 0)")
    chunks = _wrapper(width, break_long_words, break_on_hyphens)._split_chunks(text)
    chunks.reverse()
    lines: list[str] = []
    off = 0  # where the last chunk (chunks[-1]) starts: the part before was already cut
    ends: dict[int, int] = {}  # len(chunk.rstrip()) of the chunk being cut, computed once
    while chunks:
        cur_line: list[str] = []
        cur_len = 0
        if lines:  # textwrap: chunks[-1].strip() == "" (without copying the rest)
            top = chunks[-1]
            if off and id(top) not in ends:
                ends.clear()
                ends[id(top)] = len(top.rstrip())
            if off >= (ends[id(top)] if off else len(top.rstrip())):
                chunks.pop()
                off = 0
        while chunks:
            size = len(chunks[-1]) - off
            if cur_len + size > width:
                break
            cur_line.append(chunks.pop()[off:])
            off = 0
            cur_len += size
        if chunks and len(chunks[-1]) - off > width:
            # the long word: as much of it as fits on this line (textwrap's rule)
            space_left = width - cur_len
            chunk = chunks[-1]
            if break_long_words:
                end = off + space_left
                if break_on_hyphens and len(chunk) - off > space_left:
                    hyphen = chunk.rfind("-", off, end)
                    if hyphen > off and chunk[off:hyphen].strip("-"):
                        end = hyphen + 1
                cur_line.append(chunk[off:end])
                off = end
            elif not cur_line:
                cur_line.append(chunks.pop()[off:])
                off = 0
            cur_len = sum(map(len, cur_line))
        if cur_line and cur_line[-1].strip() == "":
            cur_len -= len(cur_line[-1])
            del cur_line[-1]
        if cur_line:
            lines.append("".join(cur_line))
    return lines
