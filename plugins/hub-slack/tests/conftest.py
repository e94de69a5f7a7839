"""Fixtures of the Slack connector's tests: the local Slack stand-in and loopback settings.

Slack cannot be reached from the test machine: the tests talk to ``slack_standin`` (a local
ASGI app implementing the documented Web API methods the connector uses) on 127.0.0.1.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.testing import Settings, serve_asgi

sys.path.insert(0, str(Path(__file__).resolve().parent))

import slack_standin


@pytest.fixture(scope="session")
def _slack_server() -> Iterator[tuple[slack_standin.SlackStandIn, str]]:
    app = slack_standin.SlackStandIn()
    with serve_asgi(app) as url:
        yield app, url


@pytest.fixture
def slack_api(_slack_server: tuple[slack_standin.SlackStandIn, str]) -> slack_standin.SlackStandIn:
    """The stand-in, reset for this test; ``slack_api.base_url`` is its Web API base URL."""
    app, url = _slack_server
    app.reset()
    app.base_url = f"{url}/api"  # type: ignore[attr-defined]
    app.token = slack_standin.TOKEN  # type: ignore[attr-defined]
    return app


@pytest.fixture
def loopback() -> Settings:
    """Settings whose SSRF guard lets requests reach the stand-in on 127.0.0.1."""
    return Settings(allow_hosts=("127.0.0.1",))


@pytest.fixture
def connection(slack_api: Any) -> dict[str, Any]:
    """A connection to the stand-in with the token it accepts."""
    return {"bot_token": slack_api.token, "base_url": slack_api.base_url}
