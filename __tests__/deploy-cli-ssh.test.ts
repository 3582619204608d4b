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
import { DEPLOY_USER, secretsFor, sshTestBed, startHost, STAND_INS, SSH_PORT } from "./ssh-harness";

const { work, key, hosts, servers } = sshTestBed();

describe("npm run deploy over real SSH (from the inventory)", () => {
  const fleetFile = (hosts: any[]) => {
    const d = exampleData();
    d.deploy = { user: DEPLOY_USER, sshPort: SSH_PORT };
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

  it("rolls a quorum role one member at a time, and a failed member stops the roll", async () => {
    const ips = ["127.0.0.81", "127.0.0.82", "127.0.0.83"];
    for (const [i, ip] of ips.entries()) hosts.push(await startHost(`r${i + 1}`, [ip], key));
    // chainfire's health: its three ports answer; member 2's never do
    const { createServer: tcp } = require("node:net");
    for (const ip of [ips[0], ips[2]]) for (const port of [2379, 2380, 2381]) await new Promise<void>((d) => { const srv = tcp(() => {}).listen(port, ip, () => d()); servers.push(srv); });
    const kh = join(mkdtempSync(join(work, "kh-")), "known_hosts");
    const file = fleetFile(ips.map((ip, i) => host(`cf${i + 1}`, ["chainfire"], 711 + i, ip)));
    const r = await cli(["--all", "--concurrency", "3", "--health-timeout", "1", "--health-stable", "0.5"], file, kh);
    expect(r.status).toBe(5);
    // one at a time: cf2 starts only after cf1 is done
    expect(r.out.indexOf("[cf2] wait for ssh")).toBeGreaterThan(r.out.indexOf("[cf1] deployed"));
    expect(r.out).toContain("[cf2] FAILED: health check failed");
    expect(r.out).toMatch(/^ {2}FAILED {2}cf3 +0\.0s {2}skipped: waits for cf2, which failed$/m);
    expect(r.out).not.toContain("[cf3] wait for ssh");
  });
});

