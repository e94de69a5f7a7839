"""What every benchmark prints last: its measures, each with its figure and its target."""

from __future__ import annotations

from collections.abc import Sequence


def print_measures(rows: Sequence[tuple[str, str, str]], figure_width: int = 10) -> None:
    """Print ``rows`` (measure, figure, target: ``""`` for none) as a table under a header:
    the measures left-aligned, the figures right-aligned in ``figure_width`` characters."""
    width = max(len(row[0]) for row in rows)
    print(f"\n{'measure':{width}}  {'figure':>{figure_width}}  target")
    for name, value, target in rows:
        print(f"{name:{width}}  {value:>{figure_width}}  {target}")
