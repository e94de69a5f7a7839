"""The web UI's benchmark: server-side render times, page weight and live latency.

With 1,000 flows and 100,000 runs (about 200,000 steps) written in bulk by
:mod:`bench.ui_data`, on SQLite (and with ``--postgres`` on PostgreSQL too), it prints:

- **render time**, p50 and p95 over ``--requests`` (50) requests of each page, one after
  another after 5 unmeasured ones: the flows list (first page), the runs list (first page;
  a page 90% down the list, through its keyset cursor; filtered by the busiest flow and
  ``failed``; filtered by ``cancelled`` alone), a run of 500 steps, and the home page.
  Server-side time is measured **in-process**: the app of :func:`hub.app.create_app` on a
  started hub, called through httpx's ASGI transport by a signed-in client; a figure is the
  wall time from sending the request to the last byte of the (gzip-compressed) body: the
  middleware (session, CSRF), the queries, the template and the compression, no network;
  the garbage collector tuned as ``hub serve`` tunes it (:func:`hub.runtime.settle_gc`).
  Beside it, this process's CPU time per request (PostgreSQL's own is not in it), which a
  busy machine moves less than the wall clock. Target: p95 <= 100 ms.
- **page weight**: each page's HTML plus every script, style sheet and icon it loads, as
  the hub sends them gzip-compressed to a browser with an empty cache (target: < 150 KB).
- **live latency** (SQLite unless ``--postgres``: on each backend): a real ``hub serve`` on a
  free loopback port over the same database, a run of a chain of ``flow.delay`` steps
  (``--live-steps``, 0.3 s each) opened in headless Chromium (Playwright, Debian's
  ``/usr/bin/chromium``) while it runs. For each step, from its ``finished_at`` (stamped in
  the transaction that completes it: the figure includes the commit) to the moment the
  page's DOM shows it done (a MutationObserver installed with ``page.evaluate`` records
  ``performance.timeOrigin + performance.now()``; browser and server share the clock).
  Target: <= 250 ms.

PostgreSQL: a throwaway database on ``--pg-url``'s server (trust auth), created for the run
and dropped afterwards. With ``--queue``, PostgreSQL's live latency is also measured in queue
mode: a throwaway Redis (``redis-server``, as the tests start it) and one ``hub worker``
that runs the steps, their events reaching the server through Redis.

    .venv/bin/python bench/ui.py                 # SQLite: about 2 minutes
    .venv/bin/python bench/ui.py --postgres      # SQLite, then PostgreSQL
    .venv/bin/python bench/ui.py --quick         # 20,000 runs, 20 requests a page
    .venv/bin/python bench/ui.py --no-live       # without the browser
    .venv/bin/python bench/ui.py --queue         # and PostgreSQL + Redis + a worker, live
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import gzip
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import ui_data
from bench.report import print_measures
from hub.api.runs import encode_cursor
from hub.app import create_app
from hub.db.database import Database
from hub.db.migrate import upgrade
from hub.runtime import Hub, settle_gc
from hub.security.accounts import hash_password
from hub.settings import Settings
from hub.testing.browser import CHROMIUM, CHROMIUM_ARGS
from hub.testing.hostile import hub_command, stop_process

BASE = "http://bench.local"
PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
LIVE_FLOW = "ui-bench-live"
RENDER_TARGET = "p95 <= 100"
WEIGHT_TARGET = "< 150"
LIVE_TARGET = "<= 250"


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of ``values``."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


def kb(size: int) -> str:
    return f"{size / 1024:,.1f}"


# -- the database -----------------------------------------------------------------------


@contextlib.contextmanager
def database(backend: str, pg_url: str) -> Iterator[tuple[Path, str]]:
    """A fresh data folder and database URL ("" for SQLite in the folder); dropped after."""
    folder = Path(tempfile.mkdtemp(prefix=f"hub-bench-ui-{backend}-"))
    name = ""
    try:
        if backend == "sqlite":
            yield folder, ""
            return
        import psycopg

        name = f"hub_bench_ui_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"'.encode())
        yield folder, pg_url.rsplit("/", 1)[0] + "/" + name
    finally:
        if name:
            import psycopg

            with psycopg.connect(pg_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())
        shutil.rmtree(folder, ignore_errors=True)


def live_flow(steps: int) -> dict[str, Any]:
    """The live run: a 1.5 s delay (the page opens meanwhile), then ``steps`` of 0.3 s."""
    chain = [{"id": "opening", "action": "flow.delay", "input": {"seconds": 1.5}}]
    chain += [
        {"id": f"s{n}", "action": "flow.delay", "input": {"seconds": 0.3}}
        for n in range(1, steps + 1)
    ]
    return {"id": LIVE_FLOW, "name": "UI bench: live run", "steps": chain}


# -- the pages, in-process ----------------------------------------------------------------


class Assets(HTMLParser):
    """What a page makes a browser fetch: scripts, style sheets, icons."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "script" and found.get("src"):
            self.urls.append(found["src"])
        if tag == "link" and found.get("href") and found.get("rel") in ("stylesheet", "icon"):
            self.urls.append(found["href"])


