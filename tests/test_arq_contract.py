"""The parts of arq that the queue-mode worker overrides, calls or reads, as they are in the
arq version pinned in pyproject.toml (hub/engine/executors/arq/worker.py reworks arq's
``Worker`` through its private methods and attributes).

When arq changes one of them, a test here fails and names it: read the new arq's code of
that method before moving the pin.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import pytest
from arq import connections, constants, jobs, worker

from hub.engine.executors.arq.queues import redis_settings
from hub.engine.executors.arq.worker import WakingWorker


def parameters(function: Callable[..., Any]) -> list[tuple[str, str]]:
    """The names and kinds of a callable's parameters (defaults and annotations aside)."""
    return [(p.name, p.kind.name) for p in inspect.signature(function).parameters.values()]


# Methods of arq's Worker that WakingWorker overrides or calls: (name, parameters, async).
WORKER_METHODS = [
    ("start_jobs", [("self", "POSITIONAL_OR_KEYWORD"), ("job_ids", "POSITIONAL_OR_KEYWORD")], True),
    ("_poll_iteration", [("self", "POSITIONAL_OR_KEYWORD")], True),
    ("main", [("self", "POSITIONAL_OR_KEYWORD")], True),
    ("async_run", [("self", "POSITIONAL_OR_KEYWORD")], True),
    ("close", [("self", "POSITIONAL_OR_KEYWORD")], True),
    ("heart_beat", [("self", "POSITIONAL_OR_KEYWORD")], True),
    ("_release_sem_dec_counter_on_complete", [("self", "POSITIONAL_OR_KEYWORD")], False),
]

# Attributes of a Worker that WakingWorker reads or sets.
WORKER_ATTRIBUTES = [
    "_pool",
    "allow_pick_jobs",
    "burst",
    "ctx",
    "expires_extra_ms",
    "functions",
    "in_progress_timeout_s",
    "job_counter",
    "job_deserializer",
    "job_serializer",
    "jobs_complete",
    "jobs_failed",
    "loop",
    "main_task",
    "max_jobs",
    "poll_delay_s",
    "queue_name",
    "queue_read_limit",
    "redis_settings",
    "sem",
    "tasks",
]

# Keyword arguments the hub passes to Worker() (hub/engine/executors/arq/serve.py).
WORKER_KWARGS = [
    "functions",
    "queue_name",
    "redis_settings",
    "ctx",
    "burst",
    "handle_signals",
    "max_jobs",
    "job_timeout",
    "keep_result",
    "max_tries",
    "retry_jobs",
    "poll_delay",
    "job_serializer",
    "job_deserializer",
    "log_results",
]


@pytest.mark.parametrize(("name", "expected", "is_async"), WORKER_METHODS)
def test_worker_method(name: str, expected: list[tuple[str, str]], is_async: bool) -> None:
    """arq's Worker still has the method, with the same parameters, sync or async alike."""
    method = getattr(worker.Worker, name, None)
    assert method is not None, f"arq.worker.Worker.{name} is gone"
    assert parameters(method) == expected, (
        f"arq.worker.Worker.{name} changed its parameters: {inspect.signature(method)}"
    )
    assert inspect.iscoroutinefunction(method) is is_async, (
        f"arq.worker.Worker.{name} is {'no longer' if is_async else 'now'} a coroutine function"
    )


def test_worker_init_keywords() -> None:
    """arq's Worker() still takes every keyword argument the hub gives it."""
    taken = inspect.signature(worker.Worker.__init__).parameters
    missing = [name for name in WORKER_KWARGS if name not in taken]
    assert not missing, f"arq.worker.Worker.__init__ no longer takes {missing}"


@pytest.mark.parametrize("name", WORKER_ATTRIBUTES)
def test_worker_attribute(name: str) -> None:
    """A Worker made as the hub makes one still has the attribute."""
    made = worker.Worker(
        functions=[worker.func(_noop, name="noop")],
        redis_settings=redis_settings("redis://127.0.0.1:1/0"),
        handle_signals=False,
    )
    assert hasattr(made, name), f"arq.worker.Worker has no attribute {name!r} any more"


