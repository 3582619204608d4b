import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, exampleData } from "./helpers";

// Runs `npx cdktf synth` the way a user does: the project's shim (scripts/cdktf.mjs) runs the real
// CDK Terrain CLI (cdktn-cli) on Node >= 22.19.
const SECRET_TOKEN = "root@pam!ci=3f1c9a6e-0b7d-4b8e-9a51-7d2f1e0c9b44";
const SECRET_PASSWORD = "pw-Zq9x-never-in-json";

function synth(out: string, env: Record<string, string> = {}) {
  return spawnSync("npx", ["cdktf", "synth", "--output", out], {
    cwd: ROOT,
    env: { ...process.env, CI: "1", FORCE_COLOR: "0", ...env },
    encoding: "utf8",
  });
}

describe("npx cdktf synth", () => {
  it("writes every stack with proxmox VMs, and no credential from the environment", () => {
    const out = mkdtempSync(join(tmpdir(), "synth-"));
    const r = synth(out, { PROXMOX_VE_ENDPOINT: "https://pve.example.invalid:8006/", PROXMOX_VE_API_TOKEN: SECRET_TOKEN, PROXMOX_VE_PASSWORD: SECRET_PASSWORD });
    expect(r.status).toBe(0);
    const stacks = readdirSync(join(out, "stacks")).sort();
    expect(stacks).toEqual(["ai", "cluster", "ops", "platform"]);
    const ai = JSON.parse(readFileSync(join(out, "stacks", "ai", "cdk.tf.json"), "utf8"));
    expect(Object.keys(ai.resource.proxmox_virtual_environment_vm)).toHaveLength(3);
    expect(ai.terraform.required_providers.proxmox.version).toBe("0.112.0");
    const all = execFileSync("cat", stacks.map((s) => join(out, "stacks", s, "cdk.tf.json")), { encoding: "utf8" });
    expect(all).not.toContain(SECRET_TOKEN);
    expect(all).not.toContain(SECRET_PASSWORD);
    expect(all).not.toContain("https://pve.example.invalid");
    expect(all).not.toMatch(/PRIVATE KEY|"password"|"api_token"/);
  });

  it("exits non-zero with one readable line per problem for a broken FLEET_FILE, writing nothing", () => {
    const out = mkdtempSync(join(tmpdir(), "synth-bad-"));
    const d = exampleData();
    d.hosts[0].vmid = 42;
    d.hosts[1].network.gateway = "10.9.9.9";
    const file = join(out, "broken.json");
    writeFileSync(file, JSON.stringify(d, null, 2));
    const r = synth(join(out, "cdktf.out"), { FLEET_FILE: file });
    expect(r.status).not.toBe(0);
    const text = r.stdout + r.stderr;
    expect(text).toContain(`${file}: host "tappaas-cicd": vmid: 42 is outside 100-999999999`);
    expect(text).toContain(`${file}: host "tappaas-vllm": network.gateway: 10.9.9.9 is outside the subnet of 192.168.10.21/24`);
    // no stack trace; shown with "at" spelled AT when there is one (jest would take such lines
    // for the assertion's own stack and hide them)
    const traces = text.split("\n").filter((l) => /^\s+at .*\(.*:\d+:\d+\)/.test(l));
    expect({ traces: traces.length, text: traces.length ? text.replace(/\n(\s+)at /g, "\n$1AT ") : "" }).toEqual({ traces: 0, text: "" });
    expect(existsSync(join(out, "cdktf.out", "stacks"))).toBe(false);
  });
});

describe("Terraform version check", () => {
  it("refuses a Terraform older than 1.7 once, before writing anything", () => {
    const dir = mkdtempSync(join(tmpdir(), "oldtf-"));
    // A STAND-IN terraform that reports an old version.
    writeFileSync(join(dir, "terraform"), '#!/bin/sh\necho \'{"terraform_version":"1.3.9"}\'\n', { mode: 0o755 });
    const out = join(dir, "cdktf.out");
    const r = spawnSync("node", [join(ROOT, "scripts", "app.mjs")], { cwd: ROOT, encoding: "utf8", env: { ...process.env, PATH: `${dir}:${process.env.PATH}`, CDKTF_OUTDIR: out } });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("terraform 1.3.9 is too old: import, moved and removed blocks need Terraform >= 1.7 (or OpenTofu)");
    expect(existsSync(out)).toBe(false);
  });
});

describe("state backends never prompt", () => {
  const run = (env: Record<string, string>) => spawnSync("node", [join(ROOT, "scripts", "app.mjs")], { cwd: ROOT, env: { ...process.env, PG_CONN_STR: "", FLEET_S3_BUCKET: "", AWS_ACCESS_KEY_ID: "", AWS_SECRET_ACCESS_KEY: "", AWS_PROFILE: "", FLEET_SKIP_VALIDATION: "1", CDKTF_OUTDIR: mkdtempSync(join(tmpdir(), "be-")), ...env }, encoding: "utf8", timeout: 10000 });

  it("FLEET_BACKEND=pg without PG_CONN_STR stops at once, naming the variable", () => {
    const r = run({ FLEET_BACKEND: "pg" });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^FLEET_BACKEND=pg needs PG_CONN_STR/);
  });

  it("FLEET_BACKEND=s3 without a bucket or credentials stops at once, naming them; with them the bucket is in the backend block", () => {
    expect(run({ FLEET_BACKEND: "s3" }).stderr).toMatch(/^FLEET_BACKEND=s3 needs FLEET_S3_BUCKET/);
    expect(run({ FLEET_BACKEND: "s3", FLEET_S3_BUCKET: "fleet-state" }).stderr).toMatch(/needs credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE/);
    const out = mkdtempSync(join(tmpdir(), "be-ok-"));
    const ok = run({ FLEET_BACKEND: "s3", FLEET_S3_BUCKET: "fleet-state", FLEET_S3_ENDPOINT: "https://minio.lan:9000", AWS_PROFILE: "fleet", CDKTF_OUTDIR: out });
    expect(ok.status).toBe(0);
    const s3 = JSON.parse(readFileSync(join(out, "stacks", "ai", "cdk.tf.json"), "utf8")).terraform.backend.s3;
    expect(s3).toMatchObject({ bucket: "fleet-state", key: "fleet/ai.tfstate", use_lockfile: true, endpoints: { s3: "https://minio.lan:9000" }, use_path_style: true });
  });
});
