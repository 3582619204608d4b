/**
 * cdktf entry point: reads the inventory (fleet.json, or FLEET_FILE), validates it, and
 * synthesizes one stack per host group plus the cluster stack. A broken inventory prints one
 * line per problem and exits 1 before anything is written.
 */
import { App } from "cdktf";
import { loadInventory, InventoryError } from "./constructs/inventory";
import { buildFleet } from "./stacks/fleet";

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
  const app = new App({ skipValidation: process.env.FLEET_SKIP_VALIDATION === "1" });
  buildFleet(app, inventory);
  app.synth();
}

main();
