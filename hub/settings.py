"""Every setting of the hub, in one place.

Settings come from environment variables (``HUB_*``), optionally from a ``hub.toml`` in the
data folder (environment wins), and from keyword arguments in tests. The same names are used
in the docs, the CLI flags and the tests.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class SettingsError(ValueError):
    """A setting has a value the hub cannot use; the message names the setting."""


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


@dataclasses.dataclass(frozen=True)
class Settings:
    """The hub's settings. Build with :meth:`from_env`; tests pass overrides."""

    data_dir: Path = Path(".hub")
    database_url: str = ""
    redis_url: str = ""
    secret_key: tuple[str, ...] = ()
    load_plugins: tuple[str, ...] | None = None
    disable_plugins: tuple[str, ...] = ()
    plugin_modules: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = 8000
    allow_hosts: tuple[str, ...] = ()
    workspace: str = "default"
    database_pool_size: int = 10
    # Queue mode (with HUB_REDIS_URL)
    queue_name: str = "hub"
    queue_poll_delay: float = 0.005
    queue_idle_poll: float = 1.0
    worker_concurrency: int = 100
    shutdown_grace: float = 10.0
    # Long-lived processes (hub serve, hub worker): the garbage collector's first threshold
    # once started (0 keeps Python's, 700); see runtime.settle_gc.
    gc_threshold: int = 10_000
    # Execution
    lease_seconds: float = 30.0
    lease_retry_attempts: int = 3
    sweep_interval: float = 5.0
    resubmit_after: float = 60.0
    default_step_timeout: float = 300.0
    max_subflow_depth: int = 10
    observer_timeout: float = 5.0
    # Limits of the expression sandbox and of the HTTP action
    max_render_output: int = 1_000_000
    max_loop_iterations: int = 100_000
    max_range: int = 100_000
    max_repeat: int = 1_000_000
    # One render's total: work (units of about a nanosecond of CPU), bytes built (memory
    # it may hold), and wall-clock seconds (checked whenever the budget is charged).
    max_render_work: int = 1_000_000_000
    max_render_bytes: int = 64_000_000
    max_render_seconds: float = 5.0
    max_for_each_items: int = 100_000
    # Where renders run (hub.expressions.offload): inline on the event loop for this long,
    # then again from the start in one of this many threads, with the whole budget.
    render_inline_seconds: float = 0.01
    render_threads: int = 2
    http_max_response_bytes: int = 10_000_000
    http_timeout: float = 30.0
    # Webhooks
    webhook_max_body_bytes: int = 1_000_000
    # How long a sender's delivery id (trigger.config.dedup) is kept: a redelivery within it
    # answers the first run (Stripe retries for up to three days; docs/webhooks.md).
    webhook_dedup_retention_hours: float = 72.0
    # Documents: the bounds of a flow document (YAML or JSON, from every face) and of every
    # JSON request body, checked before anything recurses over the data or expands it
    # (hub/flows/bounds.py, hub/api/bodies.py; docs/security.md).
    max_document_bytes: int = 1_000_000
    max_document_nodes: int = 100_000  # YAML aliases counted as expanded
    max_document_depth: int = 64
    max_yaml_aliases: int = 1_000
    max_document_templates: int = 5_000  # distinct expressions: each compiles in about 1 ms
    max_json_depth: int = 64  # API request bodies (webhooks: 64, hub/api/webhooks.py)
    max_request_bytes: int = 4_000_000  # API request bodies (webhooks: their own cap)
    # The public address: what people and services use to reach the hub (links, webhook
    # URLs, OAuth2 redirect URIs); an https:// address makes the session cookies Secure.
    public_url: str = ""
    # Proxies whose X-Forwarded-For is believed (addresses or networks); the client address
    # of a request from anywhere else is the connection's peer.
    trusted_proxies: tuple[str, ...] = ()
    # Sessions and logins (docs/security.md, "Sessions and logins")
    session_idle_minutes: float = 720.0  # a session unused this long has ended
    session_max_hours: float = 168.0  # a session ends this long after its login, used or not
    max_concurrent_hashes: int = 2  # argon2 checks at once per process; more answer 429
    login_attempts_per_account: int = 10  # failed logins/password checks per account per window
    login_attempts_per_address: int = 20  # failed ones per client address per window
    login_window_seconds: float = 300.0
    # The web UI: a folder of templates that override the hub's and the plugins' (by name)
    templates_dir: str = ""

    @property
    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL; SQLite in the data folder unless one is set."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'hub.db').resolve()}"

    @property
    def heartbeat_interval(self) -> float:
        """How often a process renews the leases of its running steps, and how long a step
        runs before its lease is first renewed: a third of the lease, so that a lease
        survives two missed renewals."""
        return self.lease_seconds / 3

    @property
    def is_sqlite(self) -> bool:
        """True when the database is SQLite (the embedded default)."""
        return self.resolved_database_url.startswith("sqlite")

    @property
    def allowed_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """The entries of ``HUB_ALLOW_HOSTS`` that are addresses or networks."""
        nets = []
        for entry in self.allow_hosts:
            try:
                nets.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                continue
        return nets

    @property
    def allowed_hostnames(self) -> set[str]:
        """The entries of ``HUB_ALLOW_HOSTS`` that are host names."""
        names = set()
        for entry in self.allow_hosts:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                names.add(entry.lower().rstrip("."))
        return names

    @property
    def public_https(self) -> bool:
        """True when ``HUB_PUBLIC_URL`` is an https:// address."""
        return self.public_url.lower().startswith("https://")

    def replace(self, **changes: Any) -> Settings:
        """A copy with some settings changed."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read settings from the environment, then ``hub.toml``, then overrides."""
        env = dict(os.environ if env is None else env)
        data_dir = Path(overrides.pop("data_dir", None) or env.get("HUB_DATA_DIR") or ".hub")
        values: dict[str, Any] = {"data_dir": data_dir}
        toml_path = data_dir / "hub.toml"
        if toml_path.exists():
            try:
                file_values = tomllib.loads(toml_path.read_text())
            except tomllib.TOMLDecodeError as exc:
                raise SettingsError(f"{toml_path}: {exc}") from exc
            for key, value in file_values.items():
                values[key] = value
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for name in fields:
            var = f"HUB_{name.upper()}"
            if var in env and name != "data_dir":
                values[name] = env[var]
        values.update(overrides)
        converted: dict[str, Any] = {}
        for name, value in values.items():
            if name not in fields:
                raise SettingsError(f"unknown setting {name!r}")
            converted[name] = _convert(name, fields[name], value)
        for name, lowest in _AT_LEAST.items():
            if name in converted and converted[name] < lowest:
                raise SettingsError(
                    f"HUB_{name.upper()}: {converted[name]!r} is too small (at least {lowest})"
                )
        return cls(**converted)


# Settings whose value below a bound would not just be odd but break the hub: a pool of 0
# means "no limit" to SQLAlchemy, an idle poll of 0 makes idle workers spin.
_AT_LEAST: dict[str, float] = {
    "database_pool_size": 1,
    "queue_idle_poll": 0.01,
    "gc_threshold": 0,
    "max_concurrent_hashes": 1,
    "login_attempts_per_account": 1,
    "login_attempts_per_address": 1,
    "render_inline_seconds": 0,
    "render_threads": 1,
}


def _convert(name: str, field: dataclasses.Field[Any], value: Any) -> Any:
    default = field.default
    var = f"HUB_{name.upper()}"
    try:
        if name == "data_dir":
            return Path(value)
        if name == "load_plugins":
            if value is None:
                return None
            return tuple(_split(value) if isinstance(value, str) else value)
        if isinstance(default, tuple):
            return tuple(_split(value) if isinstance(value, str) else value)
        if isinstance(default, bool):
            return value if isinstance(value, bool) else str(value).lower() in {"1", "true", "yes"}
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"{var}: {value!r} is not a valid value ({exc})") from exc
