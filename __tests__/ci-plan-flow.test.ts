/**
 * The plan and deploy jobs' own scripts (scripts/ci/*.sh, which the workflows run), end to end
 * with the real OpenTofu, a real PostgreSQL (state, and the stack locks beside it) and the real
 * age: two pull requests planning the same stack (the second is told it is locked), the artifact
 * of a plan with a sensitive value (no clear-text value in it), the deploy applying the sealed
 * plan and releasing the lock, after which the second pull request's plan holds the stack.
 */
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App } from "cdktn";
import { Client } from "pg";
import { YAML } from "zx";
import { buildFleet } from "../stacks/fleet";
import { exampleInventory, ROOT, runAsync } from "./helpers";
import { startPostgres } from "./postgres";

const PORT = 55433;
const CANARY = "s3cr3t-canary-7f1e2d";
let pg: ReturnType<typeof startPostgres>;
let work: string;
let identity: string;
let recipients: string;

const planEnv = () => {
  const job = (YAML.parse(readFileSync(join(ROOT, ".github", "workflows", "plan.yml"), "utf8")) as any).jobs.plan.env;
  const skip = Object.fromEntries(Object.entries<string>(job).filter(([k]) => k.startsWith("PG_SKIP_")));
  return { ...skip, PG_CONN_STR: pg.url("planner"), TF_VAR_canary: CANARY, TOFU: "tofu" };
};
const sh = (cwd: string, script: string, args: string[], env: Record<string, string>) => runAsync("bash", [join(ROOT, "scripts", "ci", script), ...args], { cwd, env: { ...process.env, ...env } });
const lock = (args: string[], user = "fleet") => spawnSync("node", ["--import", "tsx", join(ROOT, "scripts", "stack-lock.ts"), ...args], { cwd: ROOT, encoding: "utf8", env: { ...process.env, PG_CONN_STR: pg.url(user) } });

/** A checkout of the pull request: the synthesized stacks, one of them with a sensitive input. */
function checkout(name: string, extra = false): string {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  const app = new App({ outdir: join(dir, "cdktf.out"), skipValidation: true });
  buildFleet(app, exampleInventory(), { root: ROOT, manageVms: false, backend: "pg", deployCommand: "true", deployWorkingDir: dir });
  app.synth();
  const f = join(dir, "cdktf.out", "stacks", "ops", "cdk.tf.json");
  const j = JSON.parse(readFileSync(f, "utf8"));
  j.variable = { ...j.variable, canary: { type: "string", sensitive: true } };
  j.resource.terraform_data = { ...j.resource.terraform_data, canary: { input: "${var.canary}" }, ...(extra ? { extra: { input: "more" } } : {}) };
  writeFileSync(f, JSON.stringify(j, null, 2));
  return dir;
}

/** Every byte of every file under `dir`, for a search. */
function allFiles(dir: string): { path: string; bytes: Buffer }[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .map((p) => join(dir, p))
    .filter((p) => statSync(p).isFile())
    .map((path) => ({ path, bytes: readFileSync(path) }));
}

beforeAll(async () => {
  pg = startPostgres(PORT);
  work = mkdtempSync(join(tmpdir(), "ci-flow-"));
  const k = spawnSync("age-keygen", { encoding: "utf8" });
  identity = k.stdout;
  recipients = join(work, "plan-recipients.txt");
  writeFileSync(recipients, `${/^# public key: (age1\S+)$/m.exec(k.stderr + k.stdout)![1]}\n`);
  // the owner made the state schemas (a first deploy does); the plan role may only read them,
  // and take and release stack locks
  const owner = checkout("owner");
  for (const stack of readdirSync(join(owner, "cdktf.out", "stacks"))) {
    const r = await runAsync("tofu", ["-chdir=" + join(owner, "cdktf.out", "stacks", stack), "init", "-input=false", "-no-color"], { env: { ...process.env, PG_CONN_STR: pg.url("fleet") } });
    expect({ stack, status: r.status, out: r.status ? r.out.slice(-800) : "" }).toEqual({ stack, status: 0, out: "" });
  }
  const c = new Client({ connectionString: pg.url("fleet") });
  await c.connect();
  await c.query("CREATE ROLE planner LOGIN");
  for (const s of (await c.query("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'fleet_%'")).rows.map((r) => r.nspname)) {
    await c.query(`GRANT USAGE ON SCHEMA ${s} TO planner`);
    await c.query(`GRANT SELECT ON ALL TABLES IN SCHEMA ${s} TO planner`);
    await c.query(`GRANT SELECT ON ALL SEQUENCES IN SCHEMA ${s} TO planner`);
  }
  await c.end();
  const setup = lock(["setup", "--grant", "planner"]);
  expect({ status: setup.status, err: setup.stderr }).toEqual({ status: 0, err: "" });
}, 300_000);
afterAll(() => pg?.stop());

