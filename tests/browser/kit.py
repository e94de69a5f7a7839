"""Helpers of the browser tests: a real ``hub serve``, people with roles, signing in, and the
watches every page gets (content security policy, script errors, responses).

Nothing here mocks the hub: the server is the ``hub`` command on a free loopback port with
its own data folder; people are added through the API with the first owner's token; pages are
driven by what a person reads (labels, roles, visible text).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.services import free_port

if TYPE_CHECKING:
    from playwright.sync_api import ConsoleMessage, Page, Response
try:  # without Playwright the modules still import: the browser fixture says what is missing
    from playwright.sync_api import expect as expect
except ImportError:  # pragma: no cover
    expect = None  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parents[2]
HUB = str(Path(sys.executable).parent / "hub")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
AXE = ROOT / "tests" / "vendor" / "axe-core" / "axe.min.js"
WORKSPACE = "default"
PASSWORD_FILE = "initial-owner.txt"
DEADLINE = 30.0  # seconds: every wait on a condition (two cores shared with a browser)
# Roles as the API spells them; the one the tests give each person they add.
ROLES = ("viewer", "editor", "owner")


def missing(what: str) -> None:
    """Skip, or under ``CI=true`` fail, naming what is missing and how to get it."""
    message = f"{what}: the browser tests need it (`make tools` installs Chromium as root)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


# -- the hub ----------------------------------------------------------------------------------


@dataclasses.dataclass
class HubServer:
    """A running ``hub serve`` (SQLite in its own data folder) and its first owner."""

    process: subprocess.Popen[bytes]
    base: str
    data_dir: Path
    log: Path
    env: dict[str, str]
    owner_email: str = ""
    owner_password: str = ""
    token: str = ""  # the first owner's API token (workspace ``default``)

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` on this hub."""
        return self.base + path

    def api(self) -> httpx.Client:
        """A client of the API acting as the first owner (bearer token: no CSRF)."""
        return httpx.Client(
            base_url=self.base, headers={"authorization": f"Bearer {self.token}"}, timeout=30
        )

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the ``hub`` CLI on the server's data folder."""
        return subprocess.run(
            [HUB, *args], cwd=ROOT, env=self.env, capture_output=True, encoding="utf-8", timeout=60
        )

    def add_member(self, email: str, role: str, name: str = "") -> str:
        """Add a person with ``role`` to the workspace; return their one-time password."""
        assert role in ROLES, role
        with self.api() as api:
            answer = api.put(
                f"/api/w/{WORKSPACE}/members", json={"email": email, "role": role, "name": name}
            )
        assert answer.status_code == 200, answer.text
        password = answer.json()["password"]
        assert password, f"{email} had an account already: its password is unknown"
        return str(password)

    def save_flow(self, document: dict[str, Any], *, publish: bool = True) -> str:
        """Save (and publish) a flow through the API; return its id."""
        with self.api() as api:
            answer = api.post(
                f"/api/w/{WORKSPACE}/flows", json={"document": document, "publish": publish}
            )
        assert answer.status_code in (200, 201), answer.text
        return str(answer.json()["flow_id"])

    def start_run(self, flow_id: str, input: Any = None) -> str:
        """Start a run of a flow through the API; return its id."""
        with self.api() as api:
            answer = api.post(f"/api/w/{WORKSPACE}/runs", json={"flow_id": flow_id, "input": input})
        assert answer.status_code in (200, 201, 202), answer.text
        return str(answer.json()["run_id"])

    def webhook(self, flow_id: str, body: Any, **kwargs: Any) -> str:
        """POST ``body`` (JSON) to a flow's webhook, as a sender would; return the run's id."""
        answer = httpx.post(self.url(f"/hooks/{WORKSPACE}/{flow_id}"), json=body, **kwargs)
        assert answer.status_code == 202, answer.text
        return str(answer.json()["run_id"])

    def run(self, run_id: str) -> dict[str, Any]:
        """A run with its steps, read through the API."""
        with self.api() as api:
            answer = api.get(f"/api/w/{WORKSPACE}/runs/{run_id}")
        assert answer.status_code == 200, answer.text
        record: dict[str, Any] = answer.json()
        return record

    def wait_run(self, run_id: str, timeout: float = DEADLINE) -> dict[str, Any]:
        """The run once it has finished (polled through the API)."""
        deadline = time.monotonic() + timeout
        while True:
            record = self.run(run_id)
            if record["status"] not in {"queued", "pending", "running", "waiting", "retrying"}:
                return record
            assert time.monotonic() < deadline, f"run {run_id} still {record['status']}"
            time.sleep(0.1)


