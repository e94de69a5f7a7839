"""``hub serve`` as a real process: uvicorn on a free loopback port, SQLite in a temp folder.

The server is started once for the module (``--examples examples`` applies the example
flows); runs it starts are inspected with the ``hub`` CLI on the same data folder, and
the number of runs is read from the SQLite file, opened read-only.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
ORDER = json.loads((EXAMPLES / "inputs" / "order.json").read_text())
HUB = str(Path(sys.executable).parent / "hub")
HOOK = "/hooks/default/new-order"
CAP = 65536  # new-order's trigger.config.max_body_bytes
MB = 1024 * 1024


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base: str
    port: int
    data_dir: Path
    log: Path
    env: dict[str, str]

    def hub(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the ``hub`` CLI on the server's data folder."""
        return subprocess.run(
            [HUB, *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            encoding="utf-8",
            timeout=60,
        )

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def run(self, run_id: str, timeout: float = 30.0) -> dict[str, Any]:
        """The run record once it has finished (polled through ``hub runs show --json``)."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.hub("runs", "show", run_id, "--json")
            assert result.returncode == 0, result.stderr
            record: dict[str, Any] = json.loads(result.stdout)
            if record["status"] not in {"queued", "pending", "running", "waiting"}:
                return record
            assert time.monotonic() < deadline, f"run {run_id} still {record['status']}"
            time.sleep(0.2)

    def run_count(self) -> int:
        """How many runs the database holds (read-only: the server keeps the writing)."""
        db = sqlite3.connect(f"file:{self.data_dir / 'hub.db'}?mode=ro", uri=True, timeout=5)
        try:
            count: int = db.execute("SELECT count(*) FROM runs").fetchone()[0]
        finally:
            db.close()
        return count


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("serve")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env["HUB_DATA_DIR"] = str(data_dir)
    port = free_port()
    log = data_dir / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [HUB, "serve", "--port", str(port), "--examples", "examples"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    srv = Server(process, f"http://127.0.0.1:{port}", port, data_dir, log, env)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, f"hub serve exited:\n{log.read_text()}"
            try:
                if httpx.get(f"{srv.base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"hub serve did not answer:\n{log.read_text()}"
            time.sleep(0.05)
        yield srv
    finally:
        if process.poll() is None:
            process.terminate()
        try:
            code = process.wait(timeout=8)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError(f"hub serve did not stop on SIGTERM:\n{log.read_text()}") from None
    text = log.read_text()
    # uvicorn shuts down gracefully, then re-raises SIGTERM: -15 is a clean exit too.
    assert code in (0, -signal.SIGTERM), text
    assert "Application shutdown complete" in text
    assert "Traceback" not in text


def assert_error_shape(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]  # type: ignore[no-any-return]


# -- health ---------------------------------------------------------------------------------


def test_healthz_and_readyz_answer_200_with_json(server: Server) -> None:
    live = httpx.get(f"{server.base}/healthz")
    assert live.status_code == 200
    assert live.json() == {"status": "ok"}
    ready = httpx.get(f"{server.base}/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "database": "ok"}


# -- webhooks -------------------------------------------------------------------------------


def test_webhook_starts_a_run_that_totals_the_order(server: Server) -> None:
    response = httpx.post(
        f"{server.base}{HOOK}?source=shop&ref=42",
        json=ORDER,
        headers={"x-shop": "demo", "authorization": "Bearer do-not-store"},
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "running"
    run = server.run(body["run_id"])

    assert run["status"] == "succeeded", run
    assert run["flow_id"] == "new-order"
    assert run["trigger_type"] == "webhook"
    expected_lines = [round(line["quantity"] * line["unit_price"], 2) for line in ORDER["lines"]]
    expected_total = round(sum(expected_lines), 2)
    output = run["output"]
    assert output["total"] == pytest.approx(expected_total)
    assert [line["amount"] for line in output["lines"]] == pytest.approx(expected_lines)
    assert output["order_id"] == ORDER["order_id"]
    assert output["customer"] == "Ada Lovelace"
    assert output["review"] == f"Order {ORDER['order_id']} needs review: total {expected_total}"

    trigger = run["trigger"]
    assert trigger["method"] == "POST"
    assert trigger["path"] == HOOK
    assert trigger["query"] == {"source": "shop", "ref": "42"}
    assert trigger["headers"]["x-shop"] == "demo"
    assert trigger["headers"]["content-type"] == "application/json"
    assert "authorization" not in {k.lower() for k in trigger["headers"]}
    assert trigger["body"] == ORDER


def test_webhook_data_is_never_rendered_as_a_template(server: Server) -> None:
    bomb = "{% for i in range(999999999) %}{% for j in range(999999999) %}x{% endfor %}{% endfor %}"
    order = {
        "order_id": bomb,
        "customer": {"name": "{{ 7*7 }} ada lovelace"},
        "lines": [{"sku": "{{ config }}", "quantity": 1, "unit_price": 2.5}],
    }
    response = httpx.post(f"{server.base}{HOOK}", json=order)
    assert response.status_code == 202, response.text
    run = server.run(response.json()["run_id"])
    assert run["status"] == "succeeded", run
    output = run["output"]
    assert output["customer"] == "{{ 7*7 }} Ada Lovelace"
    assert "49" not in output["customer"]
    assert output["order_id"] == bomb
    assert output["lines"] == [{"sku": "{{ config }}", "quantity": 1, "amount": 2.5}]
    assert output["total"] == 2.5


def test_get_on_a_post_only_webhook_is_405_in_the_error_shape(server: Server) -> None:
    response = httpx.get(f"{server.base}{HOOK}")
    error = assert_error_shape(response, 405, "method_not_allowed")
    assert "POST" in error["message"]
    assert response.headers["allow"] == "POST"


def test_unknown_flow_is_404_in_the_error_shape(server: Server) -> None:
    response = httpx.post(f"{server.base}/hooks/default/no-such-flow", json={})
    error = assert_error_shape(response, 404, "not_found")
    assert "no-such-flow" in error["message"]


def test_a_flow_without_a_webhook_trigger_is_404(server: Server) -> None:
    response = httpx.post(f"{server.base}/hooks/default/lead-intake", json={})
    assert_error_shape(response, 404, "not_found")


def test_unknown_route_is_404_in_the_error_shape(server: Server) -> None:
    assert_error_shape(httpx.get(f"{server.base}/nope"), 404, "not_found")


def test_invalid_json_is_400_and_starts_no_run(server: Server) -> None:
    before = server.run_count()
    response = httpx.post(
        f"{server.base}{HOOK}",
        content=b'{"order_id": "A-1", "lines": [',
        headers={"content-type": "application/json"},
    )
    error = assert_error_shape(response, 400, "invalid_json")
    assert "JSON" in error["message"]
    assert server.run_count() == before


def read_response(sock: socket.socket) -> tuple[str, dict[str, str], bytes]:
    """Read one whole HTTP response (with Content-Length) from a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before the response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in header_lines)
    }
    while len(body) < int(headers.get("content-length", "0")):
        chunk = sock.recv(65536)
        assert chunk, "connection closed in the middle of the response body"
        body += chunk
    return status, headers, body


