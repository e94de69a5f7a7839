"""Every hook of the hub, each with its contract.

Plugins are modules (or objects) with functions marked ``@hub.hookimpl`` whose names are the
names below. pluggy is synchronous: where a hook says an ``async def`` implementation is
allowed, the hub awaits each implementation on its own, with a timeout, so that one failing or
slow implementation is logged and never skips the others or stalls a run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from hub.connectors import Connector
    from hub.context import StepContext

hookspec = pluggy.HookspecMarker("hub")
hookimpl = pluggy.HookimplMarker("hub")


@hookspec
def hub_connectors() -> list[Connector]:  # type: ignore[empty-body]
    """Return the connectors this plugin provides (a list of :class:`hub.Connector`).

    Called once per plugin when the registry is built. Each implementation is called on its
    own, so a description that is refused (an invalid JSON Schema, a duplicate name) is
    reported with the name of the plugin that returned it. Synchronous only.
    """


@hookspec
def hub_template_filters() -> dict[str, Any]:  # type: ignore[empty-body]
    """Return extra Jinja2 filters for flow expressions, as ``{name: callable}``.

    Called once when the expression environment is built. Filters run inside the sandbox
    and must be pure functions of their arguments (no I/O). Synchronous only.
    """


@hookspec
def hub_template_globals() -> dict[str, Any]:  # type: ignore[empty-body]
    """Return extra Jinja2 globals (values or functions) for flow expressions.

    Called once when the expression environment is built. Synchronous only.
    """


@hookspec
def hub_before_step(ctx: StepContext) -> None:
    """Called before an action runs, with the step's context (inputs already rendered).

    For observers (audit, metrics, tracing). May be ``async def``; each implementation is
    awaited on its own with the observer timeout, and an exception or a timeout is logged and
    ignored: it never fails the step. The return value is ignored.
    """


@hookspec
def hub_after_step(ctx: StepContext, result: dict[str, Any]) -> None:
    """Called after a step attempt has been recorded.

    ``result`` is ``{"status": "done"|"failed"|"waiting"|"retrying", "output": ...,
    "error": ...}`` (secrets redacted). May be ``async def``; awaited like
    :func:`hub_before_step`, and errors are logged and ignored.

    It is called for every attempt whose action context was built (the attempt reached
    its input): an attempt that fails before that (an unknown connection, a ``when`` or
    ``for_each`` expression that does not render) and a ``for_each`` step waiting for its
    items are not reported.
    """


@hookspec
def hub_run_finished(run: dict[str, Any]) -> None:
    """Called when a run reaches a final status (succeeded, failed, cancelled).

    ``run`` is the run record as the API shows it (id, flow_id, status, output, error,
    timings). May be ``async def``; awaited like :func:`hub_before_step`. Not called for
    trial runs (the flow builder's tests, :mod:`hub.engine.trials`).
    """


@hookspec
def hub_routes() -> list[Any]:  # type: ignore[empty-body]
    """Return extra Litestar route handlers (or Routers/Controllers) to mount in the app.

    Called once by the app factory. Synchronous only.
    """


@hookspec
def hub_menu_items(workspace: str, role: str) -> list[dict[str, str]]:  # type: ignore[empty-body]
    """Return entries for the web UI's menu: ``{"label": ..., "href": ...}`` each.

    Called for every page a signed-in person sees, with the workspace the page is in and
    the person's role there (``viewer``, ``editor``, ``owner``): return nothing for roles
    that should not see an entry. ``href`` is a path on the hub (a page the plugin adds
    through :func:`hub_routes`, rendering its own ``templates/``). Synchronous only.
    """


@hookspec
def hub_cli(cli: click.Group) -> None:
    """Add commands to the ``hub`` command group (``@cli.command()``).

    Called once when the CLI is built. Synchronous only.
    """


@hookspec
def hub_startup(hub: Any) -> None:
    """Called when the hub starts (``hub serve``, ``hub worker``, ``hub run``), after the
    database and the executor are ready. ``hub`` is the running :class:`hub.runtime.Hub`.

    May be ``async def``; awaited with the observer timeout, errors logged.
    """


@hookspec
def hub_shutdown(hub: Any) -> None:
    """Called when the hub stops, before the executor and the database are closed.

    May be ``async def``; awaited with the observer timeout, errors logged.
    """
