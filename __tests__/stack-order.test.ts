/**
 * The deploy applies stacks in manifest.json's dependency order (issue #28 item 3): the real
 * manifest cdktf writes for the example fleet, the real script, and the workflow's own loop run
 * with bash (tofu replaced by a logger: the order is what is checked).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App } from "cdktn";
import { YAML } from "zx";
import { buildFleet } from "../stacks/fleet";
import { exampleInventory, ROOT } from "./helpers";

const script = join(ROOT, "scripts", "stack-order.mjs");

describe("stack order for the deploy (#28 item 3)", () => {
  const out = join(mkdtempSync(join(tmpdir(), "stack-order-")), "cdktf.out");
  beforeAll(() => {
    const app = new App({ outdir: out, skipValidation: true });
    buildFleet(app, exampleInventory(), { root: ROOT });
    app.synth();
  });

  it("puts every stack after the stacks it depends on (cluster before ai, ops and platform), whatever the names", () => {
    const manifest = JSON.parse(readFileSync(join(out, "manifest.json"), "utf8"));
    const order = execFileSync("node", [script, join(out, "manifest.json")], { encoding: "utf8" }).trim().split("\n");
    expect(order.sort()).toEqual(Object.keys(manifest.stacks).sort());
    const ordered = execFileSync("node", [script, join(out, "manifest.json")], { encoding: "utf8" }).trim().split("\n");
    for (const [name, s] of Object.entries<any>(manifest.stacks)) for (const d of s.dependencies ?? []) expect({ name, after: ordered.indexOf(d) < ordered.indexOf(name) }).toEqual({ name, after: true });
    expect(ordered[0]).toBe("cluster");
    expect(Object.keys(manifest.stacks).sort()[0]).not.toBe("cluster"); // alphabetical order would be wrong
  });

  it("the deploy job's script (scripts/ci/apply-reviewed.sh, from deploy.yml) applies in that order and frees each stack after its apply", () => {
    const w: any = YAML.parse(readFileSync(join(ROOT, ".github", "workflows", "deploy.yml"), "utf8"));
    expect(w.jobs.deploy.steps.find((s: any) => /apply the reviewed plans/.test(s.name ?? "")).run).toBe('bash scripts/ci/apply-reviewed.sh reviewed-artifact "$PR" "$BASE_REF"');
    const ws = mkdtempSync(join(tmpdir(), "stack-order-ws-"));
    execFileSync("cp", ["-r", out, join(ws, "cdktf.out")]);
    const order = execFileSync("node", [script, join(out, "manifest.json")], { encoding: "utf8" }).trim().split("\n");
    for (const stack of order) writeFileSync(join(ws, "cdktf.out", "stacks", stack, "plan.bin"), "");
    // recording stand-ins for tofu and for npm (the lock release); the real ones run in ci-plan-flow.test.ts
    const bin = join(ws, "bin");
    mkdirSync(bin);
    writeFileSync(join(bin, "tofu"), `#!/bin/sh\ncase "$*" in *" apply "*) echo "apply $1" >> "${join(ws, "log")}" ;; esac\n`);
    writeFileSync(join(bin, "npm"), `#!/bin/sh\nshift 2; echo "$*" >> "${join(ws, "log")}"\n`);
    for (const f of ["tofu", "npm"]) chmodSync(join(bin, f), 0o755);
    const key = spawnSync("age-keygen", { encoding: "utf8" });
    writeFileSync(join(ws, "recipients"), `${/^# public key: (age1\S+)$/m.exec(key.stderr + key.stdout)![1]}\n`);
    mkdirSync(join(ws, "plans"));
    execFileSync("bash", ["-c", "sha256sum cdktf.out/stacks/*/cdk.tf.json > plans/stacks.sha256"], { cwd: ws });
    execFileSync("bash", [join(ROOT, "scripts", "ci", "seal-plans.sh"), "recipients", "artifact", "4", "e".repeat(40), "main"], { cwd: ws });
    for (const stack of order) rmSync(join(ws, "cdktf.out", "stacks", stack, "plan.bin"));
    const r = spawnSync("bash", [join(ROOT, "scripts", "ci", "apply-reviewed.sh"), "artifact", "4", "main"], { cwd: ws, env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, PLAN_AGE_IDENTITY: key.stdout, TOFU: "tofu" }, encoding: "utf8" });
    expect({ status: r.status, err: r.stderr }).toEqual({ status: 0, err: "" });
    const log = readFileSync(join(ws, "log"), "utf8").trim().split("\n").map((a) => a.replace("-chdir=cdktf.out/stacks/", ""));
    expect(log).toEqual(order.flatMap((s) => [`apply ${s}`, `run -s stack-lock -- release --pr 4 ${s}`]));
  });

  it("refuses a manifest with a cycle or an unknown dependency with one line, exit 2", () => {
    const dir = mkdtempSync(join(tmpdir(), "stack-order-bad-"));
    writeFileSync(join(dir, "m.json"), JSON.stringify({ stacks: { a: { dependencies: ["b"] }, b: { dependencies: ["a"] } } }));
    const cyc = spawnSync("node", [script, join(dir, "m.json")], { encoding: "utf8" });
    expect({ status: cyc.status, err: cyc.stderr }).toEqual({ status: 2, err: `stack-order: ${join(dir, "m.json")}: the stacks a, b depend on each other in a cycle\n` });
    writeFileSync(join(dir, "u.json"), JSON.stringify({ stacks: { a: { dependencies: ["zz"] } } }));
    expect(spawnSync("node", [script, join(dir, "u.json")], { encoding: "utf8" }).stderr).toBe(`stack-order: ${join(dir, "u.json")}: stack a depends on zz, which the manifest does not have\n`);
  });
});
