"""Webhook ingest benchmark: one ``hub serve`` process, load from a second process on loopback.

The script starts ``hub serve`` (uvicorn, uvloop and httptools; one process, embedded mode:
SQLite and the in-process executor) on a fresh data folder with one flow, ``bench-hook``: a
webhook trigger and two ``data.set`` steps, the second reading the first's output. A second
Python process (this script with ``--drive``: a small HTTP/1.1 keep-alive client on asyncio
and uvloop, so that the client is not what limits) sends the requests, and prints:

- **saturation**: ``--requests`` webhooks (default 20,000) on ``--concurrency`` kept-alive
  connections (default 64), each sending its next request as soon as the last is answered:
  the most the server accepts per second (202s / wall time) and the latency it costs;
- **paced**: ``--rate`` webhooks per second (default 1,500) for ``--seconds`` (default 8),
  at most ``--concurrency`` in flight; latency counted from when each request was *due*, so
  a server falling behind shows as latency rather than as a slower client (no coordinated
  omission): the figure to compare with "1,500/s with p99 <= 25 ms";
- **runs fully executed/s**: from the database, once every run has finished: the succeeded
  runs of the saturation phase divided by the time from the first run's creation to the
  last run's end (both recorded by the server).

    .venv/bin/python bench/webhooks.py                 # about 40 s
    .venv/bin/python bench/webhooks.py --requests 5000 --seconds 3     # a quick look
    .venv/bin/python bench/webhooks.py --signed        # with an HMAC signature on each request
    .venv/bin/python bench/webhooks.py --accept-only   # diagnostic: the HTTP path, no execution

The load generator is pinned to no core; on a 2-core machine the server and the client each
get about one. Every figure is wall-clock except "server CPU", the server process's user +
system CPU time divided by the requests (from /proc): the figure that moves least when other
programs share the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import print_measures  # noqa: E402

HUB = str(Path(sys.executable).parent / "hub")
PATH = "/hooks/default/bench-hook"
SECRET = "bench-signing-secret"
FLOW = """\
id: bench-hook
name: Webhook -> two data.set steps (benchmark)
trigger:
  type: webhook
  config: {SIGNATURE}
steps:
  - id: first
    action: data.set
    input: {value: {n: "{{ trigger.body.n }}", who: "{{ trigger.body.who }}"}}
  - id: second
    action: data.set
    input: {value: "{{ steps.first.output.who }} #{{ steps.first.output.n }}"}
output: "{{ steps.second.output }}"
"""


# -- the load generator (the second process) ------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (NaN for no values)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def request_bytes(i: int, signed: bool) -> bytes:
    """One webhook request (a small JSON order-like body), signed when asked."""
    body = json.dumps({"n": i, "who": "bench", "items": [{"sku": "A-1", "qty": 2}]}).encode()
    extra = ""
    if signed:
        digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        extra = f"X-Signature: sha256={digest}\r\n"
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"{extra}Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class Connection:
    """One kept-alive HTTP/1.1 connection: send a request, read its whole response."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def exchange(self, data: bytes) -> int:
        """Send ``data``; return the response's status code once its body is read."""
        self.writer.write(data)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await self.reader.readexactly(length)
        return status


async def connect(port: int, n: int) -> list[Connection]:
    """``n`` connections to the server."""
    conns = []
    for _ in range(n):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conns.append(Connection(reader, writer))
    return conns


