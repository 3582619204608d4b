/**
 * `npm run sandbox`: the whole product on one machine. The Proxmox VE cluster is the API
 * simulator (sandbox/pve, a STAND-IN), the hosts are real sshd targets with the nixos-rebuild and
 * Nix/systemd STAND-INS of __tests__/stand-ins, the roles' services are STAND-INS answering their
 * health checks; OpenTofu, the bpg provider, the cdktf CLI, ssh, sudo and age are real.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, runAsync } from "./helpers";

const sandbox = (...args: string[]) => runAsync("node", ["--import", "tsx", join(ROOT, "scripts", "sandbox.ts"), ...args], { cwd: ROOT, env: process.env });
const dir = mkdtempSync(join(tmpdir(), "sandbox-"));
afterAll(() => sandbox("down", "--dir", dir));

describe("npm run sandbox", () => {
  it("refuses a broken inventory with its one-line problems and starts nothing", async () => {
    const bad = join(dir, "bad.json");
    const data = JSON.parse(readFileSync(join(ROOT, "fleet.json"), "utf8"));
    data.hosts[0].vmid = 42;
    writeFileSync(bad, JSON.stringify(data));
    const r = await sandbox("up", "--inventory", bad, "--dir", join(dir, "bad"));
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`host "${data.hosts[0].name}": vmid: 42 is outside 100-999999999`);
    expect(r.stderr).toContain("nothing was started");
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it("up, then `source DIR/env && npx cdktf deploy '*' --auto-approve` creates every VM with the real provider and deploys every host; a second up says it runs; down stops everything", async () => {
    const up = await sandbox("up", "--inventory", join(ROOT, "fleet.json"), "--dir", dir);
    expect({ status: up.status, err: up.stderr }).toEqual({ status: 0, err: "" });
    const again = await sandbox("up", "--inventory", join(ROOT, "fleet.json"), "--dir", dir);
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/a sandbox is already running in .* \(pid \d+\)/);

    // In the project, as a user runs it (the deploy steps run scripts/deploy.ts from the project root).
    const deploy = await runAsync("bash", ["-c", `source ${dir}/env && npx cdktf deploy '*' --auto-approve`], { cwd: ROOT, env: { ...process.env, CI: "1" } });
    expect({ status: deploy.status, tail: deploy.status === 0 ? "" : deploy.out.slice(-4000) }).toEqual({ status: 0, tail: "" });
    const hosts = JSON.parse(readFileSync(join(ROOT, "fleet.json"), "utf8")).hosts.map((h: any) => h.name);
    for (const h of hosts) expect(deploy.out).toMatch(new RegExp(`\\[${h}\\] nixos-rebuild switch ${h} done`));
    expect(readdirSync(join(dir, "state")).sort()).toEqual(["terraform.ai.tfstate", "terraform.cluster.tfstate", "terraform.ops.tfstate", "terraform.platform.tfstate"]);

    const down = await sandbox("down", "--dir", dir);
    expect(down.status).toBe(0);
    const left = spawnSync("pgrep", ["-f", `sandbox.ts serve --dir ${dir}`]);
    expect(left.status).toBe(1); // nothing matches
    expect(spawnSync("ip", ["addr", "show", "lo"], { encoding: "utf8" }).stdout).not.toContain("198.18.0.");
    const downAgain = await sandbox("down", "--dir", dir);
    expect(downAgain.status).toBe(0);
  });
});
