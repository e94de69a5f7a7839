"""Request and response bodies of the API: explicit msgspec Structs (not ORM-derived DTOs).

Times are RFC 3339 date-times in UTC. Bodies that carry flow documents, trigger data or step
outputs type them as ``Any``: their shape is the flow's, not the API's.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec

Slug = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)]
FlowId = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=100)]
Name = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)]
Role = Literal["viewer", "editor", "owner"]
Email = Annotated[str, msgspec.Meta(pattern=r"^[^@\s]+@[^@\s]+$", max_length=320)]
Password = Annotated[str, msgspec.Meta(min_length=12, max_length=1024)]


def ts(us: int | None) -> dt.datetime | None:
    """An epoch-microsecond time as an aware UTC datetime."""
    return None if us is None else dt.datetime.fromtimestamp(us / 1_000_000, dt.UTC)


def ms_between(start: int | None, end: int | None) -> float | None:
    """Milliseconds between two epoch-microsecond times, when both are known."""
    return None if start is None or end is None else (end - start) / 1000


# -- errors ---------------------------------------------------------------------------------


class ErrorDetail(msgspec.Struct):
    """What went wrong: a stable code, a message for people, and details (issues, fields)."""

    code: str
    message: str
    details: Any = None


class ErrorBody(msgspec.Struct):
    """The one error shape of the API."""

    error: ErrorDetail


class Issue(msgspec.Struct):
    """One validation problem and where it is (``steps[1].input.email``)."""

    location: str
    message: str


# -- accounts -------------------------------------------------------------------------------


class LoginBody(msgspec.Struct):
    """Email and password."""

    email: Annotated[str, msgspec.Meta(max_length=320)]
    password: Annotated[str, msgspec.Meta(max_length=1024)]


class CsrfToken(msgspec.Struct):
    """The CSRF token to send back in the ``X-CSRFToken`` header of unsafe requests."""

    token: str


class UserInfo(msgspec.Struct):
    """A user (never the password hash)."""

    id: str
    email: str
    name: str


class WorkspaceInfo(msgspec.Struct):
    """A workspace and the caller's role in it."""

    id: str
    name: str
    role: Role


class Me(msgspec.Struct):
    """The caller: the user, how they authenticated, their workspaces."""

    user: UserInfo
    via: Literal["session", "token"]
    workspaces: list[WorkspaceInfo]
    token_workspace: str | None = None


class PasswordChange(msgspec.Struct):
    """Change one's own password (at least 12 characters)."""

    current: Annotated[str, msgspec.Meta(max_length=1024)]
    new: Password


class WorkspaceCreate(msgspec.Struct):
    """A new workspace; its creator becomes its owner."""

    id: Slug
    name: Annotated[str, msgspec.Meta(max_length=200)] = ""


class MemberPut(msgspec.Struct):
    """Add a member (by email) or change their role.

    A person without an account gets one, with a random password shown once in the answer.
    """

    email: Email
    role: Role
    name: Annotated[str, msgspec.Meta(max_length=200)] = ""


class Member(msgspec.Struct):
    """A member of a workspace."""

    user_id: str
    email: str
    name: str
    role: Role


class MemberSaved(msgspec.Struct):
    """A member as saved; ``password`` only when an account was created (shown once)."""

    member: Member
    created_account: bool = False
    password: str | None = None


TokenScope = Literal["read", "runs"]


class TokenCreate(msgspec.Struct):
    """A new API token for the caller in this workspace, optionally limited: it stops
    working at ``expires_at`` (a future time with a time zone); ``scope`` ``read`` only
    reads, ``runs`` only lists, reads and starts runs; ``flow_id`` reaches only that flow
    and its runs. Without limits it acts with the caller's role until revoked."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    expires_at: Annotated[dt.datetime, msgspec.Meta(tz=True)] | None = None
    scope: TokenScope | None = None
    flow_id: FlowId | None = None


class TokenInfo(msgspec.Struct):
    """An API token (never the token itself), with its limits (null: none)."""

    id: str
    name: str
    user_id: str
    email: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None = None
    expires_at: dt.datetime | None = None
    scope: TokenScope | None = None
    flow_id: str | None = None


class TokenCreated(msgspec.Struct):
    """A new API token: ``token`` is shown this once and cannot be shown again."""

    id: str
    name: str
    token: str
    expires_at: dt.datetime | None = None
    scope: TokenScope | None = None
    flow_id: str | None = None


# -- flows ----------------------------------------------------------------------------------


class FlowSave(msgspec.Struct):
    """A flow document, as data (``document``) or as YAML/JSON text (``source``)."""

    document: dict[str, Any] | None = None
    source: Annotated[str, msgspec.Meta(max_length=2_000_000)] | None = None
    message: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    publish: bool = False
    #: The version this edit started from (an update only): when another version was saved
    #: since, nothing is saved and the answer is 409 ``version_conflict`` with the diff.
    base_version: Annotated[int, msgspec.Meta(ge=0)] | None = None


class FlowImport(msgspec.Struct):
    """A flow as YAML (or JSON) text; saved as a new version of the flow it names."""

    source: Annotated[str, msgspec.Meta(max_length=2_000_000)]
    message: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    publish: bool = False


class FlowSummary(msgspec.Struct):
    """A flow's identity and state."""

    id: str
    name: str
    enabled: bool
    trigger_type: str
    published_version: int | None
    latest_version: int
    created_at: dt.datetime
    updated_at: dt.datetime


