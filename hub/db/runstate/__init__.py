"""The run protocol's transactions: every state change of runs and steps, each one
database transaction (claims, completions, failures, fan-outs, finishing a run).

They live in the storage layer because a transition *is* its SQL: the WHERE clauses that
check attempt, lease owner and status are what make a step complete once. The engine,
above this layer, decides when to run them and submits the jobs they return.

- :mod:`.types`: the values they take and return (``StepJob``, ``Outcome``, ``RunInfo``);
- :mod:`.statements`: their prebuilt SQL statements;
- :mod:`.rows`: inserting runs and steps, claiming one step, reading a run's facts;
- :mod:`.transitions`: completing, failing, suspending, expanding steps, finishing runs;
- :mod:`.claims`, :mod:`.completions`: claims and completions batched across runs;
- :mod:`.output`: a run's output; :mod:`.retry`: retrying a failed run.
"""
