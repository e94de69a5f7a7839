"""Bounded documents and request bodies (issue 14): every face parses flow YAML and JSON
within limits (bytes, depth, nodes with aliases expanded, alias uses), and every JSON request
body's depth is checked before anything decodes it.

The API runs in-process (tests/api_kit.py): a request that stalled the event loop would stall
the test's own loop, so "answered quickly" and "/healthz kept answering" are measured on it.
The CLI runs as a real process.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hub.flows import FlowError, parse_document
from hub.flows.bounds import DocumentLimits, JsonDepthScan, chunks, json_too_deep
from hub.settings import Settings
from tests.api_kit import Api, flow_document, started_api

BASE = "/api/w/default"
HUB = shutil.which("hub", path=str(Path(sys.executable).parent)) or str(
    Path(sys.executable).parent / "hub"
)


def billion_laughs(levels: int, width: int = 10) -> str:
    """A flow whose step input is ``width ** levels`` strings through ``levels`` of aliases."""
    lines = ["id: lol", "trigger: {type: manual}", 'a0: &a0 ["lol"]']
    for level in range(1, levels + 1):
        refs = ",".join([f"*a{level - 1}"] * width)
        lines.append(f"a{level}: &a{level} [{refs}]")
    lines.append(f"steps: [{{id: s, action: flow.noop, input: {{v: *a{levels}}}}}]")
    return "\n".join(lines) + "\n"


def deep_array(depth: int) -> str:
    return "[" * depth + "]" * depth


def deep_object(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async for value in started_api(settings):
        yield value


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code, body
    error: dict[str, Any] = body["error"]
    return error


# --- The parser ------------------------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("levels", [7, 9])
def test_a_billion_laughs_is_refused_by_the_parser_at_once(levels: int) -> None:
    text = billion_laughs(levels)
    assert len(text) < 650
    started = time.perf_counter()
    with pytest.raises(FlowError) as caught:
        parse_document(text, "bomb.yaml")
    assert time.perf_counter() - started < 0.5
    (issue,) = caught.value.issues
    assert issue.location.startswith("line "), issue
    assert "HUB_MAX_DOCUMENT_NODES" in issue.message and "100000" in issue.message


def test_alias_uses_depth_through_aliases_and_recursive_aliases_are_refused() -> None:
    limits = DocumentLimits(max_aliases=5)
    text = "id: x\nbase: &b {k: v}\nuses: [" + ", ".join(["*b"] * 6) + "]\n"
    with pytest.raises(FlowError, match=r"line 3, column 7: more than 5 alias uses"):
        parse_document(text, limits=limits)
    parse_document(text.replace(", *b]", "]"), limits=limits)  # five: within the limit

    # Each level is three deep and refers to the one before: 3 * 30 levels once expanded.
    lines = ["id: x", "l0: &l0 v"]
    lines += [f"l{i}: &l{i} [[[*l{i - 1}]]]" for i in range(1, 31)]
    with pytest.raises(FlowError, match=r"nested deeper than 64 levels \(HUB_MAX_DOCUMENT_DEPTH"):
        parse_document("\n".join(lines))

    with pytest.raises(FlowError, match="line 1, column 4: an alias refers to a node that"):
        parse_document("a: &a [x, *a]\n")


def test_a_wide_document_is_refused_by_its_node_count() -> None:
    text = "id: wide\nsteps:\n" + "- 0\n" * 120_000
    assert len(text.encode()) < 1_000_000
    with pytest.raises(FlowError, match=r"more than 100000 nodes .*HUB_MAX_DOCUMENT_NODES"):
        parse_document(text)
    smaller = DocumentLimits(max_nodes=100)
    with pytest.raises(FlowError, match="more than 100 nodes"):
        parse_document(json.dumps({"id": "x", "steps": list(range(150))}), limits=smaller)


def test_too_many_bytes_are_refused_before_reading() -> None:
    text = "id: x\ndescription: " + "y" * 2000 + "\n"
    with pytest.raises(FlowError, match=r"the document is 2020 bytes, over the limit of 1000"):
        parse_document(text, limits=DocumentLimits(max_bytes=1000))


@pytest.mark.parametrize("depth", [1000, 100_000])
def test_deep_json_and_yaml_documents_are_located_errors(depth: int) -> None:
    with pytest.raises(FlowError) as caught:
        parse_document('{"id": "x", "a": ' + deep_array(depth) + "}")
    assert str(caught.value.issues[0]) == (
        "line 1, column 81: nested deeper than 64 levels (HUB_MAX_DOCUMENT_DEPTH)"
    )
    with pytest.raises(FlowError, match="nest"):
        parse_document("id: x\na: " + deep_array(depth) + "\n")


def test_realistic_documents_with_anchors_still_load() -> None:
    text = """\
