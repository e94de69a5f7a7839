"""The hub as one workspace's caller sees it: every query and change passes that workspace.

:class:`WorkspaceHub` combines the workspace services (flows and versions, runs,
connections and secrets, members and tokens, the audit log), each in its own module, over
one :class:`~hub.services.base.WorkspaceScope`: a hub's parts, a workspace id and the
caller (actor, user id, role). Every face builds one and calls it: the API per request once
the guard has checked membership (actor: the caller's email), the CLI for the command
(actor ``cli:<OS user>``, role ``owner``), :class:`hub.runtime.Hub` for its convenience
methods (actor ``system``). Each change is checked against the caller's role and written to
the audit log in the same transaction, whoever calls.
"""

from __future__ import annotations

from hub.services.audit import AuditService
from hub.services.connections import ConnectionsService
from hub.services.drafts import DraftsService
from hub.services.flows import FlowsService
from hub.services.members import MembersService
from hub.services.runs import RunsService
from hub.services.trials import TrialsService


class WorkspaceHub(
    DraftsService,
    TrialsService,
    FlowsService,
    RunsService,
    ConnectionsService,
    MembersService,
    AuditService,
):
    """One workspace of a hub, acting for one caller (named in the audit log)."""
