/**
 * cdktf entry point: reads the inventory (fleet.json, or FLEET_FILE), validates it, and
 * synthesizes one stack per host group plus the cluster stack. A broken inventory prints one
 * line per problem and exits 1 before anything is written.
 */
import { App } from "cdktf";
import { spawnSync } from "node:child_process";
import { loadInventory, InventoryError } from "./constructs/inventory";
import { buildFleet } from "./stacks/fleet";

// cdktf records a stack trace for every token; with tsx's source maps on, formatting them was
// most of the synth time of a large fleet (see docs/adr-0006-synth-speed.md).
process.setSourceMapsEnabled(false);

/**
 * cdktf checks the Terraform version once per terraform_data and import block (a process per
 * resource: 1000 hosts, 1000 spawns). We check it once here instead; without a binary there is
 * nothing to check (synth does not need one; plan and deploy say so themselves).
 */
function checkTerraformVersion(): string | undefined {
  const bin = process.env.TERRAFORM_BINARY_NAME || "terraform";
  const r = spawnSync(bin, ["version", "-json"], { encoding: "utf8" });
  if (r.error || r.status !== 0) return undefined;
  let version: string;
  try {
    version = JSON.parse(r.stdout).terraform_version;
  } catch {
    return undefined;
  }
  const [major, minor] = version.split(".").map(Number);
  // OpenTofu reports its own version (1.6+), which has import blocks and terraform_data.
  if (!bin.includes("tofu") && (major < 1 || (major === 1 && minor < 5)))
    return `${bin} ${version} is too old: import blocks and moved blocks need Terraform >= 1.5 (or OpenTofu). Upgrade, or set TERRAFORM_BINARY_NAME=tofu.`;
  return undefined;
}

function main(): void {
  let inventory;
  try {
    inventory = loadInventory();
  } catch (e) {
    if (e instanceof InventoryError) {
      process.stderr.write(`${e.message}\n${e.problems.length} problem(s) in the inventory; nothing was synthesized.\n`);
      process.exit(1);
    }
    throw e;
  }
  const backend = process.env.FLEET_BACKEND;
  if (backend !== undefined && !["local", "pg", "s3"].includes(backend)) {
    process.stderr.write(`FLEET_BACKEND: "${backend}" is not a state backend; use local, pg or s3. Nothing was synthesized.\n`);
    process.exit(1);
  }
  if (process.env.FLEET_SKIP_VALIDATION !== "1") {
    const problem = checkTerraformVersion();
    if (problem) {
      process.stderr.write(`${problem}\nNothing was synthesized.\n`);
      process.exit(1);
    }
  }
  const app = new App({ skipValidation: true });
  // The generated bindings make ~30 token objects per VM, and cdktf captures a full stack trace
  // for each, used only to decorate token errors. Formatting them cost a fifth of a large synth.
  const prepare = Error.prepareStackTrace;
  Error.prepareStackTrace = () => "";
  try {
    buildFleet(app, inventory);
  } finally {
    Error.prepareStackTrace = prepare;
  }
  app.synth();
}

main();
