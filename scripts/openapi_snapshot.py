"""Write the API's OpenAPI document to ``tests/snapshots/openapi.json``.

``tests/test_openapi_snapshot.py`` compares the running app's document with this file, so a
change to the API shows as a diff in the commit that makes it. After such a change, run::

    python scripts/openapi_snapshot.py

and commit the regenerated file with the change.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT = ROOT / "tests" / "snapshots" / "openapi.json"


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of an app built on an empty data folder, with no plugins loaded
    from entry points (the document must not depend on what happens to be installed)."""
    from hub.app import create_app
    from hub.runtime import Hub
    from hub.settings import Settings

    with tempfile.TemporaryDirectory() as folder:
        hub = Hub(Settings(data_dir=Path(folder)), entry_points=False)
        app = create_app(hub, bootstrap=False)
        return app.openapi_schema.to_schema()


def render(document: dict[str, Any]) -> str:
    """The document as the snapshot file holds it: sorted keys, two-space indents."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> int:
    SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
    SNAPSHOT.write_text(render(openapi_document()), encoding="utf-8")
    print(f"wrote {SNAPSHOT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
