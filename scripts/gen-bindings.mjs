#!/usr/bin/env node
// Generates the bpg/proxmox bindings into .gen/providers/proxmox from the committed schema,
// offline, with the same generator `cdktf get` uses (see docs/adr-0001-bindings-from-schema.md).
// Runs on `npm install` (prepare). Skips when the output is newer than the schema; --force regenerates.
import { createRequire } from "node:module";
import { readFileSync, writeFileSync, existsSync, statSync, rmSync, mkdirSync, renameSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const cdktfJson = JSON.parse(readFileSync(join(root, "cdktf.json"), "utf8"));
const constraint = cdktfJson.terraformProviders.find((p) => p.startsWith("bpg/proxmox@"));
const version = constraint.split("@")[1];
const schemaFile = join(root, "providers", `bpg-proxmox-${version}.schema.json`);
const outDir = join(root, cdktfJson.codeMakerOutput ?? ".gen");
const marker = join(outDir, "providers", "proxmox", "index.ts");

if (!existsSync(schemaFile)) {
  console.error(`gen-bindings: ${schemaFile} is missing; cdktf.json pins bpg/proxmox@${version}, so providers/ must hold its schema (see providers/README.md).`);
  process.exit(1);
}
if (!process.argv.includes("--force") && existsSync(marker) && statSync(marker).mtimeMs >= statSync(schemaFile).mtimeMs) {
  console.log(`gen-bindings: .gen/providers/proxmox is up to date (bpg/proxmox ${version}); use --force to regenerate`);
  process.exit(0);
}

// Loading @cdktn/commons runs `terraform version` at once; where the environment names a missing
// CLI config, Terraform prints an error block for it. Use the project's config instead.
if (process.env.TF_CLI_CONFIG_FILE && !existsSync(process.env.TF_CLI_CONFIG_FILE)) process.env.TF_CLI_CONFIG_FILE = join(root, "config", "terraformrc");
process.env.CHECKPOINT_DISABLE ??= "1";

let generatorModule, codemaker, commons;
try {
  // The package index requires jsii-pacmak at load time; the generator module alone does not.
  generatorModule = require("@cdktn/provider-generator/build/get/generator/provider-generator");
  codemaker = require("codemaker");
  commons = require("@cdktn/commons");
} catch (e) {
  console.error("gen-bindings: @cdktn/provider-generator is not installed; run `npm ci` (dev dependencies included) first.");
  process.exit(1);
}

const started = Date.now();
const schema = JSON.parse(readFileSync(schemaFile, "utf8"));
const fqpn = Object.keys(schema.provider_schemas)[0];

// Some providers emit doubled attribute types (["list","string","list","string"]); the generator
// expects [collection, element]. Cut such types to their first two entries.
let fixedTypes = 0;
function fixTypes(block) {
  for (const attr of Object.values(block?.attributes ?? {})) {
    const t = attr.type;
    if (Array.isArray(t) && t.length === 4 && JSON.stringify(t.slice(0, 2)) === JSON.stringify(t.slice(2))) {
      attr.type = t.slice(0, 2);
      fixedTypes++;
    }
  }
  for (const nested of Object.values(block?.block_types ?? {})) fixTypes(nested.block);
}
const provider = schema.provider_schemas[fqpn];
fixTypes(provider.provider?.block);
for (const r of Object.values(provider.resource_schemas ?? {})) fixTypes(r.block);
for (const d of Object.values(provider.data_source_schemas ?? {})) fixTypes(d.block);
// `cdktf get` reads the version from `terraform version -json` (provider_selections).
schema.provider_versions = { [fqpn]: version };

const code = new codemaker.CodeMaker();
const target = new commons.ConstructsMakerProviderTarget(
  new commons.TerraformProviderConstraint(constraint),
  commons.Language.TYPESCRIPT,
);
new generatorModule.TerraformProviderGenerator(code, schema).generate(target);

// Write into a temporary directory and swap it in, so an interrupted run leaves no half-written tree.
const tmp = join(outDir, `.tmp-${process.pid}`);
rmSync(tmp, { recursive: true, force: true });
mkdirSync(tmp, { recursive: true });
await code.save(tmp);
const finalDir = join(outDir, "providers", "proxmox");
rmSync(finalDir, { recursive: true, force: true });
mkdirSync(dirname(finalDir), { recursive: true });
renameSync(join(tmp, "providers", "proxmox"), finalDir);
rmSync(tmp, { recursive: true, force: true });
writeFileSync(join(outDir, "versions.json"), JSON.stringify({ [fqpn]: version }, null, 2) + "\n");
writeFileSync(join(outDir, "constraints.json"), JSON.stringify({ cdktn: "0.24.0", providers: { [constraint.split("@")[0]]: version } }, null, 2) + "\n");
console.log(`gen-bindings: generated .gen/providers/proxmox from bpg/proxmox ${version} in ${((Date.now() - started) / 1000).toFixed(1)} s (${fixedTypes} doubled attribute types cut)`);
