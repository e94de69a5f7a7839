"""The flow builder's benchmark (issue 16), in Chromium driven by Playwright.

A real ``hub serve`` on a free loopback port (SQLite in a throwaway folder) holds flows of
50 and 300 steps (``--sizes``): chains of ``data.set`` steps, each reading the one before it
(``{{ steps.<previous>.output }}``), a few on branches with explicit ``needs``. For each size
it opens the builder ``--repeats`` times in headless Debian Chromium and prints:

- **interactive (ms)**: from the navigation's start to the moment the page is interactive:
  the builder's scripts have wired it (``builder.js`` stamps ``data-builder-ready``) and no
  long task is still running (the end of the last long task seen by a
  ``PerformanceObserver`` installed before the page's own scripts, if later). Targets: 50
  steps < 500 ms, 300 steps < 2,000 ms. Beside it, the HTML's size and the server's time to
  the first byte.
- **longest task over 50 keystrokes (ms)**: a step's input field in expression mode is
  focused and 50 characters are typed, 30 ms apart (a fast typist); the longest task
  (``longtask`` entries: only tasks over 50 ms are reported by Chromium, so "< 50" means
  none) and the longest event handling (Event Timing, ``event`` entries over 16 ms) while
  typing and until the last answer settles. Target: < 50 ms.
- **validation after typing stops (ms)**: from the last keystroke to the page showing the
  server's answer (the issues region swapped in after the edit's request), and the request
  alone (htmx's ``beforeRequest`` to ``afterSettle``), which excludes the form's debounce.
  Target: < 150 ms.

For comparison (docs/benchmarks.md): n8n's editor took over a minute to open large workflows
before n8n PR 7901 and 28 s after it, and 44 s -> 19 s for 1,000 nodes in PR 11629.

    .venv/bin/python bench/builder.py               # 50 and 300 steps, 5 openings each
    .venv/bin/python bench/builder.py --quick       # 2 openings each
    .venv/bin/python bench/builder.py --sizes 50,300,1000
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import ui_data
from bench.report import print_measures
from bench.ui import hub_serve, ms, percentile
from hub.db.database import Database
from hub.db.migrate import upgrade
from hub.security.accounts import hash_password
from hub.testing.browser import CHROMIUM, CHROMIUM_ARGS

INTERACTIVE_TARGET = {50: "< 500", 300: "< 2000"}
TYPING_TARGET = "< 50"
VALIDATION_TARGET = "< 150"
TYPED = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMN"  # 50 characters

# Installed before any script of the page: long tasks and slow events, from the start.
OBSERVERS = """
window.__long = []; window.__events = [];
try {
  new PerformanceObserver((list) => { for (const e of list.getEntries())
    window.__long.push({start: e.startTime, duration: e.duration}); })
    .observe({type: "longtask", buffered: true});
  new PerformanceObserver((list) => { for (const e of list.getEntries())
    window.__events.push({start: e.startTime, duration: e.duration, name: e.name}); })
    .observe({type: "event", durationThreshold: 16, buffered: true});
} catch (e) { window.__observerError = String(e); }
document.addEventListener("keydown", () => { window.__lastKey = performance.now(); }, true);
document.addEventListener("htmx:beforeRequest", (e) => {
  window.__requestStart = performance.now(); }, true);
