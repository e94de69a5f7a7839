"""The ``hub`` command: serve, worker, run, flows, runs.

Every command starts a :class:`hub.runtime.Hub` (:func:`with_hub`) and acts through the
workspace services (:func:`workspace_of`), the same ones the API calls: each change is
checked and written to the audit log there. The CLI acts as ``cli:<OS user>`` (the login
name of whoever runs it, :func:`cli_actor`) with the owner's role: whoever can run ``hub``
on the hub's data can read its database and key anyway.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import getpass
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import msgspec

from hub.connectors import RegistrationError
from hub.flows import FlowError, diff_documents, parse_document
from hub.flows.bounds import DocumentLimits, json_too_deep, line_column
from hub.flows.yaml_text import dump_yaml
from hub.runtime import Hub, settle_gc
from hub.security.secrets import SecretKeyError
from hub.services import links
from hub.services.errors import ServiceError
from hub.services.workspace import WorkspaceHub
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


def cli_actor() -> str:
    """Who the audit log names for a CLI command: ``cli:<OS login name>``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        user = "unknown"
    return f"cli:{user}"


def workspace_of(hub: Hub, workspace: str | None = None) -> WorkspaceHub:
    """The services of a workspace (the hub's default one unless named), acting as the
    CLI's user (:func:`cli_actor`) with the owner's role."""
    return WorkspaceHub(hub, workspace or hub.workspace, actor=cli_actor(), role="owner")


def service_failure(exc: ServiceError) -> click.ClickException:
    """A refusal of the services as the CLI shows it: the message, then each issue."""
    lines = [exc.message]
    if isinstance(exc.details, list):
        lines += [
            f"  {i.get('location', '')}: {i.get('message', '')}"
            for i in exc.details
            if isinstance(i, dict)
        ]
    return click.ClickException("\n".join(lines))


def with_hub(
    ctx: click.Context,
    fn: Callable[[Hub], Awaitable[T]],
    *,
    execute: bool = False,
    verify_key: bool = True,
) -> T:
    """Start a hub on the configured settings, run ``fn(hub)``, stop the hub.

    Only commands that run flows (``execute``) start the executor and the sweeper. A
    refusal of the services (:class:`ServiceError`) ends the command with its message.
    """

    async def main() -> T:
        try:
            hub = Hub(_settings(ctx))
        except RegistrationError as exc:
            raise click.ClickException(str(exc)) from exc
        try:
            await hub.start(background=execute, execute=execute, verify_key=verify_key)
        except SecretKeyError as exc:
            await hub.stop(grace=0)
            raise click.ClickException(str(exc)) from exc
        try:
            return await fn(hub)
        except ServiceError as exc:
            raise service_failure(exc) from exc
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


def _read_input(value: str | None, max_depth: int) -> Any:
    """``--input``: JSON text or ``@file``, nested at most ``max_depth`` (HUB_MAX_JSON_DEPTH)."""
    if value is None:
        return None
    try:
        text = Path(value[1:]).read_text() if value.startswith("@") else value
    except OSError as exc:
        raise click.BadParameter(
            f"cannot read {value[1:]}: {exc.strerror}", param_hint="--input"
        ) from exc
    data = text.encode()
    deep_at = json_too_deep(data, max_depth)
    if deep_at is not None:
        raise click.BadParameter(
            f"nested deeper than {max_depth} levels (HUB_MAX_JSON_DEPTH), at "
            f"{line_column(data, deep_at)}",
            param_hint="--input",
        )
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


