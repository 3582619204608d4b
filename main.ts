/**
 * cdktf entry point: reads the inventory (fleet.json, or FLEET_FILE), validates it, and
 * synthesizes one stack per host group plus the cluster stack. A broken inventory prints one
 * line per problem and exits 1 before anything is written.
 */
import { App } from "cdktn";
import { execFile } from "node:child_process";
import { accessSync, constants, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { delimiter, dirname, join } from "node:path";
import { loadInventory, InventoryError, PROJECT_ROOT } from "./constructs/inventory";
import { backendProblem, buildFleet } from "./stacks/fleet";
import { blockingStdio } from "./scripts/lib/stdio";

// output reaches a pipe whole before the process exits (scripts/lib/stdio.ts)
blockingStdio();

// cdktf records a stack trace for every token; with tsx's source maps on, formatting them was
// most of the synth time of a large fleet (see docs/adr-0006-synth-speed.md).
process.setSourceMapsEnabled(false);

/**
 * cdktf checks the Terraform version once per terraform_data and import block (a process per
 * resource: 1000 hosts, 1000 spawns). We check it once; without
 * a binary there is nothing to check (synth does not need one; plan and deploy say so themselves).
 */
function checkTerraformVersion(): Promise<string | undefined> {
  const bin = process.env.TERRAFORM_BINARY_NAME || "terraform";
  // Starting Terraform costs ~0.1 s, a third of a small synth (issue #30): the answer is kept
  // for the binary it came from (its path, size and modification time) and asked again only
  // when that changes.
  const path = onPath(bin);
  const stat = path ? statSync(path) : undefined;
  const key = path && stat ? `${path}\u0000${stat.size}\u0000${stat.mtimeMs}` : undefined;
  const cacheFile = join(PROJECT_ROOT, ".build", "terraform-version.json");
  if (key)
    try {
      const cached = JSON.parse(readFileSync(cacheFile, "utf8"));
      if (cached.key === key) return Promise.resolve(cached.problem ?? undefined);
    } catch {
      // no cache yet, or an unreadable one: ask the binary
    }
  return askTerraformVersion(bin).then((problem) => {
    if (key)
      try {
        mkdirSync(dirname(cacheFile), { recursive: true });
        writeFileSync(cacheFile, JSON.stringify({ key, problem: problem ?? null }));
      } catch {
        // a read-only checkout: ask again next time
      }
    return problem;
  });
}

/** The executable `cmd` resolves to on PATH (a path is taken as it is), or undefined. */
function onPath(cmd: string): string | undefined {
  if (cmd.includes("/")) return existsSync(cmd) ? cmd : undefined;
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    const p = join(dir || ".", cmd);
    try {
      accessSync(p, constants.X_OK);
      if (statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

function askTerraformVersion(bin: string): Promise<string | undefined> {
  // No update check; and the project's CLI config where the environment names a missing one.
  const env: NodeJS.ProcessEnv = { ...process.env, CHECKPOINT_DISABLE: process.env.CHECKPOINT_DISABLE ?? "1" };
  if (!env.TF_CLI_CONFIG_FILE || !existsSync(env.TF_CLI_CONFIG_FILE)) env.TF_CLI_CONFIG_FILE = join(PROJECT_ROOT, "config", "terraformrc");
  return new Promise((done) =>
    execFile(bin, ["version", "-json"], { encoding: "utf8", env }, (error, stdout) => {
      if (error) return done(undefined);
      let version: string;
      try {
        version = JSON.parse(stdout).terraform_version;
      } catch {
        return done(undefined);
      }
      const [major, minor] = version.split(".").map(Number);
      // OpenTofu reports its own version (1.6+), which has import blocks and terraform_data.
      if (!bin.includes("tofu") && (major < 1 || (major === 1 && minor < 7)))
        return done(`${bin} ${version} is too old: import, moved and removed blocks need Terraform >= 1.7 (or OpenTofu). Upgrade, or set TERRAFORM_BINARY_NAME=tofu.`);
      done(undefined);
    }),
  );
}

async function main(): Promise<void> {
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
  const missing = backendProblem((backend as "local" | "pg" | "s3" | undefined) ?? inventory.backend ?? "local");
  if (missing) {
    process.stderr.write(`${missing}. Nothing was synthesized.\n`);
    process.exit(1);
  }
  // Before App exists: its constructor creates the output directory.
  const problem = process.env.FLEET_SKIP_VALIDATION === "1" ? undefined : await checkTerraformVersion();
  if (problem) {
    process.stderr.write(`${problem}\nNothing was synthesized.\n`);
    process.exit(1);
  }
  const app = new App({ skipValidation: true });
  // The generated bindings make ~30 token objects per VM, and cdktf captures a full stack trace
  // for each, used only to decorate token errors. Formatting them cost a fifth of a large synth.
  // Capturing them at all (cdktf lifts Error.stackTraceLimit to its maximum for each) was another
  // sixth of a 5,000-host synth when profiled: while the fleet is built, nothing is captured.
  // Error messages are unaffected (docs/adr-0012-deploy-graph.md).
  const prepare = Error.prepareStackTrace;
  const capture = Error.captureStackTrace;
  Error.prepareStackTrace = () => "";
  Error.captureStackTrace = () => {};
  try {
    buildFleet(app, inventory);
    app.synth();
  } finally {
    Error.prepareStackTrace = prepare;
    Error.captureStackTrace = capture;
  }
  removeStaleStacks(app);
}

/**
 * A stack whose hosts left the inventory must not linger in cdktf.out/stacks, where a plan of
 * every directory would still see it. `cdktf synth` starts from an empty output directory;
 * `npm run synth` writes into the existing one, so it removes what this synth did not write.
 */
function removeStaleStacks(app: App): void {
  const dir = join(app.outdir, "stacks");
  // Under the cdktf/cdktn CLI (it sets this for the app it runs) the CLI owns its output
  // directory: it looks at the stacks it found there before the synth afterwards, and crashed
  // ("ENOENT ... lstat 'cdktf.out/stacks/<gone>'") when a stack that left the inventory was removed here.
  if (process.env.CDKTF_CONTINUE_SYNTH_ON_ERROR_ANNOTATIONS) return;
  if (!existsSync(dir)) return;
  const current = new Set(app.node.children.map((c) => c.node.id));
  for (const name of readdirSync(dir)) if (!current.has(name)) rmSync(join(dir, name), { recursive: true, force: true });
}

main().catch((e) => {
  process.stderr.write(`synth failed: ${(e as Error)?.message ?? e}\n`);
  process.exit(1);
});
