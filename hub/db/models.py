"""SQLAlchemy 2 models: the source of truth for flows, versions, runs, steps and connections.

Every workspace-owned table carries ``workspace_id`` from the first migration. Times are
stored as epoch microseconds (BigInteger, UTC): exact, timezone-free by construction and
cheap to compare on the hot path (the step handoff is measured in milliseconds).
The engine runs SQLAlchemy Core statements against ``Model.__table__``.
"""

from __future__ import annotations

import time
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    literal_column,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement


def now_us() -> int:
    """Now, in epoch microseconds (how every time is stored)."""
    return time.time_ns() // 1000


NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with a naming convention (stable names for migrations)."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, Any: JSON}


class Workspace(Base):
    """A tenant. An embedded hub has one: ``default``."""

    __tablename__ = "workspaces"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[int] = mapped_column(BigInteger)


class User(Base):
    """A person who logs in to the UI or owns API tokens."""

    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[int] = mapped_column(BigInteger)


class Membership(Base):
    """A user's role in a workspace: owner, editor or viewer."""

    __tablename__ = "memberships"
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))


class ApiToken(Base):
    """An API token, stored hashed."""

    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    last_used_at: Mapped[int | None] = mapped_column(BigInteger)
    # Optional limits (None: the token acts with its user's role, until revoked): when it
    # stops working, what it may do ("read" or "runs"), and the one flow it may reach.
    expires_at: Mapped[int | None] = mapped_column(BigInteger)
    scope: Mapped[str | None] = mapped_column(String(16))
    flow_id: Mapped[str | None] = mapped_column(String(100))


class LoginSession(Base):
    """A browser session: the cookie carries a random secret, the table its SHA-256.

    It ends at logout (``revoked_at``), after ``HUB_SESSION_IDLE_MINUTES`` without use
    (``last_seen_at``, written at most once a minute) and ``HUB_SESSION_MAX_HOURS`` after
    its login (``created_at``; ``expires_at`` is that moment when it was created, by which
    old rows are pruned).
    """

    __tablename__ = "sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    last_seen_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger)


class FlowRow(Base):
    """A flow's identity, enabled state and published version."""

    __tablename__ = "flows"
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    trigger_type: Mapped[str] = mapped_column(String(100), default="manual")
    published_version: Mapped[int | None] = mapped_column(Integer)
    latest_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class FlowVersion(Base):
    """One immutable version of a flow document."""

    __tablename__ = "flow_versions"
    workspace_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    flow_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(Text, default="")
    checksum: Mapped[str] = mapped_column(String(64))
    author: Mapped[str] = mapped_column(String(200), default="")
    message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[int] = mapped_column(BigInteger)
    __table_args__ = (
        ForeignKeyConstraint(["workspace_id", "flow_id"], ["flows.workspace_id", "flows.id"]),
    )


class RunRow(Base):
    """One execution of a flow version."""

    __tablename__ = "runs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(64))
    flow_id: Mapped[str] = mapped_column(String(100))
    flow_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    trigger_type: Mapped[str] = mapped_column(String(100), default="manual")
    trigger: Mapped[Any] = mapped_column(JSON(none_as_null=True), nullable=True)
    output: Mapped[Any] = mapped_column(JSON(none_as_null=True), nullable=True)
    error: Mapped[Any] = mapped_column(JSON(none_as_null=True), nullable=True)
    parent_run_id: Mapped[str | None] = mapped_column(String(32))
    parent_step_key: Mapped[str | None] = mapped_column(String(200))
    depth: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[int] = mapped_column(BigInteger)
    started_at: Mapped[int | None] = mapped_column(BigInteger)
    finished_at: Mapped[int | None] = mapped_column(BigInteger)
    # A trial of a draft (the flow builder's "try it"; flow_version 0, its flow in
    # trial_documents): left out of the runs lists, the counts and the metrics.
    trial: Mapped[bool] = mapped_column(Boolean, server_default=false())
    __table_args__ = (
        # status, then trial, last: the flows list counts a page's production runs by
        # status from this index alone (the lists skip trials on each index's last column)
        Index("ix_runs_list", "workspace_id", "flow_id", "created_at", "id", "status", "trial"),
        Index("ix_runs_workspace_created", "workspace_id", "created_at", "id", "trial"),
        Index("ix_runs_status", "status", "workspace_id", "created_at", "flow_id", "trial"),
        Index("ix_runs_parent", "parent_run_id", "parent_step_key"),
    )


