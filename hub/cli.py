"""The ``hub`` command: serve, run, flows, runs, plugins, connections, db, secrets.

Every command acts through :class:`hub.runtime.Hub`, the same functions the API calls.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import msgspec
import yaml

from hub.connectors import RegistrationError
from hub.engine import RunNotFound
from hub.flows import FlowError, diff_documents, parse_document
from hub.runtime import Hub
from hub.settings import Settings, SettingsError

T = TypeVar("T")
FLOW_SUFFIXES = (".yaml", ".yml", ".json")
STATUS_MARK = {
    "done": "✓",
    "skipped": "-",
    "failed": "✗",
    "retrying": "↻",
    "waiting": "…",
    "running": "▶",
}


def _settings(ctx: click.Context) -> Settings:
    obj = ctx.ensure_object(dict)
    if "settings" not in obj:
        overrides = {}
        if obj.get("data_dir"):
            overrides["data_dir"] = obj["data_dir"]
        try:
            obj["settings"] = Settings.from_env(**overrides)
        except SettingsError as exc:
            raise click.ClickException(str(exc)) from exc
    settings: Settings = obj["settings"]
    return settings


def with_hub(ctx: click.Context, fn: Callable[[Hub], Awaitable[T]], *, execute: bool = False) -> T:
    """Start a hub on the configured settings, run ``fn(hub)``, stop the hub.

    Only commands that run flows (``execute``) start the executor and the sweeper.
    """

    async def main() -> T:
        try:
            hub = Hub(_settings(ctx))
        except RegistrationError as exc:
            raise click.ClickException(str(exc)) from exc
        await hub.start(background=execute, execute=execute)
        try:
            return await fn(hub)
        finally:
            await hub.stop()

    return asyncio.run(main())


def _fmt_time(us: int | None) -> str:
    if not us:
        return "-"
    return dt.datetime.fromtimestamp(us / 1e6, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _duration(start: int | None, end: int | None) -> str:
    if not start or not end:
        return "-"
    ms = (end - start) / 1000
    return f"{ms:.1f} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"


def _read_input(value: str | None) -> Any:
    if value is None:
        return None
    try:
        text = Path(value[1:]).read_text() if value.startswith("@") else value
    except OSError as exc:
        raise click.BadParameter(
            f"cannot read {value[1:]}: {exc.strerror}", param_hint="--input"
        ) from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--input") from exc


def _flow_files(paths: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            # Only the folder's own files: subfolders (such as examples/inputs/) hold data.
            files.extend(
                sorted(p for p in path.iterdir() if p.is_file() and p.suffix in FLOW_SUFFIXES)
            )
        elif path.exists():
            files.append(path)
        else:
            raise click.BadParameter(f"{raw}: no such file or folder")
    return files


def _load_file(path: Path) -> dict[str, Any]:
    return parse_document(path.read_text(), str(path))


@click.group()
@click.version_option(package_name="hub")
@click.option("--data-dir", envvar="HUB_DATA_DIR", help="The data folder (HUB_DATA_DIR).")
@click.pass_context
def cli(ctx: click.Context, data_dir: str | None) -> None:
    """The integration hub: connectors, flows, durable runs."""
    ctx.ensure_object(dict)["data_dir"] = data_dir


# -- run --------------------------------------------------------------------------------------


@cli.command()
@click.argument("flow_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--input", "input_", help="The trigger input: JSON, or @file.json.")
@click.option("--timeout", type=float, default=None, help="Give up waiting after N seconds.")
@click.option("--quiet", is_flag=True, help="Print only the output.")
@click.pass_context
def run(
    ctx: click.Context, flow_file: str, input_: str | None, timeout: float | None, quiet: bool
) -> None:
    """Run FLOW_FILE to completion, showing each step; print the output.

    The file is saved as a new version of its flow (when it changed) and that version runs;
    the published version is not changed. Exits 1 when the run fails.
    """
    data = _read_input(input_)
    try:
        document = _load_file(Path(flow_file))
    except FlowError as exc:
        raise click.ClickException(str(exc)) from exc

    async def go(hub: Hub) -> dict[str, Any]:
        try:
            saved = await hub.save_flow(document, source=Path(flow_file).read_text(), author="cli")
        except FlowError as exc:
            raise click.ClickException(str(exc)) from exc
        started = time.perf_counter()

        def show(event: dict[str, Any]) -> None:
            if quiet or event.get("type") != "step":
                return
            mark = STATUS_MARK.get(event["status"], "?")
            line = f"  {mark} {event['key']} {event['status']}"
            if event.get("attempt", 1) > 1:
                line += f" (attempt {event['attempt']})"
            if event.get("error"):
                line += f": {event['error']['message']}"
            click.echo(line, err=True)

        hub.engine.listeners.append(show)
        run_id = await hub.start_run(saved.flow_id, data, version=saved.version)
        if not quiet:
            click.echo(f"run {run_id} of {saved.flow_id} v{saved.version}", err=True)
        record = await hub.wait_for_run(run_id, timeout)
        record["elapsed"] = time.perf_counter() - started
        return record

    record = with_hub(ctx, go, execute=True)
    if not quiet:
        click.echo(f"{record['status']} in {record['elapsed'] * 1000:.1f} ms", err=True)
    if record["status"] == "succeeded":
        click.echo(json.dumps(record["output"], indent=2, default=str))
        return
    error = record.get("error") or {}
    click.echo(f"error: {error.get('message', record['status'])}", err=True)
    sys.exit(1)


# -- flows ------------------------------------------------------------------------------------


@cli.group()
def flows() -> None:
    """Validate, apply, export and list flows."""


@flows.command("validate")
@click.argument("paths", nargs=-1, required=True)
@click.pass_context
def flows_validate(ctx: click.Context, paths: tuple[str, ...]) -> None:
    """Validate flow files (or folders of them) against the installed plugins."""
    files = _flow_files(paths)

    async def go(hub: Hub) -> int:
        bad = 0
        for path in files:
            try:
                await hub.validate_flow(_load_file(path))
                click.echo(f"ok      {path}")
            except FlowError as exc:
                bad += 1
                click.echo(f"invalid {path}")
                for issue in exc.issues:
                    click.echo(f"  {issue}")
        return bad

    if with_hub(ctx, go):
        sys.exit(1)


@flows.command("apply")
@click.argument("folder", type=click.Path(exists=True))
@click.option("--dry-run", is_flag=True, help="Show what would change; save nothing.")
@click.pass_context
def flows_apply(ctx: click.Context, folder: str, dry_run: bool) -> None:
    """Save and publish every flow file in FOLDER (a deploy), showing what changed.

    Every file is validated first: if any is invalid, nothing is saved.
    """
    files = _flow_files((folder,))

    async def go(hub: Hub) -> int:
        documents: list[tuple[Path, dict[str, Any]]] = []
        problems = 0
        for path in files:
            try:
                document = _load_file(path)
                await hub.validate_flow(document)
                documents.append((path, document))
            except FlowError as exc:
                problems += 1
                click.echo(f"invalid {path}\n" + "\n".join(f"  {i}" for i in exc.issues))
        ids = [d["id"] for _p, d in documents]
        for dup in {i for i in ids if ids.count(i) > 1}:
            problems += 1
            click.echo(f"flow id {dup!r} is defined by more than one file")
        if problems:
            click.echo(f"{problems} problem(s): nothing applied")
            return 1
        for path, document in documents:
            if dry_run:
                click.echo(f"would apply {document['id']} from {path}")
                continue
            saved = await hub.save_flow(
                document, source=path.read_text(), author="hub flows apply", publish=True
            )
            if saved.created:
                click.echo(f"{saved.flow_id}: v{saved.version} published")
                changes = (
                    diff_documents(saved.previous or {}, document)
                    if saved.previous
                    else ["new flow"]
                )
                for change in changes:
                    click.echo(f"  {change}")
            elif saved.published:
                click.echo(f"{saved.flow_id}: v{saved.version} published (unchanged document)")
            else:
                click.echo(f"{saved.flow_id}: unchanged (v{saved.version})")
        return 0

    if with_hub(ctx, go):
        sys.exit(1)


@flows.command("export")
@click.argument("flow_id")
@click.option("--version", type=int, help="A version (default: the published one).")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml")
@click.pass_context
def flows_export(ctx: click.Context, flow_id: str, version: int | None, fmt: str) -> None:
    """Print a flow's document as YAML or JSON."""

    async def go(hub: Hub) -> dict[str, Any]:
        try:
            return await hub.flow_document(flow_id, version)
        except RunNotFound as exc:
            raise click.ClickException(str(exc)) from exc

    document = with_hub(ctx, go)
    if fmt == "json":
        click.echo(json.dumps(document, indent=2))
    else:
        click.echo(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), nl=False)


