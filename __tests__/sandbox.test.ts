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
import { pveCall } from "../scripts/lib/pve-api";

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

  it("examples/raft-platform.json: cores +2 on every Raft member reboots each member once through the deploy, never two members of a role at once, and every member runs the new value", async () => {
    expect((await sandbox("down", "--dir", dir)).status).toBe(0);
    expect((await sandbox("up", "--inventory", join(ROOT, "examples", "raft-platform.json"), "--dir", dir)).status).toBe(0);
    // checks stable for 1 s instead of 10 (the sandbox's services do not flap): a shorter run
    const inv = JSON.parse(readFileSync(join(dir, "fleet.json"), "utf8"));
    inv.deploy.healthStableSeconds = 1;
    writeFileSync(join(dir, "fleet.json"), JSON.stringify(inv, null, 2));
    const first = await deploy("cdktf");
    expect({ status: first.status, tail: first.status === 0 ? "" : first.out.slice(-4000) }).toEqual({ status: 0, tail: "" });
    const data = JSON.parse(readFileSync(join(dir, "fleet.json"), "utf8"));
    const members = data.hosts.filter((h: any) => h.roles.includes("chainfire") || h.roles.includes("flaredb"));
    expect(members).toHaveLength(6);
    for (const h of members) h.cores += 2;
    writeFileSync(join(dir, "fleet.json"), JSON.stringify(data, null, 2));
    const logged = readFileSync(join(dir, "power.log"), "utf8").split("\n").filter(Boolean).length;
    const second = await deploy("cdktf");
    expect({ status: second.status, tail: second.status === 0 ? "" : second.out.slice(-4000) }).toEqual({ status: 0, tail: "" });

    // The power changes in the order they happened: each member down once, and while a member of
    // a role is down no other member of that role goes down.
    const roleOf = new Map<number, string>(members.map((h: any) => [h.vmid, h.roles[0]]));
    const events = readFileSync(join(dir, "power.log"), "utf8").split("\n").filter(Boolean).slice(logged).map((l) => JSON.parse(l));
    const down = new Map<string, number>();
    const overlaps: string[] = [];
    for (const e of events) {
      const role = roleOf.get(e.vmid);
      if (!role) overlaps.push(`VM ${e.vmid} (no Raft member) went ${e.status}`);
      else if (e.status === "stopped") {
        if (down.has(role)) overlaps.push(`${role}: VM ${e.vmid} went down while VM ${down.get(role)} was down`);
        down.set(role, e.vmid);
      } else down.delete(role);
    }
    expect(overlaps).toEqual([]);
    expect(events.filter((e) => e.status === "stopped").map((e) => e.vmid).sort()).toEqual(members.map((h: any) => h.vmid).sort());

    // Proxmox's view: one reboot task per member, and the new core count in force, nothing pending.
    const ready = JSON.parse(readFileSync(join(dir, "ready.json"), "utf8"));
    const token = JSON.parse(readFileSync(join(dir, "token.json"), "utf8"));
    const api = { endpoint: new URL(ready.url), token: `${token.id}=${token.secret}`, insecure: true };
    const tasks: any[] = await pveCall(api, "GET", "/cluster/tasks");
    expect(tasks.filter((t) => t.type === "qmreboot").map((t) => Number(t.id)).sort()).toEqual(members.map((h: any) => h.vmid).sort());
    for (const h of members) {
      const pending: any[] = await pveCall(api, "GET", `/nodes/${h.node}/qemu/${h.vmid}/pending`);
      expect({ vmid: h.vmid, cores: pending.find((p) => p.key === "cores") }).toEqual({ vmid: h.vmid, cores: { key: "cores", value: String(h.cores) } });
    }
    expect(second.out).toMatch(/\[raft-cf1\] rebooting VM 9300 on pve1 to apply pending cores/);
  }, 900_000);

  it("down stops every process and removes the addresses; down on a stopped sandbox exits 0", async () => {
    const down = await sandbox("down", "--dir", dir);
    expect(down.status).toBe(0);
    expect(spawnSync("pgrep", ["-f", `sandbox.ts serve --dir ${dir}`]).status).toBe(1); // nothing matches
    expect(spawnSync("ip", ["addr", "show", "lo"], { encoding: "utf8" }).stdout).not.toContain("198.18.0.");
    expect((await sandbox("down", "--dir", dir)).status).toBe(0);
  });
});
