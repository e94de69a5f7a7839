"""Secrets never appear in an API response, a log line or a run record.

One test does everything that could leak a connection's secrets (a string, a number, a
nested object, and the base64 of the string): runs whose action returns, logs and raises
them, a step test, a connection test that quotes the key, field options, every GET route of
the workspace, the audit log. Then it searches everything the test produced: every response
body, every log record (DEBUG included), every row of every table, and the raw bytes of the
data folder's files (the SQLite database and its write-ahead log).
"""

from __future__ import annotations

import base64
import logging
import multiprocessing
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from litestar.routes import HTTPRoute

from hub.security.secrets import KEY_FILE, REDACTED, load_keys
from hub.settings import Settings
from tests.api_kit import NESTED, PIN, SECRET, Api, flow_document, started_api

PARAM = re.compile(r"{(\w+):\w+}")


def forms(value: str) -> set[str]:
    """The value and its base64 forms (padded or not, standard or url-safe)."""
    raw = value.encode()
    found = {value}
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        text = encode(raw).decode()
        found |= {text, text.rstrip("=")}
    return found


SECRET_FORMS = forms(SECRET) | forms(str(PIN)) | forms(NESTED["key"]) | forms(NESTED["user"])


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async for value in started_api(settings):
        yield value


def leaks(text: str) -> set[str]:
    return {form for form in SECRET_FORMS if form in text}


async def test_no_secret_reaches_a_response_a_log_line_or_a_run_record(
    api: Api, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bodies: list[str] = []

    async def call(method: str, path: str, **kwargs: Any) -> Any:
        response = await api.call(method, path, api.owner, **kwargs)
        bodies.append(f"{method} {path} -> {response.status_code}\n{response.text}")
        return response

    values = {"api_key": SECRET, "pin": PIN, "nested": NESTED, "region": "eu"}
    created = await call(
        "POST",
        "/api/w/default/connections",
        json={"name": "vault-1", "connector": "vault", "values": values},
    )
    assert created.status_code == 201
    document = flow_document(
        "leaky",
        steps=[
            {"id": "show", "action": "vault.reveal", "connection": "vault-1", "input": {}},
            {
                "id": "again",
                "action": "vault.reveal",
                "connection": "vault-1",
                "input": {"seen": "{{ steps.show.output }}"},
            },
            {
                "id": "refuse",
                "action": "vault.reveal",
                "connection": "vault-1",
                "input": {"fail": True},
            },
        ],
    )
    await call("POST", "/api/w/default/flows", json={"document": document, "publish": True})
    started = await call("POST", "/api/w/default/runs", json={"flow_id": "leaky"})
    assert started.status_code == 202, "\n".join(bodies[-2:])
    run_id = started.json()["run_id"]
    record = await api.hub.wait_for_run(run_id, 10)
    assert record["status"] == "failed"
    detail = await call("GET", f"/api/w/default/runs/{run_id}")
    steps = detail.json()["steps"]
    assert steps[0]["output"]["key"] == REDACTED and steps[0]["output"]["pin"] == REDACTED
    assert steps[0]["output"]["sentence"] == f"the key is {REDACTED}!"
    assert steps[2]["error"]["message"] == f"refused key {REDACTED} (pin {REDACTED})"
    await call("GET", f"/api/w/default/runs/{run_id}/events")
    retried = await call("POST", f"/api/w/default/runs/{run_id}/retry")
    assert retried.status_code == 200
    await api.hub.wait_for_run(run_id, 10)
    await call("POST", f"/api/w/default/runs/{run_id}/replay")
    tried = await call(
        "POST",
        "/api/w/default/step-tests",
        json={"action": "vault.reveal", "connection": "vault-1", "input": {"echo": SECRET}},
    )
    assert tried.json()["ok"] is True and tried.json()["input"] == {"echo": REDACTED}
    failed_try = await call(
        "POST",
        "/api/w/default/step-tests",
        json={"action": "vault.reveal", "connection": "vault-1", "input": {"fail": True}},
    )
    assert REDACTED in failed_try.json()["error"]["message"]
    await call("PATCH", "/api/w/default/connections/vault-1", json={"values": {"region": "bad"}})
    tested = await call("POST", "/api/w/default/connections/vault-1/test")
    assert tested.json()["ok"] is False
    await call("PATCH", "/api/w/default/connections/vault-1", json={"values": {"region": "eu"}})
    await call(
        "POST",
        "/api/w/default/connectors/vault/actions/lookup/options/pipeline",
        json={"connection": "vault-1"},
    )
    await call(
        "POST",
        "/api/w/default/connections",
        json={"name": "bad", "connector": "vault", "values": {**values, "pin": SECRET}},
    )
    ids = {
        "workspace": "default",
        "flow_id": "leaky",
        "version": 1,
        "run_id": run_id,
        "name": "vault-1",
        "connector": "vault",
    }
    gets = 0
    for route in api.app.routes:
        if not isinstance(route, HTTPRoute) or not route.path.startswith("/api/"):
            continue
        for handler in route.route_handlers:
            if "GET" in handler.http_methods and "oauth2" not in route.path:
                path = PARAM.sub(lambda m: str(ids.get(m.group(1), "x")), route.path)
                params = {"from": 1} if path.endswith("/diff") else None
                await call("GET", path, params=params)
                gets += 1
    assert gets >= 15

    assert not leaks("\n".join(bodies)), "a response carried a secret"
    for record_ in caplog.records:
        text = record_.getMessage() + (str(record_.exc_text or ""))
        if record_.exc_info:
            text += logging.Formatter().formatException(record_.exc_info)
        assert not leaks(text), f"log line {record_.name}: {text[:200]}"
    assert any("api_key=[redacted]" in r.getMessage() for r in caplog.records)

    def every_row(conn: Any) -> str:
        tables = conn.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
        ).scalars()
        out = []
        for table in list(tables):
            for row in conn.exec_driver_sql(f'SELECT * FROM "{table}"'):
                out.append(f"{table}: {tuple(row)}")
        return "\n".join(out)

    rows = await api.hub.db.read(every_row)
    assert "vault-1" in rows and "leaky" in rows
    assert not leaks(rows), "a table row holds a secret in clear"
    data_dir: Path = settings.data_dir
    for path in data_dir.rglob("*"):
        if path.is_file():
            raw = path.read_bytes()
            assert not {f for f in SECRET_FORMS if f.encode() in raw}, f"{path.name} leaks"