class FlowDetail(msgspec.Struct):
    """A flow with the document of one version (the published one, else the latest)."""

    flow: FlowSummary
    version: int
    document: dict[str, Any]


class FlowPage(msgspec.Struct):
    """A page of flows; pass ``next_cursor`` as ``cursor`` for the next one."""

    items: list[FlowSummary]
    next_cursor: str | None = None


class SavedFlow(msgspec.Struct):
    """The result of saving: the version, whether it is new, and what changed."""

    flow_id: str
    version: int
    created: bool
    published: bool
    changes: list[str]


class Validation(msgspec.Struct):
    """Whether a document is valid, and every issue with its location."""

    valid: bool
    issues: list[Issue]


class VersionInfo(msgspec.Struct):
    """One immutable version of a flow."""

    version: int
    author: str
    message: str
    checksum: str
    created_at: dt.datetime
    published: bool


class VersionDetail(msgspec.Struct):
    """A version with its document and the text it was saved from."""

    info: VersionInfo
    document: dict[str, Any]
    source: str


class FlowDiff(msgspec.Struct):
    """What changed between two versions: summary lines and a unified diff of the YAML."""

    flow_id: str
    from_version: int
    to_version: int
    changes: list[str]
    unified: str


class PublishBody(msgspec.Struct):
    """Which version to publish (default: the latest; for a roll back: the one before)."""

    version: Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)] | None = None


class Published(msgspec.Struct):
    """The published version now, and the one before."""

    flow_id: str
    published_version: int
    previous_version: int | None


# -- runs -----------------------------------------------------------------------------------


class RunStart(msgspec.Struct):
    """Start a run of a flow (its published version unless ``version``)."""

    flow_id: FlowId
    input: Any = None
    version: Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)] | None = None


class RunStarted(msgspec.Struct):
    """A run that was started."""

    run_id: str
    status: str


class RunSummary(msgspec.Struct):
    """A run in a list."""

    id: str
    flow_id: str
    flow_version: int
    status: str
    trigger_type: str
    parent_run_id: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    duration_ms: float | None
    error: Any = None
    #: A trial run (the flow builder's "try it"): listed only with ``trial=true``.
    trial: bool = False


class RunPage(msgspec.Struct):
    """A page of runs, newest first; pass ``next_cursor`` as ``cursor`` for the next one."""

    items: list[RunSummary]
    next_cursor: str | None = None


class StepAttempt(msgspec.Struct):
    """One attempt of one step (inputs and outputs as stored: secrets already redacted)."""

    key: str
    step_id: str
    item_index: int | None
    attempt: int
    status: str
    input: Any
    output: Any
    error: Any
    due_at: dt.datetime | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    duration_ms: float | None
    #: A trial run's pinned step (``GET /runs/{id}`` only): not called, its output pinned.
    pinned: bool = False


class RunDetail(msgspec.Struct):
    """A run with its trigger data, output, error and every step attempt."""

    id: str
    flow_id: str
    flow_version: int
    status: str
    trigger_type: str
    trigger: Any
    output: Any
    error: Any
    parent_run_id: str | None
    parent_step_key: str | None
    depth: int
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    duration_ms: float | None
    steps: list[StepAttempt]
    #: A trial run: its flow (version 0) is the document it was started with (see
    #: ``GET /api/w/{workspace}/flows/{flow_id}/trials/{run_id}``).
    trial: bool = False


class RunCancelled(msgspec.Struct):
    """Whether the cancel stopped the run (False: it had already finished)."""

    run_id: str
    cancelled: bool


