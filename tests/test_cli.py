"""The ``hub`` console script, driven as a user would: a real process on a real data folder.

Every test runs the installed entry point (``hub.cli:main``, plugin ``hub_cli`` hooks
included) with ``HUB_DATA_DIR`` pointing at a fresh folder under ``tmp_path``.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from hub.flows import parse_document

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
EXAMPLE_FLOWS = sorted(p.stem for p in EXAMPLES.glob("*.yaml"))
HUB = shutil.which("hub", path=str(Path(sys.executable).parent)) or str(
    Path(sys.executable).parent / "hub"
)

# A plugin module whose connector has a connection schema with a write-only (secret) token.
VAULT_PLUGIN = """
from hub import Action, Connector, hookimpl


async def ping(ctx, data):
    return {"ok": True}


@hookimpl
def hub_connectors():
    schema = {
        "type": "object",
        "properties": {
            "token": {"type": "string", "writeOnly": True},
            "region": {"type": "string"},
        },
        "required": ["token"],
    }
    return [
        Connector(
            name="vault",
            connection_schema=schema,
            actions=[Action(name="ping", run=ping, needs_connection=True)],
        )
    ]
"""


def hub_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without any HUB_* setting, on ``data_dir``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env["HUB_DATA_DIR"] = str(data_dir)
    env.update(extra)
    return env


def hub(data_dir: Path, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    """Run ``hub ARGS`` in the repository root on ``data_dir``."""
    return subprocess.run(
        [HUB, *args],
        cwd=ROOT,
        env=hub_env(data_dir, **extra_env),
        capture_output=True,
        encoding="utf-8",
        timeout=60,
    )


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def flow_versions(data_dir: Path) -> dict[str, tuple[str, str]]:
    """``hub flows list`` as {flow id: (published, latest)}."""
    lines = ok(hub(data_dir, "flows", "list")).stdout.splitlines()
    assert lines[0].split()[:4] == ["FLOW", "TRIGGER", "PUBLISHED", "LATEST"]
    return {cols[0]: (cols[2], cols[3]) for cols in (line.split() for line in lines[1:])}


@pytest.fixture(scope="module")
def lead_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """One run of examples/lead-intake.yaml from the CLI, on its own data folder."""
    data_dir = tmp_path_factory.mktemp("lead-run")
    result = hub(
        data_dir,
        "run",
        "examples/lead-intake.yaml",
        "--input",
        "@examples/inputs/lead.json",
    )
    return {"dir": data_dir, "result": result}


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder where ``hub flows apply examples/`` has run once."""
    data_dir = tmp_path_factory.mktemp("applied")
    ok(hub(data_dir, "flows", "apply", "examples/"))
    return data_dir


# -- hub run --------------------------------------------------------------------------------


def test_run_prints_the_output_as_json_and_each_step_live_on_stderr(
    lead_run: dict[str, object],
) -> None:
    result = lead_run["result"]
    assert isinstance(result, subprocess.CompletedProcess)
    ok(result)
    output = json.loads(result.stdout)
    assert output["lead"]["email"] == "grace.hopper@navy.example"
    assert output["lead"]["name"] == "Grace Hopper"
    assert output["score"] == 100
    assert output["route"] == {"owner": "enterprise-team", "domain": "navy.example"}
    for step in ("normalise", "score", "domain", "route"):
        assert f"✓ {step} done" in result.stderr
    assert "run " in result.stderr
    assert "of lead-intake v1" in result.stderr
    assert "succeeded in" in result.stderr


def test_run_of_a_failing_flow_exits_1_with_the_error(tmp_path: Path) -> None:
    flow = tmp_path / "failing.yaml"
    flow.write_text(
        textwrap.dedent(
            """\
            id: failing
            trigger: {type: manual}
            steps:
              - id: refuse
                action: flow.fail
                input: {message: "the warehouse is on fire"}
            """
        )
    )
    result = hub(tmp_path, "run", str(flow))
    assert result.returncode == 1
    assert "✗ refuse failed: the warehouse is on fire" in result.stderr
    assert "error: the warehouse is on fire" in result.stderr
    assert result.stdout == ""


