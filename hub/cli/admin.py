"""The administrative commands of ``hub``: plugins, connections, db, secrets, users, tokens.

Registered on the ``hub`` group of :mod:`hub.cli` when that module imports this one. Like
the other commands they act through the services (:func:`hub.cli.commands.workspace_of`),
as ``cli:<OS user>``, so that every change is audited.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click

from hub.cli.commands import _settings, cli, with_hub, workspace_of
from hub.connectors import RegistrationError
from hub.runtime import Hub
from hub.security.accounts import new_password, normalize_email
from hub.security.secrets import SecretKeyError
from hub.services import system


@cli.group()
def plugins() -> None:
    """Installed plugins and what they provide."""


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def plugins_list(ctx: click.Context, as_json: bool) -> None:
    """List plugins with their versions, connectors, actions and triggers."""
    try:
        hub = Hub(_settings(ctx))
    except RegistrationError as exc:
        raise click.ClickException(str(exc)) from exc
    registry = hub.registry
    listing: dict[str, list[dict[str, Any]]] = {}
    for name, connector in registry.connectors.items():
        listing.setdefault(registry.owners[name], []).append(
            {
                "connector": name,
                "version": connector.version,
                "actions": [f"{name}.{a.name}" for a in connector.actions],
                "triggers": [t.name for t in connector.triggers],
            }
        )
    for plugin_name, _plugin in hub.pm.list_name_plugin():
        listing.setdefault(plugin_name, [])
    if as_json:
        click.echo(json.dumps(listing, indent=2))
        return
    for plugin_name in sorted(listing):
        click.echo(plugin_name)
        for item in listing[plugin_name]:
            click.echo(f"  {item['connector']} {item['version']}")
            for action_name in item["actions"]:
                click.echo(f"    action  {action_name}")
            for trigger_name in item["triggers"]:
                click.echo(f"    trigger {trigger_name}")


def _typed(value: str, schema: Any) -> Any:
    """A ``key=value`` value converted to the type its connection schema field declares."""
    kind = schema.get("type") if isinstance(schema, dict) else None
    if kind in ("integer", "number", "boolean", "object", "array"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value  # left as text: the schema check names the field
    return value


@plugins.command("docs")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default="docs/connectors",
    show_default=True,
    help="The folder to write the pages into.",
)
@click.option("--connector", "only", multiple=True, help="Only this connector (repeatable).")
@click.pass_context
def plugins_docs(ctx: click.Context, out: str, only: tuple[str, ...]) -> None:
    """Write one markdown page per installed connector, from its description and notes."""
    from hub.plugin_kit import PluginKitError, write_connector_docs
    from hub.plugins import build_registry, make_plugin_manager

    try:
        # Only the plugins are needed: no database, no key file.
        registry = build_registry(make_plugin_manager(_settings(ctx)))
        written = write_connector_docs(registry, out, only or None)
    except (RegistrationError, PluginKitError) as exc:
        raise click.ClickException(str(exc)) from exc
    for path in written:
        click.echo(f"wrote {path}")


@cli.command("new-plugin")
@click.argument("name")
@click.option(
    "--dir",
    "parent",
    type=click.Path(file_okay=False),
    default=".",
    show_default=True,
    help="Create the plugin's folder (hub-NAME) in this folder.",
)
@click.option("--description", default="", help="One line saying what the connector does.")
@click.option("--force", is_flag=True, help="Write over an existing hub-NAME folder.")
def new_plugin_command(name: str, parent: str, description: str, force: bool) -> None:
    """Generate a pip-installable connector plugin hub-NAME from the hub's template.

    NAME is a lowercase identifier: the connector name and the entry point name; the
    package is hub_NAME and the distribution hub-NAME.
    """
    from hub.plugin_kit import PluginKitError, check_plugin_name, new_plugin

    try:
        check_plugin_name(name)
    except PluginKitError as exc:
        raise click.BadParameter(str(exc), param_hint="NAME") from exc
    try:
        target, files = new_plugin(name, parent, force=force, description=description)
    except PluginKitError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"created {target} ({len(files)} files)")
    click.echo(f'next: pip install -e "{target}[test]" && pytest {target}')


@cli.group()
def connections() -> None:
    """Stored connections (secrets encrypted at rest)."""


@connections.command("set")
@click.argument("name")
@click.option("--connector", required=True)
@click.option("--value", "-v", "values", multiple=True, help="key=value (repeatable).")
@click.pass_context
def connections_set(ctx: click.Context, name: str, connector: str, values: tuple[str, ...]) -> None:
    """Create or replace a connection; secret fields are encrypted and never shown."""
    parsed: dict[str, Any] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r}: expected key=value", param_hint="--value")
        parsed[key] = value

    async def go(hub: Hub) -> None:
        desc = hub.registry.connectors.get(connector)
        schema = (desc.connection_schema or {}) if desc else {}
        typed = {k: _typed(v, schema.get("properties", {}).get(k)) for k, v in parsed.items()}
        await workspace_of(hub).put_connection(name, connector, typed)

    with_hub(ctx, go)
    click.echo(f"connection {name} saved")


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply the migrations to the configured database."""
    hub = Hub(_settings(ctx))
    hub.migrate()
    click.echo(f"database at {hub.settings.resolved_database_url.split('@')[-1]} is up to date")


