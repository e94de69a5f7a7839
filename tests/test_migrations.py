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
