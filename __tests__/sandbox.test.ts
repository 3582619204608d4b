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

  const hosts = JSON.parse(readFileSync(join(ROOT, "fleet.json"), "utf8")).hosts.map((h: any) => h.name);
  const deploy = (cli: string) => runAsync("bash", ["-c", `source ${dir}/env && npx ${cli} deploy '*' --auto-approve`], { cwd: ROOT, env: { ...process.env, CI: "1" } });

  it("up, then `source DIR/env && npx cdktf deploy '*' --auto-approve` creates every VM with the real provider and deploys every host; a second up says it runs", async () => {
    const up = await sandbox("up", "--inventory", join(ROOT, "fleet.json"), "--dir", dir);
    expect({ status: up.status, err: up.stderr }).toEqual({ status: 0, err: "" });
    const again = await sandbox("up", "--inventory", join(ROOT, "fleet.json"), "--dir", dir);
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/a sandbox is already running in .* \(pid \d+\)/);
    // In the project, as a user runs it (the deploy steps run scripts/deploy.ts from the project root).
    const r = await deploy("cdktf");
    expect({ status: r.status, tail: r.status === 0 ? "" : r.out.slice(-4000) }).toEqual({ status: 0, tail: "" });
    for (const h of hosts) expect(r.out).toMatch(new RegExp(`\\[${h}\\] nixos-rebuild switch ${h} done`));
    expect(readdirSync(join(dir, "state")).sort()).toEqual(["terraform.ai.tfstate", "terraform.cluster.tfstate", "terraform.ops.tfstate", "terraform.platform.tfstate"]);
  }, 300_000);

  it("on a new sandbox, the maintained CLI itself (`npx cdktn deploy '*'`) deploys fleet.json too", async () => {
    expect((await sandbox("down", "--dir", dir)).status).toBe(0);
    expect((await sandbox("up", "--inventory", join(ROOT, "fleet.json"), "--dir", dir)).status).toBe(0);
    const r = await deploy("cdktn");
    expect({ status: r.status, tail: r.status === 0 ? "" : r.out.slice(-4000) }).toEqual({ status: 0, tail: "" });
    for (const h of hosts) expect(r.out).toMatch(new RegExp(`\\[${h}\\] nixos-rebuild switch ${h} done`));
  }, 300_000);

  it("down stops every process and removes the addresses; down on a stopped sandbox exits 0", async () => {
    const down = await sandbox("down", "--dir", dir);
    expect(down.status).toBe(0);
    expect(spawnSync("pgrep", ["-f", `sandbox.ts serve --dir ${dir}`]).status).toBe(1); // nothing matches
    expect(spawnSync("ip", ["addr", "show", "lo"], { encoding: "utf8" }).stdout).not.toContain("198.18.0.");
    expect((await sandbox("down", "--dir", dir)).status).toBe(0);
  });
});
