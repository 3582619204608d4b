// Every test talks to terraform with the project's CLI config and without telemetry, and finds
// the real toolchain (tofu, terraform, actionlint, the bpg provider) that `npm test` built first
// (scripts/test-prereqs.mjs -> scripts/tools.mjs) on PATH.
import { spawnSync } from "node:child_process";
import { delimiter, dirname, join } from "node:path";

const ROOT = join(__dirname, "..");
process.env.TF_CLI_CONFIG_FILE = join(ROOT, "config", "terraformrc");
process.env.CHECKPOINT_DISABLE = "1";
process.env.TF_IN_AUTOMATION = "1";

const r = spawnSync(process.execPath, [join(ROOT, "scripts", "tools.mjs"), "--json"], { encoding: "utf8" });
if (r.status !== 0) throw new Error(`scripts/tools.mjs failed (run npm run tools): ${r.stderr.trim()}`);
const manifest = JSON.parse(r.stdout);
process.env.FLEET_TOOLS_MANIFEST = r.stdout.trim();
// Not `node`: the tests run on the machine's Node (the cdktf shim finds Node 22 itself).
const dirs = [...new Set(Object.entries<{ path: string }>(manifest.tools).filter(([n]) => n !== "node").map(([, t]) => dirname(t.path)))];
process.env.PATH = [...dirs, process.env.PATH].join(delimiter);