@cli.group()
def secrets() -> None:
    """Keys for secrets at rest."""


@secrets.command("new-key")
def secrets_new_key() -> None:
    """Print a new key for HUB_SECRET_KEY."""
    from cryptography.fernet import Fernet

    click.echo(Fernet.generate_key().decode())


@secrets.command("rotate")
@click.pass_context
def secrets_rotate(ctx: click.Context) -> None:
    """Re-encrypt every connection's secrets with the newest key.

    Put the new key first in HUB_SECRET_KEY ("NEW,OLD"), run this, then remove OLD.
    """

    async def go(hub: Hub) -> int:
        try:
            return await system.rotate_secrets(hub)
        except SecretKeyError as exc:
            raise click.ClickException(str(exc)) from exc

    count = with_hub(ctx, go, verify_key=False)  # rotation checks the keys itself
    click.echo(f"re-encrypted the secrets of {count} connection(s) with the newest key")


# -- users and tokens -------------------------------------------------------------------------


@cli.group()
def users() -> None:
    """People who log in (the UI, the API) and own API tokens."""


@users.command("create")
@click.argument("email")
@click.option("--name", default="", help="The person's name.")
@click.option("--workspace", default=None, help="Workspace to join (default: HUB_WORKSPACE).")
@click.option(
    "--role", type=click.Choice(["owner", "editor", "viewer"]), default="editor", show_default=True
)
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@click.pass_context
def users_create(
    ctx: click.Context,
    email: str,
    name: str,
    workspace: str | None,
    role: str,
    password_stdin: bool,
) -> None:
    """Create a user with a role in a workspace; without --password-stdin the password is
    generated and printed once."""
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else new_password()
    if len(password) < 12:
        raise click.BadParameter("at least 12 characters", param_hint="password")

    async def go(hub: Hub) -> str:
        ws = workspace_of(hub, workspace)
        await ws.put_member(email, role, name, password=password, new_account=True)
        return ws.workspace

    target = with_hub(ctx, go)
    click.echo(f"user {normalize_email(email)} created: {role} of workspace {target}")
    if not password_stdin:
        click.echo(f"password: {password}")
        click.echo("(shown once: store it now, or change it after logging in)", err=True)


@cli.group()
def tokens() -> None:
    """API tokens (shown once, stored hashed)."""


@tokens.command("create")
@click.option("--email", required=True, help="The user the token acts for.")
@click.option("--name", required=True, help="What the token is for.")
@click.option("--workspace", default=None, help="Its workspace (default: HUB_WORKSPACE).")
@click.option("--expires-in-days", type=click.IntRange(1, 3650), default=None, help="Expiry.")
@click.option("--scope", type=click.Choice(["read", "runs"]), default=None, help="Only this.")
@click.option("--flow", "flow_id", default=None, help="Reach only this flow and its runs.")
@click.pass_context
def tokens_create(
    ctx: click.Context,
    email: str,
    name: str,
    workspace: str | None,
    expires_in_days: int | None,
    scope: str | None,
    flow_id: str | None,
) -> None:
    """Create an API token for a member of a workspace and print it (shown once).

    Without limits it acts with the member's role until revoked; ``--scope read`` only
    reads, ``--scope runs`` only lists, reads and starts runs, ``--flow`` reaches one flow.
    """
    expires_at = None
    if expires_in_days is not None:
        expires_at = (int(time.time()) + expires_in_days * 86400) * 1_000_000

    async def go(hub: Hub) -> str:
        token, _row = await workspace_of(hub, workspace).create_token(
            name, email=email, expires_at=expires_at, scope=scope, flow_id=flow_id
        )
        return token

    token = with_hub(ctx, go)
    click.echo(token)
    click.echo("(shown once: use it as 'Authorization: Bearer <token>')", err=True)
