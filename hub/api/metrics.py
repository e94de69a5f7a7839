"""``/metrics``: the hub's Prometheus metrics, in the text exposition format.

What is counted where:

- from the engine's event listeners, in this process: runs started, runs finished by status,
  step attempts ended by status, and the run and step duration histograms (in queue mode a
  step's events happen in the worker that ran it, so each process exports its own share);
- from the database, at each scrape: steps ``queued`` and ``waiting`` (the queue depth) and
  runs ``running``, two indexed ``COUNT`` queries;
- from the layered cache: hits, misses, stale answers and loads (``hub.cache.stats``);
- from the webhook route: requests by outcome (``accepted``, ``replayed``, ``answered``,
  ``timed_out``, ``run_failed``, or the error code of a refusal such as
  ``invalid_signature:mismatch`` or ``payload_too_large``).

Trial runs (the flow builder's tests: their events say ``"trial": true``) are not counted,
nor their steps, nor timed; nor are they among the runs ``running``.

Labels carry statuses and outcomes only, never flow ids, workspace names or request data.
The route is public like ``/healthz`` (no credentials, so that Prometheus can scrape it).
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterator
from typing import Any

from cachetools import LRUCache
from litestar import Response, get
from litestar.di import NamedDependency
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from hub import __version__
from hub.runtime import Hub
from hub.services import system

# The classic text format (every Prometheus reads it); Litestar adds "; charset=utf-8".
CONTENT_TYPE = "text/plain; version=0.0.4"
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
                    60, 300)  # fmt: skip


class CacheCollector(Collector):
    """The layered cache's counters, read when scraped."""

    def __init__(self, hub: Hub) -> None:
        self._hub = weakref.ref(hub)

    def collect(self) -> Iterator[CounterMetricFamily]:
        """One counter per cache outcome."""
        hub = self._hub()
        if hub is None:
            return
        stats = hub.cache.stats
        for name, value, help_text in (
            ("hub_cache_hits", stats.hits, "Cache lookups answered fresh (L1 or L2)"),
            ("hub_cache_misses", stats.misses, "Cache lookups that had to load"),
            ("hub_cache_stale", stats.stale, "Cache lookups answered stale while revalidating"),
            ("hub_cache_loads", stats.loads, "Loads run by the cache (single flight)"),
        ):
            family = CounterMetricFamily(name, help_text)
            family.add_metric([], value)
            yield family


class Metrics:
    """The metrics of one hub: a registry of its own and a listener on its engine."""

    def __init__(self, hub: Hub) -> None:
        # Weak: the module-level table of metrics must not keep a stopped hub alive.
        self._hub = weakref.ref(hub)
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.runs_started = Counter("hub_runs_started", "Runs started in this process", registry=r)
        self.runs_finished = Counter(
            "hub_runs_finished",
            "Runs that reached a final status in this process, by status",
            ["status"],
            registry=r,
        )
        self.steps_finished = Counter(
            "hub_steps_finished",
            "Step attempts that ended in this process, by status "
            "(done, skipped, failed, retrying, waiting)",
            ["status"],
            registry=r,
        )
        self.run_seconds = Histogram(
            "hub_run_duration_seconds",
            "From a run's start to its final status (runs started and finished here)",
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.step_seconds = Histogram(
            "hub_step_duration_seconds",
            "From a step attempt's claim to its recorded end, in this process",
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.webhooks = Counter(
            "hub_webhook_requests", "Webhook requests by outcome", ["outcome"], registry=r
        )
        self.queue_depth = Gauge(
            "hub_queue_depth",
            "Steps queued (ready to run) or waiting (for a time or a child run), from the database",
            ["status"],
            registry=r,
        )
        self.runs_active = Gauge(
            "hub_runs_running", "Runs not yet finished, from the database", registry=r
        )
        info = Gauge("hub_info", "The hub's version", ["version"], registry=r)
        info.labels(__version__).set(1)
        r.register(CacheCollector(hub))
        # Label children resolved once: a labels() lookup costs more than the increment.
        # Start times of the runs started here (the newest 10,000: runs waiting longer are
        # counted when they finish but not timed).
        self._children: dict[tuple[str, str], Any] = {}
        self._run_started: LRUCache[str, float] = LRUCache(maxsize=10_000)
        system.listen(hub, self.on_event)

    def _child(self, metric: Counter, value: str) -> Any:
        key = (metric._name, value)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(value)
        return child

    def webhook(self, outcome: str) -> None:
        """Count one webhook request."""
        self._child(self.webhooks, outcome).inc()

    def on_event(self, event: dict[str, Any]) -> None:
        """The engine listener: count runs and steps, time them (not a trial's)."""
        if event.get("trial"):
            return
        if event.get("type") == "step":
            status = str(event.get("status"))
            self._child(self.steps_finished, status).inc()
            if event.get("seconds") is not None:
                self.step_seconds.observe(float(event["seconds"]))
            return
        status = str(event.get("status"))
        run_id = str(event.get("run_id"))
        if status == "running":
            self.runs_started.inc()
            self._run_started[run_id] = time.monotonic()
            return
        self._child(self.runs_finished, status).inc()
        started = self._run_started.pop(run_id, None)
        if started is not None:
            self.run_seconds.observe(time.monotonic() - started)

    async def render(self) -> bytes:
        """The text exposition, with the database gauges read now."""
        hub = self._hub()
        counts = await system.metric_counts(hub) if hub is not None else {}
        for status in ("queued", "waiting"):
            self.queue_depth.labels(status).set(counts.get(status, 0))
        self.runs_active.set(counts.get("runs_running", 0))
        return generate_latest(self.registry)


_METRICS: weakref.WeakKeyDictionary[Hub, Metrics] = weakref.WeakKeyDictionary()


def metrics_of(hub: Hub) -> Metrics:
    """The hub's :class:`Metrics` (made, and its listener added, on first use)."""
    found = _METRICS.get(hub)
    if found is None:
        found = _METRICS[hub] = Metrics(hub)
    return found


@get(
    "/metrics",
    name="metrics",
    operation_id="metrics",
    exclude_from_auth=True,
    tags=["health"],
    media_type=CONTENT_TYPE,
    summary="Prometheus metrics",
)
async def metrics_endpoint(hub: NamedDependency[Hub]) -> Response[bytes]:
    """Runs, steps, durations, queue depth, cache and webhook counters (Prometheus text)."""
    body = await metrics_of(hub).render()
    return Response(body, media_type=CONTENT_TYPE)