async def saturate(port: int, total: int, concurrency: int, signed: bool) -> dict[str, Any]:
    """Closed loop: each connection sends its next request as soon as it has an answer."""
    conns = await connect(port, concurrency)
    payloads = [request_bytes(i, signed) for i in range(total)]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    counter = iter(range(total))

    async def worker(conn: Connection) -> None:
        for i in counter:
            sent = time.perf_counter()
            status = await conn.exchange(payloads[i])
            latencies.append(time.perf_counter() - sent)
            statuses[status] = statuses.get(status, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    wall = time.perf_counter() - started
    for conn in conns:
        conn.writer.close()
    return summary(latencies, statuses, wall, started_at=time.time() - wall)


async def paced(
    port: int, rate: float, seconds: float, concurrency: int, signed: bool, offset: int
) -> dict[str, Any]:
    """Open loop: a request is due every 1/rate s; latency counts from when it was due."""
    conns = await connect(port, concurrency)
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for conn in conns:
        idle.put_nowait(conn)
    total = int(rate * seconds)
    payloads = [request_bytes(offset + i, signed) for i in range(total)]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    tasks: set[asyncio.Task[None]] = set()

    async def one(i: int, due: float) -> None:
        conn = await idle.get()
        try:
            status = await conn.exchange(payloads[i])
        finally:
            idle.put_nowait(conn)
        latencies.append(time.perf_counter() - due)
        statuses[status] = statuses.get(status, 0) + 1

    started = time.perf_counter()
    for i in range(total):
        due = started + i / rate
        delay = due - time.perf_counter()
        if delay > 0.0005:
            await asyncio.sleep(delay)
        task = asyncio.get_running_loop().create_task(one(i, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    while tasks:
        await asyncio.gather(*list(tasks))
    wall = time.perf_counter() - started
    for conn in conns:
        conn.writer.close()
    result = summary(latencies, statuses, wall, started_at=time.time() - wall)
    result["offered_per_s"] = rate
    return result


def summary(
    latencies: list[float], statuses: dict[int, int], wall: float, started_at: float
) -> dict[str, Any]:
    """Rates and latency percentiles (ms) of one phase."""
    accepted = statuses.get(202, 0)
    return {
        "requests": len(latencies),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "wall_s": wall,
        "started_at": started_at,
        "accepted_per_s": accepted / wall if wall else 0.0,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p90_ms": percentile(latencies, 90) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": max(latencies, default=float("nan")) * 1000,
    }


def drive(args: argparse.Namespace) -> None:
    """The second process: run one phase and print its figures as JSON."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    if args.drive == "saturate":
        result = asyncio.run(saturate(args.port, args.requests, args.concurrency, args.signed))
    else:
        result = asyncio.run(
            paced(args.port, args.rate, args.seconds, args.concurrency, args.signed, 10**7)
        )
    print(json.dumps(result))


# -- the orchestrating process --------------------------------------------------------------


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --accept-only: the same app and flow, but the executor paused once started, so that the
# server only accepts (steps stay queued): what the HTTP path costs without the runs.
ACCEPT_ONLY = """
import sys, uvicorn
from hub.app import create_app
from hub.runtime import Hub
hub = Hub()
app = create_app(hub)
app.on_startup.append(lambda: hub.executor.pause())
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="info")
"""


def start_server(
    folder: Path, port: int, signed: bool, accept_only: bool = False
) -> subprocess.Popen[bytes]:
    """``hub serve`` on ``folder`` with the benchmark flow applied."""
    flows = folder / "flows"
    flows.mkdir()
    signature = (
        "{signature: {scheme: hmac, secret_ref: bench-secret, header: X-Signature, "
        "prefix: 'sha256='}}"
        if signed
        else "{}"
    )
    (flows / "bench-hook.yaml").write_text(FLOW.replace("{SIGNATURE}", signature))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env["HUB_DATA_DIR"] = str(folder / "data")
    if signed:
        subprocess.run(
            [HUB, "connections", "set", "bench-secret", "--connector", "core",
             "-v", f"secret={SECRET}"],
            cwd=ROOT, env=env, check=True, capture_output=True,
        )  # fmt: skip
    log = (folder / "serve.log").open("wb")
    argv = [HUB, "serve", "--port", str(port), "--examples", str(flows)]
    if accept_only:
        subprocess.run(
            [HUB, "flows", "apply", str(flows)], cwd=ROOT, env=env, check=True, capture_output=True
        )
        argv = [sys.executable, "-c", ACCEPT_ONLY, str(port)]
    process = subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise SystemExit(f"hub serve exited:\n{(folder / 'serve.log').read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return process
        except OSError:
            pass
        if time.monotonic() > deadline:
            process.terminate()
            raise SystemExit("hub serve did not answer within 30 s")
        time.sleep(0.1)


def run_phase(port: int, args: argparse.Namespace, phase: str) -> dict[str, Any]:
    """Run the load generator in a second process and read its JSON."""
    argv = [
        sys.executable,
        __file__,
        "--drive",
        phase,
        "--port",
        str(port),
        "--requests",
        str(args.requests),
        "--concurrency",
        str(args.concurrency),
        "--rate",
        str(args.rate),
        "--seconds",
        str(args.seconds),
    ]
    if args.signed:
        argv.append("--signed")
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=600)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def db_query(folder: Path, sql: str, *params: Any) -> Any:
    """One row from the server's SQLite file, opened read-only."""
    db = sqlite3.connect(f"file:{folder / 'data' / 'hub.db'}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute(sql, params).fetchone()
    finally:
        db.close()


def wait_all_finished(folder: Path, timeout: float = 300) -> None:
    """Wait until no run is still running."""
    deadline = time.monotonic() + timeout
    while db_query(folder, "SELECT count(*) FROM runs WHERE status = 'running'")[0]:
        if time.monotonic() > deadline:
            raise SystemExit("runs still running after the load")
        time.sleep(0.2)


def executed_rate(folder: Path, since_us: int) -> tuple[int, int, float]:
    """(succeeded, not succeeded, runs/s from the first creation to the last finish)."""
    ok, first, last = db_query(
        folder,
        "SELECT count(*), min(created_at), max(finished_at) FROM runs "
        "WHERE status = 'succeeded' AND created_at >= ?",
        since_us,
    )
    bad = db_query(
        folder,
        "SELECT count(*) FROM runs WHERE status != 'succeeded' AND created_at >= ?",
        since_us,
    )[0]
    span = (last - first) / 1e6 if ok else float("nan")
    return ok, bad, ok / span if ok else 0.0


def accept_only(server: subprocess.Popen[bytes], port: int, args: argparse.Namespace) -> None:
    """Both phases against a server that accepts but runs nothing (a diagnostic)."""
    try:
        run_phase(port, argparse.Namespace(**{**vars(args), "requests": 2000}), "saturate")
        results = []
        for phase in ("saturate", "paced"):
            cpu = cpu_seconds(server.pid)
            result = run_phase(port, args, phase)
            result["cpu_ms"] = (cpu_seconds(server.pid) - cpu) / result["requests"] * 1000
            results.append((phase, result))
    finally:
        server.terminate()
        server.wait(30)
    print("\naccept only (executor paused: runs recorded, no step executed)")
    for phase, r in results:
        print(
            f"{phase:9} {json.dumps(r['statuses'])}: accepted/s {r['accepted_per_s']:,.0f}, "
            f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
            f"server CPU {r['cpu_ms']:.3f} ms/request"
        )


def main(args: argparse.Namespace) -> None:
    """Start the server, warm it, run both phases, print the figures beside the targets."""
    folder = Path(tempfile.mkdtemp(prefix="hub-bench-webhooks-"))
    port = free_port()
    print(
        f"webhook benchmark: data in {folder}, python {sys.version.split()[0]}, "
        f"{os.cpu_count()} cores; signed={args.signed}"
    )
    server = start_server(folder, port, args.signed, args.accept_only)
    if args.accept_only:
        accept_only(server, port, args)
        return
    try:
        warm = argparse.Namespace(**{**vars(args), "requests": 2000})
        run_phase(port, warm, "saturate")
        wait_all_finished(folder)
        since = time.time_ns() // 1000
        cpu = cpu_seconds(server.pid)
        sat = run_phase(port, args, "saturate")
        wait_all_finished(folder)
        sat_cpu = (cpu_seconds(server.pid) - cpu) / sat["requests"] * 1000
        ok, bad, runs_per_s = executed_rate(folder, since)
        cpu = cpu_seconds(server.pid)
        paced_result = run_phase(port, args, "paced")
        wait_all_finished(folder)
        paced_cpu = (cpu_seconds(server.pid) - cpu) / paced_result["requests"] * 1000
    finally:
        server.terminate()
        server.wait(30)
    rows = [
        ("saturation: requests (concurrency)", f"{sat['requests']:,} ({args.concurrency})", ""),
        ("saturation: statuses", json.dumps(sat["statuses"]), ""),
        ("saturation: accepted webhooks/s", f"{sat['accepted_per_s']:,.0f}", ">= 1,500"),
        ("saturation: latency p50 / p99 (ms)", f"{sat['p50_ms']:.1f} / {sat['p99_ms']:.1f}", ""),
        ("runs fully executed/s (webhook -> 2 steps)", f"{runs_per_s:,.0f}", ">= 800"),
        ("  runs succeeded / other", f"{ok:,} / {bad:,}", ""),
        ("  server CPU per webhook and its run (ms)", f"{sat_cpu:.2f}", ""),
        (
            f"paced at {args.rate:,.0f}/s: accepted webhooks/s",
            f"{paced_result['accepted_per_s']:,.0f}",
            f">= {args.rate:,.0f}",
        ),
        ("paced: statuses", json.dumps(paced_result["statuses"]), ""),
        ("paced: latency p50 (ms)", f"{paced_result['p50_ms']:.1f}", ""),
        ("paced: latency p99 (ms)", f"{paced_result['p99_ms']:.1f}", "<= 25"),
        ("paced: latency max (ms)", f"{paced_result['max_ms']:.1f}", ""),
        ("  server CPU per webhook and its run (ms)", f"{paced_cpu:.2f}", ""),
    ]
    print_measures(rows, figure_width=16)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rate", type=float, default=1500.0)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--signed", action="store_true")
    parser.add_argument(
        "--accept-only",
        action="store_true",
        help="diagnostic: pause the executor, measure the HTTP path alone (not hub serve)",
    )
    parser.add_argument("--drive", choices=["saturate", "paced"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    if parsed.drive:
        drive(parsed)
    else:
        main(parsed)