def hub_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a test hub: this process's less its ``HUB_*`` variables, then the
    data folder, ``HUB_ALLOW_HOSTS=127.0.0.1`` (flows may call the test's stand-ins) and
    ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(HUB_DATA_DIR=str(data_dir), HUB_ALLOW_HOSTS="127.0.0.1", **extra)
    return env


def read_owner(data_dir: Path) -> tuple[str, str]:
    """The first owner's e-mail address and password, from ``initial-owner.txt``."""
    fields = dict(
        line.split(": ", 1)
        for line in (data_dir / PASSWORD_FILE).read_text().splitlines()
        if ": " in line
    )
    return fields["email"], fields["password"]


def owner_token(base: str, email: str, password: str) -> str:
    """An API token of the first owner: sign in through the API, then create one."""
    with httpx.Client(base_url=base, timeout=30) as client:
        csrf = {"x-csrftoken": client.get("/api/auth/csrf").json()["token"]}
        login = client.post(
            "/api/auth/login", json={"email": email, "password": password}, headers=csrf
        )
        assert login.status_code == 200, login.text
        created = client.post(
            f"/api/w/{WORKSPACE}/tokens", json={"name": "browser-tests"}, headers=csrf
        )
        assert created.status_code in (200, 201), created.text
        return str(created.json()["token"])


@contextlib.contextmanager
def hub_serve(data_dir: Path, *, examples: bool = True, **extra: str) -> Iterator[HubServer]:
    """``hub serve`` on a free loopback port with its own data folder (the example flows
    applied unless ``examples`` is false); stopped with SIGTERM (then SIGKILL) at the end."""
    port = free_port()
    env = hub_env(data_dir, **extra)
    log = data_dir / "serve.log"
    args = [HUB, "serve", "--host", "127.0.0.1", "--port", str(port)]
    if examples:
        args += ["--examples", "examples"]
    with log.open("wb") as out:
        process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = HubServer(process, f"http://127.0.0.1:{port}", data_dir, log, env)
    try:
        deadline = time.monotonic() + DEADLINE
        while True:
            assert process.poll() is None, f"hub serve exited:\n{log.read_text()}"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(server.url("/readyz"), timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"hub serve did not answer:\n{log.read_text()}"
            time.sleep(0.05)
        server.owner_email, server.owner_password = read_owner(data_dir)
        server.token = owner_token(server.base, server.owner_email, server.owner_password)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- a loopback stand-in for the services flows call ------------------------------------------


class StandIn:
    """A tiny HTTP server in a thread on a free loopback port that counts calls per path.

    ``fail_first`` maps a path to how many of its first calls answer 500; every other call
    answers 200 with ``{"path": ..., "call": n}``. While ``hold`` is cleared, each call waits
    (at most ``DEADLINE``) before answering: a test sees a run that is still running, then
    sets it.
    """

    def __init__(self, fail_first: dict[str, int] | None = None) -> None:
        self.fail_first = dict(fail_first or {})
        self.hold = threading.Event()
        self.hold.set()
        self.calls: dict[str, int] = {}
        self.headers: dict[str, dict[str, str]] = {}  # the last call's headers, per path
        self.lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.answer()

            def do_POST(self) -> None:
                self.answer()

            def answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                stand_in.hold.wait(DEADLINE)
                path = self.path.split("?", 1)[0]
                with stand_in.lock:
                    count = stand_in.calls[path] = stand_in.calls.get(path, 0) + 1
                    stand_in.headers[path] = {k.lower(): v for k, v in self.headers.items()}
                status = 500 if count <= stand_in.fail_first.get(path, 0) else 200
                body = json.dumps({"path": path, "call": count}).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> StandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.hold.set()  # a call still held (a test that failed meanwhile) answers now
        self.server.shutdown()
        self.server.server_close()

    def count(self, path: str) -> int:
        """How many calls ``path`` has had."""
        with self.lock:
            return self.calls.get(path, 0)


# -- pages --------------------------------------------------------------------------------------

# Installed in every page before its own scripts (the driver injects it: the page's CSP does
# not apply to it). A violation of the policy is kept where the test reads it.
CSP_WATCH = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(e.violatedDirective + " blocked " + (e.blockedURI || "inline")
    + " at " + (e.sourceFile || location.href) + ":" + e.lineNumber);
});
"""
CSP_CONSOLE = re.compile(r"content security policy", re.IGNORECASE)


@dataclasses.dataclass
class Watch:
    """What went wrong on a page: CSP violations, script errors, and every response body
    (text) the browser received, for the tests that search them."""

    page: Page
    csp: list[str] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)
    bodies: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    record_bodies: bool = False

    def console(self, message: ConsoleMessage) -> None:
        if CSP_CONSOLE.search(message.text):
            self.csp.append(f"{message.type}: {message.text}")

    def response(self, response: Response) -> None:
        if not self.record_bodies:
            return
        kind = response.headers.get("content-type", "")
        if "text/event-stream" in kind:
            return  # a stream's events are read by the page; its body never ends
        with contextlib.suppress(Exception):  # redirects and aborted requests have no body
            self.bodies.append((response.url, response.text()))

    def violations(self) -> list[str]:
        """Every CSP violation so far (console messages and ``securitypolicyviolation``)."""
        found = list(self.csp)
        with contextlib.suppress(Exception):  # a closed page keeps what the console said
            found += self.page.evaluate("window.__cspViolations || []")
        return found

    def assert_clean(self) -> None:
        """No CSP violation and no uncaught script error on the page."""
        assert not self.violations(), f"content security policy violations: {self.violations()}"
        assert not self.errors, f"script errors on the page: {self.errors}"


def watch(page: Page, *, record_bodies: bool = False) -> Watch:
    """Install the watches on a new page (before it loads anything)."""
    found = Watch(page, record_bodies=record_bodies)
    page.add_init_script(CSP_WATCH)
    page.on("console", found.console)
    page.on("pageerror", lambda error: found.errors.append(str(error)))
    page.on("response", found.response)
    return found


def sign_in(page: Page, base: str, email: str, password: str, *, next_path: str = "") -> None:
    """Sign in through the form, by its labels, and wait for the page it leads to."""
    page.goto(base + "/login" + (f"?next={next_path}" if next_path else ""))
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login" not in url, timeout=DEADLINE * 1000)


def settle(page: Page) -> None:
    """Wait until the page has loaded and keeps no request open (``networkidle`` never
    comes while an event stream is open: only a run's page may keep one)."""
    page.wait_for_load_state("networkidle", timeout=DEADLINE * 1000)


def screenshot(page: Page, name: str, *, full_page: bool = False) -> Path:
    """Save a screenshot as a test artifact: ``tests/browser/artifacts/<name>.png``."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def no_horizontal_scroll(page: Page) -> bool:
    """Whether the page's body fits its viewport's width (no sideways scrolling)."""
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


AXE_RUN = """async (rules) => {
  const options = {resultTypes: ["violations"]};
  if (rules) options.runOnly = {type: "rule", values: rules};
  const result = await window.axe.run(document, options);
  return result.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ") + " :: " + n.failureSummary),
  }));
}"""


def axe_violations(page: Page, rules: list[str] | None = None) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it is now (only ``rules`` when given). axe is
    evaluated by the driver (``page.evaluate``), never added as a script tag: the page's
    CSP would block it, and the policy is never loosened for a test."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(f"() => {{ {AXE.read_text()}\n }}")
    found: list[dict[str, Any]] = page.evaluate(AXE_RUN, rules)
    return found


def assert_accessible(page: Page, name: str, rules: list[str] | None = None) -> None:
    """No serious or critical axe violation on the page (of ``rules`` when given); the
    others are printed."""
    found = axe_violations(page, rules)
    minor = [v for v in found if v["impact"] not in ("serious", "critical")]
    bad = [v for v in found if v["impact"] in ("serious", "critical")]
    for v in minor:
        print(f"axe ({name}): {v['impact']} {v['id']}: {v['help']} {v['nodes']}")
    assert not bad, f"axe ({name}): " + json.dumps(bad, indent=1)


def wait_for(
    condition: Callable[[], Any], what: str, timeout: float = DEADLINE, page: Page | None = None
) -> Any:
    """Wait until ``condition()`` is truthy (polled), and return it. Playwright delivers a
    page's events (console, requests, responses) only while a call into it waits: give the
    ``page`` when the condition depends on them, and the wait goes through it."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"still not {what} after {timeout}s"
        if page is not None:
            page.wait_for_timeout(100)
        else:
            time.sleep(0.1)


FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const s = getComputedStyle(el);
  const ring = (s.outlineStyle !== "none" && parseFloat(s.outlineWidth) > 0)
    || (s.boxShadow && s.boxShadow !== "none");
  return {
    tag: el.tagName.toLowerCase(),
    label: (el.getAttribute("aria-label") || el.labels?.[0]?.textContent || el.textContent
            || el.value || "").trim(),
    visible: el.matches(":focus-visible") && Boolean(ring),
  };
}"""


def focused(page: Page) -> dict[str, Any] | None:
    """The focused element: its tag, its label (or text), and whether its focus is visible
    (``:focus-visible`` with an outline or a ring)."""
    found: dict[str, Any] | None = page.evaluate(FOCUSED)
    return found


def tab_to(page: Page, tag: str, label: str, limit: int = 40) -> dict[str, Any]:
    """Press Tab until the element ``tag`` whose label is ``label`` has the focus (at most
    ``limit`` presses: it must be reachable by keyboard); return what :func:`focused` says."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        now = focused(page)
        if now and now["tag"] == tag and now["label"] == label:
            return now
    raise AssertionError(f"no <{tag}> {label!r} reached with {limit} presses of Tab")
