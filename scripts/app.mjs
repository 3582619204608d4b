#!/usr/bin/env node
// The cdktf app command (cdktf.json "app"): runs main.ts from a bundle that esbuild rebuilds
// whenever one of its TypeScript inputs is newer than the bundle. No type-checking at synth
// (`npm test` runs tsc), no per-module transpiling at start-up: see docs/adr-0006-synth-speed.md.
import { existsSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { isAscii } from "node:buffer";
import Module, { createRequire } from "node:module";
import vm from "node:vm";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(import.meta.url);
const out = join(root, ".build", "main.js");
const meta = join(root, ".build", "inputs.json");
const validatorFile = join(root, ".build", "inventory-validator.cjs");

function stale() {
  if (!existsSync(out) || !existsSync(meta) || !existsSync(validatorFile)) return true;
  const built = statSync(out).mtimeMs;
  // what esbuild read, and what shapes the build without being read by it
  const inputs = [...JSON.parse(readFileSync(meta, "utf8")), "scripts/app.mjs", "scripts/gen-validator.mjs", "scripts/lib/cdktn-fast-resolve.mjs", "scripts/lib/cdktn-lazy-fflate.mjs"];
  return inputs.some((f) => !existsSync(join(root, f)) || statSync(join(root, f)).mtimeMs > built);
}

if (stale()) {
  // esbuild and ajv's compiler are loaded only to rebuild: a synth of an unchanged app reads one bundle
  const { build, buildSync } = await import("esbuild");
  const { writeValidator } = await import("./gen-validator.mjs");
  const { fastResolve } = await import("./lib/cdktn-fast-resolve.mjs");
  const { lazyFflate } = await import("./lib/cdktn-lazy-fflate.mjs");
  // Everything is written under a name of this process and renamed into place, the bundle last:
  // synths that rebuild at once (jest workers on a fresh clone) never read a half-written file.
  const tmp = (f) => `${f}.tmp-${process.pid}`;
  let r;
  try {
    r = await build({
      absWorkingDir: root,
      entryPoints: [join(root, "main.ts")],
      bundle: true,
      platform: "node",
      target: "node20",
      format: "cjs",
      outfile: tmp(out),
      // the packages too: one file to read instead of a few hundred modules to resolve; their
      // ES module builds where they have one (jsonc-parser's UMD build requires at run time)
      mainFields: ["module", "main"],
      plugins: [fastResolve, lazyFflate],
      metafile: true,
      logLevel: "silent",
    });
  } catch (e) {
    // esbuild's own message names file, line and column; no stack trace.
    for (const err of e.errors ?? []) process.stderr.write(`${err.location ? `${err.location.file}:${err.location.line}:${err.location.column}: ` : ""}${err.text}\n`);
    process.stderr.write("the app does not compile; nothing was synthesized\n");
    process.exit(1);
  }
  // The inventory validator, compiled ahead of time from the schema this bundle holds.
  const schemaBundle = tmp(join(root, ".build", "inventory-schema.cjs"));
  buildSync({ absWorkingDir: root, entryPoints: [join(root, "constructs", "inventory-schema.ts")], bundle: true, platform: "node", target: "node20", format: "cjs", outfile: schemaBundle, packages: "external", logLevel: "silent" });
  // (bundled too: the ajv runtime function it requires is resolved once, here, not at every synth)
  const rawValidator = join(root, ".build", `inventory-validator.raw-${process.pid}.cjs`);
  writeValidator(require(schemaBundle).InventorySchema, rawValidator);
  buildSync({ absWorkingDir: root, entryPoints: [rawValidator], bundle: true, platform: "node", target: "node20", format: "cjs", outfile: tmp(validatorFile), minifyWhitespace: true, logLevel: "silent" });
  rmSync(schemaBundle, { force: true });
  rmSync(rawValidator, { force: true });
  for (const f of [tmp(out), tmp(validatorFile)]) asciiOnly(f);
  // The packages are one stamp, npm's own record of the last install (node_modules/.package-lock.json,
  // rewritten by every npm install and npm ci): 34 project files are checked on each synth instead
  // of 450 (issue #30). A package file edited by hand is not noticed: `rm -rf .build` then.
  const inputs = Object.keys(r.metafile.inputs).filter((f) => !f.startsWith("node_modules/"));
  writeFileSync(tmp(meta), JSON.stringify(existsSync(join(root, "node_modules", ".package-lock.json")) ? [...inputs, "node_modules/.package-lock.json"] : Object.keys(r.metafile.inputs)));
  renameSync(tmp(meta), meta);
  renameSync(tmp(validatorFile), validatorFile);
  renameSync(tmp(out), out);
}

/**
 * Leaves `file` pure ASCII, so a synth reads it as Latin-1 (~1 ms for the 1.5 MB bundle instead of
 * ~6 ms decoding UTF-8). esbuild writes code in ASCII already (its default charset escapes
 * strings, template literals, regular expressions and identifiers); what is left is comments it
 * keeps from packages ("—"). Each such character becomes a \u escape of its UTF-16 units, which
 * means the same in a string, a regular expression or a name, and nothing in a comment.
 */
function asciiOnly(file) {
  const text = readFileSync(file, "utf8");
  if (/[^\x00-\x7f]/.test(text)) writeFileSync(file, text.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`));
}
// the key constructs/inventory.ts reads (scripts/gen-validator.mjs)
// (one code cache per V8 version: the cdktn CLI may run the app on its own Node 22 while
// `npm run synth` runs another, and each would throw the other's cache away)
const cacheOf = (file) => `${file}.v8-${process.versions.v8}.cache`;
globalThis[Symbol.for("proxmox-nixos-fleet.inventoryValidator")] = runWithCodeCache(validatorFile, cacheOf(validatorFile));
runWithCodeCache(out, cacheOf(out));

/**
 * Runs a CommonJS file of .build (the bundle, the validator) with V8's code cache and returns its
 * exports: compiling 1.4 MB of JavaScript, and the functions a synth then compiles lazily, cost
 * ~40 ms of every small synth (issue #30). The cache
 * (V8's own format, checked by V8 against the source and V8's version; a rejected one is rebuilt)
 * is written after the run, so it holds the functions the synth used. Node 22's
 * module.enableCompileCache() does this too, where it exists.
 */
function runWithCodeCache(file, cacheFile) {
  // (ASCII, as rebuilds leave it, read as Latin-1: the same text without decoding UTF-8)
  const bytes = readFileSync(file);
  const source = bytes.toString(isAscii(bytes) ? "latin1" : "utf8");
  let cachedData;
  try {
    if (statSync(cacheFile).mtimeMs >= statSync(file).mtimeMs) cachedData = readFileSync(cacheFile);
  } catch {
    // no cache yet
  }
  const script = new vm.Script(Module.wrap(source), { filename: file, cachedData });
  const fresh = cachedData === undefined || script.cachedDataRejected;
  // what a CommonJS module gets: its exports, and a require that resolves from its own folder
  const mod = { exports: {} };
  if (fresh)
    process.once("exit", () => {
      try {
        writeFileSync(`${cacheFile}.tmp-${process.pid}`, script.createCachedData());
        renameSync(`${cacheFile}.tmp-${process.pid}`, cacheFile);
      } catch {
        // a read-only checkout: compile again next time
      }
    });
  script.runInThisContext()(mod.exports, createRequire(file), mod, file, dirname(file));
  return mod.exports;
}
