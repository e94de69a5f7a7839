"""The servers a plugin's tests talk to: is one listening, a free port, a stand-in served.

A test against a real server (a database, a broker) calls :func:`require_service` first: a
developer without the server sees a skip, CI (``CI=true``) sees a failure. A test against a
SaaS API serves a local stand-in of it with :func:`serve_asgi`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, NoReturn

import pytest


def in_ci() -> bool:
    """True when the environment variable ``CI`` is ``true`` (as on the CI machine)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def service_missing(reason: str) -> NoReturn:
    """Skip the calling test because a service it needs is missing; in CI, fail it instead.

    A test against a real server (a database, a broker) calls this when the server does not
    answer: a developer without the server sees a skip, CI (``CI=true``) sees a failure.
    """
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing service is a failure)", pytrace=False)
    pytest.skip(reason)


def reachable(host: str, port: int) -> bool:
    """True when something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(host: str, port: int, what: str) -> None:
    """Skip the calling test (or fail it, when CI=true) unless ``what`` listens at host:port."""
    if not reachable(host, port):
        service_missing(f"{what} is not reachable at {host}:{port}")


def free_port(host: str = "127.0.0.1") -> int:
    """A loopback port nothing listens on (bound then released)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve_asgi(app: Any, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve an ASGI app with uvicorn on ``host`` (a free port) in a thread; yield its base URL.

    For local stand-ins of SaaS APIs: ``with serve_asgi(app) as url: ...`` gives
    ``http://127.0.0.1:PORT``; the server stops when the block ends. Raises RuntimeError when
    the server does not start within 10 seconds.
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the stand-in server did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
