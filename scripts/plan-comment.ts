/**
 * npm run plan-comment -- <plan.json> [<plan.json>...] [--allow-destroy] [--inventory fleet.json]
 *
 * Reads the JSON of `tofu show -json <planfile>` (or `terraform show -json`), one file per
 * stack, and prints Markdown for a pull-request comment to stdout.
 * Exit status: 0 normally; 3 when a stateful VM would be destroyed or replaced (unless
 * --allow-destroy); 2 when an input is not JSON or not a plan (one line on stderr).
 */
import { minimist } from "zx";
import { existsSync, readFileSync } from "node:fs";
import { basename } from "node:path";
import { fleetFilePath, parseInventory } from "../constructs/inventory";
import { asPlan, EXIT_BAD_INPUT, Plan, renderPlans } from "./lib/plan-comment";

function bad(message: string): never {
  process.stderr.write(`plan-comment: ${message}\n`);
  process.exit(EXIT_BAD_INPUT);
}

function main() {
  const a = minimist(process.argv.slice(2), { boolean: ["allow-destroy", "help"], string: ["inventory"], alias: { h: "help" } });
  if (a.help) return void process.stdout.write("Usage: npm run plan-comment -- <plan.json>... [--allow-destroy] [--inventory fleet.json]\n");
  const files = a._.map(String);
  if (!files.length) bad("give the JSON of `tofu show -json <planfile>` (one file per stack)");
  const plans: { label: string; plan: Plan }[] = files.map((f) => {
    let text: string;
    try {
      text = readFileSync(f, "utf8");
    } catch {
      bad(`${f}: cannot read it`);
    }
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch {
      bad(`${f}: not JSON; give the output of \`tofu show -json <planfile>\``);
    }
    try {
      return { label: basename(f).replace(/\.json$/, "").replace(/^plan[-_.]?/, "") || basename(f), plan: asPlan(data) };
    } catch (e) {
      bad(`${f}: ${(e as Error).message}`);
    }
  });

  // Stateful hosts come from the inventory; without one every VM counts as stateful.
  const inventoryFile = a.inventory ?? fleetFilePath();
  let statefulHosts: Set<string> | undefined;
  if (existsSync(inventoryFile)) {
    try {
      const inv = parseInventory(readFileSync(inventoryFile, "utf8"), inventoryFile);
      statefulHosts = new Set(inv.hosts.filter((h) => h.stateful).map((h) => h.name));
    } catch {
      statefulHosts = undefined;
    }
  }
  const r = renderPlans(plans, { statefulHosts, allowDestroy: a["allow-destroy"] });
  process.stdout.write(r.markdown);
  process.exit(r.exitCode);
}

main();