def test_run_with_input_that_is_not_json_is_refused_clearly(tmp_path: Path) -> None:
    result = hub(tmp_path, "run", "examples/lead-intake.yaml", "--input", "{not json")
    assert result.returncode != 0
    assert "--input" in result.stderr
    assert "not JSON" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_with_a_missing_input_file_is_refused_without_a_traceback(tmp_path: Path) -> None:
    result = hub(tmp_path, "run", "examples/lead-intake.yaml", "--input", "@nosuch.json")
    assert result.returncode != 0
    assert "nosuch.json" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_of_malformed_yaml_names_line_and_column_and_saves_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    flow = tmp_path / "broken.yaml"
    flow.write_text("id: broken\ntrigger: {type: manual}\nsteps:\n  - id: a\n    action: [oops\n")
    result = hub(data_dir, "run", str(flow))
    assert result.returncode != 0
    assert "broken.yaml" in result.stderr
    assert "line " in result.stderr
    assert "column " in result.stderr
    assert "Traceback" not in result.stderr
    assert flow_versions(data_dir) == {}


# -- hub flows ------------------------------------------------------------------------------


def test_flows_validate_accepts_every_example(tmp_path: Path) -> None:
    result = ok(hub(tmp_path, "flows", "validate", "examples/"))
    for name in EXAMPLE_FLOWS:
        assert f"ok      examples/{name}.yaml" in result.stdout
    assert "invalid" not in result.stdout


