"""Links the hub hands out start with ``HUB_PUBLIC_URL`` when it is set, else with the
request's own base URL (or, outside a request, the address the hub listens on)."""

from __future__ import annotations

import shutil
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.services import links
from hub.settings import Settings
from tests.api_kit import Api, add_oauthy_connection, started_api
from tests.test_cli import EXAMPLES, ok
from tests.test_cli import hub as cli

CONNS = "/api/w/default/connections"
PUBLIC = "https://hub.example.com/integrations/"


@pytest.fixture(params=["", PUBLIC], ids=["no-public-url", "public-url"])
async def api(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[Api]:
    async for value in started_api(settings.replace(public_url=request.param)):
        provider = {
            "authorize_url": "https://provider.example/authorize",  # never called
            "token_url": "https://provider.example/token",
        }
        await add_oauthy_connection(value, provider, "id-1", "s-1")
        yield value


async def test_oauth2_redirect_uri_is_on_the_public_url_when_set(api: Api) -> None:
    start = await api.call("GET", f"{CONNS}/crm/oauth2/authorize", api.editor)
    assert start.status_code == 302, start.text
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(start.headers["location"]).query)
    if api.hub.settings.public_url:
        expected = "https://hub.example.com/integrations/api/oauth2/callback"
    else:  # the request's own base URL, as the test client sent it
        expected = "http://testserver.local/api/oauth2/callback"
    assert query["redirect_uri"] == [expected]


def test_base_url_prefers_the_public_url() -> None:
    public = Settings(public_url=PUBLIC, host="0.0.0.0", port=9001)
    assert links.base_url(public, "http://10.0.0.5:8000/") == "https://hub.example.com/integrations"
    plain = Settings(host="0.0.0.0", port=9001)
    assert links.base_url(plain, "http://10.0.0.5:8000/") == "http://10.0.0.5:8000"
    assert links.base_url(plain) == "http://127.0.0.1:9001"
    assert links.base_url(Settings(host="::", port=9001)) == "http://[::1]:9001"


def test_webhook_url_and_oauth2_redirect_uri() -> None:
    public = Settings(public_url=PUBLIC)
    assert (
        links.webhook_url(public, "default", "new lead")
        == "https://hub.example.com/integrations/hooks/default/new%20lead"
    )
    assert (
        links.oauth2_redirect_uri(Settings(), "http://testserver.local/")
        == "http://testserver.local/api/oauth2/callback"
    )


def test_a_webhook_url_as_the_service_called_it() -> None:
    """Webhook handlers that sign the URL (HubSpot, Twilio) verify the public one."""
    internal = "http://10.0.0.5:8000/hooks/default/leads?x=1"
    assert links.as_public(Settings(), internal) == internal
    assert (
        links.as_public(Settings(public_url=PUBLIC), internal)
        == "https://hub.example.com/integrations/hooks/default/leads?x=1"
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "http://127.0.0.1:8000/hooks/default/new-order"),
        ({"HUB_PORT": "9001"}, "http://127.0.0.1:9001/hooks/default/new-order"),
        (
            {"HUB_PUBLIC_URL": PUBLIC},
            "https://hub.example.com/integrations/hooks/default/new-order",
        ),
    ],
    ids=["default", "port", "public-url"],
)
def test_flows_apply_names_the_webhook_url(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    shutil.copy(EXAMPLES / "new-order.yaml", folder)
    shutil.copy(EXAMPLES / "send-reminder.yaml", folder)  # a manual trigger: no URL
    result = ok(cli(tmp_path / "data", "flows", "apply", str(folder), **env))
    webhook_lines = [line.strip() for line in result.stdout.splitlines() if "webhook:" in line]
    assert webhook_lines == [f"webhook: {expected}"]
