"""Testing a plugin: the pytest plugin ``hub.testing`` and the helpers a plugin's tests use.

A plugin's tests import from the hub only :mod:`hub` (the plugin API) and this package;
every name below is importable as ``from hub.testing import NAME``.

Installing the hub loads this package as a pytest plugin (``pytest11``), so its fixtures
(:mod:`hub.testing.fixtures`) are in every pytest session: ``hub_plugins``, ``hub_settings``,
``hub_app``, ``hub_db``, ``hub_client``, ``hub_process``.

The helpers, by concern:

- one action or poll trigger, without a run (:mod:`hub.testing.actions`): :func:`run_action`,
  :func:`run_poll`, :func:`check_examples`, :func:`make_context`, :class:`ActionCheckError`;
- flow files (:mod:`hub.testing.flows`): :func:`check_flow_file`, :func:`read_flow_file`,
  :func:`registry_of`, :class:`FlowError`;
- a real hub (:mod:`hub.testing.hubs`): :class:`Hub`, :class:`Settings`, :func:`started_hub`,
  :func:`http_client`, :func:`run_flow`, :func:`wait_for_runs`, :func:`wait_until`,
  :data:`LOOPBACK_HOSTS`;
- its triggers (:mod:`hub.testing.triggers`): :func:`poll_once`, :func:`running_triggers`;
- the servers a test talks to (:mod:`hub.testing.servers`): :func:`require_service`,
  :func:`service_missing` (skip, or fail when ``CI=true``), :func:`in_ci`,
  :func:`reachable`, :func:`free_port`, :func:`serve_asgi` (a stand-in ASGI app on loopback);
- a stand-in for an HTTP JSON API (:mod:`hub.testing.standin`): :class:`StandIn`, whose
  subclass answers, recording each :class:`StandInRequest`;
- subscribe triggers killed between receive and record, in a child process
  (:mod:`hub.testing.subscribe`): :class:`HubProcess`, :func:`hub_processes`.
"""

from hub.testing.actions import (
    ActionCheckError,
    check_examples,
    make_context,
    run_action,
    run_poll,
)
from hub.testing.flows import FlowError, check_flow_file, read_flow_file, registry_of
from hub.testing.hubs import (
    LOOPBACK_HOSTS,
    Hub,
    Settings,
    http_client,
    run_flow,
    started_hub,
    wait_for_runs,
    wait_until,
)
from hub.testing.servers import (
    free_port,
    in_ci,
    reachable,
    require_service,
    serve_asgi,
    service_missing,
)
from hub.testing.standin import StandIn, StandInRequest
from hub.testing.subscribe import HubProcess, hub_processes
from hub.testing.triggers import poll_once, running_triggers

__all__ = [
    "LOOPBACK_HOSTS",
    "ActionCheckError",
    "FlowError",
    "Hub",
    "HubProcess",
    "Settings",
    "StandIn",
    "StandInRequest",
    "check_examples",
    "check_flow_file",
    "free_port",
    "http_client",
    "hub_processes",
    "in_ci",
    "make_context",
    "poll_once",
    "reachable",
    "read_flow_file",
    "registry_of",
    "require_service",
    "run_action",
    "run_flow",
    "run_poll",
    "running_triggers",
    "serve_asgi",
    "service_missing",
    "started_hub",
    "wait_for_runs",
    "wait_until",
]

# The fixtures register through this: pytest loads the plugins a plugin module names.
pytest_plugins = ["hub.testing.fixtures"]
