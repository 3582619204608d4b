/**
 * The deploy script against real OpenSSH servers on loopback addresses. nixos-rebuild and the
 * target's systemctl are STAND-INS (__tests__/stand-ins): nixos-rebuild needs nixpkgs and the
 * test container has no systemd. Everything else (sshd, ssh, ssh-keyscan, known_hosts pinning,
 * HTTP health checks) is real.
 */
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App } from "cdktf";
import { buildFleet } from "../stacks/fleet";
import { parseInventory } from "../constructs/inventory";
import { exampleData, ROOT, runAsync } from "./helpers";
import { clientKey, generationOf, startHost, startHttp, STAND_INS, SSH_PORT, TestHost } from "./ssh-harness";
import type { DeploySpec } from "../scripts/lib/deploy-host";

const work = mkdtempSync(join(tmpdir(), "deploy-"));
const key = clientKey(work);
const hosts: TestHost[] = [];
const servers: Server[] = [];
afterAll(() => {
  hosts.forEach((h) => h.stop());
  servers.forEach((s) => s.close());
});

function spec(host: string, extra: Partial<DeploySpec> = {}): DeploySpec {
  return {
    host,
    vmid: 501,
    node: "pve1",
    roles: ["vllm"],
    agentAddress: "",
    flake: "./nixos",
    user: "root",
    sshPort: SSH_PORT,
    health: [{ role: "vllm", kind: "http", port: 8000, path: "/health" }],
    timeouts: { sshSeconds: 10, switchSeconds: 60, healthSeconds: 3 },
    ...extra,
  };
}

/**
 * Runs scripts/deploy.ts --from-env as a deploy step does; returns exit code, output, stand-in
 * log. Asynchronous, so the HTTP "services" in this process keep answering meanwhile.
 */
async function deploy(s: DeploySpec, knownHosts: string, args: string[] = [], env: Record<string, string> = {}) {
  const log = join(mkdtempSync(join(work, "log-")), "nixos-rebuild.log");
  const { status, out } = await runAsync("node", ["--import", "tsx", join(ROOT, "scripts", "deploy.ts"), "--from-env", ...args], {
    env: {
      ...process.env,
      PATH: `${join(STAND_INS, "bin")}:${process.env.PATH}`,
      FLEET_DEPLOY_SPEC: JSON.stringify(s),
      FLEET_KNOWN_HOSTS: knownHosts,
      FLEET_SSH_KEY_FILE: key,
      FLEET_STANDIN_LOG: log,
      SSH_AUTH_SOCK: "",
      ...env,
    },
  });
  return { status, out, calls: existsSync(log) ? readFileSync(log, "utf8").trim().split("\n") : [] };
}

