"""``hub serve`` on a new data folder: what it creates is its user's alone, and it names the
address it really listens on.

A real ``hub serve`` process on a free loopback port (``--port 0``), started under umask 022
(the usual one, which would leave files 0644), in a data folder that does not exist yet.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from hub.cli.listen import serve_banner
from hub.security.files import create_private_file, private_dir

START_DEADLINE = 60.0


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class Served:
    """A running ``hub serve``: its process, its data folder and what it printed."""

    def __init__(self, data_dir: Path, log: Path, public_url: str = "") -> None:
        self.data_dir = data_dir
        self.log = log
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        if public_url:
            env["HUB_PUBLIC_URL"] = public_url
        code = (
            "import os, sys; os.umask(0o022); from hub.cli import main; "
            "sys.argv = ['hub'] + sys.argv[1:]; main()"
        )
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", code, "--data-dir", str(data_dir), "serve", "--port", "0"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self) -> int:
        """The port from the banner, once /healthz answers there and the owner note exists."""
        deadline = time.monotonic() + START_DEADLINE
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"hub serve exited {self.proc.returncode}:\n{self.output()}")
            found = re.search(r"hub serving on http://127\.0\.0\.1:(\d+)", self.output())
            if found and (self.data_dir / "initial-owner.txt").exists():
                port = int(found.group(1))
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                        return port
                except httpx.HTTPError:
                    pass
            time.sleep(0.1)
        pytest.fail(f"no /healthz answer within {START_DEADLINE} s:\n{self.output()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


Serve = Callable[..., Served]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """Start ``hub serve`` processes (``serve(data_dir, public_url="")``); stop them after."""
    started: list[Served] = []

    def start(data_dir: Path, public_url: str = "") -> Served:
        served = Served(data_dir, tmp_path / f"serve-{len(started)}.log", public_url)
        started.append(served)
        return served

    yield start
    for served in started:
        served.stop()


def test_new_data_folder_and_its_files_are_private(serve: Serve, tmp_path: Path) -> None:
    data = tmp_path / "new" / "data"
    served = serve(data)
    port = served.wait_ready()
    # A write, so that the database's WAL files certainly exist while the hub runs.
    answer = httpx.post(
        f"http://127.0.0.1:{port}/api/auth/login",
        json={"email": "nobody@example.com", "password": "wrong-password"},
        timeout=30,
    )
    assert answer.status_code in (401, 403, 429)
    assert _mode(data) == 0o700
    expected = ["hub.db", "hub.db-wal", "hub.db-shm", "secret.key", "initial-owner.txt"]
    for name in expected:
        assert (data / name).exists(), f"{name} missing: {sorted(os.listdir(data))}"
    for path in data.iterdir():
        assert _mode(path) == 0o600, f"{path.name} is {oct(_mode(path))}"


def test_banner_and_owner_note_name_the_bound_port(serve: Serve, tmp_path: Path) -> None:
    data = tmp_path / "data"
    served = serve(data)
    port = served.wait_ready()
    assert port != 8000
    note = (data / "initial-owner.txt").read_text()
    assert f"POST http://127.0.0.1:{port}/api/auth/login" in note
    assert ":8000" not in served.output()


def test_banner_and_owner_note_name_the_public_url(serve: Serve, tmp_path: Path) -> None:
    data = tmp_path / "data"
    served = serve(data, public_url="https://hub.example.com/")
    port = served.wait_ready()
    assert "public address https://hub.example.com/ (HUB_PUBLIC_URL)" in served.output()
    assert f"http://127.0.0.1:{port}" in served.output()
    note = (data / "initial-owner.txt").read_text()
    assert "POST https://hub.example.com/api/auth/login" in note


def test_serve_banner_formats() -> None:
    assert serve_banner("::1", 9001, "", "/d") == "hub serving on http://[::1]:9001 (data in /d)"
    assert serve_banner("0.0.0.0", 80, "https://x.test", "/d") == (
        "hub serving on http://0.0.0.0:80 (every interface), public address https://x.test "
        "(HUB_PUBLIC_URL) (data in /d)"
    )


def test_private_files_ignore_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        folder = private_dir(tmp_path / "a" / "b")
        assert _mode(folder) == 0o700
        assert create_private_file(folder / "f")
        assert _mode(folder / "f") == 0o600
        assert not create_private_file(folder / "f")  # exists: left alone
    finally:
        os.umask(old)
