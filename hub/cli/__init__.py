"""The ``hub`` command line: ``hub serve | worker | run | flows | runs | plugins | ...``.

:mod:`hub.cli.commands` holds the group and the commands that run the hub;
:mod:`hub.cli.admin` the administrative ones (users, tokens, keys, the database). Importing
this package registers both; :func:`main` is the console script.
"""

from __future__ import annotations

import sys

import click

from hub.cli import admin as admin  # registers the administrative commands
from hub.cli.commands import cli, with_hub
from hub.connectors import RegistrationError
from hub.settings import Settings, SettingsError

__all__ = ["cli", "main", "with_hub"]


def main() -> None:
    """Entry point: add the plugins' commands (``hub_cli``), then run the CLI."""
    from hub.plugins import make_plugin_manager

    try:
        pm = make_plugin_manager(Settings.from_env())
    except (SettingsError, RegistrationError) as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    pm.hook.hub_cli(cli=cli)
    cli()