describe("deploy over real SSH", () => {
  it("deploys: pins the key on first contact, switches with remote sudo, checks health, prints phases", async () => {
    const h = await startHost("a", ["127.0.0.31"], key);
    hosts.push(h);
    servers.push(await startHttp("127.0.0.31", 8000, "/health"));
    const kh = join(mkdtempSync(join(work, "kh-")), "known_hosts");
    const r = await deploy(spec("web-a", { finalAddress: "127.0.0.31" }), kh);
    expect(r.status).toBe(0);
    expect(r.calls).toHaveLength(1);
    expect(r.calls[0]).toContain(`switch --flake ${ROOT}/nixos#web-a --target-host root@127.0.0.31 --use-remote-sudo`);
    expect(r.calls[0]).toContain("HostKeyAlias=web-a");
    expect(r.calls[0]).toContain(`UserKnownHostsFile=${kh}`);
    expect(r.calls[0]).toContain("StrictHostKeyChecking=yes");
    expect(generationOf(h)).toBe("system-1-link");
    const pinned = readFileSync(kh, "utf8");
    expect(pinned).toContain("# vmid web-a 501");
    expect(pinned).toContain(`web-a ${readFileSync(`${h.hostKey}.pub`, "utf8").split(" ").slice(0, 2).join(" ")}`);
    expect(r.out).toMatch(/^\[web-a\] wait for ssh done \(\d+\.\ds\)$/m);
    expect(r.out).toMatch(/^\[web-a\] first contact: pinned ssh-ed25519 key/m);
    expect(r.out).toMatch(/^\[web-a\] health check done/m);
    expect(r.out).not.toContain("PRIVATE KEY");

    // A second deploy finds the same key and moves one generation on.
    const again = await deploy(spec("web-a", { finalAddress: "127.0.0.31" }), kh);
    expect(again.status).toBe(0);
    expect(again.out).toContain("host key matches the pinned key");
    expect(generationOf(h)).toBe("system-2-link");
  });

  it("gives up on an unreachable target within its deadline, with a clear message", async () => {
    const kh = join(mkdtempSync(join(work, "kh-")), "known_hosts");
    const r = await deploy(spec("ghost", { finalAddress: "127.0.0.99", timeouts: { sshSeconds: 2, switchSeconds: 5, healthSeconds: 1 } }), kh);
    expect(r.status).toBe(3);
    expect(r.out).toContain("[ghost] FAILED: SSH did not answer on 127.0.0.99 port 2222 within 2s");
    expect(r.out).toContain("[ghost] next: check that VM 501 on pve1 runs");
    expect(r.calls).toEqual([]);
  });

  it("refuses a changed host key while the vmid is the same, and accepts it when the VM was recreated", async () => {
    const h = await startHost("b", ["127.0.0.32"], key);
    hosts.push(h);
    servers.push(await startHttp("127.0.0.32", 8000, "/health"));
    const kh = join(mkdtempSync(join(work, "kh-")), "known_hosts");
    writeFileSync(kh, "# vmid web-b 501\nweb-b ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMBdEQbWhgNDvUkSvdg4aRf6CDzDCIrCGUKcIJmGvsZo\n");
    const refused = await deploy(spec("web-b", { finalAddress: "127.0.0.32" }), kh);
    expect(refused.status).toBe(4);
    expect(refused.out).toMatch(/host key of web-b at 127\.0\.0\.32 changed .* while its vmid stayed 501; refusing to connect/);
    expect(refused.calls).toEqual([]);
    expect(generationOf(h)).toBeUndefined();

    const recreated = await deploy(spec("web-b", { finalAddress: "127.0.0.32", vmid: 777 }), kh);
    expect(recreated.status).toBe(0);
    expect(recreated.out).toContain("VM was recreated (vmid 501 -> 777): replaced the pinned host key");
    expect(readFileSync(kh, "utf8")).toContain("# vmid web-b 777");
  });

  it("follows the host to its new static address after activation", async () => {
    const oldAddr = await startHost("c", ["127.0.0.41"], key);
    const newAddr = await startHost("c2", ["127.0.0.42"], key, oldAddr.hostKey); // same machine, same key
    hosts.push(oldAddr, newAddr);
    servers.push(await startHttp("127.0.0.42", 8000, "/health"));
    const kh = join(mkdtempSync(join(work, "kh-")), "known_hosts");
    const r = await deploy(spec("web-c", { agentAddress: "127.0.0.41", finalAddress: "127.0.0.42" }), kh);
    expect(r.status).toBe(0);
    expect(r.calls[0]).toContain("--target-host root@127.0.0.41");
    expect(r.out).toContain("[web-c] address moved 127.0.0.41 -> 127.0.0.42");
    expect(r.out).toMatch(/\[web-c\] healthy: no failed units, vllm:8000 answer/);
  });

  it("rolls back and exits non-zero when the health check fails", async () => {
    const h = await startHost("d", ["127.0.0.51"], key);
    hosts.push(h);
    const kh = join(mkdtempSync(join(work, "kh-")), "known_hosts");
    writeFileSync(join(h.dir, "failed-units"), "vllm.service loaded failed failed vLLM OpenAI-compatible server\n");
    const r = await deploy(spec("web-d", { finalAddress: "127.0.0.51" }), kh);
    expect(r.status).toBe(5);
    expect(r.calls).toHaveLength(2);
    expect(r.calls[1]).toContain("switch --rollback --flake");
    expect(generationOf(h)).toBe("system-0-link");
    expect(r.out).toContain("failed systemd units: vllm.service");
    expect(r.out).toContain("vllm: GET http://127.0.0.51:8000/health failed (ECONNREFUSED)");
    expect(r.out).toMatch(/FAILED: health check failed after 3s: .*; rolled back to system-0-link/);
    expect(r.out).toContain("Terraform marks the step tainted, so the next `cdktf deploy` retries it");
  });

  it("does not roll back when the build failed before activation (nothing changed on the host)", async () => {
    const h = await startHost("e", ["127.0.0.52"], key);
    hosts.push(h);
    servers.push(await startHttp("127.0.0.52", 8000, "/health"));
    const kh = join(mkdtempSync(join(work, "kh-")), "known_hosts");
    expect((await deploy(spec("web-e", { finalAddress: "127.0.0.52" }), kh)).status).toBe(0);
    const r = await deploy(spec("web-e", { finalAddress: "127.0.0.52" }), kh, [], { FLEET_STANDIN_FAIL_SWITCH: "1" });
    expect(r.status).toBe(1);
    expect(r.out).toContain("[web-e]   | error: builder for");
    expect(r.out).toContain("FAILED: nixos-rebuild switch exited 1; the host still runs its previous generation system-1-link");
    expect(r.calls).toHaveLength(1);
    expect(generationOf(h)).toBe("system-1-link");
  });

  it("rolls back when activation fails after the new generation went live", async () => {
    const h = await startHost("i", ["127.0.0.55"], key);
    hosts.push(h);
    const kh = join(mkdtempSync(join(work, "kh-")), "known_hosts");
    const r = await deploy(spec("web-i", { finalAddress: "127.0.0.55" }), kh, [], { FLEET_STANDIN_FAIL_AFTER_ACTIVATE: "1" });
    expect(r.status).toBe(1);
    expect(r.out).toContain("FAILED: nixos-rebuild switch exited 4; rolled back to system-0-link");
    expect(r.calls[1]).toContain("switch --rollback");
    expect(generationOf(h)).toBe("system-0-link");
  });

  it("stops before touching the host when nixos-rebuild is not installed", async () => {
    const kh = join(mkdtempSync(join(work, "kh-")), "known_hosts");
    const r = await deploy(spec("web-h", { finalAddress: "127.0.0.31" }), kh, [], { PATH: "/usr/local/bin:/usr/bin:/bin" });
    expect(r.status).toBe(2);
    expect(r.out).toContain("[web-h] FAILED: nixos-rebuild is not on PATH; install Nix, then `nix profile install nixpkgs#nixos-rebuild`");
    expect(existsSync(kh)).toBe(false);
  });

  it("prints exactly what would run with --dry-run and touches nothing", async () => {
    const kh = join(mkdtempSync(join(work, "kh-")), "known_hosts");
    const caches = { substituters: ["https://cuda.cache.example"], trustedPublicKeys: ["cuda.cache.example-1:AAAA"] };
    const r = await deploy(spec("web-f", { finalAddress: "127.0.0.53", buildHost: "builder.lan", ...caches }), kh, ["--dry-run"]);
    expect(r.status).toBe(0);
    expect(r.out).toContain(`would run: NIX_SSHOPTS="-p 2222 -o BatchMode=yes`);
    expect(r.out).toContain(`nixos-rebuild switch --flake ${ROOT}/nixos#web-f --target-host root@<address> --use-remote-sudo --build-host builder.lan --option extra-substituters https://cuda.cache.example --option extra-trusted-public-keys cuda.cache.example-1:AAAA`);
    expect(r.calls).toEqual([]);
    expect(existsSync(kh)).toBe(false);
  });

  it("returns a host to its previous generation with --rollback", async () => {
    const h = await startHost("g", ["127.0.0.54"], key);
    hosts.push(h);
    servers.push(await startHttp("127.0.0.54", 8000, "/health"));
    const kh = join(mkdtempSync(join(work, "kh-")), "known_hosts");
    expect((await deploy(spec("web-g", { finalAddress: "127.0.0.54" }), kh)).status).toBe(0);
    expect((await deploy(spec("web-g", { finalAddress: "127.0.0.54" }), kh)).status).toBe(0);
    expect(generationOf(h)).toBe("system-2-link");
    const r = await deploy(spec("web-g", { finalAddress: "127.0.0.54" }), kh, ["--rollback"]);
    expect(r.status).toBe(0);
    expect(generationOf(h)).toBe("system-1-link");
    expect(r.out).toContain("now at system-1-link");
  });

  it("runs as a Terraform deploy step: terraform apply -> local-exec -> deploy.ts -> sshd", async () => {
    const h = await startHost("t", ["127.0.0.61"], key);
    hosts.push(h);
    const d = exampleData();
    d.deploy = { user: "root", sshPort: SSH_PORT };
    d.hosts = [{ name: "git1", roles: ["cicd"], vmid: 610, node: "pve1", cores: 2, memoryMiB: 2048, diskGiB: 20, network: { address: "127.0.0.61/8", gateway: "127.0.0.1" } }];
    const root = mkdtempSync(join(work, "tf-"));
    const app = new App({ outdir: join(root, "cdktf.out"), skipValidation: true });
    buildFleet(app, parseInventory(JSON.stringify(d)), { root: ROOT, manageVms: false, deployWorkingDir: ROOT });
    app.synth();
    const dir = join(root, "cdktf.out", "stacks", "ops");
    const kh = join(root, "known_hosts");
    const log = join(root, "nixos-rebuild.log");
    const env = { ...process.env, PATH: `${join(STAND_INS, "bin")}:${process.env.PATH}`, FLEET_SSH_KEY_FILE: key, FLEET_KNOWN_HOSTS: kh, FLEET_STANDIN_LOG: log, SSH_AUTH_SOCK: "" };
    const run = (args: string[]) => runAsync("terraform", args, { cwd: dir, env });
    expect((await run(["init", "-input=false", "-no-color"])).status).toBe(0);
    const r = await run(["apply", "-auto-approve", "-input=false", "-no-color"]);
    expect(r.status).toBe(0);
    expect(r.out).toMatch(/\[git1\] deployed system-1-link in \d+\.\ds/);
    expect(readFileSync(log, "utf8")).toContain("--target-host root@127.0.0.61 --use-remote-sudo");
    expect(readFileSync(kh, "utf8")).toContain("# vmid git1 610");
    expect(generationOf(h)).toBe("system-1-link");
  });
});

