"""The run protocol's driver: it takes ready steps from the executor, runs them and records
what happened through the run-state transactions of :mod:`hub.db.runstate`.

- :mod:`hub.engine.engine`: :class:`Engine`, executing one step, and recording its result;
  its parts: :mod:`hub.engine.runs` (starting, cancelling, waiting for runs),
  :mod:`hub.engine.capacity` (how many steps run here, shedding work),
  :mod:`hub.engine.reads` (cached flows, runs, outputs, connections);
- :mod:`hub.engine.step_call`: the step call (render, validate, call, validate), shared
  with step tests and ``hub.testing``;
- :mod:`hub.engine.recovery`: the sweeper, leases, heartbeats, graceful hand-back;
- :mod:`hub.engine.limits`: rate limits and concurrency caps of actions and flows;
- :mod:`hub.engine.run_ops`: retrying and replaying finished runs;
- :mod:`hub.engine.executors`: where jobs run (in process, or arq workers over Redis).
"""

from hub.db.runstate.types import RunNotFound
from hub.engine.engine import Engine
from hub.engine.runs import new_run_id

__all__ = ["Engine", "RunNotFound", "new_run_id"]
