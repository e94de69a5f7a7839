"""The hub's own addresses in what it tells people and services: links, webhook URLs, OAuth2
redirect URIs.

``HUB_PUBLIC_URL`` is the address people and services use (behind a proxy, a load balancer,
a tunnel); when it is set, every link the hub builds starts with it. When it is not, a link
made while answering a request starts with that request's own base URL, and one made
outside a request (the first owner's note) with the address the hub listens on.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from hub.settings import Settings

WEBHOOK_PATH = "/hooks/{workspace}/{flow}"
OAUTH2_CALLBACK_PATH = "/api/oauth2/callback"


def public_base_url(settings: Settings) -> str:
    """``HUB_PUBLIC_URL`` without its trailing slash, or "" when it is not set."""
    return settings.public_url.strip().rstrip("/")


def local_base_url(settings: Settings) -> str:
    """The address the hub listens on (``HUB_HOST``, ``HUB_PORT``; ``hub serve`` sets both
    to the address it bound); a wildcard host is named by its loopback address."""
    wildcard = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}
    host = wildcard.get(settings.host, settings.host)
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{settings.port}"


def base_url(settings: Settings, request_base: str | None = None) -> str:
    """The base of the hub's links: ``HUB_PUBLIC_URL``, else the request's own base URL,
    else the address the hub listens on. Never ends with a slash."""
    return public_base_url(settings) or (request_base or "").rstrip("/") or local_base_url(settings)


def link(settings: Settings, path: str, request_base: str | None = None) -> str:
    """An absolute link to ``path`` (which starts with ``/``) on this hub."""
    return base_url(settings, request_base) + path


def webhook_url(
    settings: Settings, workspace: str, flow: str, request_base: str | None = None
) -> str:
    """The URL that starts runs of ``flow`` when its trigger is a webhook."""
    path = WEBHOOK_PATH.format(workspace=quote(workspace, safe=""), flow=quote(flow, safe=""))
    return link(settings, path, request_base)


def oauth2_redirect_uri(settings: Settings, request_base: str | None = None) -> str:
    """The OAuth2 redirect URI (callback) providers send the authorization code to."""
    return link(settings, OAUTH2_CALLBACK_PATH, request_base)


def as_public(settings: Settings, url: str) -> str:
    """``url`` (a request's own URL) as it reads on ``HUB_PUBLIC_URL``: the public base, then
    the path and query; ``url`` itself when ``HUB_PUBLIC_URL`` is not set."""
    public = public_base_url(settings)
    if not public:
        return url
    parts = urlsplit(url)
    return public + parts.path + (f"?{parts.query}" if parts.query else "")