describe("npm run deploy over real SSH (from the inventory)", () => {
  const fleetFile = (hosts: any[]) => {
    const d = exampleData();
    d.deploy = { user: "root", sshPort: SSH_PORT };
    d.hosts = hosts;
    const file = join(mkdtempSync(join(work, "fleet-")), "fleet.json");
    writeFileSync(file, JSON.stringify(d));
    return file;
  };
  const host = (name: string, roles: string[], vmid: number, ip: string) => ({ name, roles, vmid, node: "pve1", cores: 2, memoryMiB: 2048, diskGiB: 20, network: { address: `${ip}/8`, gateway: "127.0.0.1" } });
  const cli = (args: string[], file: string, kh: string) =>
    runAsync("node", ["--import", "tsx", join(ROOT, "scripts", "deploy.ts"), ...args], {
      env: { ...process.env, PATH: `${join(STAND_INS, "bin")}:${process.env.PATH}`, FLEET_FILE: file, FLEET_KNOWN_HOSTS: kh, FLEET_SSH_KEY_FILE: key, FLEET_STANDIN_LOG: join(work, "cli.log"), SSH_AUTH_SOCK: "" },
    });

  it("deploys every host with --all and prints a summary", async () => {
    hosts.push(await startHost("m1", ["127.0.0.71"], key), await startHost("m2", ["127.0.0.72"], key));
    const kh = join(mkdtempSync(join(work, "kh-")), "known_hosts");
    const r = await cli(["--all", "--concurrency", "2"], fleetFile([host("git1", ["cicd"], 701, "127.0.0.71"), host("box2", [], 702, "127.0.0.72")]), kh);
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
    const r = await cli(["--all", "--health-timeout", "1"], file, kh);
    expect(r.status).toBe(5);
    expect(r.out).toContain("[cf1] FAILED: health check failed after 1s: chainfire: nothing listens on 127.0.0.73:2379");
    expect(r.out).toMatch(/^ {2}FAILED {2}db1 +0\.0s {2}skipped: waits for cf1, which failed$/m);
    expect(r.out).toContain("[cf1] next: see `journalctl -u <unit>` on cf1; fix and deploy again; retry with `npm run deploy -- cf1`");
    expect(r.out).not.toContain("[db1] wait for ssh");
    expect(r.out).toContain("0 deployed, 2 failed");
  });
});
