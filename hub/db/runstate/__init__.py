"""The run protocol's transactions: every state change of runs and steps, each one
database transaction (claims, completions, failures, fan-outs, finishing a run).

They live in the storage layer because a transition *is* its SQL: the WHERE clauses that
check attempt, lease owner and status are what make a step complete once. The engine
(:mod:`hub.engine`) decides when to run them and submits the jobs they return.
"""