id: anchors
trigger: {type: manual}
x-defaults:
  retry: &retry {max_attempts: 3, backoff: exponential, initial: 1s}
  headers: &headers {accept: application/json, x-team: sales}
steps:
  - id: one
    action: flow.noop
    input: {headers: *headers}
    retry: *retry
  - id: two
    action: flow.noop
    input: {headers: {<<: *headers, x-extra: "1"}}
    retry: {<<: *retry, max_attempts: 5}
"""
    # Four alias uses (merge keys included): a limit of four lets it through, three not.
    with pytest.raises(FlowError, match=r"line 14, column 12: more than 3 alias uses"):
        parse_document(text, limits=DocumentLimits(max_aliases=3))
    document = parse_document(text, limits=DocumentLimits(max_aliases=4))
    assert document["steps"][0]["retry"] == {
        "max_attempts": 3,
        "backoff": "exponential",
        "initial": "1s",
    }
    assert document["steps"][1]["retry"]["max_attempts"] == 5
    assert document["steps"][1]["input"]["headers"]["x-team"] == "sales"


def test_the_parsers_defaults_are_the_settings_defaults() -> None:
    assert DocumentLimits() == DocumentLimits.from_settings(Settings())


def test_every_example_flow_is_within_the_default_bounds() -> None:
    root = Path(__file__).resolve().parent.parent
    files = sorted((root / "examples").rglob("*.yaml")) + sorted((root / "tests").rglob("*.yaml"))
    assert files
    for path in files:
        text = path.read_text()
        if text.lstrip().startswith("{") or "steps" not in text:
            continue
        try:
            parse_document(text, str(path), DocumentLimits.from_settings(Settings()))
        except FlowError as exc:
            assert not any("HUB_MAX" in i.message for i in exc.issues), exc


def _reference_depth_offset(data: bytes, limit: int) -> int | None:
    depth, in_string, escaped = 0, False, False
    for offset, byte in enumerate(data):
        if in_string:
            if escaped:
                escaped = False
            elif byte == ord("\\"):
                escaped = True
            elif byte == ord('"'):
                in_string = False
        elif byte == ord('"'):
            in_string = True
        elif byte in b"[{":
            depth += 1
            if depth > limit:
                return offset
        elif byte in b"]}":
            depth -= 1
    return None


def test_the_json_depth_scan_agrees_with_a_byte_by_byte_reading_in_any_chunks() -> None:
    rng = random.Random(14)
    strings = ['x"]}[{\\', "\\\\", 'a\\"[', "[[[", "", "\\u005b"]

    def value(depth: int) -> Any:
        if depth == 0 or rng.random() < 0.2:
            return rng.choice([*strings, 1, None])
        if rng.random() < 0.5:
            return [value(depth - 1) for _ in range(rng.randint(0, 3))]
        return {rng.choice(strings): value(depth - 1) for _ in range(rng.randint(0, 3))}

    for _ in range(400):
        limit = rng.randint(1, 8)
        data = json.dumps(value(10)).encode()
        expected = _reference_depth_offset(data, limit)
        assert json_too_deep(data, limit) == expected
        for size in (1, 2, 3, 7):
            scan = JsonDepthScan(limit)
            found = None
            for piece in chunks(data, size):
                found = scan.feed(piece)
                if found is not None:
                    break
            assert found == expected, (data, limit, size)


# --- The API: flow documents -----------------------------------------------------------------


async def healthz_during(api: Api, work: Any) -> tuple[Any, float]:
    """Run ``work`` while another client asks /healthz; the answer and the longest wait."""
    waits: list[float] = []
    done = asyncio.Event()

    async def ping() -> None:
        while not done.is_set():
            started = time.perf_counter()
            response = await api.client.get("/healthz")
            assert response.status_code == 200
            waits.append(time.perf_counter() - started)
            await asyncio.sleep(0.01)

    pinger = asyncio.create_task(ping())
    await asyncio.sleep(0.02)
    try:
        result = await work
    finally:
        done.set()
        await pinger
    return result, max(waits)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("levels", [7, 9])
async def test_a_billion_laughs_from_a_viewer_is_refused_quickly(api: Api, levels: int) -> None:
    started = time.perf_counter()
    work = api.call(
        "POST", f"{BASE}/flows/_validate", api.viewer, json={"source": billion_laughs(levels)}
    )
    response, longest = await healthz_during(api, work)
    assert time.perf_counter() - started < 2.0
    assert longest < 1.0
    assert response.status_code == 200
    answer = response.json()
    assert answer["valid"] is False
    (issue,) = answer["issues"]
    assert issue["location"].startswith("line ")
    assert "HUB_MAX_DOCUMENT_NODES" in issue["message"]

    saved = await api.call(
        "POST", f"{BASE}/flows", api.editor, json={"source": billion_laughs(levels)}
    )
    error = assert_error(saved, 422, "invalid")
    assert "HUB_MAX_DOCUMENT_NODES" in error["details"][0]["message"]
    assert (await api.call("GET", "/healthz")).status_code == 200


async def test_a_document_given_as_data_is_held_to_the_same_bounds(api: Api) -> None:
    document = flow_document("wide")
    document["steps"][0]["input"] = {"items": list(range(120_000))}
    response = await api.call("POST", f"{BASE}/flows", api.editor, json={"document": document})
    error = assert_error(response, 422, "invalid")
    assert "HUB_MAX_DOCUMENT_NODES" in error["details"][0]["message"]
    checked = await api.call(
        "POST", f"{BASE}/flows/_validate", api.viewer, json={"document": document}
    )
    assert checked.json()["valid"] is False
    assert "HUB_MAX_DOCUMENT_NODES" in checked.json()["issues"][0]["message"]


async def test_anchors_within_the_limits_save_through_the_api(settings: Settings) -> None:
    source = """\
