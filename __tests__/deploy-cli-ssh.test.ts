/**
 * `npm run deploy` (from the inventory, several hosts) against real OpenSSH servers, logged into as an
 * unprivileged user with real sudo (root login refused, as on the real hosts). nixos-rebuild and
 * the target's Nix/systemd tools are STAND-INS (__tests__/stand-ins): nixos-rebuild-ng needs
 * nixpkgs, and the test container has no Nix or systemd. Their behaviour is copied from
 * nixos-rebuild-ng, switch-to-configuration-ng and Nix's profiles (see each file). Everything
 * else (sshd, ssh, ssh-keyscan, sudo, known_hosts pinning, HTTP health checks) is real.
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { exampleData, ROOT, runAsync } from "./helpers";
import { createServer } from "node:http";
import { DEPLOY_USER, runningOf, secretsFor, sshTestBed, startHost, STAND_INS, SSH_PORT, TestHost } from "./ssh-harness";

const { work, key, hosts, servers } = sshTestBed();

describe("npm run deploy over real SSH (from the inventory)", () => {
  const fleetFile = (hosts: any[], deploy: object = {}) => {
    const d = exampleData();
    d.deploy = { user: DEPLOY_USER, sshPort: SSH_PORT, ...deploy };
    d.users.push({ name: DEPLOY_USER, admin: true, sshKeys: [readFileSync(`${key}.pub`, "utf8").trim()] });
    d.hosts = hosts;
    const file = join(mkdtempSync(join(work, "fleet-")), "fleet.json");
    writeFileSync(file, JSON.stringify(d));
    return file;
  };
  const host = (name: string, roles: string[], vmid: number, ip: string) => ({ name, roles, vmid, node: "pve1", cores: 2, memoryMiB: 2048, diskGiB: 20, network: { address: `${ip}/8`, gateway: "127.0.0.1" } });
  const cli = (args: string[], file: string, kh: string) =>
    runAsync("node", ["--import", "tsx", join(ROOT, "scripts", "deploy.ts"), ...args], {
      // the secrets the hosts' roles need exist (encrypted to the operator only: each host is added at first contact)
      env: { ...process.env, ...secretsFor(file, key, kh), PATH: `${join(STAND_INS, "bin")}:${process.env.PATH}`, FLEET_FILE: file, FLEET_KNOWN_HOSTS: kh, FLEET_SSH_KEY_FILE: key, FLEET_STANDIN_LOG: join(work, "cli.log"), SSH_AUTH_SOCK: "" },
    });

  it("deploys every host with --all and prints a summary", async () => {
    hosts.push(await startHost("m1", ["127.0.0.71"], key), await startHost("m2", ["127.0.0.72"], key));
    const kh = join(mkdtempSync(join(work, "kh-")), "known_hosts");
    const r = await cli(["--all", "--concurrency", "2", "--health-stable", "1"], fleetFile([host("git1", ["cicd"], 701, "127.0.0.71"), host("box2", [], 702, "127.0.0.72")]), kh);
    expect(r.status).toBe(0);
    expect(r.out).toMatch(/^ {2}ok {6}git1 +\d+\.\ds {2}127\.0\.0\.71$/m);
    expect(r.out).toMatch(/^ {2}ok {6}box2 /m);
    expect(r.out).toContain("2 deployed, 0 failed");
  });

  it("skips the hosts that wait for a host whose deploy failed", async () => {
    hosts.push(await startHost("p1", ["127.0.0.73"], key), await startHost("p2", ["127.0.0.74"], key));
    const kh = join(mkdtempSync(join(work, "kh-")), "known_hosts");
    // Nothing listens on chainfire's ports, so its health check fails and it is rolled back.
    const file = fleetFile([host("cf1", ["chainfire"], 703, "127.0.0.73"), host("db1", ["flaredb"], 704, "127.0.0.74")]);
    const r = await cli(["--all", "--health-timeout", "1", "--health-stable", "1"], file, kh);
    expect(r.status).toBe(5);
    expect(r.out).toContain("[cf1] FAILED: health check failed after 1s: chainfire: nothing listens on 127.0.0.73:2379");
    expect(r.out).toMatch(/^ {2}FAILED {2}db1 +0\.0s {2}skipped: waits for cf1, which failed$/m);
    expect(r.out).toContain("[cf1] next: see `journalctl -u <unit>` on cf1; fix and deploy again; retry with `npm run deploy -- cf1`");
    expect(r.out).not.toContain("[db1] wait for ssh");
    expect(r.out).toContain("0 deployed, 2 failed");
  });

  /**
   * STAND-IN for a Raft service (chainfire) on each member: its raft and gossip ports listen, and
   * GET :2379/cluster/health answers the membership contract of the role table
   * ({ members, healthy }, docs/adr-0013). A member counts once it runs a system (a fresh host
   * joins with its first generation); after each switch it is down for `rejoinMs`, as a
   * restarted member is until it has caught up with the leader. `broken` members run (their
   * ports answer) but never rejoin the cluster after their switch. The largest number of members
   * down at once is recorded: more than one of three is a lost quorum.
   */
  async function raftStandIn(members: { ip: string; host: TestHost }[], opts: { rejoinMs: number; broken?: string[]; brokenFromStart?: boolean }) {
    const state = members.map((m) => ({ ...m, label: runningOf(m.host), downUntil: 0, broken: !!opts.brokenFromStart && !!opts.broken?.includes(m.ip) }));
    const watch = { maxDown: 0 };
    const poll = setInterval(() => {
      const now = Date.now();
      for (const m of state) {
        const label = runningOf(m.host);
        if (label !== m.label) {
          m.label = label;
          m.downUntil = now + opts.rejoinMs;
          if (opts.broken?.includes(m.ip)) m.broken = true;
        }
      }
      watch.maxDown = Math.max(watch.maxDown, state.filter((m) => m.label !== undefined && (now < m.downUntil || m.broken)).length);
    }, 25);
    servers.push({ close: () => clearInterval(poll) });
    const { createServer: tcp } = require("node:net");
    for (const m of state) {
      for (const port of [2380, 2381]) await new Promise<void>((d) => { const srv = tcp(() => {}).listen(port, m.ip, () => d()); servers.push(srv); });
      const http = createServer((req, res) => {
        const now = Date.now();
        const joined = state.filter((x) => x.label !== undefined);
        const healthy = joined.filter((x) => now >= x.downUntil && !x.broken);
        res.setHeader("Content-Type", "application/json");
        res.end(req.url === "/cluster/health" ? JSON.stringify({ members: joined.length, healthy: healthy.length }) : "{}");
      });
      await new Promise<void>((d) => http.listen(2379, m.ip, () => d()));
      servers.push(http);
    }
    return watch;
  }

  it("rolls a quorum role one member at a time, each after its cluster is whole again, and a failed member stops the roll", async () => {
    const ips = ["127.0.0.81", "127.0.0.82", "127.0.0.83"];
    const members = [];
    for (const [i, ip] of ips.entries()) members.push({ ip, host: await startHost(`r${i + 1}`, [ip], key) });
    hosts.push(...members.map((m) => m.host));
    const watch = await raftStandIn(members, { rejoinMs: 1500, broken: [ips[1]] });
    const kh = join(mkdtempSync(join(work, "kh-")), "known_hosts");
    const file = fleetFile(ips.map((ip, i) => host(`cf${i + 1}`, ["chainfire"], 711 + i, ip)));
    const r = await cli(["--all", "--concurrency", "3", "--health-timeout", "4", "--health-stable", "0.5"], file, kh);
    expect(r.status).toBe(5);
    // cf1's gate waited until it had rejoined: the whole cluster healthy
    expect(r.out).toMatch(/\[cf1\] healthy for 0\.5s: chainfire\.service active; chainfire:2379, chainfire:2380, chainfire:2381 answer; chainfire cluster 3\/3 healthy \(all 3 members agree\)/);
    // one at a time: cf2 starts only after cf1 is done
    expect(r.out.indexOf("[cf2] wait for ssh")).toBeGreaterThan(r.out.indexOf("[cf1] deployed"));
    expect(r.out).toMatch(/\[cf2\] FAILED: health check failed after 4s: .*chainfire: the cluster has 2 of 3 members healthy; all 3 must be healthy/);
    expect(r.out).toMatch(/^ {2}FAILED {2}cf3 +0\.0s {2}skipped: waits for cf2, which failed$/m);
    expect(r.out).not.toContain("[cf3] wait for ssh");
    // never more than one member down at a time (cf2 stays down: it failed and was rolled back)
    expect(watch.maxDown).toBe(1);
  });

  it("#26 item 8: with one member down, deploying another member refuses before touching it (all members are asked, not the member's own view)", async () => {
    const ips = ["127.0.2.81", "127.0.2.82", "127.0.2.83"];
    const members = [];
    for (const [i, ip] of ips.entries()) members.push({ ip, host: await startHost(`q${i + 1}`, [ip], key) });
    hosts.push(...members.map((m) => m.host));
    const watch = await raftStandIn(members, { rejoinMs: 300, broken: [ips[2]], brokenFromStart: true });
    const kh = join(mkdtempSync(join(work, "kh-")), "known_hosts");
    const file = fleetFile(ips.map((ip, i) => host(`qf${i + 1}`, ["chainfire"], 751 + i, ip)));
    const r = await cli(["qf1", "--health-timeout", "2", "--health-stable", "0.5"], file, kh);
    expect(r.status).not.toBe(0);
    expect(r.out).toContain("[qf1] FAILED: not touching qf1: chainfire: the cluster has 2 of 3 members healthy; all 3 must be healthy");
    expect(r.out).not.toContain("[qf1] nixos-rebuild switch qf1 ...");
    expect(runningOf(members[0].host)).toBe("v0");
    expect(watch.maxDown).toBe(1);
  });

  it("bootstraps a new Raft cluster one member at a time: each gate wants only the members that exist", async () => {
    const ips = ["127.0.0.91", "127.0.0.92", "127.0.0.93"];
    const members = [];
    for (const [i, ip] of ips.entries()) members.push({ ip, host: await startHost(`b${i + 1}`, [ip], key, undefined, SSH_PORT, { fresh: true }) });
    hosts.push(...members.map((m) => m.host));
    const watch = await raftStandIn(members, { rejoinMs: 300 });
    const kh = join(mkdtempSync(join(work, "kh-")), "known_hosts");
    const file = fleetFile(ips.map((ip, i) => host(`nf${i + 1}`, ["chainfire"], 721 + i, ip)));
    const r = await cli(["--all", "--concurrency", "3", "--health-timeout", "5", "--health-stable", "0.5"], file, kh);
    expect(r.status).toBe(0);
    expect(r.out).toContain("[nf1] healthy for 0.5s: chainfire.service active; chainfire:2379, chainfire:2380, chainfire:2381 answer; chainfire cluster forming: 1 of 3 members, all healthy");
    expect(r.out).toContain("chainfire cluster forming: 2 of 3 members, all healthy");
    expect(r.out).toContain("[nf3] healthy for 0.5s: chainfire.service active; chainfire:2379, chainfire:2380, chainfire:2381 answer; chainfire cluster 3/3 healthy (all 3 members agree)");
    expect(r.out.indexOf("[nf2] wait for ssh")).toBeGreaterThan(r.out.indexOf("[nf1] deployed"));
    expect(r.out.indexOf("[nf3] wait for ssh")).toBeGreaterThan(r.out.indexOf("[nf2] deployed"));
    expect(watch.maxDown).toBe(1);
  });

  it("stops early when hosts do not answer: the rest of a role, then the rest of the fleet, are not tried", async () => {
    const kh = join(mkdtempSync(join(work, "kh-")), "known_hosts");
    // nothing listens on these addresses
    const sameRole = fleetFile(["c1", "c2", "c3", "c4"].map((n, i) => host(n, ["cicd"], 731 + i, `127.0.1.${11 + i}`)), { maxUnavailable: 4 });
    const r = await cli(["--all", "--concurrency", "1", "--ssh-timeout", "2"], sameRole, kh);
    expect(r.status).toBe(3);
    expect(r.out).toContain("[c1] FAILED: SSH did not answer on 127.0.1.11, c1.tappaas.lan port 2222 within 2s");
    for (const n of ["c2", "c3", "c4"]) expect(r.out).toMatch(new RegExp(`^ {2}FAILED {2}${n} +0\\.0s {2}not tried: cicd member c1 was unreachable$`, "m"));
    expect(r.out).not.toContain("[c2] wait for ssh");

    const plain = fleetFile(["p1", "p2", "p3", "p4", "p5", "p6"].map((n, i) => host(n, [], 741 + i, `127.0.1.${21 + i}`)));
    const all = await cli(["--all", "--concurrency", "3", "--ssh-timeout", "2"], plain, kh);
    expect(all.status).toBe(3);
    expect(all.out.match(/wait for ssh \.\.\./g)).toHaveLength(3);
    for (const n of ["p4", "p5", "p6"]) expect(all.out).toMatch(new RegExp(`^ {2}FAILED {2}${n} +0\\.0s {2}not tried: all 3 hosts tried were unreachable`, "m"));
    expect(all.out).toContain("0 deployed, 6 failed");
  });
});
