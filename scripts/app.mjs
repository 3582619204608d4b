#!/usr/bin/env node
// The cdktf app command (cdktf.json "app"): runs main.ts from a bundle that esbuild rebuilds
// whenever one of its TypeScript inputs is newer than the bundle. No type-checking at synth
// (`npm test` runs tsc), no per-module transpiling at start-up: see docs/adr-0006-synth-speed.md.
import { buildSync } from "esbuild";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, ".build", "main.js");
const meta = join(root, ".build", "inputs.json");

function stale() {
  if (!existsSync(out) || !existsSync(meta)) return true;
  const built = statSync(out).mtimeMs;
  const inputs = JSON.parse(readFileSync(meta, "utf8"));
  return inputs.some((f) => !existsSync(join(root, f)) || statSync(join(root, f)).mtimeMs > built);
}

if (stale()) {
  let r;
  try {
    r = buildSync({
      absWorkingDir: root,
      entryPoints: [join(root, "main.ts")],
      bundle: true,
      platform: "node",
      target: "node20",
      format: "cjs",
      outfile: out,
      packages: "external",
      metafile: true,
      logLevel: "silent",
    });
  } catch (e) {
    // esbuild's own message names file, line and column; no stack trace.
    for (const err of e.errors ?? []) process.stderr.write(`${err.location ? `${err.location.file}:${err.location.line}:${err.location.column}: ` : ""}${err.text}\n`);
    process.stderr.write("the app does not compile; nothing was synthesized\n");
    process.exit(1);
  }
  writeFileSync(meta, JSON.stringify(Object.keys(r.metafile.inputs)));
}
createRequire(import.meta.url)(out);