async def test_an_action_crashing_with_a_secret_in_its_message_logs_it_redacted(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    values = {"api_key": SECRET, "pin": PIN, "nested": NESTED, "region": "eu"}
    await api.call(
        "POST",
        "/api/w/default/connections",
        api.owner,
        json={"name": "vault-1", "connector": "vault", "values": values},
    )
    step = {"id": "x", "action": "vault.reveal", "connection": "vault-1", "input": {"crash": True}}
    document = flow_document("crashy", steps=[step])
    await api.call(
        "POST", "/api/w/default/flows", api.owner, json={"document": document, "publish": True}
    )
    started = await api.call("POST", "/api/w/default/runs", api.owner, json={"flow_id": "crashy"})
    record = await api.hub.wait_for_run(started.json()["run_id"], 10)
    assert record["error"]["message"] == f"RuntimeError: crashed holding {REDACTED}"
    for record_ in caplog.records:
        text = record_.getMessage()
        if record_.exc_info:
            text += logging.Formatter().formatException(record_.exc_info)
        assert not leaks(text), f"log line {record_.name}: {text[-200:]}"


def test_processes_starting_together_on_a_new_data_folder_share_one_key(tmp_path: Path) -> None:
    """``hub serve`` and workers started at once on a new data folder: each reads the one
    key file whole (none reads it empty, none fails because another created it)."""
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(8) as pool:
        for attempt in range(30):  # thirty new folders, eight processes racing for each
            folder = tmp_path / str(attempt)
            keys = pool.map(_first_key, [folder] * 8, chunksize=1)
            assert len(set(keys)) == 1
            assert (folder / KEY_FILE).read_text().strip() == keys[0]
            assert [p.name for p in folder.iterdir()] == [KEY_FILE]  # no draft left behind


def _first_key(data_dir: Path) -> str:
    """The key of the key file that this process's keys encrypt with."""
    token = load_keys([], data_dir).encrypt(b"x")
    for key in (data_dir / KEY_FILE).read_text().split():
        if Fernet(key.encode()).decrypt(token) == b"x":
            return key
    raise AssertionError("no key decrypts")