@flows.command("list")
@click.pass_context
def flows_list(ctx: click.Context) -> None:
    """List flows with their trigger and versions."""
    rows = with_hub(ctx, lambda hub: hub.list_flows())
    click.echo(f"{'FLOW':30} {'TRIGGER':10} {'PUBLISHED':>9} {'LATEST':>6}  NAME")
    for row in rows:
        click.echo(
            f"{row['id']:30} {row['trigger_type']:10} {row['published_version'] or '-':>9} "
            f"{row['latest_version']:>6}  {row['name']}"
        )


# -- runs -------------------------------------------------------------------------------------


@cli.group()
def runs() -> None:
    """List and inspect runs."""


@runs.command("list")
@click.option("--flow", "flow_id", help="Only runs of this flow.")
@click.option("--status", help="Only runs with this status.")
@click.option("--limit", type=int, default=20)
@click.pass_context
def runs_list(ctx: click.Context, flow_id: str | None, status: str | None, limit: int) -> None:
    """List runs, newest first."""
    rows = with_hub(ctx, lambda hub: hub.list_runs(flow_id=flow_id, status=status, limit=limit))
    click.echo(f"{'RUN':32} {'FLOW':24} {'STATUS':10} {'STARTED':19} {'TOOK':>10}")
    for row in rows:
        took = _duration(row["started_at"], row["finished_at"])
        click.echo(
            f"{row['id']:32} {row['flow_id']:24} {row['status']:10} "
            f"{_fmt_time(row['created_at']):19} {took:>10}"
        )


