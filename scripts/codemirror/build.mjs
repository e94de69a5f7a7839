// Bundle editor.mjs and the CodeMirror packages it imports into ONE file the hub serves:
// ui/static/vendor/codemirror/hub-editor.js (an IIFE setting window.HubEditor, minified),
// with LICENSE (every bundled package's name, version and licence text) and VERSION (the
// same names and versions with their integrity hashes from package-lock.json).
//
//     npm ci && node build.mjs        (README.md; run by hand, never at run time)
//
// One patch is applied to style-mod while bundling (and the build fails if it no longer
// applies): style-mod puts CodeMirror's styles in an inline <style> element when the root is
// a Document, which the hub's CSP (style-src 'self', no nonce) blocks; patched, it adopts a
// constructed stylesheet (document.adoptedStyleSheets), which the CSP allows, on every
// browser that has them, and keeps the <style> element as the fallback of the others.

import { build } from "esbuild";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..");
const out = join(root, "ui", "static", "vendor", "codemirror");

const STYLE_MOD_TEST = "if (!root.head && root.adoptedStyleSheets && win.CSSStyleSheet) {";
const STYLE_MOD_PATCHED = "if (root.adoptedStyleSheets && win.CSSStyleSheet) {";

const adoptStyles = {
  name: "style-mod-adopted-sheets",
  setup(b) {
    b.onLoad({ filter: /style-mod[\\/]src[\\/]style-mod\.js$/ }, (args) => {
      const source = readFileSync(args.path, "utf8");
      if (!source.includes(STYLE_MOD_TEST)) {
        throw new Error(`style-mod changed: "${STYLE_MOD_TEST}" not found in ${args.path}`);
      }
      return { contents: source.replace(STYLE_MOD_TEST, STYLE_MOD_PATCHED), loader: "js" };
    });
  },
};

const result = await build({
  entryPoints: [join(here, "editor.mjs")],
  bundle: true,
  format: "iife",
  globalName: "HubEditor",
  minify: true,
  target: ["es2020"],
  legalComments: "none",
  metafile: true,
  write: false,
  plugins: [adoptStyles],
});

// The packages whose code is in the bundle, from esbuild's list of inputs.
const packages = new Map();
for (const input of Object.keys(result.metafile.inputs)) {
  const parts = input.split(/[\\/]/);
  const at = parts.lastIndexOf("node_modules");
  if (at < 0) continue;
  const name = parts[at + 1].startsWith("@") ? `${parts[at + 1]}/${parts[at + 2]}` : parts[at + 1];
  const folder = join(here, ...parts.slice(0, at + 1 + name.split("/").length));
  packages.set(name, folder);
}
const lock = JSON.parse(readFileSync(join(here, "package-lock.json"), "utf8"));
const names = [...packages.keys()].sort();
const licences = [];
const versions = [];
for (const name of names) {
  const folder = packages.get(name);
  const meta = JSON.parse(readFileSync(join(folder, "package.json"), "utf8"));
  const locked = lock.packages[relative(here, folder).split(sep).join("/")] || {};
  versions.push(`${name} ${meta.version} ${meta.license}\nintegrity ${locked.integrity || "?"}`);
  const text = readFileSync(join(folder, "LICENSE"), "utf8").trim();
  licences.push(`== ${name} ${meta.version} (${meta.license}) ==\n\n${text}\n`);
}

mkdirSync(out, { recursive: true });
const bundle = result.outputFiles[0].text;
const banner =
  "/* hub-editor.js: CodeMirror 6 for the hub, built by scripts/codemirror/build.mjs. " +
  `Bundled: ${names.join(", ")} (MIT; see LICENSE beside this file). */\n`;
writeFileSync(join(out, "hub-editor.js"), banner + bundle);
writeFileSync(
  join(out, "LICENSE"),
  "hub-editor.js bundles the packages below (with scripts/codemirror/editor.mjs, the hub's\n" +
    "own code under the hub's licence). Each package's name, version and licence follow.\n\n" +
    names.map((n) => `${n} ${JSON.parse(readFileSync(join(packages.get(n), "package.json"))).version}`).join("\n") +
    "\n\n" +
    licences.join("\n"),
);
writeFileSync(
  join(out, "VERSION"),
  versions.join("\n") +
    "\nfrom the npm registry (npm ci in scripts/codemirror, package-lock.json), bundled by esbuild\n",
);
console.log(
  `hub-editor.js: ${(bundle.length / 1024).toFixed(0)} KiB, ${names.length} packages -> ${relative(root, out)}`,
);
