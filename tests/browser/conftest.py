"""Fixtures of the browser tests: one Chromium, a new context per test, a real hub serve.

- **The browser**: Debian's Chromium (``/usr/bin/chromium``) driven by Playwright from PyPI,
  headless, with the flags that keep it off the network (no QUIC, no background networking,
  no component updates, no sync). ``playwright install`` is never run: it downloads a browser.
  Without Chromium or Playwright the tests are skipped, except under ``CI=true``, where that
  is a failure (``make tools`` installs Chromium from Debian's packages).
- **Sync API, plain test functions.** The tests use Playwright's sync API in ordinary
  (non-async) functions. pytest-asyncio is in auto mode for the rest of the suite, and the
  sync API keeps its own event loop marked as running in this thread while Playwright is
  started: ``asyncio.run`` (and so every async test) would refuse to start then. So the
  browser is **package-scoped**: one Chromium for all the browser tests of a run, stopped
  as soon as the last of them ends, before any async test of the rest of the suite. Never
  write an ``async def`` test or fixture in this package.
- **A real hub** (``hub_server``): a ``hub serve`` subprocess on a free loopback port, shared
  by the modules whose tests do not interfere (a module may have its own: ``module_hub``),
  with its own data folder, the example flows, and ``HUB_ALLOW_HOSTS=127.0.0.1`` (a
  flow may call the test's loopback stand-in, :class:`tests.browser.kit.StandIn`). Its first
  owner's password is read from ``initial-owner.txt``; an API token of that owner adds the
  people and the flows a test needs.
- **Pages** (``open_page``): each in a new context (1280x800 unless asked otherwise), with
  the watches of :func:`tests.browser.kit.watch`: a content security policy violation (a
  console message or a ``securitypolicyviolation`` event) or an uncaught script error fails
  the test when it ends.
- Screenshots go to ``tests/browser/artifacts/`` (made at run time, not committed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.testing.browser import CHROMIUM, CHROMIUM_ARGS
from tests.browser.kit import HubServer, Watch, hub_serve, missing, sign_in, watch

VIEWPORT = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test of this package carries the ``browser`` marker (``-m "not browser"``)."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """One headless Chromium for every browser test of the run."""
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        missing("Playwright (the Python package, in the test extras) is not installed")
    if not CHROMIUM.exists():
        missing(f"{CHROMIUM} is missing")
    expect.set_options(timeout=30_000)  # a deadline, not a duration: two cores are shared
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()
    finally:
        playwright.stop()


@pytest.fixture(scope="package")
def hub_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    """A real ``hub serve`` (with the example flows) shared by the modules whose tests do
    not interfere (a hub takes seconds to start); a module that needs a hub of its own
    overrides this fixture with a module-scoped one (:func:`module_hub`)."""
    with hub_serve(tmp_path_factory.mktemp("hub")) as server:
        yield server


def module_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    """A hub of the module's own: ``hub_server = pytest.fixture(scope="module")(module_hub)``."""
    with hub_serve(tmp_path_factory.mktemp("hub")) as server:
        yield server


OpenPage = Callable[..., Any]


@pytest.fixture
def open_page(browser: Any, hub_server: HubServer) -> Iterator[OpenPage]:
    """``open_page(**context_options)`` -> ``(page, watch)``: a page in a new context on the
    module's hub (``base_url`` set, 1280x800 unless ``viewport`` is given, e.g.
    ``color_scheme="dark"``). At the end, every page must have had no CSP violation and no
    uncaught script error."""
    contexts: list[Any] = []
    watches: list[Watch] = []

    def opener(*, record_bodies: bool = False, **options: Any) -> tuple[Any, Watch]:
        options.setdefault("viewport", VIEWPORT)
        context = browser.new_context(base_url=hub_server.base, **options)
        context.set_default_timeout(30_000)
        contexts.append(context)
        page = context.new_page()
        found = watch(page, record_bodies=record_bodies)
        watches.append(found)
        return page, found

    yield opener
    try:
        for found in watches:
            found.assert_clean()
    finally:
        for context in contexts:
            context.close()


@pytest.fixture(scope="module")
def owner_state(browser: Any, hub_server: HubServer) -> dict[str, Any]:
    """The first owner signed in once through the form: the cookies (Playwright's storage
    state) that ``open_page(storage_state=owner_state)`` starts a signed-in context with."""
    return signed_in_state(browser, hub_server, hub_server.owner_email, hub_server.owner_password)


def signed_in_state(
    browser: Any, hub_server: HubServer, email: str, password: str
) -> dict[str, Any]:
    """Sign ``email`` in through the form in a context of its own; return its storage state."""
    context = browser.new_context(base_url=hub_server.base, viewport=VIEWPORT)
    try:
        page = context.new_page()
        sign_in(page, hub_server.base, email, password)
        state: dict[str, Any] = context.storage_state()
        return state
    finally:
        context.close()
