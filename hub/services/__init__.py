"""The workspace service layer: the one path the faces (API, CLI, UI) take to act on the
hub, validated, authorised and audited in one place.

- :mod:`hub.services.workspace`: :class:`~hub.services.workspace.WorkspaceHub`, one
  workspace for one caller, combining :mod:`~hub.services.flows`,
  :mod:`~hub.services.runs`, :mod:`~hub.services.connections` (with
  :mod:`~hub.services.oauth2`), :mod:`~hub.services.members` and
  :mod:`~hub.services.audit` over :mod:`~hub.services.base`;
- :mod:`hub.services.accounts`: tokens, sessions, logging in, one's workspaces;
- :mod:`hub.services.system`: readiness, metrics' gauges, the secret key, the first owner;
- :mod:`hub.services.errors`: the domain errors (the API maps them to HTTP).
"""
