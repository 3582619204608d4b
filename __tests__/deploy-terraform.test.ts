/**
 * Deploy steps under the real terraform binary (terraform_data needs no provider, so init and
 * apply run offline). The fleet is synthesized in configuration-only mode (no Proxmox VMs),
 * and the deploy command is a STAND-IN (stand-ins/record-step.mjs) that appends a start and an
 * end line per step to one log. Ordering is proven by positions in that log, concurrency by a
 * barrier the steps wait at; no assertion reads a clock.
 */
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App } from "cdktn";
import { buildFleet } from "../stacks/fleet";
import { exampleData, ROOT } from "./helpers";
import { parseInventory } from "../constructs/inventory";

const RECORD = join(__dirname, "stand-ins", "record-step.mjs");

/** One step run: the log positions of its start and end lines. */
interface Run { host: string; start: number; end: number; ok: boolean }

/** A temporary project: a copy of nixos/ (so tests can edit modules) and the synthesized stacks. */
function project() {
  const root = mkdtempSync(join(tmpdir(), "tfdeploy-"));
  cpSync(join(ROOT, "nixos"), join(root, "nixos"), { recursive: true });
  const log = join(root, "steps.log");
  return { root, log, stackDir: join(root, "cdktf.out", "stacks", "platform") };
}

function synth(root: string, data = exampleData()) {
  const app = new App({ outdir: join(root, "cdktf.out"), skipValidation: true });
  buildFleet(app, parseInventory(JSON.stringify(data)), { root, manageVms: false, deployCommand: `node ${RECORD}`, deployWorkingDir: root, backend: "local" });
  app.synth();
}

function tf(dir: string, args: string[], env: Record<string, string> = {}) {
  const r = spawnSync("terraform", args, { cwd: dir, encoding: "utf8", env: { ...process.env, ...env } });
  return { status: r.status, out: r.stdout + r.stderr };
}

const LEVEL3 = ["plasmavmc", "novanet", "flashdns", "fiberlb", "lightningstor"];

/** The five services that need iam start after it ends; their barrier proved they ran at the same time. */
function expectLevel3AfterIam(by: Record<string, Run>) {
  for (const n of LEVEL3) {
    expect(by[n].start).toBeGreaterThan(by.iam.end);
    expect(by[n].ok).toBe(true);
  }
}

