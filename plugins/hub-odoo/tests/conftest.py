"""Fixtures of the Odoo connector's tests: the local Odoo stand-in and loopback settings.

No Odoo server is reachable from the test machine: the tests talk to ``odoo_standin`` (a
local ASGI app implementing the documented JSON-2 and JSON-RPC endpoints) on 127.0.0.1.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.testing import Settings, serve_asgi

sys.path.insert(0, str(Path(__file__).resolve().parent))

import odoo_standin
from odoo_standin import connection_for


@pytest.fixture(scope="session")
def _odoo_server() -> Iterator[tuple[odoo_standin.OdooStandIn, str]]:
    app = odoo_standin.OdooStandIn()
    with serve_asgi(app) as url:
        yield app, url


@pytest.fixture
def odoo(_odoo_server: tuple[odoo_standin.OdooStandIn, str]) -> odoo_standin.OdooStandIn:
    """The stand-in, reset for this test; ``odoo.url`` is the server's URL."""
    app, url = _odoo_server
    app.reset()
    app.url = url  # type: ignore[attr-defined]
    return app


@pytest.fixture
def loopback() -> Settings:
    """Settings whose SSRF guard lets requests reach the stand-in on 127.0.0.1."""
    return Settings(allow_hosts=("127.0.0.1",))


@pytest.fixture(params=["json2", "jsonrpc"])
def connection(request: pytest.FixtureRequest, odoo: Any) -> dict[str, Any]:
    """A working connection, once per protocol."""
    return connection_for(request.param, odoo.url)


@pytest.fixture
def json2(odoo: Any) -> dict[str, Any]:
    """A JSON-2 connection."""
    return connection_for("json2", odoo.url)


@pytest.fixture
def jsonrpc(odoo: Any) -> dict[str, Any]:
    """A JSON-RPC connection."""
    return connection_for("jsonrpc", odoo.url)
