#!/usr/bin/env node
// `npx cdktf ...` in this project runs this file (linked by the dev dependency scripts/cdktf-bin), which runs the
// maintained CLI, CDK Terrain's cdktn-cli (the same commands, cdktf.json and cdktf.out/; `npx cdktn`
// runs it directly), from node_modules with two settings the CLI cannot take from cdktf.json:
//  - TF_CLI_CONFIG_FILE: where the environment names a missing file (as some images do), the
//    project's config/terraformrc; Terraform would otherwise print an error block on every call.
//  - CHECKPOINT_DISABLE=1 unless set: no update checks or telemetry (they fail offline).
// Everything else (arguments, exit status, signals, terminal) passes through unchanged.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { node } from "./tools.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const env = { ...process.env };
if (env.TF_CLI_CONFIG_FILE && !existsSync(env.TF_CLI_CONFIG_FILE)) env.TF_CLI_CONFIG_FILE = join(root, "config", "terraformrc");
env.CHECKPOINT_DISABLE ??= "1";

let cli;
try {
  cli = join(dirname(createRequire(import.meta.url).resolve("cdktn-cli/package.json")), "bin", "cdktn");
} catch {
  console.error("cdktf: cdktn-cli (CDK Terrain's CLI) is not installed; run `npm ci` first.");
  process.exit(1);
}
// cdktn-cli needs Node >= 22.19 (its engines; on Node 20 it fails in undici with
// "markAsUncloneable is not a function"): this Node, or the one scripts/tools.mjs fetches.
let nodeBin;
try {
  nodeBin = node()?.path;
} catch (e) {
  console.error(`cdktf: ${e.message}`);
  process.exit(1);
}
if (!nodeBin) {
  console.error(`cdktf: the CDK Terrain CLI needs Node >= 22.19 (this is ${process.versions.node}); install Node 22 or 24 LTS.`);
  process.exit(1);
}
// cdktn-cli 0.24 prints its own stack trace (an `Error` with `at ...handlers.js` frames and
// `__type: 'Usage'`) before the app's message when the app exits non-zero: a bad inventory would
// end in a stack trace. Its stderr is passed through without those lines; everything else as is.
const child = spawn(nodeBin, [cli, ...process.argv.slice(2)], { stdio: ["inherit", "inherit", "pipe"], env });
let pending = "";
const cliTrace = /^(Error|\s+at .*cdktn-cli\/bundle\/.*|\s+__type: '\w+'|\})\s*$/;
const pass = (text, flush) => {
  const lines = (pending + text).split("\n");
  pending = flush ? "" : lines.pop();
  const kept = lines.filter((l) => !cliTrace.test(l));
  if (kept.length) process.stderr.write(kept.join("\n") + (flush && !text.endsWith("\n") ? "" : "\n"));
};
child.stderr.setEncoding("utf8").on("data", (d) => pass(d, false)).on("end", () => pending && pass("", true));
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(sig, () => child.kill(sig));
child.on("close", (code, signal) => (signal ? process.kill(process.pid, signal) : process.exit(code ?? 1)));
