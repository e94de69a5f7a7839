"""The listening socket of ``hub serve`` and the address its banner names.

``hub serve`` binds its socket itself, before the app starts, so that what it prints and what
the first owner's note says is the address actually bound (``--port 0`` picks a free port,
and the banner names it), never the default.
"""

from __future__ import annotations

import socket

import click

WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})


def http_address(host: str, port: int) -> str:
    """``http://host:port``, with an IPv6 host in brackets."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def bind_listener(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (``port`` 0: a free one), not yet listening.

    :class:`click.ClickException` when the address cannot be bound (in use, not local).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise click.ClickException(
            f"cannot listen on {http_address(host, port)}: {exc.strerror or exc}"
        ) from exc
    return sock


def bound_address(sock: socket.socket) -> tuple[str, int]:
    """The host and port ``sock`` is bound to."""
    name = sock.getsockname()
    return str(name[0]), int(name[1])


def serve_banner(host: str, port: int, public_url: str, data_dir: str) -> str:
    """The line ``hub serve`` prints: the bound address, and ``HUB_PUBLIC_URL`` when set."""
    line = f"hub serving on {http_address(host, port)}"
    if host in WILDCARD_HOSTS:
        line += " (every interface)"
    if public_url:
        line += f", public address {public_url} (HUB_PUBLIC_URL)"
    return f"{line} (data in {data_dir})"