async def sign_in(client: httpx.AsyncClient) -> None:
    """Sign in through the form, as a browser does."""
    form = await client.get("/login")
    form.raise_for_status()
    answer = await client.post(
        "/login",
        data={
            "email": ui_data.EMAIL,
            "password": ui_data.PASSWORD,
            "_csrf_token": client.cookies.get("csrftoken", ""),
        },
    )
    if answer.status_code != 303:
        raise SystemExit(f"signing in failed: {answer.status_code} {answer.text[:300]}")


async def timed(
    client: httpx.AsyncClient, path: str, n: int, warm: int = 5
) -> tuple[list[float], float]:
    """The wall time of ``n`` requests of ``path`` (after ``warm`` unmeasured ones), and
    this process's CPU time per request (the app's work; PostgreSQL's is not in it)."""
    took = []
    cpu = 0.0
    for i in range(warm + n):
        started, cpu_started = time.perf_counter(), time.process_time()
        answer = await client.get(path)
        elapsed = time.perf_counter() - started
        if answer.status_code != 200:
            raise SystemExit(f"{path}: {answer.status_code} {answer.text[:500]}")
        if i >= warm:
            took.append(elapsed)
            cpu += time.process_time() - cpu_started
    return took, cpu / n


async def weight(
    client: httpx.AsyncClient, transport: httpx.AsyncBaseTransport, path: str
) -> tuple[int, int, int]:
    """(HTML bytes gzipped, assets' bytes gzipped, how many assets) on a first load: the
    assets are fetched by a client with no cookie and no cache."""
    page = await client.get(path, headers={"accept-encoding": "gzip"})
    html = page.num_bytes_downloaded
    parser = Assets()
    parser.feed(page.text)
    total = 0
    for url in dict.fromkeys(parser.urls):
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as fresh:
            asset = await fresh.get(url, headers={"accept-encoding": "gzip"})
        if asset.status_code != 200:
            raise SystemExit(f"{path}: its asset {url} answered {asset.status_code}")
        sent = asset.num_bytes_downloaded
        if asset.headers.get("content-encoding") != "gzip":
            sent = len(gzip.compress(asset.content, 6))  # what a compressing server would send
        total += sent
    return html, total, len(set(parser.urls))


@dataclasses.dataclass
class PageFigures:
    name: str
    path: str
    times: list[float]
    cpu: float = 0.0  # this process's CPU seconds per request
    html: int = 0
    assets: int = 0
    asset_count: int = 0

    def __str__(self) -> str:
        times = (
            f"p50 {ms(statistics.median(self.times))} ms, p95 {ms(percentile(self.times, 95))} ms, "
            f"CPU {ms(self.cpu)} ms a request, "
            if self.times
            else ""
        )
        return (
            f"{self.name}: {times}{kb(self.html)} KB HTML + {kb(self.assets)} KB "
            f"in {self.asset_count} assets (gzip)"
        )


async def measure_pages(
    settings: Settings, filled: ui_data.Filled, requests: int, live_steps: int
) -> list[PageFigures]:
    """Render times and weights of the pages, in-process (see the module's docstring)."""
    hub = Hub(settings, entry_points=False)
    await hub.start()
    app: Any = create_app(hub, manage_hub=False, bootstrap=False)  # hooks take no argument
    for hook in app.on_startup:
        await hook()
    settle_gc(settings)  # as hub serve does once started (frozen start-up objects)
    try:
        await hub.save_flow(live_flow(live_steps), publish=True)  # for the live part
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            await sign_in(client)
            ws = "/w/default"
            deep = encode_cursor(*filled.deep_cursor)
            pages = [
                ("flows list, first page", f"{ws}/flows"),
                ("runs list, first page", f"{ws}/runs"),
                ("runs list, 90% deep (keyset)", f"{ws}/runs?{urlencode({'cursor': deep})}"),
                (
                    "runs list, flow + failed",
                    f"{ws}/runs?{urlencode({'flow': filled.busiest_flow, 'status': 'failed'})}",
                ),
                ("runs list, cancelled", f"{ws}/runs?status=cancelled"),
                (f"run of {filled.big_run_steps} steps", f"{ws}/runs/{filled.big_run}"),
                ("home", f"{ws}/"),
            ]
            figures = []
            for name, path in pages:
                times, cpu = await timed(client, path, requests)
                page = PageFigures(name, path, times, cpu)
                page.html, page.assets, page.asset_count = await weight(client, transport, path)
                figures.append(page)
                print(f"  {page}", flush=True)
            # A running run's page also loads htmx's SSE extension: its weight only.
            running = await hub.start_run(LIVE_FLOW, {})
            page = PageFigures("run page while it runs", f"{ws}/runs/{running}", [])
            page.html, page.assets, page.asset_count = await weight(client, transport, page.path)
            figures.append(page)
            print(f"  {page}", flush=True)
            await hub.cancel_run(running)
            return figures
    finally:
        for hook in app.on_shutdown:
            await hook()
        await hub.stop()


