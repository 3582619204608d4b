import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SECRET_NAMES } from "../constructs/secrets";
import { ROOT } from "./helpers";

const run = (script: string, args: string[], env: Record<string, string> = {}) => {
  const r = spawnSync("node", ["--import", "tsx", join(ROOT, "scripts", script), ...args], { cwd: ROOT, encoding: "utf8", env: { ...process.env, ...env } });
  return { status: r.status, out: r.stdout, err: r.stderr };
};

describe("deploy CLI usage", () => {
  it.each([
    [[], "name the hosts to deploy, or --all"],
    [["nope"], "not in the inventory: nope"],
    [["--all", "tappaas-iam"], "give host names or --all, not both"],
    [["--all", "--concurrency", "0"], "--concurrency must be a whole number >= 1"],
    [["--all", "--address", "10.0.0.1"], "--address applies to exactly one host"],
    [["--bogus"], "unknown option --bogus"],
    [["--from-env"], "FLEET_DEPLOY_SPEC is not set"],
  ])("refuses %p with one clear line and status 2", (args, message) => {
    const r = run("deploy.ts", args as string[]);
    expect(r.status).toBe(2);
    expect(r.err).toContain(message);
    expect(r.err).not.toMatch(/\n\s+at /);
  });

  it("refuses a broken inventory naming host and field", () => {
    const r = run("deploy.ts", ["--all"], { FLEET_FILE: join(ROOT, "__tests__", "fixtures", "pve-cluster-resources.json") });
    expect(r.status).toBe(2);
    expect(r.err).toContain("deploy: the inventory is not usable:");
    expect(r.err).toContain("cluster: cluster: missing");
  });

  // a dry run checks what the real run needs first: nixos-rebuild on PATH (the stand-in here) and
  // every secret file a host needs (their existence; their content is age's business)
  const secretsDir = mkdtempSync(join(tmpdir(), "dry-secrets-"));
  for (const n of SECRET_NAMES) writeFileSync(join(secretsDir, `${n}.age`), "");
  const ready = { PATH: `${join(ROOT, "__tests__", "stand-ins", "bin")}:${process.env.PATH}`, FLEET_SECRETS_DIR: secretsDir };

  it("a dry run fails as the real run would when nixos-rebuild or a host's secret is missing (#29 item 10: it said ok)", () => {
    const noRebuild = run("deploy.ts", ["tappaas-iam", "--dry-run"], { FLEET_SECRETS_DIR: secretsDir });
    expect(noRebuild.status).toBe(2);
    expect(noRebuild.out).toContain("[tappaas-iam] FAILED: nixos-rebuild is not on PATH");
    const empty = mkdtempSync(join(tmpdir(), "dry-nosecrets-"));
    const noSecret = run("deploy.ts", ["tappaas-litellm", "--dry-run"], { ...ready, FLEET_SECRETS_DIR: empty });
    expect(noSecret.status).toBe(7);
    expect(noSecret.out).toMatch(/\[tappaas-litellm\] FAILED: secret \S+ for tappaas-litellm does not exist .*; run `npm run secrets -- generate`, then deploy again/);
    expect(noSecret.out).toContain("dry run: 1 hosts, 1 would fail, nothing was changed");
  });

  it("dry-runs every host in dependency order, printing a line per phase per host", () => {
    const r = run("deploy.ts", ["--all", "--dry-run", "--concurrency", "1"], ready);
    expect(r.status).toBe(0);
    const firsts = [...r.out.matchAll(/^\[(tappaas-[a-z]+)\] would wait for SSH/gm)].map((m) => m[1]);
    expect(firsts.indexOf("tappaas-chainfire")).toBeLessThan(firsts.indexOf("tappaas-flaredb"));
    expect(firsts.indexOf("tappaas-flaredb")).toBeLessThan(firsts.indexOf("tappaas-iam"));
    expect(firsts.indexOf("tappaas-iam")).toBeLessThan(firsts.indexOf("tappaas-novanet"));
    expect(r.out).toContain("dry run: 12 hosts, nothing was changed");
  });
});

describe("template bootstrap CLI", () => {
  it("prints the nix build, upload, qmrestore and qm template steps with --dry-run", () => {
    const r = run("bootstrap-template.ts", ["--dry-run"]);
    expect(r.status).toBe(0);
    expect(r.out).toContain(`would run: nix build ${ROOT}/nixos#proxmox-template`);
    expect(r.out).toContain("qmrestore /var/lib/vz/dump/vzdump-qemu-8100-nixos-template.vma.zst 8100 --storage local-lvm --unique 1 && qm set 8100 --name nixos-template && qm template 8100");
  });

  it("refuses a missing spec in --from-env mode", () => {
    const r = run("bootstrap-template.ts", ["--from-env"]);
    expect(r.status).toBe(2);
    expect(r.err).toContain("FLEET_TEMPLATE_SPEC is not set or not JSON");
  });
});