@runs.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print the whole record as JSON.")
@click.pass_context
def runs_show(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Show a run with every step attempt."""

    async def go(hub: Hub) -> dict[str, Any]:
        try:
            return await hub.get_run(run_id)
        except RunNotFound as exc:
            raise click.ClickException(str(exc)) from exc

    record = with_hub(ctx, go)
    if as_json:
        click.echo(msgspec.json.format(msgspec.json.encode(record)).decode())
        return
    click.echo(f"run      {record['id']}")
    click.echo(f"flow     {record['flow_id']} v{record['flow_version']}")
    click.echo(f"status   {record['status']}")
    click.echo(f"trigger  {record['trigger_type']}")
    click.echo(f"started  {_fmt_time(record['started_at'])}")
    click.echo(f"took     {_duration(record['started_at'], record['finished_at'])}")
    if record.get("error"):
        click.echo(f"error    {record['error'].get('message')}")
    click.echo("steps:")
    for step in record["steps"]:
        mark = STATUS_MARK.get(step["status"], " ")
        line = (
            f"  {mark} {step['key']:24} #{step['attempt']} {step['status']:9} "
            f"{_duration(step['started_at'], step['finished_at']):>10}"
        )
        if step.get("error"):
            line += f"  {step['error'].get('message')}"
        click.echo(line)
    click.echo("output:")
    click.echo(json.dumps(record["output"], indent=2, default=str))


# -- plugins, connections, db, secrets, serve -------------------------------------------------


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
        try:
            await hub.set_connection(name, connector, typed)
        except (LookupError, ValueError) as exc:
            raise click.ClickException(str(exc)) from exc

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
    from hub.api.bootstrap import rotate_secrets
    from hub.secrets import SecretKeyError

    async def go(hub: Hub) -> int:
        try:
            return await rotate_secrets(hub)
        except SecretKeyError as exc:
            raise click.ClickException(str(exc)) from exc

    count = with_hub(ctx, go)
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
    from hub import accounts
    from hub.db import store

    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else accounts.new_password()
    if len(password) < 12:
        raise click.BadParameter("at least 12 characters", param_hint="password")

    async def go(hub: Hub) -> str:
        target = workspace or hub.workspace
        password_hash = await asyncio.to_thread(accounts.hash_password, password)

        def write(conn: Any) -> None:
            store.ensure_workspace(conn, target)
            try:
                user = accounts.create_user(conn, email, name=name, password_hash=password_hash)
            except accounts.Conflict as exc:
                raise click.ClickException(str(exc)) from exc
            accounts.set_membership(conn, target, user["id"], role)
            accounts.record(conn, target, "cli", "member.add", user["email"], {"role": role})

        await hub.db.write(write)
        return target

    target = with_hub(ctx, go)
    click.echo(f"user {accounts.normalize_email(email)} created: {role} of workspace {target}")
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
@click.pass_context
def tokens_create(ctx: click.Context, email: str, name: str, workspace: str | None) -> None:
    """Create an API token for a member of a workspace and print it (shown once)."""
    from hub import accounts

    async def go(hub: Hub) -> str:
        target = workspace or hub.workspace

        def write(conn: Any) -> str:
            user = accounts.user_by_email(conn, email)
            if user is None:
                raise click.ClickException(f"no user with the email {email!r}")
            if accounts.role_of(conn, target, user["id"]) is None:
                raise click.ClickException(f"{email} is not a member of workspace {target!r}")
            token, _row = accounts.create_token(conn, target, user["id"], name)
            accounts.record(conn, target, "cli", "token.create", name, {"user": user["email"]})
            return token

        return await hub.db.write(write)

    token = with_hub(ctx, go)
    click.echo(token)
    click.echo("(shown once: use it as 'Authorization: Bearer <token>')", err=True)


@cli.command()
@click.option("--host", default=None, help="HUB_HOST (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="HUB_PORT (default 8000).")
@click.option(
    "--examples", type=click.Path(exists=True, file_okay=False), help="Apply this folder first."
)
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, examples: str | None) -> None:
    """Serve the hub: webhooks, health, the executor and the scheduler."""
    import uvicorn

    from hub.api.app import create_app

    settings = _settings(ctx)
    if examples:
        ctx.invoke(flows_apply, folder=examples, dry_run=False)
    hub = Hub(settings)
    app = create_app(hub)
    click.echo(
        f"hub serving on http://{host or settings.host}:{port or settings.port} "
        f"(data in {settings.data_dir.resolve()})",
        err=True,
    )
    uvicorn.run(app, host=host or settings.host, port=port or settings.port, log_level="info")


@cli.command()
@click.option("--concurrency", type=int, default=None, help="Steps run at once per queue.")
@click.option(
    "--queues",
    default="high,default,low",
    show_default=True,
    help="Priority queues to serve, comma-separated.",
)
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@click.pass_context
def worker(ctx: click.Context, concurrency: int | None, queues: str, burst: bool) -> None:
    """Run steps from the Redis queues (queue mode: needs HUB_REDIS_URL)."""
    from hub.executors.arq import PRIORITIES, run_worker

    settings = _settings(ctx)
    if not settings.redis_url:
        raise click.ClickException("hub worker needs a Redis URL: set HUB_REDIS_URL")
    chosen = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = [q for q in chosen if q not in PRIORITIES]
    if unknown:
        raise click.BadParameter(f"unknown queue(s) {unknown}; use {PRIORITIES}")

    async def go(hub: Hub) -> None:
        click.echo(f"hub worker {hub.engine.boot_id[:8]} serving {', '.join(chosen)}", err=True)
        await run_worker(hub, queues=chosen, concurrency=concurrency, burst=burst)

    with_hub(ctx, go, execute=True)


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