# -- the live run, in a browser -------------------------------------------------------------

OBSERVER = """(steps) => {
  window.__seen = {};
  const look = () => {
    const now = performance.timeOrigin + performance.now();
    for (const id of steps) {
      if (window.__seen[id] === undefined
          && document.querySelector('#step-' + id + ' h3 .status-done')) {
        window.__seen[id] = now;
      }
    }
  };
  look();
  const already = Object.keys(window.__seen);
  new MutationObserver(look).observe(document.body, {subtree: true, childList: true,
    attributes: true, characterData: true});
  return already;
}"""


def epoch_us(value: str) -> int:
    """An ISO time of the API in epoch microseconds."""
    moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return int(moment.timestamp() * 1_000_000)


@dataclasses.dataclass
class Served:
    """A ``hub serve`` process on a free loopback port, and the bench person's API token."""

    base: str
    token: str


@contextlib.contextmanager
def hub_serve(folder: Path, settings: dict[str, str]) -> Iterator[Served]:
    """``hub serve`` over ``folder`` with ``settings`` (this process's ``HUB_*`` dropped),
    once it answers ``/healthz``; stopped (SIGTERM, then SIGKILL) when the block ends."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update({"HUB_DATA_DIR": str(folder), **settings})
    made = subprocess.run(
        [hub_command(), "tokens", "create", "--email", ui_data.EMAIL, "--name", "ui bench"],
        env=env,
        check=True,
        capture_output=True,
        encoding="utf-8",
        timeout=60,
    )
    token = next(word for word in made.stdout.split() if word.startswith("hub_"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with (folder / "serve.log").open("wb") as out:
        process = subprocess.Popen(
            [hub_command(), "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    served = Served(f"http://127.0.0.1:{port}", token)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise SystemExit(f"hub serve exited:\n{(folder / 'serve.log').read_text()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{served.base}/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit("hub serve did not answer /healthz in 60 s")
            time.sleep(0.05)
        yield served
    finally:
        stop_process(process)


@contextlib.contextmanager
def queue_worker(folder: Path, settings: dict[str, str]) -> Iterator[None]:
    """A ``hub worker`` process with ``settings`` (its output in the data folder)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update({"HUB_DATA_DIR": str(folder), **settings})
    with (folder / "worker.log").open("wb") as out:
        worker = subprocess.Popen(
            [hub_command(), "worker"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield
    finally:
        stop_process(worker)


def measure_live(
    folder: Path, database_url: str, runs: int, steps: int, redis_url: str = ""
) -> tuple[list[float], int]:
    """Latencies (seconds) from a step's finished_at to the DOM showing it done; and how
    many steps were already done when the page was ready (not counted). With
    ``redis_url``: queue mode, the steps run by one ``hub worker`` process, their events
    reaching the server through Redis."""
    from playwright.sync_api import sync_playwright

    extra = {"HUB_DATABASE_URL": database_url} if database_url else {}
    if redis_url:
        extra |= {"HUB_REDIS_URL": redis_url, "HUB_QUEUE_NAME": f"q{uuid.uuid4().hex[:8]}"}
    latencies: list[float] = []
    missed = 0
    worker = queue_worker(folder, extra) if redis_url else contextlib.nullcontext()
    with hub_serve(folder, extra) as served, worker:
        api = httpx.Client(
            base_url=served.base, headers={"authorization": f"Bearer {served.token}"}
        )
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            context = browser.new_context(base_url=served.base)
            page = context.new_page()
            page.goto("/login")
            page.get_by_label("E-mail address").fill(ui_data.EMAIL)
            page.get_by_label("Password").fill(ui_data.PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url("**/w/default/**")
            ids = [f"s{n}" for n in range(1, steps + 1)]
            for _ in range(runs):
                started = api.post("/api/w/default/runs", json={"flow_id": LIVE_FLOW, "input": {}})
                started.raise_for_status()
                run_id = started.json()["run_id"]
                page.goto(f"/w/default/runs/{run_id}")
                page.wait_for_selector("[sse-connect]", state="attached")
                already = set(page.evaluate(OBSERVER, ids))
                page.wait_for_function(
                    "(n) => Object.keys(window.__seen).length >= n",
                    arg=len(ids),
                    timeout=60_000,
                )
                seen: dict[str, float] = page.evaluate("window.__seen")
                record = api.get(f"/api/w/default/runs/{run_id}").json()
                finished = {
                    s["step_id"]: epoch_us(s["finished_at"])
                    for s in record["steps"]
                    if s["status"] == "done"
                }
                for step in ids:
                    if step in already:
                        missed += 1
                        continue
                    latencies.append(seen[step] / 1000 - finished[step] / 1_000_000)
            browser.close()
    return latencies, missed


# -- the whole --------------------------------------------------------------------------------


def live_rows(name: str, latencies: list[float]) -> list[tuple[str, str, str]]:
    """The table's rows of live latencies."""
    if not latencies:
        return []
    name = f"{name}, a step's end -> the page shows it"
    return [
        (f"{name}, p50 (ms)", ms(statistics.median(latencies)), ""),
        (f"{name}, p95 (ms)", ms(percentile(latencies, 95)), LIVE_TARGET),
        (f"{name}, max (ms)", ms(max(latencies)), ""),
    ]


def live_in_queue_mode(
    folder: Path, url: str, args: argparse.Namespace
) -> list[tuple[str, str, str]]:
    """The live latency in queue mode: a throwaway Redis and one ``hub worker``."""
    from tests.services import RedisServer

    redis = RedisServer()
    redis.start()
    try:
        latencies, missed = measure_live(folder, url, args.live_runs, args.live_steps, redis.url)
    finally:
        redis.stop()
    print(f"  live in queue mode: {len(latencies)} steps measured ({missed} missed)", flush=True)
    return live_rows("postgres + Redis, queue mode: live", latencies)


def run_backend(backend: str, args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """Fill, measure and report one backend; the rows of its table."""
    with database(backend, args.pg_url) as (folder, url):
        settings = Settings(data_dir=folder, database_url=url)
        print(f"\n== {backend}: {url or folder / 'hub.db'}", flush=True)
        logging.getLogger("alembic").setLevel(logging.WARNING)  # no line per migration
        db = Database(settings.resolved_database_url)
        upgrade(db.sync_engine)
        filled = ui_data.fill(
            db.sync_engine,
            n_flows=args.flows,
            n_runs=args.runs,
            password_hash=hash_password(ui_data.PASSWORD),
        )
        db.sync_engine.dispose()
        print(
            f"  filled {filled.flows:,} flows, {filled.runs:,} runs, {filled.steps:,} steps "
            f"in {filled.seconds:.1f} s (busiest flow {filled.busiest_flow})",
            flush=True,
        )
        figures = asyncio.run(measure_pages(settings, filled, args.requests, args.live_steps))
        rows: list[tuple[str, str, str]] = []
        for page in (p for p in figures if p.times):
            p50, p95 = statistics.median(page.times), percentile(page.times, 95)
            rows.append((f"{backend}: {page.name}, p50 (ms)", ms(p50), ""))
            rows.append((f"{backend}: {page.name}, p95 (ms)", ms(p95), RENDER_TARGET))
            rows.append((f"{backend}: {page.name}, app CPU a request (ms)", ms(page.cpu), ""))
        for page in figures:
            name = f"{backend}: weight, {page.name} (KB; HTML {kb(page.html)})"
            rows.append((name, kb(page.html + page.assets), WEIGHT_TARGET))
        if not args.no_live:
            latencies, missed = measure_live(folder, url, args.live_runs, args.live_steps)
            print(
                f"  live: {len(latencies)} steps measured ({missed} done before the page was "
                f"ready), min {ms(min(latencies or [0]))} ms",
                flush=True,
            )
            rows += live_rows(f"{backend}: live", latencies)
            if backend == "postgres" and args.queue:
                rows += live_in_queue_mode(folder, url, args)
        return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL too")
    parser.add_argument("--postgres-only", action="store_true", help="PostgreSQL alone")
    parser.add_argument("--pg-url", default=PG_URL, help="a database of the server to use")
    parser.add_argument("--quick", action="store_true", help="20,000 runs, 20 requests")
    parser.add_argument("--flows", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--no-live", action="store_true", help="no browser")
    parser.add_argument(
        "--queue", action="store_true", help="PostgreSQL's live part in queue mode too"
    )
    parser.add_argument("--live-runs", type=int, default=3)
    parser.add_argument("--live-steps", type=int, default=10)
    args = parser.parse_args()
    if args.quick:
        args.runs, args.requests, args.live_runs = 20_000, 20, 1
    backends = ["sqlite"] if not args.postgres_only else []
    if args.postgres or args.postgres_only or args.queue:
        backends.append("postgres")
    rows: list[tuple[str, str, str]] = []
    for backend in backends:
        rows += run_backend(backend, args)
    print_measures(rows)


if __name__ == "__main__":
    main()
