#!/usr/bin/env node
// `npx cdktf ...` in this project runs this file (npx prefers a project's own bin), which runs the
// cdktf CLI from node_modules with two settings the CLI cannot take from cdktf.json:
//  - TF_CLI_CONFIG_FILE: where the environment names a missing file (as some images do), the
//    project's config/terraformrc; Terraform would otherwise print an error block on every call.
//  - CHECKPOINT_DISABLE=1 unless set: no update checks or telemetry (they fail offline).
// Everything else (arguments, exit status, signals, terminal) passes through unchanged.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const env = { ...process.env };
if (env.TF_CLI_CONFIG_FILE && !existsSync(env.TF_CLI_CONFIG_FILE)) env.TF_CLI_CONFIG_FILE = join(root, "config", "terraformrc");
env.CHECKPOINT_DISABLE ??= "1";

let cli;
try {
  cli = join(dirname(createRequire(import.meta.url).resolve("cdktf-cli/package.json")), "bundle", "bin", "cdktf");
} catch {
  console.error("cdktf: cdktf-cli is not installed; run `npm ci` first.");
  process.exit(1);
}
const child = spawn(process.execPath, [cli, ...process.argv.slice(2)], { stdio: "inherit", env });
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(sig, () => child.kill(sig));
child.on("exit", (code, signal) => (signal ? process.kill(process.pid, signal) : process.exit(code ?? 1)));
