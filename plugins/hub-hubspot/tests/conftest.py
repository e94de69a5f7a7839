"""Fixtures of the HubSpot connector's tests: the local HubSpot stand-in and loopback settings.

HubSpot cannot be reached from the test machine: the tests talk to ``hubspot_standin`` (a
local ASGI app implementing the documented endpoints the connector uses) on 127.0.0.1.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.testing import Settings, serve_asgi

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hubspot_standin
from hub_hubspot import client


@pytest.fixture(scope="session")
def _hubspot_server() -> Iterator[tuple[hubspot_standin.HubSpotStandIn, str]]:
    app = hubspot_standin.HubSpotStandIn()
    with serve_asgi(app) as url:
        yield app, url


@pytest.fixture
def hubspot_api(
    _hubspot_server: tuple[hubspot_standin.HubSpotStandIn, str],
) -> hubspot_standin.HubSpotStandIn:
    """The stand-in, reset for this test; ``hubspot_api.base_url`` is its base URL."""
    app, url = _hubspot_server
    app.reset()
    client._FRESH_TOKENS.clear()  # refreshed OAuth2 tokens live in process memory
    app.base_url = url  # type: ignore[attr-defined]
    return app


@pytest.fixture
def loopback() -> Settings:
    """Settings whose SSRF guard lets requests reach the stand-in on 127.0.0.1."""
    return Settings(allow_hosts=("127.0.0.1",))


@pytest.fixture
def connection(hubspot_api: Any) -> dict[str, Any]:
    """A private-app connection to the stand-in with the token it accepts."""
    return {"access_token": hubspot_standin.TOKEN, "base_url": hubspot_api.base_url}


@pytest.fixture
def oauth_connection(hubspot_api: Any) -> dict[str, Any]:
    """An OAuth2 connection that holds only a refresh token and the app's credentials."""
    return {
        "auth": "oauth2",
        "refresh_token": hubspot_standin.REFRESH_TOKEN,
        "client_id": hubspot_standin.CLIENT_ID,
        "client_secret": hubspot_standin.CLIENT_SECRET,
        "base_url": hubspot_api.base_url,
    }
