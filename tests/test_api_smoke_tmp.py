import pytest
from tests.api_kit import make_api, flow_document, SECRET

@pytest.fixture
async def api(hub):
    async for a in make_api(hub):
        yield a

async def test_smoke(api):
    r = await api.call("GET", "/api/me", api.owner)
    print(r.status_code, r.text)
    r = await api.call("GET", "/api/w/default/flows", api.owner)
    print(r.status_code, r.text)
    r = await api.call("POST", "/api/w/default/flows", api.editor, json={"document": flow_document(), "publish": True})
    print(r.status_code, r.text)
    r = await api.call("POST", "/api/w/default/runs", api.editor, json={"flow_id": "greet", "input": {"name": "x"}})
    print(r.status_code, r.text)
    run_id = r.json()["run_id"]
    await api.hub.wait_for_run(run_id, 5)
    r = await api.call("GET", f"/api/w/default/runs/{run_id}", api.viewer)
    print(r.status_code, r.text)
    r = await api.call("GET", f"/api/w/default/runs/{run_id}/events", api.viewer)
    print(r.status_code, r.text)
    r = await api.call("GET", f"/api/w/other/runs/{run_id}", api.viewer)
    print(r.status_code, r.text)
    r = await api.call("GET", f"/api/w/default/runs", None)
    print(r.status_code, r.text)
    r = await api.call("POST", "/api/w/default/connections", api.editor, json={"name": "t1", "connector": "test", "values": {"token": SECRET, "region": "eu"}})
    print(r.status_code, r.text)
    r = await api.call("GET", "/schema", None)
    print(r.status_code, r.text[:200])
    r = await api.call("GET", "/schema/openapi.json", None)
    print(r.status_code, r.text[:200])
