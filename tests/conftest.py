"""Shared fixtures: a hub on a fresh SQLite data folder with the test plugin loaded."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.runtime import Hub
from hub.settings import Settings
from hub.testing.hostile import hub_command, stop_process
from tests import kit
from tests.services import PostgresServer, RedisServer

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database, made once and copied for each test (migrations are slow)."""
    folder = tmp_path_factory.mktemp("template")
    hub = Hub(Settings(data_dir=folder), entry_points=False)
    hub.migrate()
    hub.db.sync_engine.dispose()
    return folder / "hub.db"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server for the session, with a migrated template database."""
    server = PostgresServer()
    server.start()
    url = server.create_database("hub_template")
    hub = Hub(Settings(data_dir=Path(server.dir), database_url=url), entry_points=False)
    hub.migrate()
    hub.db.sync_engine.dispose()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A throwaway Redis server for the session (no persistence)."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def backend() -> str:
    """Which shape the hub runs in; test modules override it to run in several shapes."""
    return "sqlite"


@pytest.fixture
def settings(
    request: pytest.FixtureRequest, tmp_path: Path, template_db: Path, backend: str
) -> Settings:
    """Settings on a fresh data folder (and a fresh database) for the chosen backend."""
    base = Settings(data_dir=tmp_path, sweep_interval=0.2, lease_seconds=2.0)
    if backend == "sqlite":
        shutil.copy(template_db, tmp_path / "hub.db")
        return base
    pg: PostgresServer = request.getfixturevalue("postgres")
    url = pg.create_database(f"hub_{uuid.uuid4().hex[:12]}", template="hub_template")
    if backend == "postgres":
        return base.replace(database_url=url)
    redis: RedisServer = request.getfixturevalue("redis_server")
    return base.replace(
        database_url=url, redis_url=redis.url, queue_name=f"q{uuid.uuid4().hex[:8]}"
    )


@pytest.fixture(autouse=True)
def _reset_kit() -> Iterator[None]:
    kit.reset()
    yield


def make_hub(settings: Settings, plugins: Any = (kit,), **kwargs: Any) -> Hub:
    """A hub with the test plugin (entry points off, so the suite sees only what it loads)."""
    return Hub(settings, plugins=plugins, entry_points=False, **kwargs)


@contextlib.asynccontextmanager
async def started(settings: Settings, **kwargs: Any) -> AsyncIterator[Hub]:
    """A started hub; in queue mode an arq worker runs in this process beside it."""
    instance = make_hub(settings, **kwargs)
    await instance.start(migrate=False)
    stop = asyncio.Event()
    worker = None
    if settings.redis_url:
        from hub.engine.executors.arq import PRIORITIES, run_worker

        worker = asyncio.create_task(run_worker(instance, queues=PRIORITIES, stop=stop))
    try:
        yield instance
    finally:
        stop.set()
        if worker is not None:
            await worker
        await instance.stop(grace=1.0)


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a ``hub worker`` process on the queue of ``settings`` (its data
    folder, database, Redis and queue name), with ``extra`` added; this process's ``HUB_*``
    variables are dropped, so that only these reach the worker."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("HUB_")},
        "HUB_DATA_DIR": str(settings.data_dir),
        "HUB_DATABASE_URL": settings.database_url,
        "HUB_REDIS_URL": settings.redis_url,
        "HUB_QUEUE_NAME": settings.queue_name,
        **extra,
    }


@contextlib.asynccontextmanager
async def worker_process(
    settings: Settings, log: Path, **extra: str
) -> AsyncIterator[subprocess.Popen[bytes]]:
    """A ``hub worker`` process on the queue of ``settings`` (:func:`worker_env`, with
    ``extra``), its output in ``log``; stopped (SIGTERM, then SIGKILL) when the block ends."""
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [hub_command(), "worker"],
            env=worker_env(settings, **extra),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield worker
    finally:
        await asyncio.to_thread(stop_process, worker)


@pytest.fixture
async def hub(settings: Settings) -> AsyncIterator[Hub]:
    """A started hub (the backend's shape) with the test plugin."""
    async with started(settings) as instance:
        yield instance


async def run_flow(
    hub: Hub, document: dict[str, Any], input: Any = None, timeout: float = 30
) -> dict[str, Any]:
    """Save and publish a document, run it, and return the finished run with its steps."""
    saved = await hub.save_flow(document, publish=True)
    run_id = await hub.start_run(saved.flow_id, input)
    await hub.wait_for_run(run_id, timeout)
    return await hub.get_run(run_id)
