"""What every workspace service stands on: the hub's parts, the workspace, the caller.

:class:`WorkspaceScope` binds the parts of a hub (:class:`HubParts`, which
:class:`hub.runtime.Hub` provides), one workspace, and the caller acting there: the actor
named in the audit log (an email, ``cli:<OS user>``, ``system``), the user id and the role.
The service mixins (:mod:`hub.services.flows`, ``runs``, ``connections``, ``members``,
``audit``) derive from it; :class:`hub.services.workspace.WorkspaceHub` combines them.
"""

from __future__ import annotations

from typing import Any, Protocol

from hub.db import audit
from hub.expressions import Expressions
from hub.security.accounts import at_least
from hub.security.secrets import SecretBox
from hub.services.errors import Forbidden
from hub.triggers.parts import TriggerParts

#: The actor of the hub's own in-process calls (:class:`hub.runtime.Hub`'s convenience
#: methods: tests, benchmarks, the examples ``hub serve --examples`` applies).
SYSTEM = "system"


class HubParts(TriggerParts, Protocol):
    """The parts of a hub the services use (a :class:`hub.runtime.Hub` has them all): the
    triggers' parts, and the expressions, secrets and Redis."""

    expressions: Expressions
    secrets: SecretBox
    redis: Any


def require_role(role: str | None, required: str, workspace: str) -> None:
    """Refuse (:class:`Forbidden`) unless ``role`` grants ``required`` in ``workspace``."""
    if not at_least(role, required):
        raise Forbidden(
            f"this needs the {required} role in workspace {workspace!r}; you are {role}"
        )


class WorkspaceScope:
    """A hub bound to one workspace, acting for one caller (named in the audit log)."""

    def __init__(
        self,
        hub: HubParts,
        workspace: str,
        *,
        actor: str,
        user_id: str = "",
        role: str = "viewer",
    ) -> None:
        self.hub = hub
        self.workspace = workspace
        self.actor = actor
        self.user_id = user_id
        self.role = role

    def require(self, required: str) -> None:
        """Refuse (:class:`Forbidden`) unless the caller's role grants ``required`` here."""
        require_role(self.role, required, self.workspace)

    async def audit(self, action: str, target: str, details: Any = None) -> None:
        """Record an action that has no transaction of its own (a run cancelled, a test)."""
        ws, actor = self.workspace, self.actor
        await self.hub.db.write(lambda c: audit.record(c, ws, actor, action, target, details))
