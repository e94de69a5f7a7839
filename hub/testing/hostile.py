"""Hostile templates: what an attacker with an editor's token, or a webhook to a published
flow, could make the hub render. ``tests/test_hostile_renders.py`` and ``bench/hostile.py``
play this one list.

Each entry takes CPU time, memory or both far beyond any bound when unbounded (the
figures are from a hub without a render budget, on one core); every one must end with an
error that names the limit it met, in about ``max_render_seconds`` at most, while the
process that renders it keeps answering.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

import httpx

from hub.testing.servers import free_port

__all__ = [
    "CORPUS",
    "HealthProbe",
    "Hostile",
    "PeakRss",
    "Served",
    "flow_with_corpus",
    "names_a_limit",
    "rss_kb",
    "serve",
    "stop_process",
]


class Hostile(NamedTuple):
    """One hostile template: ``name`` (an identifier, also a step id) and its ``source``."""

    name: str
    source: str


CORPUS: tuple[Hostile, ...] = (
    # From the issue: filter chains never met a loop budget (2-28 s, 6-27 s, 13 s) ...
    Hostile("center_map_sum", "{{ range(100000)|map('center', 1000000)|map('length')|sum }}"),
    Hostile("wordwrap_quadratic", "{{ ('a'*400000)|wordwrap(1)|length }}"),
    Hostile(
        "format_wordwrap",
        "{{ (['%0400000d']*3)|map('format', 1)|map('wordwrap', 1)|map('length')|sum }}",
    ),
    # ... and the total of what a render builds was not bounded (124 MB -> 917 MB).
    Hostile("center_list_memory", "{{ range(1000)|map('center', 1000000)|list|length }}"),
    # Nested loops: 10^10 iterations of nothing.
    Hostile(
        "nested_loops",
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    ),
    # String method chains on a megabyte, in a loop whose output stays small.
    Hostile(
        "method_chain_loop",
        "{% for i in range(100000) %}"
        "{{ ('ab'*500000).upper().lower().swapcase().strip()|length }}{% endfor %}",
    ),
    # A join of a lazy map: the pieces are built before any total is checked.
    Hostile("join_of_map", "{{ range(20000)|map('center', 100000)|join|length }}"),
    # Replace explosions under the per-call bound, many times over.
    Hostile(
        "replace_loop",
        "{% for i in range(100000) %}"
        "{{ ('a'*1000)|replace('a', 'b'*999)|replace('b', 'c')|replace('c', 'd')|length }}"
        "{% endfor %}",
    ),
    # Deep recursion, and a macro that calls itself twice per level (2^40 calls).
    Hostile("macro_recursion", "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"),
    Hostile(
        "macro_fanout",
        "{% macro f(n) %}{% if n < 40 %}{{ f(n + 1) }}{{ f(n + 1) }}{% endif %}{% endmacro %}"
        "{{ f(0)|length }}",
    ),
    # Sorting a fresh large list on every iteration.
    Hostile(
        "sort_loop",
        "{% for i in range(100000) %}{{ range(100000)|list|sort(reverse=true)|first }}{% endfor %}",
    ),
    # A sort over megabytes of strings.
    Hostile(
        "sort_big_strings", "{{ range(100000)|map('string')|map('center', 10000)|sort|first }}"
    ),
    # printf-style padding, a megabyte per iteration.
    Hostile(
        "percent_padding_loop",
        "{% for i in range(100000) %}{{ ('%0999990d' % i)|length }}{% endfor %}",
    ),
    # JSON of a hundred megabytes.
    Hostile("tojson_big", "{{ range(100000)|map('center', 1000)|list|tojson|length }}"),
    # A string grown by concatenation: quadratic copying.
    Hostile(
        "namespace_concat",
        "{% set ns = namespace(s='') %}{% for i in range(100000) %}"
        "{% set ns.s = ns.s ~ ('x' * 100) %}{% endfor %}{{ ns.s|length }}",
    ),
    # Regular expressions over a long text (urlize), in a loop.
    Hostile(
        "urlize_loop",
        "{% for i in range(100000) %}{{ ('a.b '*100000)|urlize|length }}{% endfor %}",
    ),
    # Batches of padded strings, materialised.
    Hostile(
        "batch_center",
        "{{ range(100000)|batch(10)|map('join')|map('center', 1000000)|list|length }}",
    ),
    # unique/groupby over a million items.
    Hostile("unique_million", "{{ (range(100000)|list * 10)|unique|list|length }}"),
)


def names_a_limit(message: str) -> bool:
    """Whether an error message says which bound the render met."""
    return "limit exceeded" in message or "too deeply nested" in message


def flow_with_corpus(flow_id: str, trigger: dict[str, object] | None = None) -> dict[str, object]:
    """A flow with one ``data.set`` step per corpus entry, all roots (they run in
    parallel), each continuing on error so that every step reports its own failure."""
    document: dict[str, object] = {
        "id": flow_id,
        "steps": [
            {
                "id": entry.name,
                "action": "data.set",
                "needs": [],
                "input": {"value": entry.source},
                "on_error": "continue",
            }
            for entry in CORPUS
        ],
    }
    if trigger is not None:
        document["trigger"] = trigger
    return document


# -- a hub serve to play the corpus against, and a client that polls its /healthz -----------


def rss_kb(pid: int) -> int:
    """The resident memory of process ``pid``, in KiB (``VmRSS`` of ``/proc/<pid>/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"process {pid} reports no VmRSS")


