"""Runs one benchmark in two checkouts alternately and compares their figures.

On a shared machine the same commit measures up to twice as fast at one moment as at
another, so two commits compare only when measured in one sitting, alternately: this
script runs ``bench/<benchmark>.py`` in the *before* checkout, then in the *after* one,
then *before* again, ... ``-n`` times each, and prints, for every figure the benchmark
printed, the median and the spread (min-max) of each checkout's runs and the ratio of the
medians (after / before: above 1 means a larger figure after, which is better for rates
and worse for times, latencies and memory).

Each run is ``<checkout>/.venv/bin/python bench/<benchmark>.py`` with the checkout as its
working directory and that virtualenv first on ``PATH`` (``PYTHONPATH``, ``VIRTUAL_ENV``
and ``HUB_*`` variables are not passed on): each checkout runs its own copy of the
benchmark against its own code, plugins and ``hub`` command. A checkout's virtualenv is
the one its Makefile creates (``make bench`` there creates it, then runs the embedded
benchmark once). The script itself needs only the standard library.

    python bench/alternate.py --before /work/premove --after . embedded
    python bench/alternate.py --before ../old --after . -n 5 embedded --quick
    python bench/alternate.py --before ../old --after . queue_mode --length 30
    python bench/alternate.py --before ../old --after . webhooks --requests 5000 --seconds 3

Options go before the benchmark's name; whatever follows it is passed to the benchmark.
Every run's output is kept in a folder (``--out``, by default a new one under the system's
temporary folder), named by its order and checkout, so that the full tables can be read
or quoted later; the first line printed names the folder.

What is compared, per benchmark: every numeric row of its ``measure / figure / target``
table (a row ``a / b`` of two numbers becomes two figures), its ``ratios:`` line, and for
``queue_mode`` also the medians in full swing and the CPU time per step, for ``webhooks
--accept-only`` its two phases' lines; plus each run's wall time, benchmark start-up
included.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCHMARKS = ("embedded", "queue_mode", "webhooks")
NUMBER = r"-?\d[\d,]*(?:\.\d+)?"
WALL = "wall time of the run, start-up included (s)"


@dataclass
class Figure:
    """One figure's values, per checkout label, and how the benchmark printed it."""

    values: dict[str, list[float]] = field(default_factory=dict)
    decimals: int = 0

    def add(self, label: str, text: str) -> None:
        """Record a value as printed (``"4,138"``, ``"0.13"``)."""
        self.values.setdefault(label, []).append(float(text.replace(",", "")))
        if "." in text:
            self.decimals = max(self.decimals, len(text.rsplit(".", 1)[1]))


def parse(output: str) -> dict[str, str]:
    """The figures a benchmark printed: name -> the number as printed."""
    found: dict[str, str] = {}
    in_table = in_cpu = False
    section = ""  # of the table's last row that is not indented: "paced" in "paced: ..."
    for line in output.splitlines():
        stripped = line.strip()
        if re.fullmatch(r"measure\s+figure\s+target", stripped):
            in_table = True
        elif in_table and not stripped:
            in_table = False
        elif in_table and line.startswith(" "):
            # An indented row details the row above it: "  server CPU per webhook" is
            # printed under the saturation rows and again under the paced ones.
            for name, value in _table_row(stripped).items():
                found[f"{section}: {name}" if section else name] = value
        elif in_table:
            found.update(_table_row(stripped))
            section = stripped.split(": ", 1)[0] if ": " in stripped.split("  ")[0] else ""
        elif stripped.startswith("ratios:"):
            for part in stripped.removeprefix("ratios:").split(";"):
                name, _, value = part.rpartition("=")
                if re.fullmatch(NUMBER, value.strip()):
                    found[f"ratio: {name.strip()}"] = value.strip()
        elif match := re.search(rf"medians ({NUMBER}) and ({NUMBER}) \(({NUMBER})x\)", line):
            # queue_mode: "in full swing (...) ...; medians 14,781 and 24,087 (1.63x)"
            one, two, ratio = match.groups()
            found["in full swing: steps/s, one worker"] = one
            found["in full swing: steps/s, two workers"] = two
            found["in full swing: two workers / one"] = ratio
        elif match := re.fullmatch(
            rf"(\w+) +\{{.*\}}: accepted/s ({NUMBER}), p50 ({NUMBER}) ms, p99 ({NUMBER}) ms, "
            rf"server CPU ({NUMBER}) ms/request",
            stripped,
        ):
            # webhooks --accept-only: "saturate  {...}: accepted/s 3,322, p50 ..., p99 ..."
            phase = f"accept only, {match[1]}"
            found[f"{phase}: accepted webhooks/s"] = match[2]
            found[f"{phase}: latency p50 (ms)"] = match[3]
            found[f"{phase}: latency p99 (ms)"] = match[4]
            found[f"{phase}: server CPU per request (ms)"] = match[5]
        elif stripped.startswith("CPU time per step (us)"):
            in_cpu = True
        elif in_cpu and (match := re.fullmatch(rf"(.*?\S)\s{{2,}}({NUMBER})\s+({NUMBER})", line)):
            found[f"CPU per step (us), one worker: {match[1]}"] = match[2]
            found[f"CPU per step (us), two workers: {match[1]}"] = match[3]
        elif in_cpu and (match := re.match(r"(.+?): the measured processes kept .* (\d+)%", line)):
            found[f"cores busy (%), {match[1]}"] = match[2]
    return found