def test_flows_validate_reports_an_invalid_file_with_its_location(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    shutil.copy(EXAMPLES / "lead-intake.yaml", folder)
    (folder / "bad.yaml").write_text(
        "id: bad\ntrigger: {type: manual}\nsteps:\n  - id: a\n    action: nosuch.thing\n"
    )
    result = hub(tmp_path, "flows", "validate", str(folder))
    assert result.returncode == 1
    assert f"ok      {folder / 'lead-intake.yaml'}" in result.stdout
    assert f"invalid {folder / 'bad.yaml'}" in result.stdout
    issue = next(line for line in result.stdout.splitlines() if line.startswith("  "))
    assert issue.strip().startswith("steps[0].action")
    assert "nosuch.thing" in issue


def test_flows_apply_publishes_then_is_unchanged_then_shows_the_diff(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    for path in EXAMPLES.glob("*.yaml"):
        shutil.copy(path, folder)
    data_dir = tmp_path / "data"

    first = ok(hub(data_dir, "flows", "apply", str(folder)))
    for name in EXAMPLE_FLOWS:
        assert f"{name}: v1 published" in first.stdout
    assert flow_versions(data_dir) == {name: ("1", "1") for name in EXAMPLE_FLOWS}

    second = ok(hub(data_dir, "flows", "apply", str(folder)))
    for name in EXAMPLE_FLOWS:
        assert f"{name}: unchanged (v1)" in second.stdout
    assert "published" not in second.stdout

    source = folder / "new-order.yaml"
    text = source.read_text()
    edited = text.replace("| sum(attribute='amount') | round(2)", "| sum(attribute='amount')")
    assert edited != text
    source.write_text(edited)
    third = ok(hub(data_dir, "flows", "apply", str(folder)))
    lines = third.stdout.splitlines()
    at = lines.index("new-order: v2 published")
    assert lines[at + 1].strip() == "step changed: total (input)"
    for name in EXAMPLE_FLOWS:
        if name != "new-order":
            assert f"{name}: unchanged (v1)" in third.stdout

    # One invalid file in the folder: nothing is saved, not even the valid changes.
    source.write_text(text)
    (folder / "zz-bad.yaml").write_text("id: zz-bad\ntrigger: {type: manual}\nsteps: []\n")
    fourth = hub(data_dir, "flows", "apply", str(folder))
    assert fourth.returncode == 1
    assert f"invalid {folder / 'zz-bad.yaml'}" in fourth.stdout
    assert "nothing applied" in fourth.stdout
    assert "published" not in fourth.stdout
    expected = {name: ("1", "1") for name in EXAMPLE_FLOWS} | {"new-order": ("2", "2")}
    assert flow_versions(data_dir) == expected


def test_flows_export_gives_back_the_applied_document_as_yaml(applied: Path) -> None:
    result = ok(hub(applied, "flows", "export", "new-order"))
    source = parse_document((EXAMPLES / "new-order.yaml").read_text())
    assert yaml.safe_load(result.stdout) == source
    # What is exported is itself a valid flow file.
    assert parse_document(result.stdout) == source


def test_flows_export_as_json_gives_back_the_applied_document(applied: Path) -> None:
    result = ok(hub(applied, "flows", "export", "new-order", "--format", "json"))
    assert json.loads(result.stdout) == parse_document((EXAMPLES / "new-order.yaml").read_text())


# -- hub runs -------------------------------------------------------------------------------


def run_id_of(lead_run: dict[str, object]) -> str:
    result = lead_run["result"]
    assert isinstance(result, subprocess.CompletedProcess)
    line = next(x for x in result.stderr.splitlines() if x.startswith("run "))
    return line.split()[1]


def test_runs_list_shows_the_run_with_its_flow_and_status(lead_run: dict[str, object]) -> None:
    data_dir = lead_run["dir"]
    assert isinstance(data_dir, Path)
    result = ok(hub(data_dir, "runs", "list"))
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    assert [row[:3] for row in rows] == [[run_id_of(lead_run), "lead-intake", "succeeded"]]


def test_runs_show_shows_steps_and_output(lead_run: dict[str, object]) -> None:
    data_dir = lead_run["dir"]
    assert isinstance(data_dir, Path)
    run_id = run_id_of(lead_run)
    result = ok(hub(data_dir, "runs", "show", run_id))
    out = result.stdout
    assert f"run      {run_id}" in out
    assert "flow     lead-intake v1" in out
    assert "status   succeeded" in out
    steps = [line.split() for line in out.split("steps:\n")[1].split("output:\n")[0].splitlines()]
    assert sorted(row[1] for row in steps) == ["domain", "normalise", "route", "score"]
    assert all(row[0] == "✓" and row[2] == "#1" and row[3] == "done" for row in steps)
    output = json.loads(out.split("output:\n", 1)[1])
    assert output["route"]["owner"] == "enterprise-team"


def test_runs_show_of_an_unknown_run_fails_clearly(lead_run: dict[str, object]) -> None:
    data_dir = lead_run["dir"]
    assert isinstance(data_dir, Path)
    result = hub(data_dir, "runs", "show", "nosuch")
    assert result.returncode != 0
    assert "no run 'nosuch'" in result.stderr
    assert "Traceback" not in result.stderr


# -- hub plugins ----------------------------------------------------------------------------


def test_plugins_list_shows_the_builtins(tmp_path: Path) -> None:
    out = ok(hub(tmp_path, "plugins", "list")).stdout
    for line in (
        "action  data.set",
        "action  flow.delay",
        "action  http.request",
        "trigger webhook",
        "trigger schedule",
    ):
        assert line in out


def test_plugins_list_json_describes_the_builtins(tmp_path: Path) -> None:
    listing = json.loads(ok(hub(tmp_path, "plugins", "list", "--json")).stdout)
    actions = {a for items in listing.values() for item in items for a in item["actions"]}
    triggers = {t for items in listing.values() for item in items for t in item["triggers"]}
    assert {"data.set", "flow.delay", "flow.fail", "http.request"} <= actions
    assert {"manual", "webhook", "schedule"} <= triggers
    assert listing["http"][0]["actions"] == ["http.request"]


def test_disabling_the_http_plugin_removes_http_request(tmp_path: Path) -> None:
    result = ok(hub(tmp_path, "plugins", "list", "--json", HUB_DISABLE_PLUGINS="http"))
    listing = json.loads(result.stdout)
    actions = {a for items in listing.values() for item in items for a in item["actions"]}
    assert "http" not in listing
    assert "http.request" not in actions
    assert "data.set" in actions


def test_a_plugins_hub_cli_hook_adds_a_command(tmp_path: Path) -> None:
    (tmp_path / "myhooks.py").write_text(
        textwrap.dedent(
            """\
            import click

            from hub import hookimpl


            @hookimpl
            def hub_cli(cli):
                @cli.command()
                def hello():
                    click.echo("hello from plugin")
            """
        )
    )
    result = hub(tmp_path, "hello", PYTHONPATH=str(tmp_path), HUB_PLUGIN_MODULES="myhooks")
    assert ok(result).stdout == "hello from plugin\n"


def test_a_plugin_with_an_unknown_hook_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "oddhooks.py").write_text(
        "from hub import hookimpl\n\n\n@hookimpl\ndef hub_not_a_hook():\n    return None\n"
    )
    result = hub(
        tmp_path, "plugins", "list", PYTHONPATH=str(tmp_path), HUB_PLUGIN_MODULES="oddhooks"
    )
    assert result.returncode != 0
    assert "oddhooks" in result.stderr
    assert "hub_not_a_hook" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_connector_with_an_invalid_schema_is_refused_naming_plugin_connector_action(
    tmp_path: Path,
) -> None:
    (tmp_path / "weirdplugin.py").write_text(
        textwrap.dedent(
            """\
            from hub import Action, Connector, hookimpl


            async def run(ctx, data):
                return data


            @hookimpl
            def hub_connectors():
                action = Action(name="do_it", run=run, input_schema={"type": "nonsense"})
                return [Connector(name="weird", actions=[action])]
            """
        )
    )
    result = hub(
        tmp_path, "plugins", "list", PYTHONPATH=str(tmp_path), HUB_PLUGIN_MODULES="weirdplugin"
    )
    assert result.returncode != 0
    assert "plugin 'weirdplugin'" in result.stderr
    assert "connector 'weird'" in result.stderr
    assert "action 'do_it'" in result.stderr
    assert "input_schema" in result.stderr
    assert "Traceback" not in result.stderr


# -- hub connections ------------------------------------------------------------------------


def test_connections_set_refuses_a_connector_without_a_connection_schema(tmp_path: Path) -> None:
    secret = "s3cr3t-http-token-0042"
    result = hub(tmp_path, "connections", "set", "web", "--connector", "http", "-v", f"t={secret}")
    assert result.returncode != 0
    assert "'http'" in result.stderr
    assert "connection schema" in result.stderr
    assert "Traceback" not in result.stderr
    for name in ("hub.db", "hub.db-wal"):
        path = tmp_path / name
        if path.exists():
            assert secret.encode() not in path.read_bytes()


def test_connections_set_stores_the_secret_encrypted(tmp_path: Path) -> None:
    (tmp_path / "vaultplugin.py").write_text(VAULT_PLUGIN)
    secret = "s3cr3t-vault-token-7f3a9c"
    result = hub(
        tmp_path,
        "connections",
        "set",
        "main-vault",
        "--connector",
        "vault",
        "-v",
        f"token={secret}",
        "-v",
        "region=eu-west-3",
        PYTHONPATH=str(tmp_path),
        HUB_PLUGIN_MODULES="vaultplugin",
    )
    assert ok(result).stdout == "connection main-vault saved\n"
    assert secret not in result.stdout + result.stderr

    files = [tmp_path / name for name in ("hub.db", "hub.db-wal") if (tmp_path / name).exists()]
    assert tmp_path / "hub.db" in files
    for path in files:
        raw = path.read_bytes()
        assert secret.encode() not in raw, f"the secret is in clear text in {path.name}"
    # The row is there: the plain field in clear, the secret as an encrypted token.
    db = sqlite3.connect(f"file:{tmp_path / 'hub.db'}?mode=ro", uri=True)
    try:
        row = db.execute(
            "SELECT connector, secrets, settings FROM connections WHERE name = ?",
            ("main-vault",),
        ).fetchone()
    finally:
        db.close()
    assert row is not None
    connector, token, settings = row
    assert connector == "vault"
    assert token and secret not in token
    assert "eu-west-3" in str(settings)
    assert "token" not in json.loads(settings)