document.addEventListener("htmx:afterSettle", (e) => {
  if (e.detail && e.detail.target && e.detail.target.id === "builder-issues") {
    window.__issuesShown = performance.now();
  }
  window.__settled = performance.now();
}, true);
document.addEventListener("htmx:oobAfterSwap", (e) => {
  if (e.detail && e.detail.target && e.detail.target.id === "builder-issues") {
    window.__issuesShown = performance.now();
  }
}, true);
"""

INTERACTIVE = """() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const ready = Number(document.documentElement.dataset.builderReady || 0);
  const lastLong = Math.max(0, ...window.__long.map((t) => t.start + t.duration));
  return {interactive: Math.max(ready, lastLong, nav.domContentLoadedEventEnd),
          ready: ready, dcl: nav.domContentLoadedEventEnd, ttfb: nav.responseStart,
          html: nav.transferSize, longest: Math.max(0, ...window.__long.map((t) => t.duration))};
}"""


def chain_flow(flow_id: str, steps: int) -> dict[str, Any]:
    """A flow of ``steps`` ``data.set`` steps: a chain, every tenth on a branch of the one
    two before it (explicit needs), each reading its predecessor's output in an
    expression."""
    items: list[dict[str, Any]] = []
    for n in range(1, steps + 1):
        step: dict[str, Any] = {"id": f"s{n}", "action": "data.set"}
        before = n - 2 if n % 10 == 0 and n > 2 else n - 1
        if n == 1:
            step["input"] = {"value": "{{ trigger.name }}"}
        else:
            reads = f"steps.s{before}.output | string | truncate(20)"
            step["input"] = {"value": f"{{{{ {reads} }}}} {n}"}
        if before == n - 2:
            step["needs"] = [f"s{before}"]
        items.append(step)
    return {
        "id": flow_id,
        "name": f"Builder bench, {steps} steps",
        "trigger": {"type": "manual"},
        "steps": items,
    }


def sign_in(page: Any) -> None:
    """Sign the page's context in as the bench person."""
    page.goto("/login")
    page.get_by_label("E-mail address").fill(ui_data.EMAIL)
    page.get_by_label("Password").fill(ui_data.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/w/default/**")


def open_builder(context: Any, path: str) -> tuple[Any, dict[str, float]]:
    """Open the builder at ``path`` in a new page; its figures once it is interactive."""
    page = context.new_page()
    page.goto(path, wait_until="load")
    page.wait_for_function("() => document.documentElement.dataset.builderReady")
    page.wait_for_timeout(300)  # a long task still running would end within this
    return page, page.evaluate(INTERACTIVE)


def measure_typing(page: Any) -> dict[str, float]:
    """Type 50 characters into the selected step's first expression field; the longest
    task and event while typing, and how long the validation took to show."""
    field = page.locator("#builder-panel [data-expression-field]:visible").first
    field.wait_for(state="visible")
    field.click()
    page.keyboard.press("End")
    page.evaluate("() => { window.__long = []; window.__events = []; window.__issuesShown = 0; }")
    page.keyboard.type(TYPED, delay=30)
    page.wait_for_function(
        "() => window.__issuesShown > window.__lastKey", timeout=30_000, polling=10
    )
    page.wait_for_timeout(200)
    return page.evaluate(
        r"""() => ({
      longest_task: Math.max(0, ...window.__long.map((t) => t.duration)),
      longest_event: Math.max(0, ...window.__events.map((t) => t.duration)),
      after_typing: window.__issuesShown - window.__lastKey,
      request: window.__settled - window.__requestStart,
      server: (() => {
        const posts = performance.getEntriesByType("resource").filter(
          (e) => e.initiatorType === "xmlhttprequest" && /\/steps\//.test(e.name));
        const last = posts[posts.length - 1];
        return last ? last.responseStart - last.requestStart : 0;
      })(),
    })"""
    )


def longest_task(duration_ms: float) -> str:
    """A long task's figure: Chromium reports only tasks over 50 ms ("none" when no task
    was that long)."""
    return ms(duration_ms / 1000) if duration_ms else "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="50,300", help="flow sizes, comma-separated")
    parser.add_argument("--repeats", type=int, default=5, help="openings of each flow")
    parser.add_argument("--quick", action="store_true", help="2 openings of each flow")
    args = parser.parse_args()
    repeats = 2 if args.quick else args.repeats
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    from playwright.sync_api import sync_playwright

    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="hub-builder-bench-") as tmp:
        folder = Path(tmp)
        logging.getLogger("alembic").setLevel(logging.WARNING)
        db = Database(f"sqlite:///{folder / 'hub.db'}")
        upgrade(db.sync_engine)
        ui_data.fill(
            db.sync_engine, n_flows=1, n_runs=1, password_hash=hash_password(ui_data.PASSWORD)
        )
        db.sync_engine.dispose()
        with hub_serve(folder, {}) as served:
            api = httpx.Client(
                base_url=served.base,
                headers={"authorization": f"Bearer {served.token}"},
                timeout=60,
            )
            for size in sizes:
                made = api.post(
                    "/api/w/default/flows",
                    json={"document": chain_flow(f"bench-{size}", size), "publish": True},
                )
                made.raise_for_status()
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
                )
                context = browser.new_context(
                    base_url=served.base, viewport={"width": 1280, "height": 800}
                )
                context.add_init_script(OBSERVERS)
                sign_in(context.new_page())
                for size in sizes:
                    rows += measure_size(context, size, repeats)
                browser.close()
    print("\nThe flow builder in Chromium (bench/builder.py)")
    print_measures(rows)


def measure_size(context: Any, size: int, repeats: int) -> list[tuple[str, str, str]]:
    """Open the builder of the ``size``-step flow ``repeats`` times; type in one; the rows."""
    base = f"/w/default/flows/bench-{size}/build"
    opened: list[dict[str, float]] = []
    for _ in range(repeats):
        page, figures = open_builder(context, base)
        opened.append(figures)
        page.close()
    middle = f"s{max(2, size // 2)}"
    page, _ = open_builder(context, f"{base}?step={middle}")
    typing = [measure_typing(page)]
    page.close()
    times = [f["interactive"] / 1000 for f in opened]
    name = f"{size} steps"
    print(
        f"  {name}: interactive {', '.join(ms(t) for t in times)} ms; "
        f"HTML {opened[0]['html'] / 1024:.0f} KB",
        flush=True,
    )
    return [
        (f"{name}: interactive, median (ms)", ms(statistics.median(times)), ""),
        (
            f"{name}: interactive, worst of {len(times)} (ms)",
            ms(max(times)),
            INTERACTIVE_TARGET.get(size, ""),
        ),
        (
            f"{name}: time to first byte, median (ms)",
            ms(statistics.median([f["ttfb"] / 1000 for f in opened])),
            "",
        ),
        (f"{name}: page HTML (KB, as sent)", f"{opened[0]['html'] / 1024:.0f}", ""),
        (
            f"{name}: longest task over 50 keystrokes (ms)",
            longest_task(max(t["longest_task"] for t in typing)),
            TYPING_TARGET,
        ),
        (
            f"{name}: longest keystroke event (ms)",
            ms(max(t["longest_event"] for t in typing) / 1000),
            "",
        ),
        (
            f"{name}: validation shown after typing stops (ms)",
            ms(percentile([t["after_typing"] / 1000 for t in typing], 50)),
            VALIDATION_TARGET,
        ),
        (
            f"{name}: the edit's request, sent to settled (ms)",
            ms(percentile([t["request"] / 1000 for t in typing], 50)),
            "",
        ),
        (
            f"{name}: the edit's request, the server's part (ms)",
            ms(percentile([t["server"] / 1000 for t in typing], 50)),
            "",
        ),
    ]


if __name__ == "__main__":
    main()