def _table_row(row: str) -> dict[str, str]:
    """The figures of one row of a ``measure / figure / target`` table: none when its value
    is not a number (an echo of the arguments, HTTP statuses as JSON); two when it is
    ``a / b`` and the name says which is which (``latency p50 / p99 (ms)``)."""
    match = re.fullmatch(r"(.*?\S)\s{2,}(\S.*?)(?:\s{2,}\S.*)?", row)
    if match is None:
        return {}
    name, value = match.groups()
    if re.fullmatch(NUMBER, value):
        return {name: value}
    pair = re.fullmatch(rf"({NUMBER}) / ({NUMBER})", value)
    words = re.search(r"(\S+) / (\S+)", name)
    if pair is None or words is None:
        return {}
    return {
        name.replace(words[0], words[1]): pair[1],
        name.replace(words[0], words[2]): pair[2],
    }


def describe(checkout: Path) -> str:
    """The checkout's path and commit, noting uncommitted changes to tracked files."""
    head = subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(checkout), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return f"{checkout} ({head or 'no git'}{' + uncommitted changes' if dirty else ''})"


def child_env(checkout: Path) -> dict[str, str]:
    """This environment with the checkout's virtualenv first, nothing pointing elsewhere."""
    drop = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("HUB_")}
    venv = checkout / ".venv"
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_once(checkout: Path, benchmark: str, extra: list[str], log: Path) -> tuple[str, float]:
    """Run the benchmark once in the checkout; its output (kept in ``log``) and wall time."""
    argv = [str(checkout / ".venv" / "bin" / "python"), f"bench/{benchmark}.py", *extra]
    started = time.monotonic()
    done = subprocess.run(
        argv,
        cwd=checkout,
        env=child_env(checkout),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    took = time.monotonic() - started
    log.write_text(done.stdout)
    if done.returncode != 0:
        tail = "\n".join(done.stdout.splitlines()[-20:])
        raise RuntimeError(f"exit status {done.returncode} ({log}):\n{tail}")
    return done.stdout, took


def fmt(value: float, decimals: int) -> str:
    """A number as the benchmark printed its kind: same decimals, thousands separated."""
    return f"{value:,.{decimals}f}"


def report(figures: dict[str, Figure], labels: tuple[str, str]) -> None:
    """The comparison table: per figure, each label's median (min-max) and the ratio."""
    cells = []
    for name, figure in figures.items():
        row = [name]
        for label in labels:
            values = figure.values.get(label, [])
            if values:
                median = fmt(statistics.median(values), figure.decimals)
                spread = f"{fmt(min(values), figure.decimals)}-{fmt(max(values), figure.decimals)}"
                row.append(f"{median} ({spread})")
            else:
                row.append("-")
        if all(figure.values.get(label) for label in labels):
            before, after = (statistics.median(figure.values[label]) for label in labels)
            row.append(f"{after / before:.2f}" if before else "-")
        else:
            row.append("-")
        cells.append(row)
    header = ["figure", *(f"{label}: median (min-max)" for label in labels)]
    header.append(f"{labels[1]}/{labels[0]}")
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header))]
    for row in [header, *cells]:
        first, *rest = row
        right = (f"  {cell:>{width}}" for cell, width in zip(rest, widths[1:], strict=True))
        print(f"{first:{widths[0]}}" + "".join(right))


def main(args: argparse.Namespace) -> int:
    """Alternate the runs, then print the table (of the runs done, if one failed)."""
    checkouts = {"before": args.before.resolve(), "after": args.after.resolve()}
    for checkout in checkouts.values():
        if not (checkout / "bench" / f"{args.benchmark}.py").exists():
            sys.exit(f"{checkout} has no bench/{args.benchmark}.py")
        if not (checkout / ".venv" / "bin" / "python").exists():
            sys.exit(f"{checkout} has no .venv (`make bench` there creates it)")
    out = args.out or Path(tempfile.mkdtemp(prefix=f"hub-alternate-{args.benchmark}-"))
    out.mkdir(parents=True, exist_ok=True)
    print(f"outputs in {out}")
    print(
        f"{args.benchmark} {' '.join(args.extra)}".rstrip()
        + f": {args.n} runs each, alternated, before first; "
        f"started {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    for label, checkout in checkouts.items():
        print(f"  {label}: {describe(checkout)}")
    figures: dict[str, Figure] = {}
    status = 0
    runs = [(label, checkout) for _ in range(args.n) for label, checkout in checkouts.items()]
    try:
        for number, (label, checkout) in enumerate(runs, 1):
            log = out / f"{number:02d}-{label}.txt"
            output, took = run_once(checkout, args.benchmark, args.extra, log)
            found = parse(output)
            if not found:
                raise RuntimeError(f"no figures found in the output ({log})")
            for name, text in {**found, WALL: f"{took:.1f}"}.items():
                figures.setdefault(name, Figure()).add(label, text)
            print(f"  run {log.stem}: {took:.1f} s", file=sys.stderr, flush=True)
    except (RuntimeError, KeyboardInterrupt) as error:
        print(f"\nstopped: {error}", file=sys.stderr)
        status = 1
    print(
        f"finished {time.strftime('%H:%M UTC', time.gmtime())}, "
        f"load average {os.getloadavg()[0]:.2f}\n"
    )
    report(figures, ("before", "after"))
    return status


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", type=Path, required=True, help="checkout A, run first")
    parser.add_argument("--after", type=Path, required=True, help="checkout B")
    parser.add_argument("-n", type=int, default=3, help="runs in each checkout (default 3)")
    parser.add_argument("--out", type=Path, help="folder for every run's output")
    parser.add_argument("benchmark", choices=BENCHMARKS)
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="arguments for the benchmark")
    sys.exit(main(parser.parse_args()))
