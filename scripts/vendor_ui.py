"""Vendor the UI's front-end libraries from the npm registry (run by hand, never at run time).

Each library is fetched with ``npm pack NAME@VERSION`` (the exact version pinned below), and
the files the hub serves are copied with the package's licence into
``ui/static/vendor/<name>/`` beside a ``VERSION`` file naming the package, its version and
the tarball's integrity hash. ``tests/vendor/`` takes libraries the tests use only (axe-core).

    python scripts/vendor_ui.py            # all of them
    python scripts/vendor_ui.py htmx.org   # one

The code editor is not one package but a bundle built from several (CodeMirror 6):
``BUNDLES`` records it, and ``python scripts/vendor_ui.py codemirror`` rebuilds it (``npm ci``
and ``node build.mjs`` in its folder, scripts/codemirror/README.md), writing its LICENSE and
VERSION (each bundled package with its version and integrity hash) beside the bundle.
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
    # The API reference at /schema (hub/api/reference_pages.py): Scalar's one-file browser
    # bundle (no chunks: everything, its styles included, is in standalone.js) ...
    "@scalar/api-reference": (
        "1.76.4",
        "scalar",
        {"dist/browser/standalone.js": "standalone.js"},
        UI_VENDOR,
    ),
    # ... and Swagger UI at /schema/swagger (BaseLayout: the standalone preset is not needed).
    "swagger-ui-dist": (
        "5.36.0",
        "swagger-ui",
        {
            "swagger-ui-bundle.js": "swagger-ui-bundle.js",
            "swagger-ui-bundle.js.LICENSE.txt": "swagger-ui-bundle.js.LICENSE.txt",
            "swagger-ui.css": "swagger-ui.css",
        },
        UI_VENDOR,
    ),
    # The browser tests' accessibility checks (injected with page.evaluate; never served).
    "axe-core": ("4.14.1", "axe-core", {"axe.min.js": "axe.min.js"}, TEST_VENDOR),
}
# bundle -> (its build folder, the folder it is written to): built with esbuild from packages
# pinned by the folder's package-lock.json (not `npm pack`ed one by one as LIBRARIES are).
BUNDLES: dict[str, tuple[Path, Path]] = {
    # The code editor (hub-editor.js, window.HubEditor): CodeMirror 6, its YAML and JSON
    # modes and the hub's Jinja expression mode, in one file (the flow editor's pages).
    "codemirror": (ROOT / "scripts" / "codemirror", UI_VENDOR / "codemirror"),
}
LICENCE_NAMES = ("LICENSE", "LICENSE.md", "LICENSE.txt", "LICENCE", "license")
# Files an Apache-2.0 package asks to be redistributed beside its licence.
NOTICE_NAMES = ("NOTICE", "NOTICE.md", "NOTICE.txt")
# The MIT licence's text (SPDX "MIT"), for a package that declares it in package.json but
# ships no licence file (@scalar/api-reference): its holder is the package's author.
MIT_TEXT = """MIT License

Copyright (c) {holder}

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


def licence_text(source: Path, package: str) -> str:
    """The package's licence file, or the MIT text its package.json declares (else fail)."""
    licence = next((source / n for n in LICENCE_NAMES if (source / n).exists()), None)
    if licence is not None:
        return licence.read_text()
    meta = json.loads((source / "package.json").read_text())
    author = meta.get("author")
    holder = author.get("name") if isinstance(author, dict) else author
    if meta.get("license") != "MIT" or not holder:
        raise SystemExit(f"{package}: no licence file in the package")
    return (
        f'{package} ships no licence file; its package.json declares "license": "MIT"\n'
        f'and "author": "{holder}". The MIT licence\'s text follows.\n\n'
        + MIT_TEXT.format(holder=holder)
    )


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
        (target / "LICENSE").write_text(licence_text(source, package))
        for notice in (source / n for n in NOTICE_NAMES if (source / n).exists()):
            shutil.copyfile(notice, target / "NOTICE")
        (target / "VERSION").write_text(
            f"{package} {version}\nintegrity {info['integrity']}\n"
            "from the npm registry (npm pack)\n"
        )
    print(f"{package}@{version} -> {target.relative_to(ROOT)}")


def build(bundle: str) -> None:
    """Rebuild one bundle from its lockfile (``npm ci``, then its ``build.mjs``)."""
    folder, target = BUNDLES[bundle]
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=folder, check=True)
    subprocess.run(["node", "build.mjs"], cwd=folder, check=True)
    print(f"{bundle} -> {target.relative_to(ROOT)}")


def main(argv: list[str]) -> None:
    """Vendor the packages and build the bundles named (all when none)."""
    for name in argv or [*LIBRARIES, *BUNDLES]:
        if name in BUNDLES:
            build(name)
        else:
            vendor(name)


if __name__ == "__main__":
    main(sys.argv[1:])