id: anchored
trigger: {type: manual}
steps:
  - id: hello
    action: test.echo
    input: &greeting {name: "{{ trigger.name }}"}
  - id: again
    action: test.echo
    input: *greeting
"""
    async for api in started_api(settings.replace(max_yaml_aliases=1)):
        response = await api.call("POST", f"{BASE}/flows", api.editor, json={"source": source})
        assert response.status_code == 201, response.text
        got = await api.call("GET", f"{BASE}/flows/anchored", api.viewer)
        assert got.json()["document"]["steps"][1]["input"] == {"name": "{{ trigger.name }}"}
        twice = source + "  - {id: third, action: test.echo, input: *greeting}\n"
        refused = await api.call(
            "PUT", f"{BASE}/flows/anchored", api.editor, json={"source": twice}
        )
        error = assert_error(refused, 422, "invalid")
        assert error["details"] == [
            {
                "location": "line 10, column 5",  # the mapping holding the second alias
                "message": "more than 1 alias uses (HUB_MAX_YAML_ALIASES)",
            }
        ]


@pytest.mark.timeout(120)
async def test_a_large_document_is_parsed_and_validated_off_the_event_loop(api: Api) -> None:
    steps = [
        {
            "id": f"s{i}",
            "action": "flow.noop",
            "input": {f"f{j}": f"{{{{ trigger.x{i}_{j} | upper }}}}" for j in range(5)},
        }
        for i in range(400)
    ]
    source = yaml.safe_dump(
        {"id": "large", "trigger": {"type": "manual"}, "steps": steps}, sort_keys=False
    )
    work = api.call("POST", f"{BASE}/flows/_validate", api.viewer, json={"source": source})
    started = time.perf_counter()
    response, longest = await healthz_during(api, work)
    took = time.perf_counter() - started
    assert response.json() == {"valid": True, "issues": []}, response.text[:500]
    # Parsed and validated on the loop, the pings would wait for the whole of it.
    assert longest < max(0.25, took / 4), (longest, took)


def test_expressions_and_steps_are_bounded_before_validation_compiles_them() -> None:
    limits = DocumentLimits(max_templates=3)
    inputs = {f"f{i}": f"{{{{ trigger.a{i} }}}}" for i in range(4)}
    document = {"id": "x", "steps": [{"id": "s", "action": "flow.noop", "input": inputs}]}
    with pytest.raises(FlowError, match=r"more than 3 different expressions .*TEMPLATES\)"):
        parse_document(json.dumps(document), limits=limits)
    with pytest.raises(FlowError, match=r"line 2, column \d+: more than 3 different"):
        parse_document("id: x\nsteps: [" + json.dumps(document["steps"][0]) + "]", limits=limits)
    inputs["f3"] = inputs["f2"]  # the same text again compiles once: it counts once
    parse_document(json.dumps(document), limits=limits)


async def test_a_flow_of_too_many_steps_is_refused_at_once(api: Api) -> None:
    steps = [{"id": f"s{i}", "action": "flow.noop"} for i in range(15_000)]
    document = {"id": "x", "steps": steps}
    started = time.perf_counter()
    response = await api.call(
        "POST", f"{BASE}/flows/_validate", api.viewer, json={"document": document}
    )
    assert time.perf_counter() - started < 2.0
    assert response.json()["issues"] == [
        {
            "location": "steps",
            "message": "15000 steps: a flow has at most 1000 "
            "(split a longer process into flows joined by flow.call)",
        }
    ]


# --- The API: request bodies -----------------------------------------------------------------


def _bodies(deep: str) -> list[tuple[str, str, str]]:
    """(method, path, body) of routes of every kind, each carrying ``deep`` somewhere."""
    return [
        ("POST", f"{BASE}/runs", '{"flow_id": "greet", "input": ' + deep + "}"),
        ("POST", f"{BASE}/step-tests", '{"action": "test.echo", "input": ' + deep + "}"),
        ("POST", f"{BASE}/flows", '{"document": ' + deep + "}"),
        ("POST", f"{BASE}/flows/_validate", '{"document": {"id": "x", "a": ' + deep + "}}"),
        ("PUT", f"{BASE}/flows/greet", '{"document": {"id": "greet", "a": ' + deep + "}}"),
        ("POST", f"{BASE}/flows/greet/publish", '{"version": ' + deep + "}"),
        (
            "POST",
            f"{BASE}/connections",
            '{"name": "c", "connector": "test", "values": ' + deep + "}",
        ),
        ("PUT", f"{BASE}/members", '{"email": ' + deep + "}"),
        ("POST", f"{BASE}/runs", deep),
    ]


@pytest.mark.parametrize("shape", ["array", "object"])
@pytest.mark.parametrize("depth", [1000, 100_000])
async def test_deep_json_bodies_are_refused_before_decoding(
    api: Api, depth: int, shape: str
) -> None:
    await api.call("POST", f"{BASE}/flows", api.editor, json={"document": flow_document()})
    deep = deep_array(depth) if shape == "array" else deep_object(depth)
    for method, path, body in _bodies(deep):
        response = await api.call(
            method,
            path,
            api.owner,
            content=body.encode(),
            headers={"content-type": "application/json"},
        )
        error = assert_error(response, 400, "json_too_deep")
        assert "nested deeper than 64 levels" in error["message"], (path, error)
        assert "HUB_MAX_JSON_DEPTH" in error["message"]
        assert error["details"][0]["location"].startswith("line 1, column "), error


async def test_the_depth_check_runs_after_authentication_and_before_typed_decoding(
    api: Api,
) -> None:
    body = '{"email": ' + deep_array(200) + ', "role": "viewer"}'
    # A typed field (a string) would have refused the array at its first bracket.
    member = await api.call(
        "PUT",
        f"{BASE}/members",
        api.owner,
        content=body,
        headers={"content-type": "application/json"},
    )
    assert_error(member, 400, "json_too_deep")
    nobody = await api.call(
        "POST",
        f"{BASE}/runs",
        content='{"flow_id": "greet", "input": ' + deep_array(1000) + "}",
        headers={"content-type": "application/json"},
    )
    assert_error(nobody, 401, "unauthorized")
    # A route that never reads its body does not pay for (nor refuse) one.
    ignored = await api.call(
        "POST",
        f"{BASE}/flows/nope/enable",
        api.editor,
        content=deep_array(1000),
        headers={"content-type": "application/json"},
    )
    assert_error(ignored, 404, "not_found")
    # Strings may hold any brackets; 64 levels are accepted.
    await api.call(
        "POST", f"{BASE}/flows", api.editor, json={"document": flow_document(), "publish": True}
    )
    fine = '{"flow_id": "greet", "input": {"t": "' + "[" * 5000 + '", "d": ' + deep_array(62)
    started = await api.call(
        "POST",
        f"{BASE}/runs",
        api.editor,
        content=fine + "}}",
        headers={"content-type": "application/json"},
    )
    assert started.status_code == 202, started.text


async def test_api_bodies_are_capped_by_the_setting(settings: Settings) -> None:
    async for api in started_api(settings.replace(max_request_bytes=10_000)):
        response = await api.call(
            "POST", f"{BASE}/runs", api.editor, json={"flow_id": "greet", "input": "x" * 20_000}
        )
        assert_error(response, 413, "payload_too_large")


# --- The CLI ---------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_the_cli_refuses_a_billion_laughs_with_a_clear_message(tmp_path: Path) -> None:
    bomb = tmp_path / "flows" / "bomb.yaml"
    bomb.parent.mkdir()
    bomb.write_text(billion_laughs(9))
    env = {**os.environ, "HUB_DATA_DIR": str(tmp_path / "data")}
    for args in (["flows", "validate", str(bomb)], ["flows", "apply", str(bomb.parent)]):
        started = time.perf_counter()
        result = subprocess.run(
            [HUB, *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 1, result
        assert time.perf_counter() - started < 30
        assert "line 8, column 5: more than 100000 nodes" in result.stdout, result.stdout
        assert "HUB_MAX_DOCUMENT_NODES" in result.stdout


def test_the_cli_reads_the_document_bounds_from_the_settings(tmp_path: Path) -> None:
    flow = tmp_path / "anchored.yaml"
    flow.write_text(
        "id: anchored\ntrigger: {type: manual}\nsteps:\n"
        "  - {id: a, action: flow.noop, input: &same {x: 1}}\n"
        "  - {id: b, action: flow.noop, input: *same}\n"
    )
    env = {**os.environ, "HUB_DATA_DIR": str(tmp_path / "data")}
    ok = subprocess.run(
        [HUB, "flows", "validate", str(flow)], env=env, capture_output=True, text=True, timeout=60
    )
    assert ok.returncode == 0, ok
    env["HUB_MAX_YAML_ALIASES"] = "0"
    refused = subprocess.run(
        [HUB, "flows", "validate", str(flow)], env=env, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 1, refused
    assert "line 5, column 5: more than 0 alias uses (HUB_MAX_YAML_ALIASES)" in refused.stdout


def test_the_cli_refuses_deep_run_input_before_decoding_it(tmp_path: Path) -> None:
    flow = tmp_path / "echo.yaml"
    flow.write_text("id: echo\ntrigger: {type: manual}\nsteps: [{id: a, action: flow.noop}]\n")
    deep = tmp_path / "deep.json"
    deep.write_text('{"a": ' + deep_array(100_000) + "}")
    env = {**os.environ, "HUB_DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run(
        [HUB, "run", str(flow), "--input", f"@{deep}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result
    assert "nested deeper than 64 levels (HUB_MAX_JSON_DEPTH), at line 1, column 70" in (
        result.stderr
    ), result.stderr
    assert "Traceback" not in result.stderr


async def test_a_webhook_body_gets_the_same_depth_scan_before_decoding(api: Api) -> None:
    document = flow_document("hook", trigger={"type": "webhook", "config": {}})
    saved = await api.call(
        "POST", f"{BASE}/flows", api.editor, json={"document": document, "publish": True}
    )
    assert saved.status_code == 201, saved.text
    for depth in (65, 1000, 100_000):
        response = await api.call(
            "POST",
            "/hooks/default/hook",
            content='{"a": ' + deep_array(depth) + "}",
            headers={"content-type": "application/json"},
        )
        error = assert_error(response, 422, "json_too_deep")
        assert error["message"] == (
            "body: JSON nested deeper than 64 levels, at line 1, column 70"
        ), error