/** The runs in $STEP_LOG in the order they started; a run without an end line has end = Infinity. */
function runs(log: string): Run[] {
  const lines = existsSync(log) ? readFileSync(log, "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l)) : [];
  const out: Run[] = [];
  lines.forEach((l, i) => {
    if (l.event === "start") out.push({ host: l.host, start: i, end: Infinity, ok: false });
    else {
      const run = out.find((r) => r.host === l.host && r.end === Infinity)!;
      Object.assign(run, { end: i, ok: l.ok });
    }
  });
  return out;
}

function apply(p: ReturnType<typeof project>, env: Record<string, string> = {}) {
  return tf(p.stackDir, ["apply", "-auto-approve", "-input=false", "-no-color", "-parallelism=20"], { STEP_LOG: p.log, ...env });
}

// The cases build on each other (one state, one inventory edited step by step), in file order.
describe("deploy steps with real terraform", () => {
  const p = project();
  const d = exampleData();
  beforeAll(() => {
    synth(p.root, d);
    const init = tf(p.stackDir, ["init", "-input=false", "-no-color"]);
    if (init.status !== 0) throw new Error(init.out);
  });

  it("deploys the platform in dependency order, independent hosts in parallel", () => {
    const r = apply(p, { STEP_BARRIER: LEVEL3.map((n) => `tappaas-${n}`).join(",") });
    expect(r.status).toBe(0);
    const by = Object.fromEntries(runs(p.log).map((x) => [x.host.replace("tappaas-", ""), x]));
    expect(Object.keys(by).sort()).toEqual(["chainfire", "fiberlb", "flaredb", "flashdns", "iam", "lightningstor", "novanet", "plasmavmc"]);
    expect(by.flaredb.start).toBeGreaterThan(by.chainfire.end);
    expect(by.iam.start).toBeGreaterThan(by.flaredb.end);
    expectLevel3AfterIam(by);
  });

  it("does nothing on a second apply when nothing changed", () => {
    const before = runs(p.log).length;
    const r = apply(p);
    expect(r.status).toBe(0);
    expect(r.out).toContain("No changes.");
    expect(runs(p.log)).toHaveLength(before);
  });

  it("re-deploys only the hosts of a role whose module changed, and the plan names them", () => {
    const file = join(p.root, "nixos", "modules", "platform", "novanet.nix");
    writeFileSync(file, readFileSync(file, "utf8") + "# changed\n");
    synth(p.root, d);
    const plan = tf(p.stackDir, ["plan", "-no-color", "-input=false"]);
    expect(plan.out).toMatch(/tappaas-novanet_deploy_step_\w+ must be replaced/);
    expect(plan.out).toMatch(/~ config_hash = "[0-9a-f]{64}" -> "[0-9a-f]{64}"/);
    expect(plan.out).toContain("Plan: 1 to add, 0 to change, 1 to destroy.");
    const before = runs(p.log).length;
    expect(apply(p).status).toBe(0);
    expect(runs(p.log).slice(before).map((x) => x.host)).toEqual(["tappaas-novanet"]);
  });

  it("re-deploys only the host whose inventory entry changed", () => {
    d.hosts.find((h: any) => h.name === "tappaas-flashdns").services = { flashdns: { zone: "lab.lan" } };
    synth(p.root, d);
    const before = runs(p.log).length;
    expect(apply(p).status).toBe(0);
    expect(runs(p.log).slice(before).map((x) => x.host)).toEqual(["tappaas-flashdns"]);
  });

  it("retries a failed step on the next apply", () => {
    d.hosts.find((h: any) => h.name === "tappaas-fiberlb").services = { fiberlb: { workers: 4 } };
    synth(p.root, d);
    const before = runs(p.log).length;
    const failed = apply(p, { STEP_FAIL_ONCE: "tappaas-fiberlb" });
    expect(failed.status).not.toBe(0);
    expect(failed.out).toContain("stand-in failure (first attempt)");
    const retry = apply(p, { STEP_FAIL_ONCE: "tappaas-fiberlb" });
    expect(retry.status).toBe(0);
    expect(runs(p.log).slice(before).map((x) => [x.host, x.ok])).toEqual([
      ["tappaas-fiberlb", false],
      ["tappaas-fiberlb", true],
    ]);
  });

  it("keeps the dependency order when every step is replaced (through the unchanged role barriers)", () => {
    writeFileSync(join(p.root, "nixos", "modules", "base.nix"), readFileSync(join(p.root, "nixos", "modules", "base.nix"), "utf8") + "# shared change\n");
    synth(p.root, d);
    const before = runs(p.log).length;
    const r = apply(p);
    expect(r.status).toBe(0);
    const by = Object.fromEntries(runs(p.log).slice(before).map((x) => [x.host.replace("tappaas-", ""), x]));
    expect(Object.keys(by)).toHaveLength(8);
    expect(by.flaredb.start).toBeGreaterThan(by.chainfire.end);
    expect(by.iam.start).toBeGreaterThan(by.flaredb.end);
    for (const n of LEVEL3) expect(by[n].start).toBeGreaterThan(by.iam.end);
  });
});

describe("rolling updates of quorum roles with real terraform (examples/raft-platform.json)", () => {
  const raft = () => JSON.parse(readFileSync(join(ROOT, "examples", "raft-platform.json"), "utf8"));

  it("deploys each Raft role's members strictly one after another, then the level-3 services in parallel", () => {
    const p = project();
    synth(p.root, raft());
    expect(tf(p.stackDir, ["init", "-input=false", "-no-color"]).status).toBe(0);
    const r = apply(p, { STEP_BARRIER: LEVEL3.map((n) => `raft-${n}`).join(",") });
    expect(r.status).toBe(0);
    const by = Object.fromEntries(runs(p.log).map((x) => [x.host.replace("raft-", ""), x]));
    for (const chain of [["cf1", "cf2", "cf3"], ["db1", "db2", "db3"]]) for (let i = 1; i < chain.length; i++) expect(by[chain[i]].start).toBeGreaterThan(by[chain[i - 1]].end);
    expect(by.db1.start).toBeGreaterThan(by.cf3.end);
    expect(by.iam.start).toBeGreaterThan(by.db3.end);
    expectLevel3AfterIam(by);
  });

  it("a failure of member 2 stops the roll: member 3 is not touched", () => {
    const p = project();
    synth(p.root, raft());
    expect(tf(p.stackDir, ["init", "-input=false", "-no-color"]).status).toBe(0);
    const r = apply(p, { STEP_FAIL_ONCE: "raft-cf2" });
    expect(r.status).not.toBe(0);
    const ran = runs(p.log).map((x) => [x.host, x.ok]);
    expect(ran).toEqual([["raft-cf1", true], ["raft-cf2", false]]);
  });
});