describe("plan and deploy scripts of the workflows, with real OpenTofu, PostgreSQL and age", () => {
  it("the second pull request planning a held stack is told it is locked; the artifact has no sensitive value; the deploy applies the sealed plan and frees the stack", async () => {
    // pull request 1 plans: every stack changes (nothing is deployed yet), so it holds them all
    const a = checkout("pr1");
    const p1 = await sh(a, "plan-stacks.sh", ["1", "a".repeat(40), "https://github.com/o/r/actions/runs/1"], planEnv());
    expect({ status: p1.status, out: p1.status ? p1.out.slice(-1500) : "" }).toEqual({ status: 0, out: "" });
    const stacks = readdirSync(join(a, "cdktf.out", "stacks")).sort();
    expect(readdirSync(join(a, "plans")).filter((f) => f.endsWith(".error"))).toEqual([]);
    expect(lock(["list"]).stdout.split("\n").filter(Boolean).map((l) => l.split("\t").slice(0, 2).join(" "))).toEqual(stacks.map((s) => `${s} #1`));

    // the plan JSON does hold the value in clear text (so the search below could find it) ...
    expect(readFileSync(join(a, "plans", "plan-ops.json"), "utf8")).toContain(CANARY);
    const comment = spawnSync("node", ["--import", "tsx", join(ROOT, "scripts", "plan-comment.ts"), ...stacks.map((s) => join(a, "plans", `plan-${s}.json`)), "--full", join(a, "plan-comment-full.md")], { cwd: ROOT, encoding: "utf8" });
    writeFileSync(join(a, "comment.md"), comment.stdout);
    expect(comment.stdout).toContain("terraform_data.canary");
    const seal = await sh(a, "seal-plans.sh", [recipients, "artifact", "1", "a".repeat(40), "main"], {});
    expect({ status: seal.status, out: seal.out }).toEqual({ status: 0, out: "" });
    // ... and the artifact does not, in any file (the saved plans are sealed to the deploy's key)
    const files = allFiles(join(a, "artifact"));
    for (const f of files) expect({ path: f.path, leaks: f.bytes.includes(CANARY) }).toEqual({ path: f.path, leaks: false });
    expect(files.map((f) => f.path.slice(a.length + 1)).sort()).toEqual(["artifact/comment.md", "artifact/meta.json", "artifact/plan-comment-full.md", "artifact/reviewed.tar.age"]);

    // pull request 2 changes the same stacks: each one is locked, with a line naming #1
    const b = checkout("pr2", true);
    const p2 = await sh(b, "plan-stacks.sh", ["2", "b".repeat(40)], planEnv());
    expect(p2.status).toBe(0);
    for (const s of stacks) {
      expect(readFileSync(join(b, "plans", `${s}.error`), "utf8")).toContain(`stack ${s} is locked by pull request #1 (planned at aaaaaaaaaaaa`);
      expect(existsSync(join(b, "cdktf.out", "stacks", s, "plan.bin"))).toBe(false);
    }
    const c2 = spawnSync("node", ["--import", "tsx", join(ROOT, "scripts", "plan-comment.ts"), ...readdirSync(join(b, "plans")).filter((f) => f.endsWith(".error")).map((f) => join(b, "plans", f))], { cwd: ROOT, encoding: "utf8" });
    expect(c2.status).toBe(4); // the job fails after the comment: no reviewed plan to merge
    expect(c2.stdout).toContain("is locked by pull request #1");

    // the deploy of #1's merge: main (a fresh checkout of the same commit) applies the sealed plans
    const main = join(work, "main");
    cpSync(a, main, { recursive: true, filter: (src) => !src.includes("/plans") && !src.endsWith("plan.bin") && !src.includes(".terraform") });
    const wrongPr = await sh(main, "apply-reviewed.sh", [join(a, "artifact"), "3", "main"], { PLAN_AGE_IDENTITY: identity, PG_CONN_STR: pg.url("fleet"), TF_VAR_canary: CANARY });
    expect(wrongPr.status).toBe(2);
    expect(wrongPr.out).toContain("the sealed plans are for pull request #1 into main, not #3 into main");
    const deploy = await sh(main, "apply-reviewed.sh", [join(a, "artifact"), "1", "main"], { PLAN_AGE_IDENTITY: identity, PG_CONN_STR: pg.url("fleet") });
    expect({ status: deploy.status, out: deploy.status ? deploy.out.slice(-2000) : "" }).toEqual({ status: 0, out: "" });
    expect(lock(["list"]).stdout).toBe("");
    expect(deploy.out).toContain("stack-lock: pull request #1 released ops");
    const state = spawnSync("tofu", ["-chdir=" + join(main, "cdktf.out", "stacks", "ops"), "state", "list"], { encoding: "utf8", env: { ...process.env, PG_CONN_STR: pg.url("fleet") } });
    expect(state.stdout).toContain("terraform_data.canary");

    // now #2 re-plans against the new state: only its own change is left, and it holds that stack
    const again = await sh(b, "plan-stacks.sh", ["2", "b".repeat(40)], planEnv());
    expect({ status: again.status, out: again.status ? again.out.slice(-1500) : "" }).toEqual({ status: 0, out: "" });
    expect(readdirSync(join(b, "plans")).filter((f) => f.endsWith(".error"))).toEqual([]);
    expect(lock(["list"]).stdout.split("\n").filter(Boolean).map((l) => l.split("\t").slice(0, 2).join(" "))).toEqual(["ops #2"]);
  }, 600_000);

  it("stack-lock: of two pull requests taking one stack at the same moment exactly one holds it; a role without the grant is refused with one line", async () => {
    const take = (pr: number, stack: string) => runAsync("node", ["--import", "tsx", join(ROOT, "scripts", "stack-lock.ts"), "take", "--pr", String(pr), "--head", "c".repeat(40), stack], { cwd: ROOT, env: { ...process.env, PG_CONN_STR: pg.url("planner") } });
    for (let round = 0; round < 4; round++) {
      const stack = `race-${round}`;
      const [x, y] = await Promise.all([take(100 + round, stack), take(200 + round, stack)]);
      expect([x.status, y.status].sort()).toEqual([0, 5]);
      const loser = x.status === 5 ? x : y;
      expect(loser.stdout).toMatch(new RegExp(`^${stack}\tstack ${stack} is locked by pull request #[12]0${round} `));
      // the holder taking it again (a new push) keeps it; releasing frees it for the other
      const holder = x.status === 0 ? 100 + round : 200 + round;
      expect((await take(holder, stack)).status).toBe(0);
      expect(lock(["release", "--pr", String(holder)], "planner").status).toBe(0);
      expect((await take(holder === 100 + round ? 200 + round : 100 + round, stack)).status).toBe(0);
    }
    const c = new Client({ connectionString: pg.url("fleet") });
    await c.connect();
    await c.query("CREATE ROLE stranger LOGIN");
    await c.end();
    const r = lock(["take", "--pr", "9", "--head", "d".repeat(40), "ai"], "stranger");
    expect({ status: r.status, lines: r.stderr.trim().split("\n").length }).toEqual({ status: 1, lines: 1 });
    expect(r.stderr).toContain("permission denied for schema fleet_locks (grant the role with `npm run stack-lock -- setup --grant <role>`)");
    expect(lock(["take", "--pr", "x1", "--head", "d".repeat(40)]).stderr).toMatch(/^stack-lock: --pr must be a pull request number; Usage/);
  });
});
