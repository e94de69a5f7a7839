"""Vendor the UI's front-end libraries from the npm registry (run by hand, never at run time).

Each library is fetched with ``npm pack NAME@VERSION`` (the exact version pinned below), and
the files the hub serves are copied with the package's licence into
``ui/static/vendor/<name>/`` beside a ``VERSION`` file naming the package, its version and
the tarball's integrity hash. ``tests/vendor/`` takes libraries the tests use only (axe-core).

    python scripts/vendor_ui.py            # all of them
    python scripts/vendor_ui.py htmx.org   # one
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UI_VENDOR = ROOT / "ui" / "static" / "vendor"
TEST_VENDOR = ROOT / "tests" / "vendor"

# package -> (version, folder under its vendor root, {file in the package: name served}, root)
LIBRARIES: dict[str, tuple[str, str, dict[str, str], Path]] = {
    "htmx.org": ("2.0.11", "htmx", {"dist/htmx.min.js": "htmx.min.js"}, UI_VENDOR),
    "htmx-ext-sse": ("2.2.4", "htmx-ext-sse", {"dist/sse.min.js": "sse.min.js"}, UI_VENDOR),
}
LICENCE_NAMES = ("LICENSE", "LICENSE.md", "LICENSE.txt", "LICENCE", "license")


def vendor(package: str) -> None:
    """Fetch one pinned package and copy its served files and licence."""
    version, folder, files, root = LIBRARIES[package]
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            ["npm", "pack", f"{package}@{version}", "--json", "--silent"],
            cwd=tmp,
            check=True,
            capture_output=True,
            text=True,
        )
        info = json.loads(out.stdout)[0]
        with tarfile.open(Path(tmp) / info["filename"]) as tar:
            tar.extractall(tmp, filter="data")
        source = Path(tmp) / "package"
        target = root / folder
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for name, served in files.items():
            (target / served).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / name, target / served)
        licence = next((source / n for n in LICENCE_NAMES if (source / n).exists()), None)
        if licence is None:
            raise SystemExit(f"{package}: no licence file in the package")
        shutil.copyfile(licence, target / "LICENSE")
        (target / "VERSION").write_text(
            f"{package} {version}\nintegrity {info['integrity']}\n"
            "from the npm registry (npm pack)\n"
        )
    print(f"{package}@{version} -> {target.relative_to(ROOT)}")


def main(argv: list[str]) -> None:
    """Vendor the packages named (all when none)."""
    for package in argv or list(LIBRARIES):
        vendor(package)


if __name__ == "__main__":
    main(sys.argv[1:])
