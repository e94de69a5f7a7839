"""Queue mode: step jobs travel through Redis with arq; any ``hub worker`` runs them.

The only package that imports arq: :mod:`.executor` submits jobs (:class:`ArqExecutor`),
:mod:`.worker` runs them (arq's worker, reworked), :mod:`.wake` carries the wake-ups and
the requests for work between processes, :mod:`.serve` runs a worker process's queues
(:func:`run_worker`), and :mod:`.queues` names the queues and encodes the jobs. Around
arq's known gaps:

- arq silently drops a job whose id it still holds: ids are deterministic and unique per
  submission (run, step key, attempt, resubmission counter) and results are not kept.
- Jobs are serialised with msgpack, not pickle.
- The database decides what runs: a job is a hint, the claim in SQL makes it happen once,
  and a job lost with Redis is found again by the sweeper (the step is still ``queued``).
- arq keeps a killed worker's job locked for its timeout: the hub's own leases and sweeper
  decide when a step runs again, not arq's retries (``max_tries=1``, ``retry_jobs=False``).
- SIGTERM: stop taking jobs, let running steps finish within the grace period, then hand
  the rest back to ``queued`` with their attempt unchanged and submit them again.
- Priority: one queue per priority (``hub``, ``hub:high``, ``hub:low``); a worker process
  runs one arq worker per queue it serves, each with its own capacity.
- Waking instead of polling: arq polls its queue every ``poll_delay``; a worker process
  serving three queues at 5 ms would make 600 Redis round trips a second while idle. Here
  every submission also publishes on the queue's wake channel (``<queue>:wake``); an idle worker
  waits for that message, for its queue's next deferred job to come due, or at most
  ``HUB_QUEUE_IDLE_POLL`` seconds (the safety net for a message lost with Redis), and polls
  every ``poll_delay`` only while it is finding work or is full.
- Round trips: arq takes a job in four sequential round trips and runs it in two more,
  each on a pooled connection of its own; here a poll takes its jobs, with their data, in
  one script call, and the jobs that end in one turn of the loop are finished together.
- A run's next step runs where its step ran (without a job): an idle worker asks the
  queue's other workers for work (``<queue>:hungry``), and each sheds a share of its runs'
  next steps through the queue for a moment.
"""

from hub.engine.executors.arq.executor import ArqExecutor
from hub.engine.executors.arq.queues import PRIORITIES, queue_for
from hub.engine.executors.arq.serve import run_worker

__all__ = ["PRIORITIES", "ArqExecutor", "queue_for", "run_worker"]
