"""The API's OpenAPI document is the committed snapshot: an API change shows in its commit.

Regenerate the snapshot with ``python scripts/openapi_snapshot.py`` after changing the API.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _snapshot_module():
    spec = importlib.util.spec_from_file_location(
        "openapi_snapshot", ROOT / "scripts" / "openapi_snapshot.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_openapi_document_matches_the_committed_snapshot() -> None:
    snapshot = _snapshot_module()
    current = snapshot.render(snapshot.openapi_document())
    committed = snapshot.SNAPSHOT.read_text(encoding="utf-8")
    assert current == committed, (
        "the OpenAPI document changed: if that is intended, run "
        "`python scripts/openapi_snapshot.py` and commit tests/snapshots/openapi.json"
    )
