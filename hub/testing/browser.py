"""Debian's Chromium for browser tests and benchmarks, launched so that it reaches nothing
but the hub: headless, no sandbox (tests run as root in CI), and none of the background
traffic (updates, sync, QUIC probes) that a machine without outside network would see fail.

Pass these to Playwright (``playwright.chromium.launch(executable_path=str(CHROMIUM),
headless=True, args=CHROMIUM_ARGS)``); never ``playwright install`` (it downloads a
browser). ``make test`` installs the ``chromium`` package when it is absent.
"""

from __future__ import annotations

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