ACTIVE_STATUSES = ("queued", "running", "waiting", "pending")
# The predicate of the index of active steps: the queries it serves say the same.
ACTIVE_STEP = "status IN ({})".format(", ".join(f"'{s}'" for s in ACTIVE_STATUSES))


def _partial(name: str, *columns: str, where: str) -> Index:
    """An index of the rows matching ``where`` only, on SQLite and PostgreSQL alike."""
    return Index(name, *columns, sqlite_where=text(where), postgresql_where=text(where))


class StepRow(Base):
    """One attempt of one step (or one item of a ``for_each`` step) of a run.

    Every row costs an entry in each index it belongs to, twice per step (inserted running
    or queued, updated to done): so the indexes other than the unique key cover only the
    rows that queries look for (active steps, items, queued, waiting and running steps),
    and a finished step sits in two indexes. ``run_id`` is not a foreign key: the check
    is a query per inserted step, and steps are only inserted by the engine's transitions
    for a run they have just created or locked (runs are deleted only with their flow,
    and only when none of them is active: :func:`hub.db.flows.delete_flow`).
    """

    __tablename__ = "steps"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(200))
    step_id: Mapped[str] = mapped_column(String(100))
    item_index: Mapped[int | None] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[int | None] = mapped_column(BigInteger)
    submitted_at: Mapped[int | None] = mapped_column(BigInteger)
    resubmissions: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[int | None] = mapped_column(BigInteger)
    input: Mapped[Any] = mapped_column(JSON(none_as_null=True), nullable=True)
    output: Mapped[Any] = mapped_column(JSON(none_as_null=True), nullable=True)
    error: Mapped[Any] = mapped_column(JSON(none_as_null=True), nullable=True)
    state: Mapped[Any] = mapped_column(JSON(none_as_null=True), nullable=True)
    items_left: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[int] = mapped_column(BigInteger)
    started_at: Mapped[int | None] = mapped_column(BigInteger)
    finished_at: Mapped[int | None] = mapped_column(BigInteger)
    __table_args__ = (
        UniqueConstraint("run_id", "key", "attempt"),
        _partial("ix_steps_active", "run_id", where=ACTIVE_STEP),
        _partial(
            "ix_steps_items",
            "run_id",
            "step_id",
            "status",
            "item_index",
            where="item_index IS NOT NULL",
        ),
        _partial("ix_steps_queued", "submitted_at", where="status = 'queued'"),
        _partial("ix_steps_waiting_due", "due_at", where="status = 'waiting'"),
        _partial("ix_steps_running_lease", "lease_expires_at", where="status = 'running'"),
    )


class Connection(Base):
    """A stored connection: encrypted secrets and non-secret settings."""

    __tablename__ = "connections"
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    connector: Mapped[str] = mapped_column(String(100))
    secrets: Mapped[str] = mapped_column(Text, default="")
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    oauth_tokens: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class TriggerState(Base):
    """Poll cursors, subscription offsets, a schedule's last tick."""

    __tablename__ = "trigger_state"
    workspace_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    flow_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    state: Mapped[Any] = mapped_column(JSON(none_as_null=True), nullable=True)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class WebhookKey(Base):
    """An ``Idempotency-Key`` seen on a webhook, with the request hash and its run."""

    __tablename__ = "webhook_keys"
    workspace_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    flow_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[int] = mapped_column(BigInteger)
    # Pruning keys past their retention reads them by age.
    __table_args__ = (Index("ix_webhook_keys_age", "workspace_id", "flow_id", "created_at"),)


class FlowTombstone(Base):
    """A deleted flow's id and the last version number it had: a flow created again with
    that id numbers its versions on from there, so that ``(workspace, flow, version)`` never
    names two documents (the engine and the webhook route cache compiled versions by it)."""

    __tablename__ = "flow_tombstones"
    workspace_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    flow_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_version: Mapped[int] = mapped_column(Integer)
    deleted_at: Mapped[int] = mapped_column(BigInteger)