def _load_file(path: Path, settings: Settings) -> dict[str, Any]:
    """A flow file, parsed within the settings' document bounds (``HUB_MAX_DOCUMENT_*``)."""
    return parse_document(path.read_text(), str(path), DocumentLimits.from_settings(settings))


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
    data = _read_input(input_, _settings(ctx).max_json_depth)
    try:
        document = _load_file(Path(flow_file), _settings(ctx))
    except FlowError as exc:
        raise click.ClickException(str(exc)) from exc

    async def go(hub: Hub) -> dict[str, Any]:
        ws = workspace_of(hub)
        try:
            saved = await ws.save_flow(document, source=Path(flow_file).read_text())
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

        with ws.watch(show):
            run_id = await ws.start_run(saved.flow_id, data, saved.version)
            if not quiet:
                click.echo(f"run {run_id} of {saved.flow_id} v{saved.version}", err=True)
            record = await ws.wait_for_run(run_id, timeout)
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
        ws = workspace_of(hub)
        for path in files:
            try:
                await ws.validate(_load_file(path, hub.settings))
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
        ws = workspace_of(hub)
        for path in files:
            try:
                document = _load_file(path, hub.settings)
                await ws.validate(document)
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
            saved = await ws.save_flow(document, source=path.read_text(), publish=True)
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
            trigger = hub.registry.triggers.get(str((document.get("trigger") or {}).get("type")))
            if trigger is not None and trigger.kind == "webhook":
                click.echo(
                    f"  webhook: {links.webhook_url(hub.settings, ws.workspace, saved.flow_id)}"
                )
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

    document = with_hub(ctx, lambda hub: workspace_of(hub).flow_document(flow_id, version))
    if fmt == "json":
        click.echo(json.dumps(document, indent=2))
    else:
        click.echo(dump_yaml(document), nl=False)


@flows.command("list")
@click.pass_context
def flows_list(ctx: click.Context) -> None:
    """List flows with their trigger and versions."""
    rows = with_hub(ctx, lambda hub: workspace_of(hub).list_flows())
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
    rows = with_hub(
        ctx,
        lambda hub: workspace_of(hub).runs_page(flow_id=flow_id, status=status, limit=limit),
    )
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

    record = with_hub(ctx, lambda hub: workspace_of(hub).get_run(run_id))
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


@cli.command()
@click.option("--host", default=None, help="HUB_HOST (default 127.0.0.1).")
@click.option(
    "--port", type=int, default=None, help="HUB_PORT (default 8000; 0 picks a free port)."
)
@click.option(
    "--examples", type=click.Path(exists=True, file_okay=False), help="Apply this folder first."
)
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, examples: str | None) -> None:
    """Serve the hub: webhooks, health, the executor and the scheduler."""
    import uvicorn

    from hub.app import create_app
    from hub.cli.listen import bind_listener, bound_address, serve_banner

    settings = _settings(ctx)
    # Bound first: the banner, the first owner's note and the webhook URLs of --examples name
    # the address really bound (the settings carry it from now on).
    listener = bind_listener(
        settings.host if host is None else host, settings.port if port is None else port
    )
    bound_host, bound_port = bound_address(listener)
    settings = settings.replace(host=bound_host, port=bound_port)
    ctx.ensure_object(dict)["settings"] = settings
    if examples:
        ctx.invoke(flows_apply, folder=examples, dry_run=False)
    hub = Hub(settings)
    app = create_app(hub)
    click.echo(
        serve_banner(bound_host, bound_port, settings.public_url, str(settings.data_dir.resolve())),
        err=True,
    )
    # proxy_headers=False: uvicorn would otherwise believe X-Forwarded-For/-Proto from any
    # loopback peer; the hub believes them only from HUB_TRUSTED_PROXIES (hub.api.proxy).
    config = uvicorn.Config(app, log_level="info", proxy_headers=False)
    uvicorn.Server(config).run(sockets=[listener])


@cli.command()
@click.option(
    "--concurrency",
    type=int,
    default=None,
    help="Steps this worker runs at once, over all its queues.",
)
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
    settings = _settings(ctx)
    if not settings.redis_url:
        raise click.ClickException("hub worker needs a Redis URL: set HUB_REDIS_URL")
    chosen = [q.strip() for q in queues.split(",") if q.strip()]

    async def go(hub: Hub) -> None:
        click.echo(f"hub worker {hub.boot_id[:8]} serving {', '.join(chosen)}", err=True)
        settle_gc(hub.settings)
        try:
            await hub.work(chosen, concurrency=concurrency, burst=burst)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--queues") from exc

    with_hub(ctx, go, execute=True)