class RunRetried(msgspec.Struct):
    """The run is running again; ``retried`` lists the step keys given a new attempt."""

    run_id: str
    status: str
    retried: list[str]


class StepTest(msgspec.Struct):
    """One step tried on sample data, without a run.

    ``input`` is rendered against ``{trigger, steps}`` (``steps`` maps a step id to its
    sample output) like a step's input in a flow, validated, and the action is called.
    """

    action: Annotated[str, msgspec.Meta(max_length=201)]
    input: Any = None
    connection: Name | None = None
    trigger: Any = None
    steps: dict[str, Any] = msgspec.field(default_factory=dict)
    timeout: Annotated[float, msgspec.Meta(gt=0, le=300)] | None = None


class StepTestResult(msgspec.Struct):
    """The rendered input and the action's output, or the error (secrets redacted)."""

    ok: bool
    input: Any
    output: Any
    error: Any
    duration_ms: float


# -- connectors and connections -------------------------------------------------------------


class ActionInfo(msgspec.Struct):
    """An action of a connector with its schemas and policies."""

    name: str
    full_name: str
    title: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    needs_connection: bool
    idempotent: bool
    cache: dict[str, Any] | None
    rate_limit: dict[str, Any] | None
    timeout: float | None
    options: list[str]


class TriggerInfo(msgspec.Struct):
    """A trigger of a connector."""

    name: str
    kind: str
    title: str
    description: str
    config_schema: dict[str, Any]
    output_schema: dict[str, Any]


class ConnectorInfo(msgspec.Struct):
    """An installed connector: its connection schema (secrets marked), actions, triggers."""

    name: str
    title: str
    version: str
    icon: str
    description: str
    connection_schema: dict[str, Any] | None
    secret_fields: list[str]
    oauth2: dict[str, Any] | None
    notes: str
    plugin: str
    actions: list[ActionInfo]
    triggers: list[TriggerInfo]


class OptionsQuery(msgspec.Struct):
    """Ask for the options of a field: with a connection and the input filled in so far."""

    connection: Name | None = None
    input: dict[str, Any] = msgspec.field(default_factory=dict)


class Options(msgspec.Struct):
    """The options of a field, as the action lists them (``[{value, label}, ...]``)."""

    options: list[dict[str, Any]]


class ConnectionCreate(msgspec.Struct):
    """A new connection; ``values`` follow the connector's connection schema."""

    name: Name
    connector: Annotated[str, msgspec.Meta(max_length=100)]
    values: dict[str, Any] = msgspec.field(default_factory=dict)


class ConnectionUpdate(msgspec.Struct):
    """Change some values (the others, secrets included, are kept); ``unset`` removes fields."""

    values: dict[str, Any] = msgspec.field(default_factory=dict)
    unset: list[str] = msgspec.field(default_factory=list)


class OAuthStatus(msgspec.Struct):
    """Whether the connection holds OAuth2 tokens, and until when the access token lasts."""

    connected: bool
    expires_at: dt.datetime | None = None
    scope: str | None = None
    has_refresh_token: bool = False


class ConnectionInfo(msgspec.Struct):
    """A connection: its non-secret settings and which secret fields are set (never values)."""

    name: str
    connector: str
    settings: dict[str, Any]
    secret_fields: list[str]
    secrets_set: list[str]
    oauth2: OAuthStatus | None
    created_at: dt.datetime
    updated_at: dt.datetime


class ConnectionTested(msgspec.Struct):
    """The outcome of the connector's connection test (the message is redacted)."""

    ok: bool
    message: str


# -- audit ----------------------------------------------------------------------------------


class AuditItem(msgspec.Struct):
    """Who did what to what, when."""

    id: int
    actor: str
    action: str
    target: str
    details: Any
    at: dt.datetime


class AuditPage(msgspec.Struct):
    """A page of the audit log, newest first."""

    items: list[AuditItem]
    next_cursor: str | None = None


class TrialStart(msgspec.Struct):
    """A trial run of a draft: the document (its ``id`` is the flow's, which need not be
    saved), the trigger data, pinned outputs (``{step id: output}``: those steps are not
    called) and the step to stop after (only it and its ancestors run)."""

    document: dict[str, Any]
    trigger: Any = None
    pins: dict[str, Any] | None = None
    stop_after: Annotated[str, msgspec.Meta(max_length=100)] | None = None


class TrialDetail(msgspec.Struct):
    """What a trial run ran: the document, its pins and the step it stopped after."""

    run_id: str
    flow_id: str
    document: dict[str, Any]
    pins: dict[str, Any]
    stop_after: str | None
