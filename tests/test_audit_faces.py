"""Every face leaves the same audit trail: the services write it, whoever calls them.

The CLI runs as a real process (``hub ...`` on the test's data folder) and acts as
``cli:<OS user>``; the API acts as the caller's email. A change made through either leaves
an audit row of the same action with details of the same shape.
"""

from __future__ import annotations

import getpass
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hub.settings import Settings
from tests.api_kit import Api, started_api
from tests.test_cli import hub as run_hub
from tests.test_cli import ok

CLI_ACTOR = f"cli:{getpass.getuser()}"


def noop_flow(flow_id: str, name: str = "") -> dict[str, Any]:
    """A flow of one built-in step (every hub has it, the CLI's and the test app's)."""
    return {
        "id": flow_id,
        "name": name or flow_id,
        "steps": [{"id": "a", "action": "flow.noop", "input": {}}],
    }


def audit_rows(data_dir: Path) -> list[dict[str, Any]]:
    """Every audit row of the data folder's database, oldest first."""
    db = sqlite3.connect(f"file:{data_dir / 'hub.db'}?mode=ro", uri=True, timeout=5)
    try:
        rows = db.execute(
            "SELECT actor, action, target, details FROM audit_log ORDER BY id"
        ).fetchall()
    finally:
        db.close()
    return [
        {"actor": a, "action": b, "target": c, "details": json.loads(d) if d else None}
        for a, b, c, d in rows
    ]


def shape(row: dict[str, Any]) -> tuple[str, Any]:
    """What must match between faces: the action and the details' keys and value types."""
    details = row["details"]
    if isinstance(details, dict):
        return row["action"], sorted((k, type(v).__name__) for k, v in details.items())
    return row["action"], details


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async for value in started_api(settings):
        yield value


def test_hub_flows_apply_writes_audit_rows(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "tidy.yaml").write_text(yaml.safe_dump(noop_flow("tidy")))
    ok(run_hub(tmp_path, "flows", "apply", str(folder)))
    (folder / "tidy.yaml").write_text(yaml.safe_dump(noop_flow("tidy", "Tidy up")))
    ok(run_hub(tmp_path, "flows", "apply", str(folder)))
    ok(run_hub(tmp_path, "flows", "apply", str(folder)))  # unchanged: nothing to record
    rows = [r for r in audit_rows(tmp_path) if r["target"] == "tidy"]
    assert rows == [
        {
            "actor": CLI_ACTOR,
            "action": "flow.create",
            "target": "tidy",
            "details": {"version": 1, "published": True},
        },
        {
            "actor": CLI_ACTOR,
            "action": "flow.save",
            "target": "tidy",
            "details": {"version": 2, "published": True},
        },
    ]


def test_the_cli_audits_users_tokens_and_runs(tmp_path: Path) -> None:
    ok(run_hub(tmp_path, "users", "create", "ops@example.com", "--role", "owner"))
    ok(run_hub(tmp_path, "tokens", "create", "--email", "ops@example.com", "--name", "ci"))
    flow_file = tmp_path / "once.yaml"
    flow_file.write_text(yaml.safe_dump(noop_flow("once")))
    ok(run_hub(tmp_path, "run", str(flow_file), "--quiet"))
    rows = audit_rows(tmp_path)
    assert {r["actor"] for r in rows} == {CLI_ACTOR}
    assert [r["action"] for r in rows] == ["member.add", "token.create", "flow.create", "run.start"]
    assert rows[1]["details"] == {"user": "ops@example.com"}
    assert rows[3]["details"] == {"flow_id": "once"}


async def test_a_change_through_the_api_and_through_the_cli_leave_the_same_kind_of_row(
    api: Api, settings: Settings
) -> None:
    base = "/api/w/default"
    made = await api.call(
        "POST", f"{base}/flows", api.editor, json={"document": noop_flow("by-api"), "publish": True}
    )
    assert made.status_code == 201, made.text
    member = await api.call(
        "PUT",
        f"{base}/members",
        api.owner,
        json={"email": "api-made@example.com", "role": "viewer"},
    )
    assert member.status_code == 200, member.text
    started = await api.call("POST", f"{base}/runs", api.editor, json={"flow_id": "by-api"})
    assert started.status_code == 202, started.text

    folder = settings.data_dir / "flows"
    folder.mkdir()
    (folder / "by-cli.yaml").write_text(yaml.safe_dump(noop_flow("by-cli")))
    ok(run_hub(settings.data_dir, "flows", "apply", str(folder)))
    ok(run_hub(settings.data_dir, "users", "create", "cli-made@example.com", "--role", "viewer"))
    ok(run_hub(settings.data_dir, "run", str(folder / "by-cli.yaml"), "--quiet"))

    rows = audit_rows(settings.data_dir)
    by_api = [r for r in rows if r["actor"] in (api.editor.email, api.owner.email)]
    by_cli = [r for r in rows if r["actor"] == CLI_ACTOR]
    assert [r["action"] for r in by_api] == ["flow.create", "member.add", "run.start"]
    assert [shape(r) for r in by_cli] == [shape(r) for r in by_api]
    assert [r["target"] for r in by_cli][:2] == ["by-cli", "cli-made@example.com"]
