/**
 * The deploy applies stacks in manifest.json's dependency order (issue #28 item 3): the real
 * manifest cdktf writes for the example fleet, the real script, and the workflow's own loop run
 * with bash (tofu replaced by a logger: the order is what is checked).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
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

  it("the deploy workflow's apply loop runs in that order", () => {
    const w: any = YAML.parse(readFileSync(join(ROOT, ".github", "workflows", "deploy.yml"), "utf8"));
    const step = w.jobs.deploy.steps.find((s: any) => /apply the reviewed plans/.test(s.name ?? ""));
    const ws = mkdtempSync(join(tmpdir(), "stack-order-ws-"));
    execFileSync("cp", ["-r", out, join(ws, "cdktf.out")]);
    mkdirSync(join(ws, "scripts"));
    execFileSync("cp", [script, join(ws, "scripts")]);
    const bin = join(ws, "bin");
    mkdirSync(bin);
    writeFileSync(join(bin, "tofu"), `#!/bin/sh\ncase "$*" in *" apply "*) echo "$1" >> "${join(ws, "applied")}" ;; esac\n`);
    chmodSync(join(bin, "tofu"), 0o755);
    for (const stack of execFileSync("node", [script, join(out, "manifest.json")], { encoding: "utf8" }).trim().split("\n")) {
      mkdirSync(join(ws, "reviewed", "cdktf.out", "stacks", stack), { recursive: true });
      writeFileSync(join(ws, "reviewed", "cdktf.out", "stacks", stack, "plan.bin"), "");
    }
    const r = spawnSync("bash", ["-e", "-c", step.run], { cwd: ws, env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, GITHUB_WORKSPACE: ws }, encoding: "utf8" });
    expect({ status: r.status, err: r.stderr }).toEqual({ status: 0, err: "" });
    const applied = readFileSync(join(ws, "applied"), "utf8").trim().split("\n").map((a) => a.replace("-chdir=cdktf.out/stacks/", ""));
    expect(applied).toEqual(execFileSync("node", [script, join(out, "manifest.json")], { encoding: "utf8" }).trim().split("\n"));
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
