"""The run protocol's driver: it takes ready steps from the executor, runs them and records
what happened through the run-state transactions of :mod:`hub.db.runstate`.

- :mod:`hub.engine.engine`: :class:`Engine`, starting runs and executing one step;
- :mod:`hub.engine.recovery`: the sweeper, leases, heartbeats, graceful hand-back;
- :mod:`hub.engine.limits`: rate limits and concurrency caps of actions and flows;
- :mod:`hub.engine.run_ops`: retrying and replaying finished runs;
- :mod:`hub.engine.executors`: where jobs run (in process, or arq workers over Redis).
"""

from hub.engine.engine import Engine, RunNotFound, new_run_id

__all__ = ["Engine", "RunNotFound", "new_run_id"]