def test_a_declared_oversized_body_is_refused_at_once_without_reading_it(server: Server) -> None:
    before = server.run_count()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        # Announce 10 MB but send only the headers and 1 KB: the answer must not wait for more.
        sock.sendall(
            f"POST {HOOK} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {10 * MB}\r\n\r\n".encode()
            + b"[" * 1024
        )
        started = time.monotonic()
        status, headers, body = read_response(sock)
        assert time.monotonic() - started < 2
        assert status.split()[1] == "413", status
        error = json.loads(body)["error"]
        assert error["code"] == "payload_too_large"
        assert str(CAP) in error["message"]
        # The connection is closed rather than kept alive to swallow the rest of the body.
        assert headers.get("connection") == "close"
        assert sock.recv(1) == b""
    assert server.run_count() == before


def test_a_streamed_oversized_body_is_cut_off_with_bounded_memory(server: Server) -> None:
    before = server.run_count()
    rss_before = server.rss_kb()
    chunk = b"x" * 65536
    total_chunks = 3200  # 200 MB
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(total_chunks):
            sent += 1
            yield chunk

    response: httpx.Response | None = None
    try:
        response = httpx.post(
            f"{server.base}{HOOK}",
            content=body(),
            headers={"content-type": "application/json"},
            timeout=20,
        )
    except (httpx.WriteError, httpx.ReadError, httpx.RemoteProtocolError):
        response = None  # the server closed the connection first: acceptable (see below)
    rss_after = server.rss_kb()

    assert sent < 100, f"the client could push {sent} of {total_chunks} chunks"
    assert rss_after - rss_before < 50 * 1024, (rss_before, rss_after)
    if response is not None:
        assert_error_shape(response, 413, "payload_too_large")
    assert server.run_count() == before