def test_worker_pool_property() -> None:
    """``Worker.pool`` is still the property over ``_pool`` that the worker reads."""
    assert isinstance(inspect.getattr_static(worker.Worker, "pool", None), property), (
        "arq.worker.Worker.pool is no longer a property"
    )


def test_function_coroutine() -> None:
    """arq's Function (``self.functions[name]``) still carries the job's ``coroutine``."""
    names = [field.name for field in dataclasses.fields(worker.Function)]
    assert "coroutine" in names, "arq.worker.Function has no field 'coroutine' any more"


def test_job_encoding() -> None:
    """serialize_job and deserialize_job_raw still take and give what the hub relies on."""
    assert parameters(jobs.serialize_job) == [
        ("function_name", "POSITIONAL_OR_KEYWORD"),
        ("args", "POSITIONAL_OR_KEYWORD"),
        ("kwargs", "POSITIONAL_OR_KEYWORD"),
        ("job_try", "POSITIONAL_OR_KEYWORD"),
        ("enqueue_time_ms", "POSITIONAL_OR_KEYWORD"),
        ("serializer", "KEYWORD_ONLY"),
    ], f"arq.jobs.serialize_job changed: {inspect.signature(jobs.serialize_job)}"
    assert parameters(jobs.deserialize_job_raw) == [
        ("r", "POSITIONAL_OR_KEYWORD"),
        ("deserializer", "KEYWORD_ONLY"),
    ], f"arq.jobs.deserialize_job_raw changed: {inspect.signature(jobs.deserialize_job_raw)}"
    data = jobs.serialize_job("run_step", ("r", "k", 1, 0), {}, None, 123)
    decoded = jobs.deserialize_job_raw(data)
    assert len(decoded) == 5, "arq.jobs.deserialize_job_raw no longer gives 5 values"
    assert decoded[0] == "run_step" and tuple(decoded[1]) == ("r", "k", 1, 0), (
        "arq.jobs.deserialize_job_raw gives (name, args, ...) in another order"
    )
    assert decoded[4] == 123, "arq.jobs.deserialize_job_raw no longer ends with the enqueue time"


def test_create_pool_keywords() -> None:
    """arq's create_pool still takes the keyword arguments the hub gives it."""
    taken = inspect.signature(connections.create_pool).parameters
    for name in ("job_serializer", "job_deserializer", "default_queue_name", "expires_extra_ms"):
        assert name in taken, f"arq.connections.create_pool no longer takes {name!r}"


def test_redis_settings_fields() -> None:
    """RedisSettings still has the retry fields the hub sets."""
    names = [field.name for field in dataclasses.fields(connections.RedisSettings)]
    for name in ("conn_retries", "conn_retry_delay"):
        assert name in names, f"arq.connections.RedisSettings has no field {name!r} any more"


def test_key_prefixes() -> None:
    """The Redis key prefixes the Lua scripts rely on are arq's."""
    assert constants.job_key_prefix == "arq:job:", "arq.constants.job_key_prefix changed"
    assert constants.in_progress_key_prefix == "arq:in-progress:", (
        "arq.constants.in_progress_key_prefix changed"
    )
    assert constants.result_key_prefix == "arq:result:", "arq.constants.result_key_prefix changed"


def test_overrides_are_overrides() -> None:
    """Each method WakingWorker defines in arq's name still overrides one of arq's."""
    for name in ("start_jobs", "main"):
        assert name in vars(WakingWorker), f"WakingWorker no longer overrides {name}"
        assert hasattr(worker.Worker, name), f"arq.worker.Worker.{name} is gone"


async def _noop(ctx: dict[str, Any]) -> None:
    """A job function for the Worker made above (never called)."""