class FlowDraft(Base):
    """The flow builder's draft: one per person and flow, the document being edited.

    ``document`` is the document now (valid or not); ``source`` its YAML text as last typed
    or brought up to date, which reads as ``source_document`` (edits do not rewrite it: it is
    patched to the document, comments and key order kept, when shown or saved:
    :mod:`hub.flows.yaml_text`); ``undo`` and
    ``redo`` are stacks of edits, each ``{"label", "ops", "inverse"}`` (RFC 6902 JSON
    Patches); ``base_version`` is the version the draft started from (None for a flow not
    saved yet), sent with the save so that a newer version refuses it; ``saved_checksum``
    is the checksum of the document last saved (unsaved changes when it differs); ``pins``
    (``{step id: output}``) and ``sample`` (the trigger's sample data) live here, never in
    the flow document. ``revision`` counts the edits (a second tab's stale edit is refused).
    """

    __tablename__ = "flow_drafts"
    workspace_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    flow_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    base_version: Mapped[int | None] = mapped_column(Integer)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(Text, default="")
    source_document: Mapped[Any] = mapped_column(JSON(none_as_null=True), nullable=True)
    undo: Mapped[Any] = mapped_column(JSON)
    redo: Mapped[Any] = mapped_column(JSON)
    pins: Mapped[Any] = mapped_column(JSON)
    sample: Mapped[Any] = mapped_column(JSON(none_as_null=True), nullable=True)
    saved_checksum: Mapped[str] = mapped_column(String(64), default="")
    revision: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class TrialDocument(Base):
    """What a trial run runs: the draft document as it was tried, the pinned outputs
    (``{step id: output}``: those steps are not called) and the step it stops after (None:
    the whole flow). One row per trial run (:mod:`hub.db.trials`)."""

    __tablename__ = "trial_documents"
    run_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(64))
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    pins: Mapped[dict[str, Any]] = mapped_column(JSON)
    stop_after: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[int] = mapped_column(BigInteger)


class AuditEntry(Base):
    """Who changed what, when."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(64), index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    target: Mapped[str] = mapped_column(String(300))
    details: Mapped[Any] = mapped_column(JSON(none_as_null=True), nullable=True)
    at: Mapped[int] = mapped_column(BigInteger)


workspaces = cast(Table, Workspace.__table__)
flows = cast(Table, FlowRow.__table__)
flow_versions = cast(Table, FlowVersion.__table__)
runs = cast(Table, RunRow.__table__)
steps = cast(Table, StepRow.__table__)
connections = cast(Table, Connection.__table__)
trigger_state = cast(Table, TriggerState.__table__)
webhook_keys = cast(Table, WebhookKey.__table__)
flow_tombstones = cast(Table, FlowTombstone.__table__)
flow_drafts = cast(Table, FlowDraft.__table__)
api_tokens = cast(Table, ApiToken.__table__)
audit_log = cast(Table, AuditEntry.__table__)
trial_documents = cast(Table, TrialDocument.__table__)


def opaque_status(value: str) -> str:
    """SQL for the constant ``value`` that the planner cannot see through: ``(SELECT
    'running')``, a one-row subquery evaluated once per statement.

    A statement that finds its rows by key (an id, a run's step key) and also tests their
    status must not say ``status = 'running'``: that makes every partial index of steps
    whose predicate it implies (active, running, queued, waiting steps) a candidate, and
    with statistics taken when few steps were active (their number swings by thousands
    within seconds) the planner scans one whole (every active step, for each row of a
    batch) instead of looking rows up by key. Compared with a subquery's value, the test is
    the same, proves nothing about an index predicate, and still serves as an index
    condition.
    """
    if not value.isidentifier():
        raise ValueError(f"not a status: {value!r}")
    return f"(SELECT '{value}')"


def status_is(*values: str) -> ColumnElement[bool]:
    """``steps.status`` is one of ``values``, written with :func:`opaque_status`."""
    opaque: list[ColumnElement[Any]] = [literal_column(opaque_status(v)) for v in values]
    return steps.c.status == opaque[0] if len(opaque) == 1 else steps.c.status.in_(opaque)


def lease_expiry(now: int, lease_s: float) -> int:
    """When a step's lease taken at ``now`` (epoch microseconds) for ``lease_s`` seconds
    expires: every claim, eager successor and renewal of a lease computes it here."""
    return now + int(lease_s * 1_000_000)


def lease_expired(now: int) -> ColumnElement[bool]:
    """The step's lease had expired by ``now``: the sweeper may take the step over."""
    return steps.c.lease_expires_at < now
