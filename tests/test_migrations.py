"""The alembic migrations and the models describe the same schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from hub.db.models import Base
from tests.services import PostgresServer


def diff(url: str) -> list:
    engine = create_engine(url)
    with engine.connect() as conn:
        found = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    return found


def test_migrated_sqlite_matches_the_models(template_db: Path) -> None:
    assert diff(f"sqlite:///{template_db}") == []


def test_migrated_postgres_matches_the_models(postgres: PostgresServer) -> None:
    assert diff(postgres.url("hub_template")) == []


@pytest.mark.parametrize("table", ["workspaces", "flows", "runs", "steps", "connections"])
def test_workspace_owned_tables_carry_workspace_id(table: str) -> None:
    columns = Base.metadata.tables[table].columns
    if table == "workspaces":
        assert "id" in columns
    elif table == "steps":
        assert "run_id" in columns  # a step belongs to a run, which carries the workspace
    else:
        assert "workspace_id" in columns


async def test_processes_starting_at_once_on_a_new_database_all_start(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    """Several serve/worker processes often start together: creating the default workspace
    must not race (it once failed with a unique violation in all but one of them)."""
    import asyncio
    import uuid

    from hub.runtime import Hub
    from hub.settings import Settings

    url = postgres.create_database(f"hub_{uuid.uuid4().hex[:12]}", template="hub_template")
    settings = Settings(data_dir=tmp_path, database_url=url)
    hubs = [Hub(settings, entry_points=False) for _ in range(6)]
    await asyncio.gather(*(h.start(migrate=False, background=False) for h in hubs))
    try:
        assert all(h.workspace == "default" for h in hubs)
    finally:
        for h in hubs:
            await h.stop(grace=0)