class PeakRss(threading.Thread):
    """The highest RSS (KiB, ``peak``) of a process, sampled every 20 ms from :meth:`start`
    until :meth:`stop`; as a context manager, over the block."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True, name="peak-rss")
        self.pid = pid
        self.peak = rss_kb(pid)
        self._halt = threading.Event()

    def run(self) -> None:
        """Sample until stopped (a process that is gone meanwhile is not sampled)."""
        while not self._halt.wait(0.02):
            with contextlib.suppress(OSError, RuntimeError):
                self.peak = max(self.peak, rss_kb(self.pid))

    def stop(self) -> None:
        """Stop sampling and wait (at most 5 s) for the thread to end."""
        self._halt.set()
        self.join(5)

    def __enter__(self) -> PeakRss:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclasses.dataclass
class Served:
    """A ``hub serve`` process started by :func:`serve`, with an editor's API token."""

    process: subprocess.Popen[bytes]
    base: str
    data_dir: Path
    env: dict[str, str]
    log: Path
    token: str

    @property
    def headers(self) -> dict[str, str]:
        """The editor's bearer token, for the API."""
        return {"authorization": f"Bearer {self.token}"}


def stop_process(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds (a render thread that runs on keeps a
    process from exiting until its budget's deadline)."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def hub_command() -> str:
    """The ``hub`` console script beside this Python."""
    return str(Path(sys.executable).parent / "hub")


@contextlib.contextmanager
def serve(
    data_dir: Path, settings: Mapping[str, str] | None = None, *, start_timeout: float = 30.0
) -> Iterator[Served]:
    """Start ``hub serve`` on a free loopback port over ``data_dir`` (the environment's
    ``HUB_*`` variables dropped, ``settings`` added), with an editor ``editor@example.com``
    and their token; stop it (SIGTERM, then SIGKILL) when the block ends."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update({"HUB_DATA_DIR": str(data_dir), **(settings or {})})
    hub = hub_command()
    email = "editor@example.com"
    subprocess.run(
        [hub, "users", "create", email, "--role", "editor"],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    made = subprocess.run(
        [hub, "tokens", "create", "--email", email, "--name", "hostile"],
        env=env,
        check=True,
        capture_output=True,
        encoding="utf-8",
        timeout=60,
    )
    token = next(line for line in made.stdout.split() if line.startswith("hub_"))
    port = free_port()
    log = data_dir / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [hub, "serve", "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    served = Served(process, f"http://127.0.0.1:{port}", data_dir, env, log, token)
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"hub serve exited:\n{log.read_text()}")
            try:
                if httpx.get(f"{served.base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"hub serve did not answer:\n{log.read_text()}")
            time.sleep(0.05)
        yield served
    finally:
        stop_process(process)


class HealthProbe(threading.Thread):
    """Polls ``GET {base}/healthz`` from its own client, one request after another (with
    ``pause`` seconds between), until :meth:`stop`; ``latencies`` holds every answer's
    time in seconds (``samples``: with when it started, by ``time.perf_counter``), and
    ``failures`` every request that got no 200."""

    def __init__(self, base: str, pause: float = 0.01, timeout: float = 60.0) -> None:
        super().__init__(daemon=True, name="healthz-probe")
        self.base = base
        self.pause = pause
        self.timeout = timeout
        self.latencies: list[float] = []
        self.samples: list[tuple[float, float]] = []  # (perf_counter at the start, latency)
        self.failures: list[str] = []
        self._halt = threading.Event()

    def run(self) -> None:
        """Poll until stopped."""
        with httpx.Client(timeout=self.timeout) as client:
            while not self._halt.is_set():
                started = time.perf_counter()
                try:
                    status = client.get(f"{self.base}/healthz").status_code
                except httpx.HTTPError as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                else:
                    if status != 200:
                        self.failures.append(f"status {status}")
                took = time.perf_counter() - started
                self.latencies.append(took)
                self.samples.append((started, took))
                self._halt.wait(self.pause)

    def stop(self) -> None:
        """Stop polling and wait for the last request."""
        self._halt.set()
        self.join(self.timeout + 5)

    def percentile(self, p: float) -> float:
        """The ``p``-th percentile (0-100) of the latencies so far (0 with none)."""
        values = sorted(self.latencies)
        if not values:
            return 0.0
        return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]

    def worst_between(self, start: float, end: float) -> float:
        """The longest wait of a request that was in flight between ``start`` and ``end``
        (``time.perf_counter`` times)."""
        return max((t for s, t in self.samples if s < end and s + t > start), default=0.0)

    @property
    def worst(self) -> float:
        """The longest wait so far."""
        return max(self.latencies, default=0.0)
